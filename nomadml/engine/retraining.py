"""One retraining run, as the periodic retraining job executes it (`nomadml retrain`):

the operator's trainer -> register as a candidate (nothing new if the artifact is
unchanged) -> validation gates -> if the spec says so and the line has no rollout
in flight, a canary deploy. A rejected version is never deployed or promoted.

The trainer is the spec's `retraining.trainer` command. Its contract: write the
model files and `metadata.json` into the directory named by $NOMADML_OUTPUT_DIR,
exit 0. Anything else registers nothing."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from nomadml.adapters.model_store import ModelRegistry
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.lifecycle import next_version
from nomadml.core.spec import ModelSpec
from nomadml.engine.data_checks import check_data
from nomadml.engine.evaluation import measurer
from nomadml.engine.registration import read_metadata, register_model
from nomadml.engine.stages import validate_version
from nomadml.engine.trained import Trained, check_trained
from nomadml.errors import BadInput, NomadMLError
from nomadml.events import Emit, Event, discard

Log = Callable[[str], None]
TRAINER_TIMEOUT_S = 6 * 3600


def train(spec: ModelSpec, out_dir: Path, log: Log, data_env: dict[str, str] | None = None) -> None:
    """Run the spec's trainer into `out_dir` (the data files in its environment); its
    output goes to the run's log."""
    trainer = list(spec.retraining.trainer)
    if not trainer:
        raise BadInput(f"{spec.source}: retraining.trainer: no trainer command")
    out_dir.mkdir(parents=True)
    env = {
        **os.environ,
        **(data_env or {}),
        "NOMADML_OUTPUT_DIR": str(out_dir),
        "NOMADML_MODEL_NAME": spec.name,
    }
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


class DataCheckFailed(BadInput):
    """The training or evaluation data failed its checks: no version was made."""


def run(
    api: NomadAPI,
    spec: ModelSpec,
    auto_deploy: bool,
    log: Log,
    emit: Emit = discard,
    data_base: Path | None = None,
    trained: Trained | None = None,
) -> str:
    """One retraining run; returns what happened (unchanged, rejected, validated,
    skipped-in-flight, deployed:<outcome>) and says it as a `retrain` event, also
    when a step fails (outcome failed, with the reason) before the error goes on."""
    try:
        outcome, version = _run(
            api, spec, auto_deploy, log, emit, data_base or spec.directory, trained
        )
    except NomadMLError as err:
        if not isinstance(err, DataCheckFailed):  # that one is audited already
            with contextlib.suppress(NomadMLError):  # Nomad may be what failed
                ModelRegistry(api).audit(spec.name, "retrain-failed", "-", {"reason": str(err)})
        emit(
            Event(
                "retrain",
                spec.name,
                f"retraining failed: {err}",
                {"outcome": "failed", "reason": str(err)},
            )
        )
        raise
    data = {"outcome": outcome.split(":")[0], "detail": outcome, "version": version}
    emit(Event("retrain", spec.name, f"retraining {outcome}", data))
    return outcome


def _run(
    api: NomadAPI,
    spec: ModelSpec,
    auto_deploy: bool,
    log: Log,
    emit: Emit,
    data_base: Path,
    trained: Trained | None,
) -> tuple[str, str | None]:
    registry = ModelRegistry(api)
    # Reach the registry before the (long) training: an unreachable or refusing
    # Nomad fails the run at once, with nothing trained for nothing.
    versions = registry.versions(spec.name)
    log(f"{spec.name}: {len(versions)} version(s) registered")

    def say(event: Event) -> None:
        log(event.message)
        emit(event)

    data = check_data(spec, data_base)
    if not data.passed:
        for line in data.failures:
            log(f"data check failed: {line}")
        registry.audit(spec.name, "data-check", "-", {"failures": data.failures})
        count = len(data.failures)
        emit(
            Event(
                "data-check",
                spec.name,
                f"{count} data check(s) failed: {data.failures[0]}",
                {"failures": data.failures},
            )
        )
        raise DataCheckFailed(
            f"{count} data check(s) failed, nothing trained or registered: {data.failures[0]}"
            + (f" (and {count - 1} more)" if count > 1 else "")
        )
    if data.files:
        log(f"data checks passed: {', '.join(str(p) for p in data.files.values())}")

    with _model_dir(api, spec, trained, log, data.env()) as model_dir:
        version = next_version(versions, read_metadata(model_dir)["signature"])
        record, created = register_model(
            registry,
            model_dir,
            spec.name,
            version=version,
            image_registry=spec.model.registry,
            emit=say,
        )
    version = record.version
    if not created:
        log(f"artifact unchanged: already {spec.name} {version} ({record.stage}); nothing new")
        return "unchanged", version
    measure = measurer(spec, data_base)
    if measure is not None:
        log(f"measuring {version} and production on {spec.data.evaluation}")
    report = validate_version(registry, record, spec.validation, by="retraining", measure=measure)
    stage = "validated" if report.passed else "rejected"
    log(f"{spec.name} {version}: {stage} {report.values} {report.reasons or ''}")
    if spec.lifecycle.expire_after:
        from nomadml.core.schema import seconds
        from nomadml.engine.stages import expire_versions

        after = seconds(spec.lifecycle.expire_after)
        for gone in expire_versions(registry, spec.name, after, emit=say):
            log(f"expired {spec.name} {gone.version} ({gone.stage}): image deleted")
    if not report.passed or not auto_deploy:
        return stage, version
    job_id = spec.job_id(version)
    if in_flight(api, job_id):
        log(f"{job_id} has a rollout in flight: not starting another")
        return "skipped-in-flight", version
    from nomadml.engine.deploy import deploy
    from nomadml.engine.prepare import ReleasePolicy, prepare_release

    prepared = prepare_release(spec, version, nomad=lambda: api, policy=ReleasePolicy())
    result = deploy(api, prepared, emit=say)
    say(Event("note", job_id, f"deploy of {version}: {result.action.value}"))
    return f"deployed:{result.action.value}", version


@contextlib.contextmanager
def _model_dir(
    api: NomadAPI, spec: ModelSpec, trained: Trained | None, log: Log, data_env: dict[str, str]
) -> Iterator[Path]:
    """What the trainer wrote: its own task's output (checked), or a run of it here."""
    if trained is not None:
        check_trained(api, trained, log)
        yield trained.directory
        return
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        train(spec, model_dir, log, data_env)
        log(f"trained {spec.name}")
        yield model_dir


def schedule(api: NomadAPI, spec: ModelSpec) -> tuple[str, int]:
    """Register (or update) the model line's periodic retraining job; (job id, version).
    With `[guard] retrain = true` its parameterized twin too, which the guard dispatches
    (one job cannot be both: Nomad never runs a parameterized job's schedule)."""
    if spec.guard.retrain:
        _register_retraining(api, spec, dispatch=True)
    return _register_retraining(api, spec, dispatch=False)


def _register_retraining(api: NomadAPI, spec: ModelSpec, dispatch: bool) -> tuple[str, int]:
    from nomadml.adapters.job_lock import register_exclusively
    from nomadml.core.jobs import render_retraining
    from nomadml.core.plan import check_owner
    from nomadml.engine.prepare import parse_and_validate

    image = ""
    if spec.retraining.driver == "docker" and spec.retraining.nomadml_image:
        from nomadml.adapters.nomadml_image import nomadml_image

        _check_placeable(api, spec, dispatch)  # before building or pushing the image
        image = nomadml_image(spec.retraining.nomadml_image, spec.model.registry)
    hcl = render_retraining(spec, dispatch=dispatch, nomadml_image=image)
    job = parse_and_validate(api, hcl, spec.source)
    api = api.scoped(job.get("Namespace"))
    existing = api.job(job["ID"])
    check_owner(job["ID"], existing, spec.name)
    register_exclusively(
        api, job, enforce_index=int(existing["JobModifyIndex"]) if existing else 0, source=hcl
    )
    return job["ID"], int((api.job(job["ID"]) or {}).get("Version", 0))


def _check_placeable(api: NomadAPI, spec: ModelSpec, dispatch: bool) -> None:
    """Nomad's plan of the job (its nomadml image as the spec names it): refuse when no
    client can ever run it — its nomadml task mounts host paths, which no eligible
    client's docker driver allows. Busy clients are no reason: the run is later."""
    from nomadml.core.jobs import render_retraining
    from nomadml.core.plan import summarize
    from nomadml.engine.prepare import parse_and_validate
    from nomadml.errors import CannotBePlaced

    job = parse_and_validate(api, render_retraining(spec, dispatch=dispatch), spec.source)
    summary = summarize(job["ID"], api.scoped(job.get("Namespace")).plan(job, diff=False), job)
    refused = summary.no_docker_volumes
    if refused:
        reasons = "; ".join(f"{g}: {summary.placement_failures[g]}" for g in refused)
        raise CannotBePlaced(f"{job['ID']} cannot be placed: {reasons}; nothing registered")
