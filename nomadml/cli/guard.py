"""`nomadml guard LINE`: the post-promotion guard of a model line, in the foreground."""

from __future__ import annotations

from typing import Any

import click

from nomadml.cli.common import nomad_client, webhook_sink


@click.command()
@click.argument("line", required=False)
@click.option("--all", "every", is_flag=True, help="Watch every managed line, until stopped.")
@click.option("--model", default="", help="With --all or --up: only this model's lines.")
@click.option(
    "--up", "register", is_flag=True, help="Register the always-on guard as a Nomad service job."
)
@click.option(
    "--driver",
    type=click.Choice(["raw_exec", "docker"]),
    default="raw_exec",
    show_default=True,
    help="With --up: how Nomad runs it (raw_exec: nomadml on the client's PATH).",
)
@click.option("--image", default="", help="With --up --driver docker: an image holding nomadml.")
@click.option(
    "--task-api",
    is_flag=True,
    help="With --up: reach Nomad through the task's own agent with its workload identity "
    "(ACLs, mutual TLS: bind a policy to the guard job, e.g. nomadml policy operator).",
)
@click.option("--json", "as_json", is_flag=True, help="Print events as JSON lines.")
@click.pass_context
def guard(
    ctx: click.Context,
    line: str | None,
    every: bool,
    model: str,
    register: bool,
    driver: str,
    image: str,
    task_api: bool,
    as_json: bool,
) -> None:
    """Run (or resume) the bake of LINE (e.g. iris-v1) after its promotion: compare the
    promoted version with stable's numbers from the rollout, and on a regression roll
    the line back, alert and (if the spec says so) dispatch retraining. --all watches
    every line with a bake in progress until stopped; --up registers that as a Nomad
    service job.

    Exit 0 = no regression within the bake (or the line moved on), 6 = rolled back,
    7 = regressed and not rolled back."""
    from nomadml.cli.progress import Printer
    from nomadml.errors import BadInput

    if sum((bool(line), every, register)) != 1:
        raise BadInput("guard: give one of LINE, --all or --up")
    if not register:  # options of the guard job only: ignoring one would hide a typo
        for name, option in (
            ("driver", "--driver"),
            ("image", "--image"),
            ("task_api", "--task-api"),
        ):
            if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT:
                raise BadInput(f"guard: {option} applies only with --up")
    if line and model:  # LINE names its model already
        raise BadInput("guard: --model applies only with --all or --up")
    api = nomad_client(ctx)
    if register:
        from nomadml.engine.guard_service import up

        job = up(api, model, driver, image, task_api=task_api)
        click.echo(f"{job.job_id}: version {job.version}, watching {model or 'every model'}")
        if job.note:
            click.echo(f"note: {job.note}", err=True)
        return
    printer = Printer("json" if as_json else "auto")
    if every:
        from nomadml.cli.common import notifying
        from nomadml.engine.guard_service import watch_all

        with notifying(printer) as emit:
            watch_all(api, model or None, emit)
        return
    assert line is not None
    result = run_bake(api, line, printer)
    printer.close()
    if not as_json:
        click.echo(f"{line}: guard {result.outcome} — {result.reason}")
    ctx.exit(int(result.exit_code))


def run_bake(api: Any, line: str, printer: Any) -> Any:
    """The bake with the webhook the deploy recorded (env beats record)."""
    from nomadml.core.spec import Notify
    from nomadml.engine.guard import bake
    from nomadml.engine.guard_record import armed
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
