"""The rollout engine on the real stack: canary + gates + promotion, automatic
rollback on a bad canary, a failing bootstrap, a promotion made by someone else,
a deploy race, and a post-promotion rollback."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nomadml.adapters import rollout_records as history
from nomadml.adapters.nomad_api import BLOCKING_WAIT_S, Answer, NomadAPI
from nomadml.core.decide import Action
from nomadml.engine.endpoints import endpoints
from nomadml.engine.result import RolloutResult
from nomadml.engine.rollback import rollback
from nomadml.engine.traffic import Traffic
from nomadml.errors import Conflict, ExitCode


def _running_versions(nomad: NomadAPI, job_id: str) -> set[str]:
    """Model versions of the allocations meant to run (not those draining to a stop)."""
    allocs = [
        a
        for a in nomad.job_allocations(job_id)
        if a["ClientStatus"] == "running" and a["DesiredStatus"] == "run"
    ]
    versions = {a["JobVersion"] for a in allocs}
    job_versions = {v["Version"]: v["Meta"]["nomadml.version"] for v in nomad.job_versions(job_id)}
    return {job_versions[v] for v in versions}


def test_good_version_canaries_pass_gates_and_are_promoted_then_rolled_back(
    roll: Callable[..., RolloutResult],
    nomad: NomadAPI,
    model_name: str,
    make_spec: Callable[..., Path],
    ship: Callable[..., str],
) -> None:
    spec = make_spec(gates="fast")
    job_id = f"{model_name}-v1"
    first = roll(spec, "1.0.0", ship("1.0.0"))
    assert first.action is Action.SUCCEEDED, first.reason

    with Traffic(nomad, job_id, rate_per_s=15, max_seconds=180) as traffic:
        result = roll(spec, "1.1.0", ship("1.1.0", c=0.5))
    assert result.action is Action.SUCCEEDED, result.reason
    assert result.exit_code is ExitCode.OK
    assert [g["verdict"] for g in result.gates][-2:] == ["pass", "pass"]
    assert result.gates[-1]["values"]["canary_requests"] >= 10
    assert traffic.report.by_version["1.1.0"] > 0  # real traffic reached the canary
    assert _running_versions(nomad, job_id) == {"1.1.0"}  # old allocations are gone

    job = nomad.job(job_id)
    assert job is not None and job["Meta"]["nomadml.version"] == "1.1.0"
    tagged = {
        v["Version"]: (v.get("VersionTag") or {}).get("Name") for v in nomad.job_versions(job_id)
    }
    assert tagged[job["Version"]] == "v1.1.0"
    record = history.records(nomad, job_id)[job["Version"]]
    assert record["outcome"] == "succeeded"
    assert record["gates"][-1]["values"]["canary_error_rate"] == 0

    # Post-promotion rollback: back to 1.0.0 with no canary phase to promote.
    back = rollback(nomad, job_id, timeout_s=240)
    assert back.action is Action.SUCCEEDED, back.reason
    assert back.rollback_seconds is not None and back.rollback_seconds > 0
    assert _running_versions(nomad, job_id) == {"1.0.0"}
    deployment = nomad.latest_deployment(job_id)
    assert deployment is not None and deployment["Status"] == "successful"
    # Placed all at once beside the current allocations, promoted without anyone.
    for group in deployment["TaskGroups"].values():
        assert group["DesiredCanaries"] == group["DesiredTotal"] == 2
        assert group["AutoPromote"] and group["Promoted"]
    assert {e.version for e in endpoints(nomad, job_id) if e.healthy} == {"1.0.0"}


def test_erroring_canary_fails_its_gate_and_stable_keeps_serving(
    roll: Callable[..., RolloutResult],
    nomad: NomadAPI,
    ship: Callable[..., str],
    stable_line: Callable[..., tuple[Path, str]],
) -> None:
    spec, job_id = stable_line()
    with Traffic(nomad, job_id, rate_per_s=15, max_seconds=180) as traffic:
        result = roll(spec, "1.1.0", ship("1.1.0", serving={"error_rate": 0.5}))
    assert result.action is Action.ROLLED_BACK, result.reason
    assert result.exit_code is ExitCode.ROLLED_BACK
    assert "gate failed: error rate" in result.reason
    assert result.gates[-1]["verdict"] == "fail"
    assert traffic.report.by_version["1.0.0"] > 0
    assert traffic.report.failed_by_version["1.0.0"] == 0  # stable served the whole time
    assert traffic.report.failed_by_version["1.1.0"] > 0  # the canary really was bad
    assert _running_versions(nomad, job_id) == {"1.0.0"}
    assert nomad.job(job_id)["Meta"]["nomadml.version"] == "1.0.0"  # type: ignore[index]

    # Nomad's revert copied the 1.0.0 job version; rolling back to 1.0.0 after it, twice,
    # each time ends in one complete, tagged job version: the tag is on the newest only.
    for _ in range(2):
        back = rollback(nomad, job_id, to="1.0.0", timeout_s=240)
        assert back.action is Action.SUCCEEDED, back.reason
        tags = _tags(nomad, job_id)
        assert tags.count("v1.0.0") == 1, tags
        current = nomad.job(job_id)
        assert current is not None and tags[0] == "v1.0.0"  # the newest version carries it
        assert current["Meta"]["nomadml.version"] == "1.0.0"


def _tags(nomad: NomadAPI, job_id: str) -> list[str | None]:
    """Each kept job version's tag name, newest version first."""
    versions = sorted(nomad.job_versions(job_id), key=lambda v: -int(v["Version"]))
    return [(v.get("VersionTag") or {}).get("Name") for v in versions]


def test_corrupted_model_fails_in_bootstrap_and_leaves_previous_version_alone(
    roll: Callable[..., RolloutResult],
    nomad: NomadAPI,
    model_name: str,
    ship: Callable[..., str],
    models_volume: Path,
    stable_line: Callable[..., tuple[Path, str]],
) -> None:
    spec, job_id = stable_line()
    installed = models_volume / model_name / "1.0.0"
    before = {p.name: p.stat().st_mtime_ns for p in installed.iterdir()}

    result = roll(spec, "1.1.0", ship("1.1.0", corrupt=True))
    assert result.action is Action.ROLLED_BACK, result.reason
    assert "task bootstrap" in result.reason
    assert "bootstrap said: bootstrap: size mismatch" in result.reason
    assert not (models_volume / model_name / "1.1.0").exists()
    assert {p.name: p.stat().st_mtime_ns for p in installed.iterdir()} == before
    assert _running_versions(nomad, job_id) == {"1.0.0"}


def test_promotion_made_outside_nomadml_is_noticed(
    roll: Callable[..., RolloutResult],
    nomad: NomadAPI,
    ship: Callable[..., str],
    stable_line: Callable[..., tuple[Path, str]],
) -> None:
    # No traffic and a high sample minimum: nomadml's gates cannot decide, so the
    # canary waits for them — until an operator promotes it through the API.
    spec, job_id = stable_line({"min_requests = 10": "min_requests = 100000"})
    image = ship("1.1.0")
    outcome: list[RolloutResult] = []
    watcher = threading.Thread(target=lambda: outcome.append(roll(spec, "1.1.0", image)))
    watcher.start()
    deadline = time.monotonic() + 120
    promoted = False
    while time.monotonic() < deadline and not promoted:
        dep = nomad.latest_deployment(job_id) or {}
        group = (dep.get("TaskGroups") or {}).get("model", {})
        if dep.get("JobVersion", 0) >= 1 and group.get("HealthyAllocs", 0) >= 1:
            nomad.promote(dep["ID"])
            promoted = True
        time.sleep(0.5)
    watcher.join(timeout=180)
    assert promoted
    assert outcome and outcome[0].action is Action.SUCCEEDED, outcome
    assert _running_versions(nomad, job_id) == {"1.1.0"}


def test_two_deploys_at_once_exactly_one_registers(
    roll: Callable[..., RolloutResult],
    nomad: NomadAPI,
    ship: Callable[..., str],
    stable_line: Callable[..., tuple[Path, str]],
) -> None:
    spec, job_id = stable_line(gates="health")  # no traffic here
    images = {"1.1.0": ship("1.1.0"), "1.2.0": ship("1.2.0", c=0.3)}
    barrier = threading.Barrier(2, timeout=60)

    class RacingAPI(NomadAPI):
        """The real client; the submit step waits until both deploys have planned."""

        def acquire_lock(self, path: str, ttl: str, items: dict[str, str]) -> str:
            barrier.wait()
            return super().acquire_lock(path, ttl, items)

    outcomes: dict[str, object] = {}

    def run(version: str) -> None:
        try:
            outcomes[version] = roll(spec, version, images[version], api=RacingAPI(nomad.settings))
        except Conflict as err:
            outcomes[version] = err

    threads = [threading.Thread(target=run, args=(v,)) for v in images]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    conflicts = [v for v, o in outcomes.items() if isinstance(o, Conflict)]
    winners = [v for v, o in outcomes.items() if isinstance(o, RolloutResult)]
    assert len(conflicts) == 1 and len(winners) == 1, outcomes
    winner = outcomes[winners[0]]
    assert isinstance(winner, RolloutResult) and winner.action is Action.SUCCEEDED
    err = outcomes[conflicts[0]]
    assert isinstance(err, Conflict) and err.exit_code is ExitCode.CONFLICT
    assert "changed since it was planned" in str(err), err
    versions = [v["Meta"]["nomadml.version"] for v in nomad.job_versions(job_id)]
    assert conflicts[0] not in versions  # the loser registered nothing


def test_the_watch_follows_the_real_agents_event_stream(
    roll: Callable[..., RolloutResult],
    nomad: NomadAPI,
    stable_line: Callable[..., tuple[Path, str]],
    ship: Callable[..., str],
) -> None:
    """One event stream per watch on the real agent, with no fall back to blocking
    reads of the deployment (a wrong topic or index would fall back silently)."""
    spec, _ = stable_line(gates="health")
    streams: list[dict[str, Any]] = []
    blocking: list[str] = []

    class Watched(NomadAPI):
        def open_stream(self, path: str, params: dict[str, Any], read_timeout: float) -> Any:
            streams.append(params)
            return super().open_stream(path, params, read_timeout)

        def get(self, path: str, index: int = 0, wait: float = BLOCKING_WAIT_S) -> Answer:
            if index and path.startswith("deployment/"):
                blocking.append(path)
            return super().get(path, index, wait)

    result = roll(spec, "1.1.0", ship("1.1.0", c=0.5), api=Watched(nomad.settings))
    assert result.action is Action.SUCCEEDED, result.reason
    assert [s["topic"] for s in streams] == [f"Deployment:{result.deployment_id}"], streams
    assert blocking == []
    assert result.watch_calls <= 6, result.watch_calls
