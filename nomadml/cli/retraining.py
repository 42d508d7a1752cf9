"""`nomadml schedule-retraining | retrain | conformance`: the operator's trainer and
serving image, as nomadml runs them."""

from __future__ import annotations

import os
from pathlib import Path

import click

from nomadml.cli.common import nomad_client


@click.command(name="schedule-retraining")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def schedule_retraining(ctx: click.Context, spec: Path) -> None:
    """Register SPEC's periodic retraining job (cron from [retraining]) in Nomad."""
    from nomadml.core.spec import load_spec
    from nomadml.engine.retraining import schedule
    from nomadml.errors import BadInput

    model_spec = load_spec(spec)
    if not model_spec.retraining.enabled:
        raise BadInput(f"{spec}: retraining.enabled is false")
    job_id, version = schedule(nomad_client(ctx), model_spec)
    cron = model_spec.retraining.schedule
    click.echo(f"{job_id}: version {version}, runs {cron!r} ({model_spec.retraining.time_zone})")


@click.command()
@click.option(
    "--spec",
    "spec_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Spec file (default: $NOMADML_SPEC_TOML, which the retraining job carries).",
)
@click.option(
    "--auto-deploy/--no-auto-deploy",
    default=None,
    help="Canary-deploy a validated candidate (default: retraining.auto_deploy).",
)
@click.option(
    "--trained",
    type=click.Path(file_okay=False, path_type=Path),
    help="Do not train: take what the trainer's own task wrote into DIRECTORY.",
)
@click.option(
    "--trainer-task",
    default="",
    help="With --trained: the task of this allocation ($NOMAD_ALLOC_ID) that ran the "
    "trainer; anything but exit 0 registers nothing.",
)
@click.pass_context
def retrain(
    ctx: click.Context,
    spec_path: Path | None,
    auto_deploy: bool | None,
    trained: Path | None,
    trainer_task: str,
) -> None:
    """Run one retraining now: trainer -> register -> validation gates -> deploy.

    This is what the periodic retraining job runs; each step is logged as a
    `retrain: ...` line. With --trained, the trainer already ran in its own task
    (the operator's training image) and nomadml's steps start from its output."""
    from nomadml.cli.common import webhook_sink
    from nomadml.core.spec import load_spec, parse_spec
    from nomadml.engine.retraining import run
    from nomadml.engine.trained import Trained
    from nomadml.errors import BadInput
    from nomadml.events import discard

    if spec_path is not None:
        spec = load_spec(spec_path)
    elif os.environ.get("NOMADML_SPEC_TOML"):
        spec = parse_spec(os.environ["NOMADML_SPEC_TOML"], "$NOMADML_SPEC_TOML")
    else:
        raise BadInput("retrain: no spec: pass --spec or set NOMADML_SPEC_TOML")
    if auto_deploy is None:
        auto = os.environ.get("NOMADML_AUTO_DEPLOY", str(spec.retraining.auto_deploy))
        auto_deploy = auto.lower() == "true"

    def log(message: str) -> None:
        click.echo(f"retrain: {message}")

    webhook = webhook_sink(spec.notify)
    try:
        base = Path(os.environ.get("NOMADML_SPEC_DIR") or spec.directory)
        api = nomad_client(ctx)
        output = None
        if trained is not None:
            alloc = os.environ.get("NOMAD_ALLOC_ID", "") if trainer_task else ""
            if trainer_task and not alloc:
                raise BadInput("retrain: --trainer-task needs $NOMAD_ALLOC_ID (run in Nomad)")
            job = os.environ.get("NOMAD_JOB_PARENT_ID") or os.environ.get("NOMAD_JOB_ID", "")
            output = Trained(trained, alloc, trainer_task, job)
        outcome = run(
            api, spec, auto_deploy, log, emit=webhook or discard, data_base=base, trained=output
        )
    finally:
        if webhook is not None:
            webhook.close()
    log(f"done: {outcome}")


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("model_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--serving-image",
    help="The image to check (default: the spec's serving image, resolved by digest).",
)
@click.option("--version", "version", default="1.0.0", show_default=True, help="Version to serve.")
@click.pass_context
def conformance(
    ctx: click.Context, spec: Path, model_dir: Path, serving_image: str | None, version: str
) -> None:
    """Check a serving image against the serving contract, serving MODEL_DIR (model files
    + metadata.json) on the local Docker engine: one line per clause; exit 7 if any fails."""
    from nomadml.core.spec import load_spec
    from nomadml.engine.conformance import check_serving_image
    from nomadml.engine.prepare import serving_image_for

    model_spec = load_spec(spec)
    image = serving_image_for(model_spec, serving_image)
    report = check_serving_image(model_spec, image, model_dir, version)
    click.echo(f"serving contract of {image}:")
    for clause in report.clauses:
        click.echo(f"  {clause.line()}")
    if not report.passed:
        if report.log_tail:
            click.echo(f"  server's last words: {report.log_tail.splitlines()[-1][:300]}")
        ctx.exit(7)
