"""The always-on guard on the real stack: `nomadml guard --up --model M` registers it as
a Nomad service job (raw_exec: the nomadml on the agent's PATH); it picks up the bake of
a freshly promoted version by itself. Its allocation is restarted mid-bake; the new
process resumes the same bake from the state in the rollout record (same end time, the
looks go on counting), and when the version degrades, the line is rolled back exactly
once, with no failed request for the stable version."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from nomadml.adapters import rollout_records as history
from nomadml.adapters.model_store import ModelRegistry
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.cli.main import main
from nomadml.core.decide import Action
from nomadml.engine.guard_record import FINAL
from nomadml.engine.result import RolloutResult
from nomadml.engine.traffic import Traffic

RATE = 20
GOOD_FOR = 900  # predictions per allocation before 1.1.0 degrades (~80 s after promotion)
GUARDED = {
    'window = "20s"': 'window = "4s"',
    'interval = "5s"': 'interval = "2s"',
    "[validation]": (
        "[gates.judge]\nenabled = true\nalpha = 0.01\nerror_increase = 0.2\n"
        'latency = false\ndeadline = "3m"\n\n[guard]\nbake = "5m"\n\n[validation]'
    ),
}


def _guard_record(
    nomad: NomadAPI, path: str, until: Callable[[dict[str, Any]], bool], timeout_s: float
) -> dict[str, Any]:
    """The guard field of a rollout record once `until` holds (blocking queries)."""
    deadline, index = time.monotonic() + timeout_s, 0
    while time.monotonic() < deadline:
        answer = nomad.get(f"var/{path}", index, wait=5)
        items = (answer.body or {}).get("Items") or {}
        guard = json.loads(items["guard"]) if "guard" in items else {}
        if guard and until(guard):
            return dict(guard)
        index = max(answer.index, 1)
    raise AssertionError(f"{path}: no such guard state within {timeout_s} s")


def _running_alloc(nomad: NomadAPI, job_id: str, timeout_s: float = 60) -> dict[str, Any]:
    deadline, index = time.monotonic() + timeout_s, 0
    while time.monotonic() < deadline:
        answer = nomad.get(f"job/{job_id}/allocations", index, wait=5)
        running = [a for a in answer.body or [] if a.get("ClientStatus") == "running"]
        if running:
            return dict(running[0])
        index = max(answer.index, 1)
    raise AssertionError(f"{job_id}: no running allocation within {timeout_s} s")


def test_the_always_on_guard_resumes_after_a_restart_and_rolls_back_once(
    roll: Callable[..., RolloutResult],
    nomad: NomadAPI,
    make_spec: Callable[..., Path],
    ship: Callable[..., str],
    model_name: str,
) -> None:
    spec, line = make_spec(GUARDED), f"{model_name}-v1"
    assert roll(spec, "1.0.0", ship("1.0.0")).action is Action.SUCCEEDED
    up = CliRunner().invoke(main, ["guard", "--up", "--model", model_name])
    assert up.exit_code == 0, up.output
    guard_job = f"{model_name}-guard"
    alloc = _running_alloc(nomad, guard_job)
    late = ship("1.1.0", serving={"error_rate": 0.5, "error_after": GOOD_FOR})

    with Traffic(nomad, line, rate_per_s=RATE, max_seconds=480) as traffic:
        promoted = roll(spec, "1.1.0", late)
        assert promoted.action is Action.SUCCEEDED, promoted.reason
        path = f"{history.PREFIX}/{line}/{promoted.job_version}"
        before = _guard_record(nomad, path, lambda g: g["state"]["looks"] >= 3, 60)
        assert before["status"] == "baking"
        nomad.request("PUT", f"client/allocation/{alloc['ID']}/restart", body={})
        final = _guard_record(nomad, path, lambda g: g["status"] in FINAL, 400)
    report = traffic.report
    print(
        f"traffic: {report.summary()}; looks before the restart {before['state']['looks']}, "
        f"at the end {final['state']['looks']}"
    )

    assert final["status"] == "rolled-back", final
    assert final["state"]["looks"] > before["state"]["looks"]
    assert report.failed_by_version["1.0.0"] == 0, report.summary()
    assert report.failed_by_version["1.1.0"] > 0  # it really degraded

    # Exactly one rollback: one more job version, one rollback record, one audit entry.
    job = nomad.job(line) or {}
    assert job["Meta"]["nomadml.version"] == "1.0.0"
    assert int(job["Version"]) == int(promoted.job_version or 0) + 1
    kinds = [r.get("kind") for r in history.records(nomad, line).values()]
    assert kinds.count("rollback") == 1, kinds
    audit = [e for e in ModelRegistry(nomad).audit_log(model_name) if e["action"] == "regression"]
    assert len(audit) == 1, audit

    # The allocation was restarted, and the second process resumed the same bake (the
    # bake's end comes from the promotion time in the record, not from the restart).
    states = (nomad.request("GET", f"allocation/{alloc['ID']}").body or {})["TaskStates"]
    assert states["guard"]["Restarts"] >= 1
    logs = nomad.task_log_tail(alloc["ID"], "guard", kind="stdout", size=20000)
    ends = re.findall(r"guard: watching 1\.1\.0 until (\S+) UTC", logs)
    assert len(ends) >= 2 and len(set(ends)) == 1, logs[-3000:]
