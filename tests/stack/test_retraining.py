"""The periodic retraining job on the real stack: forced runs train a real
scikit-learn model, register it, run the gates and (per spec) deploy it; a second
run with the same artifact registers nothing new."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner
from support.periodic import force_and_wait

from nomadml.adapters.model_store import ModelRegistry
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.cli.main import main

AUTO = {"auto_deploy = false                  #": "auto_deploy = true                   #"}


def _force_and_wait(nomad: NomadAPI, job_id: str, status: str = "complete") -> str:
    """Launch the periodic job now; return the child's stdout + stderr once it is done
    (its allocation must end `status`)."""

    child = force_and_wait(nomad, job_id)
    allocs = nomad.job_allocations(child)
    assert allocs, f"{child} never ran"
    logs = nomad.task_log_tail(allocs[0]["ID"], "train", "stdout", size=20000)
    logs += nomad.task_log_tail(allocs[0]["ID"], "train", "stderr", size=5000)
    assert allocs[0]["ClientStatus"] == status, logs
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
    assert record is not None and record.stage == "production"  # its rollout settled it
    line = nomad.job(f"{model_name}-v1")
    assert line is not None and line["Meta"]["nomadml.version"] == "1.0.0"

    # Same data, same seed: the same artifact; the second run adds nothing.
    logs = _force_and_wait(nomad, job_id)
    assert "artifact unchanged" in logs
    assert [r.version for r in registry.versions(model_name)] == ["1.0.0"]
    assert nomad.job(f"{model_name}-v1")["Version"] == line["Version"]  # type: ignore[index]

    # New data: a new minor in the same major, validated, canaried and promoted; the
    # rollout makes it the production version of major 1.
    data = spec.parent / "data" / "train.csv"
    rows = data.read_text().splitlines()
    data.write_text("\n".join(rows + rows[1:31]) + "\n")  # 30 more observations
    logs = _force_and_wait(nomad, job_id)
    assert "data checks passed" in logs and "deploy of 1.1.0: succeeded" in logs, logs
    stages = {r.version: r.stage for r in registry.versions(model_name)}
    assert stages == {"1.0.0": "archived", "1.1.0": "production"}, stages

    # Data that fails its checks: the run fails, naming each failed check; nothing is
    # registered, the line is untouched, the audit trail says why.
    broken = data.read_text().splitlines()
    broken[1] = ",".join(["", "3.0", "99.0", "1.0", "setosa"])  # missing + out of range
    data.write_text("\n".join(broken) + "\n")
    before = nomad.job(f"{model_name}-v1")["Version"]  # type: ignore[index]
    logs = _force_and_wait(nomad, job_id, status="failed")
    assert "data check failed: train data" in logs
    assert "column sepal_length: 0.7% missing values > max_missing 0.0%" in logs, logs
    assert "column petal_length: fails less_than_or_equal_to(10.0)" in logs, logs
    assert "nothing trained or registered" in logs
    assert [r.version for r in registry.versions(model_name)] == ["1.0.0", "1.1.0"]
    assert nomad.job(f"{model_name}-v1")["Version"] == before  # type: ignore[index]
    audit = [e for e in registry.audit_log(model_name) if e["action"] == "data-check"]
    assert len(audit) == 1 and len(audit[0]["details"]["failures"]) >= 2
