"""One retraining run, as the periodic retraining job executes it:

train -> register as a candidate (nothing new if the artifact is unchanged) ->
validation gates -> if the spec says so and the line has no rollout in flight,
a canary deploy. A rejected version is never deployed or promoted.

Run as `python -m nomadml.engine.retraining`; the spec comes from $NOMADML_SPEC_TOML (the job
carries it) or --spec."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from nomadml.adapters.model_store import ModelRegistry
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.lifecycle import validation_gates
from nomadml.core.spec import ModelSpec, load_spec, parse_spec
from nomadml.engine.registration import register_model
from nomadml.errors import ExitCode, NomadMLError
from nomadml.events import Event
from nomadml.settings import NomadSettings
from nomadml.training import train_iris


def log(message: str) -> None:
    print(f"retrain: {message}", flush=True)


def in_flight(api: NomadAPI, job_id: str) -> bool:
    dep = api.latest_deployment(job_id) if api.job(job_id) else None
    return bool(dep) and dep.get("Status") in ("running", "paused")  # type: ignore[union-attr]


def run(api: NomadAPI, spec: ModelSpec, auto_deploy: bool, c: float = 1.0) -> str:
    """Returns what happened: unchanged, rejected, validated, deployed, skipped-in-flight."""
    registry = ModelRegistry(api)

    def emit(event: Event) -> None:
        log(event.message)

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        metrics = train_iris(model_dir, c=c)["metrics"]
        log(f"trained {spec.name}: {metrics}")
        record, created = register_model(
            registry,
            model_dir,
            spec.name,
            bump_part="minor",
            image_registry=spec.data["model"]["registry"],
            emit=emit,
        )
    version = record["version"]
    if not created:
        log(f"artifact unchanged: already {spec.name} {version} ({record['stage']}); nothing new")
        return "unchanged"
    production = next(iter(reversed(registry.in_stage(spec.name, "production"))), None)
    report = validation_gates(record, production, spec.data["validation"])
    stage = "validated" if report.passed else "rejected"
    registry.update(
        spec.name,
        version,
        {"gates": {"passed": report.passed, "values": report.values, "reasons": report.reasons}},
    )
    registry.set_stage(
        spec.name,
        version,
        stage,
        {"gates": report.values, "reasons": report.reasons, "by": "retraining"},
    )
    log(f"{spec.name} {version}: {stage} {report.values} {report.reasons or ''}")
    if not report.passed or not auto_deploy:
        return stage
    job_id = spec.job_id(version)
    if in_flight(api, job_id):
        log(f"{job_id} has a rollout in flight: not starting another")
        return "skipped-in-flight"
    from nomadml.engine.prepare import prepare
    from nomadml.engine.rollout import deploy

    prepared = prepare(spec, version, model_image=record["image"], pin_serving=True)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nomadml.engine.retraining", description=__doc__)
    parser.add_argument("--spec", help="Spec file (default: $NOMADML_SPEC_TOML).")
    parser.add_argument("--auto-deploy", action="store_true", default=None)
    parser.add_argument("--c", type=float, default=1.0, help="Regularisation strength.")
    args = parser.parse_args(argv)
    try:
        if args.spec:
            spec = load_spec(args.spec)
        elif os.environ.get("NOMADML_SPEC_TOML"):
            spec = parse_spec(os.environ["NOMADML_SPEC_TOML"], "$NOMADML_SPEC_TOML")
        else:
            log("no spec: pass --spec or set NOMADML_SPEC_TOML")
            return int(ExitCode.BAD_INPUT)
        auto = args.auto_deploy
        if auto is None:
            auto = os.environ.get(
                "NOMADML_AUTO_DEPLOY", str(spec.data["retraining"]["auto_deploy"])
            )
            auto = str(auto).lower() == "true"
        outcome = run(NomadAPI(NomadSettings.from_env()), spec, bool(auto), c=args.c)
    except NomadMLError as err:
        log(f"error: {err}")
        return int(err.exit_code)
    log(f"done: {outcome}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
