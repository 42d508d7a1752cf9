"""What the command modules share: the one-line error, the Nomad client from the
global options, the webhook sink, and the options of commands that follow a deployment."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from nomadml.adapters.nomad_api import NomadAPI
    from nomadml.core.spec import Notify
    from nomadml.events import Emit

F = TypeVar("F", bound=Callable[..., Any])


def error(message: str) -> None:
    """One error line, whatever the message quotes: a newline or escape sequence that
    came from an argument or a file is shown escaped, never acted on."""
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)
    click.echo(f"nomadml: error: {shown}", err=True)


class _Seconds(click.FloatRange):
    """A number of seconds >= 1; nan and inf are not (FloatRange lets nan through)."""

    name = "seconds"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        import math

        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number of seconds", param, ctx)
        return number


SECONDS = _Seconds(min=1)


def nomad_client(ctx: click.Context) -> NomadAPI:
    """The run's one Nomad client, from the global options. From the first call on,
    SIGTERM stops the command like Ctrl-C does (a defined exit, a resume hint); before
    it, nothing has been sent to Nomad, and `--help` never pays for the handler."""
    if "api" not in ctx.obj:
        from nomadml.adapters.nomad_api import NomadAPI
        from nomadml.engine.interrupts import sigterm_interrupts
        from nomadml.settings import NomadSettings

        sigterm_interrupts()
        ctx.obj["api"] = NomadAPI(NomadSettings.from_env(address=ctx.obj.get("address")))
    api: NomadAPI = ctx.obj["api"]
    return api


def webhook_sink(notify: Notify | None = None) -> Any:
    """A webhook sink when one is configured (env beats spec), else None."""
    import os

    url = os.environ.get("NOMADML_WEBHOOK_URL") or (notify.webhook_url if notify else "")
    if not url:
        return None
    secret_env = notify.secret_env if notify else "NOMADML_WEBHOOK_SECRET"
    secret = os.environ.get(secret_env, "")
    if not secret:
        from nomadml.errors import BadInput

        raise BadInput(f"a webhook is configured ({url}) but ${secret_env} holds no secret")
    from nomadml.adapters.webhooks import Webhook

    return Webhook(url, secret)


@contextmanager
def notifying(printer: Emit) -> Iterator[Emit]:
    """The printer, plus the webhook when $NOMADML_WEBHOOK_URL names one (commands that
    work on a running line have no spec to read it from); the webhook is closed after."""
    from nomadml.events import fanout

    sink = webhook_sink()
    try:
        yield fanout(printer, sink) if sink is not None else printer
    finally:
        if sink is not None:
            sink.close()


def follow_options(f: F) -> F:
    """--timeout and --json, for commands that follow a deployment to its end."""
    f = click.option("--json", "as_json", is_flag=True, help="Print events as JSON lines.")(f)
    return click.option(
        "--timeout",
        "timeout_s",
        type=SECONDS,
        default=600.0,
        show_default=True,
        help="Client-side deadline in seconds.",
    )(f)


def report(result: Any, as_json: bool) -> None:
    if as_json:
        return
    click.echo(f"{result.job_id}: {result.action.value} — {result.reason} ({result.seconds:.1f} s)")
    if result.rollback_seconds is not None:
        click.echo(f"{result.job_id}: rollback took {result.rollback_seconds:.1f} s")
