"""Taking over a claimed regression: which step of the rollback is left, decided from
the job the line runs and its newest deployment; and the guard carrying it out (fake
Nomad): a registered, unpromoted rollback is promoted once, never registered again."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from support.fake_nomad import FakeNomad

from nomadml.adapters import rollout_records as history
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.guard import GuardConfig
from nomadml.core.guard_takeover import TakeoverStep, takeover_step
from nomadml.core.routing import Line, RoutingTable, Split
from nomadml.engine import guard, router
from nomadml.events import Event
from nomadml.settings import NomadSettings

LINE = "churn-v1"
BAKED = 3  # the regressed version's job version
ROLLBACK = {"Version": 4, "Meta": {"nomadml.rolled_back_from": "1.1.0"}}


def _dep(status: str, version: int = 4) -> dict[str, Any]:
    return {"ID": "d1", "JobVersion": version, "Status": status}


@pytest.mark.parametrize(
    ("job", "deployment", "step"),
    [
        ({"Version": BAKED}, None, "register"),
        ({"Version": BAKED}, _dep("successful", BAKED), "register"),
        (ROLLBACK, _dep("running"), "follow"),
        (ROLLBACK, _dep("pending"), "follow"),
        (ROLLBACK, _dep("successful"), "done"),
        (ROLLBACK, None, "done"),
        (ROLLBACK, _dep("successful", BAKED), "done"),  # the rollback needed no deployment
        (ROLLBACK, _dep("failed"), "failed"),
        (ROLLBACK, _dep("cancelled"), "failed"),
        ({"Version": 4, "Meta": {}}, _dep("running"), "moved-on"),  # an operator's deploy
        (
            {"Version": 4, "Meta": {"nomadml.rolled_back_from": "1.2.0"}},
            _dep("running"),
            "moved-on",
        ),
        ({"Version": 2, "Meta": {"nomadml.rolled_back_from": "1.1.0"}}, None, "moved-on"),
    ],
)
def test_the_step_left(
    job: dict[str, Any], deployment: dict[str, Any] | None, step: TakeoverStep
) -> None:
    assert takeover_step(BAKED, "1.1.0", job, deployment) == step


def _api(fake: FakeNomad) -> NomadAPI:
    return NomadAPI(NomadSettings.from_env({"NOMAD_ADDR": fake.address}))


def _claimed_rollback(fake: FakeNomad) -> tuple[NomadAPI, int]:
    """The state a guard leaves when it stops after registering the rollback: the record
    `rolling-back` (claimed over a minute ago), the line at the rollback's job version
    and its deployment (canaries healthy) waiting for nomadml's promotion."""
    api = _api(fake)
    meta = {"nomadml.managed": "true", "nomadml.model": "churn"}
    fake.put_job({"ID": LINE, "Status": "running", "Meta": {**meta, "nomadml.version": "1.1.0"}})
    baked = int((api.job(LINE) or {})["Version"])
    history.record(
        api,
        LINE,
        baked,
        {
            "guard": {
                "status": "rolling-back",
                "model": "churn",
                "version": "1.1.0",
                "reason": "regression: errors",
                "detected_at": time.time() - 60,
                "config": GuardConfig(bake_s=60, interval_s=2).as_dict(),
            }
        },
    )
    fake.put_job(
        {
            "ID": LINE,
            "Status": "running",
            "Meta": {**meta, "nomadml.version": "1.0.0", "nomadml.rolled_back_from": "1.1.0"},
        }
    )
    fake.put_deployment(_deployment(baked + 1, "running", 2, promoted=False))
    return api, baked + 1


def _deployment(version: int, status: str, healthy: int, promoted: bool) -> dict[str, Any]:
    return {
        "ID": "dep-rollback-0001",
        "JobID": LINE,
        "JobVersion": version,
        "Status": status,
        "StatusDescription": "",
        "TaskGroups": {
            "serve": {
                "DesiredCanaries": 2,
                "DesiredTotal": 2,
                "PlacedCanaries": ["a1", "a2"],
                "PlacedAllocs": 2,
                "HealthyAllocs": healthy,
                "UnhealthyAllocs": 0,
                "Promoted": promoted,
                "AutoPromote": False,
            }
        },
    }


PROMOTE = "/v1/deployment/promote/dep-rollback-0001"


def _nomad_promotes(fake: FakeNomad, version: int, *services: dict[str, Any]) -> threading.Thread:
    """Answers the promotion as Nomad does: once asked, the deployment is promoted and
    successful (and `services` re-registered, the canaries' tags gone)."""
    fake.script("PUT", PROMOTE, 200, {"EvalID": "e1", "Index": 1})

    def promoted() -> None:
        deadline = time.monotonic() + 20
        while not fake.requests_to("PUT", PROMOTE) and time.monotonic() < deadline:
            time.sleep(0.05)
        for service in services:
            fake.put_service(service)
        fake.put_deployment(_deployment(version, "successful", 2, promoted=True))

    nomad = threading.Thread(target=promoted, daemon=True)
    nomad.start()
    return nomad


def test_a_taken_over_rollback_waiting_for_its_promotion_is_promoted_once(
    fake_nomad: FakeNomad,
) -> None:
    api, version = _claimed_rollback(fake_nomad)
    nomad = _nomad_promotes(fake_nomad, version)
    result = guard.bake(api, LINE)
    nomad.join(5)
    assert (result.outcome, int(result.exit_code)) == ("rolled-back", 6), result.reason
    assert len(fake_nomad.requests_to("PUT", PROMOTE)) == 1
    assert fake_nomad.requests_to("PUT", f"/v1/job/{LINE}") == []  # no second rollback
    assert fake_nomad.requests_to("POST", "/v1/jobs") == []
    assert int((api.job(LINE) or {})["Version"]) == version
    record, _ = history.read(api, LINE, version - 1)
    assert record["guard"]["status"] == "rolled-back"


def test_a_taken_over_rollback_already_complete_is_only_recorded(fake_nomad: FakeNomad) -> None:
    api, version = _claimed_rollback(fake_nomad)
    fake_nomad.put_deployment(_deployment(version, "successful", 2, promoted=True))
    result = guard.bake(api, LINE)
    assert result.outcome == "rolled-back" and "already moved on" in result.reason
    assert fake_nomad.requests_to("PUT", PROMOTE) == []
    assert fake_nomad.requests_to("PUT", f"/v1/job/{LINE}") == []


def test_a_routed_line_s_table_moves_before_the_taken_over_promotion(
    fake_nomad: FakeNomad,
) -> None:
    api, version = _claimed_rollback(fake_nomad)
    for alloc, tags in (("a1", ["version=1.0.0", "canary"]), ("r1", ["version=1.1.0"])):
        fake_nomad.put_service(
            {
                "ID": alloc,
                "ServiceName": "churn-serve",
                "JobID": LINE,
                "AllocID": alloc,
                "Tags": tags,
            }
        )
    router.write_table(api, RoutingTable("churn", (Line(LINE, 1, (Split("1.1.0", 100),)),), 1))
    service = {"ServiceName": "churn-serve", "JobID": LINE, "Tags": ["version=1.0.0"]}
    nomad = _nomad_promotes(fake_nomad, version, {**service, "ID": "a1", "AllocID": "a1"})
    events: list[Event] = []
    result = guard.bake(api, LINE, events.append)
    nomad.join(5)
    assert result.outcome == "rolled-back", result.reason
    said = [e.message for e in events]
    moved = said.index(f"router: {LINE} -> 1.0.0 100%, 1.1.0 0%")
    promoted = next(i for i, m in enumerate(said) if "promot" in m and "deployment" in m)
    assert moved < promoted, said
    assert len(fake_nomad.requests_to("PUT", PROMOTE)) == 1
    assert fake_nomad.requests_to("PUT", f"/v1/job/{LINE}") == []
    table = router.read_table(api, "churn")
    assert table is not None and table.lines[0].splits == (Split("1.0.0", 100),)


def test_a_complete_rollback_s_leftover_zero_split_is_removed(fake_nomad: FakeNomad) -> None:
    api, version = _claimed_rollback(fake_nomad)
    fake_nomad.put_deployment(_deployment(version, "successful", 2, promoted=True))
    service = {"ServiceName": "churn-serve", "JobID": LINE, "Tags": ["version=1.0.0"]}
    fake_nomad.put_service({**service, "ID": "a1", "AllocID": "a1"})
    left = Line(LINE, 1, (Split("1.0.0", 100), Split("1.1.0", 0)))
    router.write_table(api, RoutingTable("churn", (left,), 1))
    result = guard.bake(api, LINE)
    assert result.outcome == "rolled-back", result.reason
    table = router.read_table(api, "churn")
    assert table is not None and table.lines[0].splits == (Split("1.0.0", 100),)
    assert fake_nomad.requests_to("PUT", PROMOTE) == []
    assert fake_nomad.requests_to("PUT", f"/v1/job/{LINE}") == []
