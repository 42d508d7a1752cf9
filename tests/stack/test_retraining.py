"""The periodic retraining job on the real stack: forced runs train a real
scikit-learn model, register it, run the gates and (per spec) deploy it; a second
run with the same artifact registers nothing new."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from nomadml.adapters.model_store import ModelRegistry
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.cli.main import main

AUTO = {"auto_deploy = false                  #": "auto_deploy = true                   #"}


def _force_and_wait(nomad: NomadAPI, job_id: str) -> str:
    """Launch the periodic job now; return the child's stdout once it is done."""

    def children() -> set[str]:
        jobs = nomad.request("GET", "jobs", params={"prefix": f"{job_id}/periodic-"}).body
        return {j["ID"] for j in jobs or []}

    before = children()
    nomad.request("PUT", f"job/{job_id}/periodic/force")
    launched = children() - before
    assert len(launched) == 1, launched
    child = launched.pop()
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        job = nomad.job(child) or {}
        if job.get("Status") == "dead":
            break
        time.sleep(1)
    allocs = nomad.job_allocations(child)
    assert allocs, f"{child} never ran"
    logs = nomad.task_log_tail(allocs[0]["ID"], "train", "stdout", size=20000)
    assert allocs[0]["ClientStatus"] == "complete", logs + nomad.task_log_tail(
        allocs[0]["ID"], "train", "stderr", size=5000
    )
    return logs


def test_periodic_retraining_registers_gates_and_deploys_idempotently(
    nomad: NomadAPI, model_name: str, make_spec: Callable[..., Path], serving_image: str
) -> None:
    spec = make_spec(AUTO, gates="health")
    result = CliRunner().invoke(main, ["schedule-retraining", str(spec)])
    assert result.exit_code == 0, result.stderr
    job_id = f"{model_name}-retrain"
    job = nomad.job(job_id)
    assert job is not None and job["Periodic"]["Specs"] == ["0 3 * * *"]
    assert job["Periodic"]["ProhibitOverlap"] is True

    logs = _force_and_wait(nomad, job_id)
    assert "registered" in logs and "validated" in logs and "deploy of 1.0.0: succeeded" in logs
    registry = ModelRegistry(nomad)
    record = registry.get(model_name, "1.0.0")
    assert record is not None and record.stage == "validated"
    line = nomad.job(f"{model_name}-v1")
    assert line is not None and line["Meta"]["nomadml.version"] == "1.0.0"

    # Same data, same seed: the same artifact; the second run adds nothing.
    logs = _force_and_wait(nomad, job_id)
    assert "artifact unchanged" in logs
    assert [r.version for r in registry.versions(model_name)] == ["1.0.0"]
    assert nomad.job(f"{model_name}-v1")["Version"] == line["Version"]  # type: ignore[index]
