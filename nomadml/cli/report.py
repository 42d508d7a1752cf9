"""`nomadml report`: a rollout as one self-contained HTML page."""

from __future__ import annotations

from pathlib import Path

import click

from nomadml.cli.common import nomad_client


@click.command()
@click.argument("line")
@click.option(
    "--deployment",
    help="The rollout's Nomad deployment id (or its first 8+ characters); default: the "
    "latest rollout nomadml ran on LINE.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the page (default: <line>-<job version>-report.html here).",
)
@click.pass_context
def report(ctx: click.Context, line: str, deployment: str | None, output: Path | None) -> None:
    """Write one self-contained HTML page for a rollout on LINE (e.g. iris-v1): canary vs
    stable error rate and latency at every look with each verdict, the judge's evidence,
    the versions' registry stages and audit entries, and the outcome. Needs the report
    extra: pip install 'nomadml[report]'."""
    from nomadml.engine.report import write_report

    path, written = write_report(nomad_client(ctx), line, deployment, output)
    click.echo(
        f"wrote {path}: {written.operation} of {written.model_version} on {line}"
        f" (deployment {written.deployment[:8]}): {written.outcome}"
    )
