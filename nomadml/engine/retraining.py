"""One retraining run, as the periodic retraining job executes it (`nomadml retrain`):

the operator's trainer -> register as a candidate (nothing new if the artifact is
unchanged) -> validation gates -> if the spec says so and the line has no rollout
in flight, a canary deploy. A rejected version is never deployed or promoted.

The trainer is the spec's `retraining.trainer` command. Its contract: write the
model files and `metadata.json` into the directory named by $NOMADML_OUTPUT_DIR,
exit 0. Anything else registers nothing."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from nomadml.adapters.model_store import ModelRegistry
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.spec import ModelSpec
from nomadml.engine.registration import register_model
from nomadml.engine.stages import validate_version
from nomadml.errors import BadInput
from nomadml.events import Event

Log = Callable[[str], None]
TRAINER_TIMEOUT_S = 6 * 3600


def train(spec: ModelSpec, out_dir: Path, log: Log) -> None:
    """Run the spec's trainer into `out_dir`; its output goes to the run's log."""
    trainer = list(spec.retraining.trainer)
    if not trainer:
        raise BadInput(f"{spec.source}: retraining.trainer: no trainer command")
    out_dir.mkdir(parents=True)
    env = {**os.environ, "NOMADML_OUTPUT_DIR": str(out_dir), "NOMADML_MODEL_NAME": spec.name}
    shown = " ".join(trainer)
    log(f"training {spec.name}: {shown}")
    try:
        done = subprocess.run(trainer, env=env, check=False, timeout=TRAINER_TIMEOUT_S)
    except FileNotFoundError:
        raise BadInput(f"trainer {trainer[0]!r} not found: nothing registered") from None
    except subprocess.TimeoutExpired:
        raise BadInput(
            f"trainer {shown!r} ran over {TRAINER_TIMEOUT_S} s: nothing registered"
        ) from None
    if done.returncode != 0:
        raise BadInput(f"trainer {shown!r} exited {done.returncode}: nothing registered")
    if not (out_dir / "metadata.json").is_file():
        raise BadInput(
            "trainer wrote no metadata.json into $NOMADML_OUTPUT_DIR: nothing registered"
        )


def in_flight(api: NomadAPI, job_id: str) -> bool:
    dep = api.latest_deployment(job_id) if api.job(job_id) else None
    return bool(dep) and dep.get("Status") in ("running", "paused")  # type: ignore[union-attr]


def run(api: NomadAPI, spec: ModelSpec, auto_deploy: bool, log: Log) -> str:
    """Returns what happened: unchanged, rejected, validated, deployed, skipped-in-flight."""
    registry = ModelRegistry(api)
    # Reach the registry before the (long) training: an unreachable or refusing
    # Nomad fails the run at once, with nothing trained for nothing.
    known = len(registry.versions(spec.name))
    log(f"{spec.name}: {known} version(s) registered")

    def emit(event: Event) -> None:
        log(event.message)

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        train(spec, model_dir, log)
        log(f"trained {spec.name}")
        record, created = register_model(
            registry,
            model_dir,
            spec.name,
            bump_part="minor",
            image_registry=spec.model.registry,
            emit=emit,
        )
    version = record.version
    if not created:
        log(f"artifact unchanged: already {spec.name} {version} ({record.stage}); nothing new")
        return "unchanged"
    report = validate_version(registry, record, spec.validation, by="retraining")
    stage = "validated" if report.passed else "rejected"
    log(f"{spec.name} {version}: {stage} {report.values} {report.reasons or ''}")
    if not report.passed or not auto_deploy:
        return stage
    job_id = spec.job_id(version)
    if in_flight(api, job_id):
        log(f"{job_id} has a rollout in flight: not starting another")
        return "skipped-in-flight"
    from nomadml.engine.deploy import deploy
    from nomadml.engine.prepare import ReleasePolicy, prepare_release

    prepared = prepare_release(spec, version, nomad=lambda: api, policy=ReleasePolicy())
    result = deploy(api, prepared, emit=emit)
    emit(Event("note", job_id, f"deploy of {version}: {result.action.value}"))
    return f"deployed:{result.action.value}"


def schedule(api: NomadAPI, spec: ModelSpec) -> tuple[str, int]:
    """Register (or update) the model line's periodic retraining job; (job id, version)."""
    from nomadml.adapters.job_lock import register_exclusively
    from nomadml.core.jobs import render_retraining
    from nomadml.core.plan import check_owner
    from nomadml.engine.prepare import parse_and_validate

    hcl = render_retraining(spec)
    job = parse_and_validate(api, hcl, spec.source)
    api = api.scoped(job.get("Namespace"))
    existing = api.job(job["ID"])
    check_owner(job["ID"], existing, spec.name)
    register_exclusively(
        api, job, enforce_index=int(existing["JobModifyIndex"]) if existing else 0, source=hcl
    )
    return job["ID"], int((api.job(job["ID"]) or {}).get("Version", 0))
