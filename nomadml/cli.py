"""The `nomadml` command line: a thin layer that parses flags, calls the core and
maps errors to one line and one exit code. Heavy modules are imported inside the
commands so `nomadml --version` and `--help` start fast."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from nomadml import __version__
from nomadml.errors import ExitCode, NomadMLError

F = TypeVar("F", bound=Callable[..., Any])


def _exit_codes_help() -> str:
    rows = "\n".join(f"  {c.value:>3}  {c.name.lower().replace('_', ' ')}" for c in ExitCode)
    return f"\b\nExit codes:\n{rows}"


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except NomadMLError as err:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"nomadml: error: {err}", err=True)
            ctx.exit(int(err.exit_code))
        except KeyboardInterrupt:
            click.echo("nomadml: interrupted", err=True)
            ctx.exit(int(ExitCode.INTERRUPTED))


@click.group(
    cls=_Group, epilog=_exit_codes_help(), context_settings={"help_option_names": ["-h", "--help"]}
)
@click.version_option(__version__, prog_name="nomadml")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Put machine learning models into production on HashiCorp Nomad, safely.

    Nomad is reached through the same variables as the nomad CLI: NOMAD_ADDR,
    NOMAD_TOKEN, NOMAD_NAMESPACE, NOMAD_REGION, NOMAD_CACERT, NOMAD_CLIENT_CERT,
    NOMAD_CLIENT_KEY, NOMAD_SKIP_VERIFY.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


@main.command()
def quickstart() -> None:
    """Train, ship and serve the iris reference model on the local stack."""
    from nomadml import quickstart as qs

    sys.exit(qs.main())
