"""`nomadml schedule-retraining | quickstart`."""

from __future__ import annotations

import sys
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
    if not model_spec.data["retraining"]["enabled"]:
        raise BadInput(f"{spec}: retraining.enabled is false")
    job_id, version = schedule(nomad_client(ctx), model_spec)
    cron = model_spec.data["retraining"]["schedule"]
    click.echo(
        f"{job_id}: version {version}, runs {cron!r} ({model_spec.data['retraining']['time_zone']})"
    )


@click.command()
def quickstart() -> None:
    """Train, ship and serve the iris reference model on the local stack."""
    from nomadml import quickstart as qs

    sys.exit(qs.main())
