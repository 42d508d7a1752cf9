"""What the always-on guard's tests share: waiting on a rollout record's guard field and
on the guard job's running allocation (blocking queries, with a deadline), and the
check that a late regression was rolled back exactly once."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nomadml.adapters import rollout_records as history
from nomadml.adapters.model_store import ModelRegistry
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.decide import Action
from nomadml.engine.result import RolloutResult
from nomadml.engine.traffic import TrafficReport


def guard_record(
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


def running_alloc(nomad: NomadAPI, job_id: str, timeout_s: float = 60) -> dict[str, Any]:
    """The job's first running allocation (blocking queries)."""
    deadline, index = time.monotonic() + timeout_s, 0
    while time.monotonic() < deadline:
        answer = nomad.get(f"job/{job_id}/allocations", index, wait=5)
        running = [a for a in answer.body or [] if a.get("ClientStatus") == "running"]
        if running:
            return dict(running[0])
        index = max(answer.index, 1)
    raise AssertionError(f"{job_id}: no running allocation within {timeout_s} s")


def promoted_and_baking(
    nomad: NomadAPI, roll: Callable[..., RolloutResult], spec: Path, line: str, image: str
) -> tuple[RolloutResult, str, dict[str, Any]]:
    """Deploy 1.1.0 (`image`) to success and wait until a guard made 3 looks of its bake:
    (the rollout, its record's path, the guard field then)."""
    promoted = roll(spec, "1.1.0", image)
    assert promoted.action is Action.SUCCEEDED, promoted.reason
    path = f"{history.PREFIX}/{line}/{promoted.job_version}"
    before = guard_record(nomad, path, lambda g: g["state"]["looks"] >= 3, 60)
    assert before["status"] == "baking", before
    return promoted, path, before


def rolled_back_once(
    nomad: NomadAPI,
    model: str,
    line: str,
    promoted_job_version: int,
    before: dict[str, Any],
    final: dict[str, Any],
    report: TrafficReport,
) -> None:
    """1.1.0 (promoted as `promoted_job_version`) degraded and the guard rolled the line
    back to 1.0.0 exactly once, having looked on since `before`; no request that 1.0.0
    answered failed."""
    assert final["status"] == "rolled-back", final
    assert final["state"]["looks"] > before["state"]["looks"]
    assert report.failed_by_version["1.0.0"] == 0, report.summary()
    assert report.failed_by_version["1.1.0"] > 0  # it really degraded
    # Exactly one rollback: one more job version, one rollback record, one audit entry.
    job = nomad.job(line) or {}
    assert job["Meta"]["nomadml.version"] == "1.0.0"
    assert int(job["Version"]) == promoted_job_version + 1
    kinds = [r.get("kind") for r in history.records(nomad, line).values()]
    assert kinds.count("rollback") == 1, kinds
    audit = [e for e in ModelRegistry(nomad).audit_log(model) if e["action"] == "regression"]
    assert len(audit) == 1, audit
