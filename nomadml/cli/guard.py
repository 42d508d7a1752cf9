"""`nomadml guard LINE`: the post-promotion guard of a model line, in the foreground."""

from __future__ import annotations

from typing import Any

import click

from nomadml.cli.common import nomad_client, webhook_sink


@click.command()
@click.argument("line")
@click.option("--json", "as_json", is_flag=True, help="Print events as JSON lines.")
@click.pass_context
def guard(ctx: click.Context, line: str, as_json: bool) -> None:
    """Run (or resume) the bake of LINE (e.g. iris-v1) after its promotion: compare the
    promoted version with stable's numbers from the rollout, and on a regression roll
    the line back, alert and (if the spec says so) dispatch retraining.

    Exit 0 = no regression within the bake (or the line moved on), 6 = rolled back,
    7 = regressed and not rolled back."""
    from nomadml.cli.progress import Printer

    printer = Printer("json" if as_json else "auto")
    api = nomad_client(ctx)
    result = run_bake(api, line, printer)
    printer.close()
    if not as_json:
        click.echo(f"{line}: guard {result.outcome} — {result.reason}")
    ctx.exit(int(result.exit_code))


def run_bake(api: Any, line: str, printer: Any) -> Any:
    """The bake with the webhook the deploy recorded (env beats record)."""
    from nomadml.core.spec import Notify
    from nomadml.engine.guard import armed, bake
    from nomadml.events import fanout

    _, data, _ = armed(api, line)
    notify = data.get("notify") or {}
    sink = webhook_sink(
        Notify(str(notify.get("webhook_url", "")), str(notify.get("secret_env", "")))
        if notify.get("secret_env")
        else None
    )
    try:
        return bake(api, line, fanout(printer, sink) if sink is not None else printer)
    finally:
        if sink is not None:
            sink.close()
