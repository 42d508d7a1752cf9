"""`router up` on an ACL cluster whose router job may not read its routing table: a
router this command placed, held by the table, is one line at once naming the command
that binds the router policy; one placed before (the policy bound since?) is given
Nomad's template retry time, and the timeout names the policy if it still waits."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from support.fake_nomad import FakeNomad

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.engine import router
from nomadml.errors import ExitCode, NomadMLError
from nomadml.settings import NomadSettings

HELD = {
    "haproxy": {
        "State": "pending",
        "Events": [
            {"Type": "Received", "DisplayMessage": "Task received by client"},
            {
                "Type": "Template",
                "DisplayMessage": "Missing: nomad.var.block(nomadml/routes/iris@default.global)",
            },
        ],
    }
}
POLICY = (
    "iris-router cannot read its routing table nomadml/routes/iris: its workload identity "
    "needs the router policy (nomadml policy router | nomad acl policy apply -namespace "
    "default -job iris-router nomadml-router-iris -)"
)


class _Spec:
    name = "iris"


@pytest.fixture()
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeNomad]:
    """A fake Nomad where registering the router places one allocation that waits for
    the routing table (what Nomad shows when the job's identity may not read it)."""
    with FakeNomad() as nomad:
        nomad.put_variable("nomadml/routes/iris", {"known": "1"})

        def register(api: NomadAPI, job: dict[str, Any], **_: Any) -> None:
            nomad.put_allocation(
                {"ID": "placed-now", "JobID": "iris-router", "DesiredStatus": "run",
                 "Namespace": "default", "TaskStates": HELD}
            )  # fmt: skip

        monkeypatch.setattr(router, "read_table", lambda api, model: object())
        monkeypatch.setattr(router, "render_router", lambda spec, image, count: "hcl")
        monkeypatch.setattr(
            router, "parse_and_validate", lambda api, hcl, what: {"ID": "iris-router"}
        )
        monkeypatch.setattr(router, "register_exclusively", register)
        monkeypatch.setattr(router, "READY_S", 0.5)
        yield nomad


def _up(nomad: FakeNomad) -> NomadMLError:
    api = NomadAPI(NomadSettings.from_env({"NOMAD_ADDR": nomad.address}))
    spec: Any = _Spec()  # the rest of the spec is the renderer's, replaced here
    with pytest.raises(NomadMLError) as raised:
        router.up(api, spec, "router@sha256:" + "a" * 64, count=1)
    return raised.value


def test_a_router_it_placed_held_by_the_table_is_one_line_at_once(fake: FakeNomad) -> None:
    err = _up(fake)
    assert err.exit_code == ExitCode.FAILED
    assert str(err) == POLICY


def test_a_router_placed_before_is_given_time_and_the_timeout_names_the_policy(
    fake: FakeNomad, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.put_job({"ID": "iris-router", "Meta": {"nomadml.model": "iris"}})
    fake.put_allocation(
        {"ID": "placed-before", "JobID": "iris-router", "DesiredStatus": "run",
         "Namespace": "default", "TaskStates": HELD}
    )  # fmt: skip
    monkeypatch.setattr(router, "register_exclusively", lambda api, job, **_: None)
    monkeypatch.setattr(router, "check_owner", lambda job_id, existing, model: None)
    err = _up(fake)
    assert err.exit_code == ExitCode.TIMEOUT
    assert str(err) == f"iris-router: 0/1 routers answering after 0 s; {POLICY}"


def test_a_table_that_does_not_exist_is_not_called_a_missing_policy(fake: FakeNomad) -> None:
    fake.put_variable("nomadml/routes/other", {})
    api = NomadAPI(NomadSettings.from_env({"NOMAD_ADDR": fake.address}))
    api.request("DELETE", "var/nomadml/routes/iris")
    err = _up(fake)
    assert err.exit_code == ExitCode.TIMEOUT
    assert str(err) == "iris-router: 0/1 routers answering after 0 s"
