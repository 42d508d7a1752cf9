"""`nomadml volume prune LINE`: old model versions leave every node's host volume."""

from __future__ import annotations

import click

from nomadml.cli.common import nomad_client


@click.group()
def volume() -> None:
    """The host volume that holds installed model versions on every node."""


@volume.command()
@click.argument("line")
@click.option("--dry-run", is_flag=True, help="Say on each node what would go; remove nothing.")
@click.option(
    "--timeout",
    default=180,
    show_default=True,
    type=click.IntRange(10, 3600),
    help="Seconds to wait for every node.",
)
@click.pass_context
def prune(ctx: click.Context, line: str, dry_run: bool, timeout: int) -> None:
    """Remove LINE's model versions from every node's volume unless Nomad may still run
    them: versions named by a job version Nomad keeps (rollback and revert targets) or
    by an allocation not yet finished stay; other majors and models are not touched."""
    from nomadml.engine.volumes import prune as run

    report = run(nomad_client(ctx), line, dry_run=dry_run, timeout_s=timeout)
    order = report.order
    click.echo(
        f"{line}: keeping {', '.join(order.keep) or 'nothing'} of {order.model} "
        f"major {order.major} on {len(report.nodes)} node(s)"
    )
    for node in report.nodes:
        for text in node.lines:
            click.echo(f"  {node.node}: {text}")
