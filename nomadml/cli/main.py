"""The `nomadml` command line: a thin layer that parses flags, calls the core and
maps errors to one line and one exit code. Each command lives in a module that is
imported only when that command runs (or when the full command list is shown), so
`nomadml --version` and `nomadml <command> --help` start fast."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from nomadml import __version__
from nomadml.cli.common import error as _error
from nomadml.errors import ExitCode, SpecError, as_operator_error

# command name -> "module:attribute", loaded on first use.
COMMANDS = {
    "render": "nomadml.cli.release:render",
    "validate": "nomadml.cli.release:validate",
    "plan": "nomadml.cli.release:plan",
    "deploy": "nomadml.cli.release:deploy",
    "promote": "nomadml.cli.lines:promote",
    "rollback": "nomadml.cli.lines:rollback",
    "status": "nomadml.cli.lines:status",
    "history": "nomadml.cli.lines:history",
    "guard": "nomadml.cli.guard:guard",
    "report": "nomadml.cli.report:report",
    "endpoints": "nomadml.cli.lines:endpoints",
    "policy": "nomadml.cli.lines:policy",
    "router": "nomadml.cli.router:router",
    "schedule-retraining": "nomadml.cli.retraining:schedule_retraining",
    "retrain": "nomadml.cli.retraining:retrain",
    "conformance": "nomadml.cli.retraining:conformance",
    "model": "nomadml.cli.model:model",
    "volume": "nomadml.cli.volume:volume",
}


def _exit_codes_help() -> str:
    rows = "\n".join(f"  {c.value:>3}  {c.name.lower().replace('_', ' ')}" for c in ExitCode)
    return f"\b\nExit codes:\n{rows}"


class _Group(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            module, attribute = COMMANDS[cmd_name].split(":")
            self.add_command(getattr(importlib.import_module(module), attribute), cmd_name)
        return super().get_command(ctx, cmd_name)

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        """Like click's, but a usage error is one line too (click prints four)."""
        run: Any = super().main  # click's overloads cannot express this pass-through
        if not standalone_mode:
            return run(*args, standalone_mode=False, **kwargs)
        try:
            code = run(*args, standalone_mode=False, **kwargs)
        except click.UsageError as err:
            where = f"{err.ctx.command_path}: " if err.ctx else ""
            _error(f"{where}{err.format_message()} (see --help)")
            sys.exit(int(ExitCode.BAD_INPUT))
        except click.ClickException as err:
            _error(err.format_message())
            sys.exit(err.exit_code)
        except click.Abort:
            click.echo("nomadml: interrupted", err=True)
            sys.exit(int(ExitCode.INTERRUPTED))
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SpecError as err:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            # `validate` lists every problem; other commands stop at one clear line.
            lines = err.lines() if ctx.invoked_subcommand == "validate" else [str(err)]
            for line in lines:
                _error(line)
            ctx.exit(int(err.exit_code))
        except KeyboardInterrupt:
            click.echo("nomadml: interrupted", err=True)
            ctx.exit(int(ExitCode.INTERRUPTED))
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise  # click's own control flow: exit codes and usage errors
        except Exception as err:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            shown = as_operator_error(err)
            _error(str(shown))
            ctx.exit(int(shown.exit_code))


@click.group(
    cls=_Group,
    epilog=_exit_codes_help(),
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="nomadml")
@click.option(
    "--address",
    multiple=True,
    help="Nomad HTTP address; repeat it (or separate with commas) to list several servers, "
    "asked in order when one is down (default: $NOMAD_ADDR or http://127.0.0.1:4646).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.pass_context
def main(ctx: click.Context, address: tuple[str, ...], debug: bool) -> None:
    """Put machine learning models into production on HashiCorp Nomad, safely.

    Nomad is reached through the same variables as the nomad CLI: NOMAD_ADDR,
    NOMAD_TOKEN, NOMAD_NAMESPACE, NOMAD_REGION, NOMAD_CACERT, NOMAD_CLIENT_CERT,
    NOMAD_CLIENT_KEY, NOMAD_SKIP_VERIFY.
    """
    ctx.ensure_object(dict)
    ctx.obj.update(debug=debug, address=",".join(address) or None)
