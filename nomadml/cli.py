"""The `nomadml` command line: a thin layer that parses flags, calls the core and
maps errors to one line and one exit code. Heavy modules are imported inside the
commands so `nomadml --version` and `--help` start fast."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from nomadml import __version__
from nomadml.errors import ExitCode, NomadMLError, NomadUnreachable, SpecError

if TYPE_CHECKING:
    from nomadml.nomad_api import NomadAPI
    from nomadml.prepare import Prepared

F = TypeVar("F", bound=Callable[..., Any])


def _exit_codes_help() -> str:
    rows = "\n".join(f"  {c.value:>3}  {c.name.lower().replace('_', ' ')}" for c in ExitCode)
    return f"\b\nExit codes:\n{rows}"


def _error(message: str) -> None:
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


_SECONDS = _Seconds(min=1)


class _Group(click.Group):
    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        """Like click's, but a usage error is one line too (click prints four)."""
        run: Any = super().main  # click's overloads cannot express this pass-through
        if not standalone_mode:
            return run(*args, standalone_mode=False, **kwargs)
        from nomadml.interrupts import sigterm_interrupts

        sigterm_interrupts()
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
        except NomadMLError as err:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            _error(str(err))
            ctx.exit(int(err.exit_code))
        except KeyboardInterrupt:
            click.echo("nomadml: interrupted", err=True)
            ctx.exit(int(ExitCode.INTERRUPTED))


@click.group(
    cls=_Group,
    epilog=_exit_codes_help(),
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="nomadml")
@click.option(
    "--address", help="Nomad HTTP address (default: $NOMAD_ADDR or http://127.0.0.1:4646)."
)
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.pass_context
def main(ctx: click.Context, address: str | None, debug: bool) -> None:
    """Put machine learning models into production on HashiCorp Nomad, safely.

    Nomad is reached through the same variables as the nomad CLI: NOMAD_ADDR,
    NOMAD_TOKEN, NOMAD_NAMESPACE, NOMAD_REGION, NOMAD_CACERT, NOMAD_CLIENT_CERT,
    NOMAD_CLIENT_KEY, NOMAD_SKIP_VERIFY.
    """
    ctx.ensure_object(dict)
    ctx.obj.update(debug=debug, address=address)


def _api(ctx: click.Context) -> NomadAPI:
    from nomadml.nomad_api import NomadAPI
    from nomadml.settings import NomadSettings

    return NomadAPI(NomadSettings.from_env(address=ctx.obj.get("address")))


def release_options(f: F) -> F:
    """--version plus the options that pin images and add template folders."""
    f = click.option(
        "--templates",
        "templates",
        multiple=True,
        type=click.Path(file_okay=False, path_type=Path),
        help="An operator template folder, searched before the spec's and the shipped ones.",
    )(f)
    f = click.option(
        "--serving-image", help="Serving image to use instead of the spec's (tag or @sha256)."
    )(f)
    f = click.option(
        "--image", "model_image", help="Model image (repository@sha256:... or :tag to resolve)."
    )(f)
    f = click.option(
        "--version", "version", required=True, help="Model version, MAJOR.MINOR.PATCH."
    )(f)
    return click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))(f)


def _prepare(
    spec: Path,
    version: str,
    model_image: str | None,
    serving_image: str | None,
    templates: tuple[Path, ...],
    pin_serving: bool = True,
) -> Prepared:
    from nomadml.prepare import prepare, registered_image
    from nomadml.spec import load_spec, parse_version

    model_spec = load_spec(spec)
    if model_image is None and pin_serving:
        # The model registry knows each version's pinned image (and refuses rejected ones).
        parse_version(version, "--version")
        model_image = registered_image(_api(click.get_current_context()), model_spec.name, version)
    return prepare(
        model_spec,
        version,
        model_image=model_image,
        serving_image=serving_image,
        templates=templates,
        pin_serving=pin_serving,
    )


@main.command()
@release_options
@click.option(
    "--json", "as_json", is_flag=True, help="Print the job as Nomad parses it (needs Nomad)."
)
@click.pass_context
def render(
    ctx: click.Context,
    spec: Path,
    version: str,
    model_image: str | None,
    serving_image: str | None,
    templates: tuple[Path, ...],
    as_json: bool,
) -> None:
    """Render the Nomad job of SPEC at a model version (offline unless --json)."""
    prepared = _prepare(spec, version, model_image, serving_image, templates, pin_serving=False)
    if not as_json:
        click.echo(prepared.hcl, nl=False)
        return
    from nomadml.prepare import parse_and_validate

    job = parse_and_validate(_api(ctx), prepared.hcl, str(spec))
    click.echo(json.dumps(job, indent=2, sort_keys=True))


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--templates",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="An operator template folder, searched first.",
)
@click.pass_context
def validate(ctx: click.Context, spec: Path, templates: tuple[Path, ...]) -> None:
    """Check SPEC offline, then with Nomad's parse + validate when it is reachable."""
    from nomadml.jobs import Release, render_retraining, render_service
    from nomadml.prepare import parse_and_validate
    from nomadml.spec import load_spec

    model_spec = load_spec(spec)
    # A stand-in release: validation is about the spec and templates, not a version.
    sample = Release("0.0.0", f"127.0.0.1:5000/nomadml/models/{model_spec.name}@sha256:{'0' * 64}")
    rendered = {"service job": render_service(model_spec, sample, templates)}
    if model_spec.data["retraining"]["enabled"]:
        rendered["retraining job"] = render_retraining(model_spec, templates)
    click.echo(f"{spec}: spec and templates ok ({', '.join(rendered)} rendered)")
    api = _api(ctx)
    try:
        api.leader()
    except NomadUnreachable as err:
        click.echo(f"{spec}: Nomad checks skipped: {err}")
        return
    for what, hcl in rendered.items():
        parse_and_validate(api, hcl, f"{spec} ({what})")
    click.echo(f"{spec}: Nomad parses and validates the {' and '.join(rendered)}")


@main.command()
@release_options
@click.pass_context
def plan(
    ctx: click.Context,
    spec: Path,
    version: str,
    model_image: str | None,
    serving_image: str | None,
    templates: tuple[Path, ...],
) -> None:
    """Show what deploying SPEC at a model version would change.

    Exit 0 = no changes, 1 = changes, other codes = errors (see nomadml --help)."""
    from nomadml.prepare import plan as plan_release

    prepared = _prepare(spec, version, model_image, serving_image, templates)
    _, summary = plan_release(_api(ctx), prepared)
    for line in summary.lines():
        click.echo(line)
    ctx.exit(int(ExitCode.CHANGES if summary.changed else ExitCode.OK))


@main.command()
@release_options
@click.option("--no-promote", is_flag=True, help="Stop when canaries pass their gates (exit 8).")
@click.option(
    "--timeout",
    "timeout_s",
    type=_SECONDS,
    help="Client-side deadline in seconds (default: progress deadline + gates + 60).",
)
@click.option("--json", "as_json", is_flag=True, help="Print events as JSON lines.")
@click.pass_context
def deploy(
    ctx: click.Context,
    spec: Path,
    version: str,
    model_image: str | None,
    serving_image: str | None,
    templates: tuple[Path, ...],
    no_promote: bool,
    timeout_s: float | None,
    as_json: bool,
) -> None:
    """Roll a model version out: plan, register (check-and-set), watch, gate,
    then promote or roll back. Ctrl-C detaches; the deployment goes on in Nomad."""
    from nomadml.events import fanout
    from nomadml.progress import Printer
    from nomadml.rollout import deploy as run_deploy

    printer = Printer("json" if as_json else "auto")
    resume = f"nomadml deploy {spec} --version {version}"
    webhook = None
    try:
        prepared = _prepare(spec, version, model_image, serving_image, templates)
        webhook = _webhook(prepared.spec.data)
        emit = fanout(printer, webhook) if webhook else printer
        result = run_deploy(
            _api(ctx), prepared, no_promote=no_promote, timeout_s=timeout_s, emit=emit
        )
    except KeyboardInterrupt:
        printer.close()
        if printer.past_plan():
            click.echo(
                f"nomadml: detached; the deployment goes on in Nomad. Resume with: {resume}",
                err=True,
            )
        else:
            click.echo("nomadml: interrupted before registering; nothing was submitted", err=True)
        ctx.exit(int(ExitCode.INTERRUPTED))
    finally:
        if webhook is not None:
            webhook.close()
    printer.close()
    _report(result, as_json)
    if not as_json and result.action.value == "await-promotion":
        click.echo(f"promote with: nomadml promote {result.job_id}")
    ctx.exit(int(result.exit_code))


def _webhook(spec_data: dict[str, Any] | None = None) -> Any:
    """A webhook sink when one is configured (env beats spec), else None."""
    import os

    notify = (spec_data or {}).get("notify") or {}
    url = os.environ.get("NOMADML_WEBHOOK_URL") or notify.get("webhook_url") or ""
    if not url:
        return None
    secret_env = notify.get("secret_env") or "NOMADML_WEBHOOK_SECRET"
    secret = os.environ.get(secret_env, "")
    if not secret:
        from nomadml.errors import BadInput

        raise BadInput(f"a webhook is configured ({url}) but ${secret_env} holds no secret")
    from nomadml.notify import Webhook

    return Webhook(url, secret)


def follow_options(f: F) -> F:
    """--timeout and --json, for commands that follow a deployment to its end."""
    f = click.option("--json", "as_json", is_flag=True, help="Print events as JSON lines.")(f)
    return click.option(
        "--timeout",
        "timeout_s",
        type=_SECONDS,
        default=600.0,
        show_default=True,
        help="Client-side deadline in seconds.",
    )(f)


def _report(result: Any, as_json: bool) -> None:
    if as_json:
        return
    click.echo(f"{result.job_id}: {result.action.value} — {result.reason} ({result.seconds:.1f} s)")
    if result.rollback_seconds is not None:
        click.echo(f"{result.job_id}: rollback took {result.rollback_seconds:.1f} s")


@main.command()
@click.argument("line")
@follow_options
@click.pass_context
def promote(ctx: click.Context, line: str, timeout_s: float, as_json: bool) -> None:
    """Promote the canaries of LINE (e.g. iris-v1) and follow the deployment to its end."""
    import time

    from nomadml.errors import BadInput
    from nomadml.progress import Printer
    from nomadml.rollout import WatchOptions, _promote, watch

    api = _api(ctx)
    job = api.job(line)
    dep = api.latest_deployment(line) if job else None
    if not job or not dep or dep.get("Status") != "running":
        raise BadInput(f"{line}: no running deployment to promote")
    printer = Printer("json" if as_json else "auto")
    started = time.monotonic()
    _promote(api, line, dep["ID"], printer)
    result = watch(
        api,
        line,
        int(dep["JobVersion"]),
        str(job["Meta"].get("nomadml.version")),
        WatchOptions(timeout_s=timeout_s),
        None,
        printer,
        started=started,
    )
    printer.close()
    _report(result, as_json)
    ctx.exit(int(result.exit_code))


@main.command()
@click.argument("line")
@click.option(
    "--to", "to", help="The model version to return to (default: the previous stable one)."
)
@follow_options
@click.pass_context
def rollback(
    ctx: click.Context, line: str, to: str | None, timeout_s: float, as_json: bool
) -> None:
    """Bring LINE back to an earlier model version, without a canary phase to promote."""
    from nomadml.progress import Printer
    from nomadml.rollback import rollback as run_rollback

    if to is not None:
        from nomadml.spec import parse_version

        parse_version(to, "--to")
    printer = Printer("json" if as_json else "auto")
    result = run_rollback(_api(ctx), line, to, timeout_s=timeout_s, emit=printer)
    printer.close()
    _report(result, as_json)
    ctx.exit(int(result.exit_code))


@main.command()
@click.argument("line", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option(
    "--watch", "follow", is_flag=True, help="Print again whenever a job changes (Ctrl-C ends)."
)
@click.pass_context
def status(ctx: click.Context, line: str | None, as_json: bool, follow: bool) -> None:
    """Model lines in Nomad: model version, job version, what runs, what is in flight.

    LINE may be a job (iris-v1) or a model name (iris: all its majors)."""
    from nomadml.lines import format_status
    from nomadml.lines import status as gather

    api = _api(ctx)
    index = 0
    while True:
        rows = gather(api, line)
        click.echo(json.dumps(rows, indent=2) if as_json else "\n".join(format_status(rows)))
        if not follow:
            return
        answer = api.request(
            "GET", "jobs", params={"index": max(index, 1), "wait": "30s"}, timeout=45
        )
        index = answer.index
        click.echo("")


@main.command()
@click.argument("line")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def history(ctx: click.Context, line: str, as_json: bool) -> None:
    """LINE's job versions with their model versions, deployments, outcomes and gate values."""
    from nomadml.lines import format_history, history_rows, managed_jobs

    api = _api(ctx)
    jobs = [line] if api.job(line) else [j["ID"] for j in managed_jobs(api, line)]
    if not jobs:
        from nomadml.errors import BadInput

        raise BadInput(f"no nomadml model line or model named {line!r} in Nomad")
    for job_id in jobs:
        rows = history_rows(api, job_id)
        click.echo(
            json.dumps({job_id: rows}, indent=2)
            if as_json
            else "\n".join(format_history(job_id, rows))
        )


@main.command()
@click.argument("model")
@click.option("--major", type=int, help="Only this major version's line.")
@click.option("--all", "show_all", is_flag=True, help="Include endpoints whose checks fail.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of lines.")
@click.pass_context
def endpoints(
    ctx: click.Context, model: str, major: int | None, show_all: bool, as_json: bool
) -> None:
    """Live addresses of MODEL's lines, from Nomad's service registry (for scripts and
    load balancers): one `line major version url` per line."""
    from nomadml.endpoints import endpoints as gather
    from nomadml.errors import BadInput
    from nomadml.lines import managed_jobs

    api = _api(ctx)
    lines = [
        j
        for j in managed_jobs(api, model)
        if j["Meta"].get("nomadml.model") == model
        and (major is None or j["Meta"].get("nomadml.major") == str(major))
    ]
    if not lines:
        raise BadInput(f"no running line of model {model!r}" + (f" major {major}" if major else ""))
    found = [e for j in lines for e in gather(api, j["ID"]) if e.healthy or show_all]
    if as_json:
        click.echo(json.dumps([e.as_dict() for e in found], indent=2))
        return
    for e in found:
        flags = ("" if e.healthy else " unhealthy") + (" canary" if e.canary else "")
        click.echo(f"{e.line} {e.major} {e.version} {e.url}{flags}")


@main.command(name="schedule-retraining")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def schedule_retraining(ctx: click.Context, spec: Path) -> None:
    """Register SPEC's periodic retraining job (cron from [retraining]) in Nomad."""
    from nomadml.errors import BadInput
    from nomadml.retrain import schedule
    from nomadml.spec import load_spec

    model_spec = load_spec(spec)
    if not model_spec.data["retraining"]["enabled"]:
        raise BadInput(f"{spec}: retraining.enabled is false")
    job_id, version = schedule(_api(ctx), model_spec)
    cron = model_spec.data["retraining"]["schedule"]
    click.echo(
        f"{job_id}: version {version}, runs {cron!r} ({model_spec.data['retraining']['time_zone']})"
    )


@main.command()
def quickstart() -> None:
    """Train, ship and serve the iris reference model on the local stack."""
    from nomadml import quickstart as qs

    sys.exit(qs.main())


def _add_model_commands() -> None:
    from nomadml.cli_model import model

    main.add_command(model)


_add_model_commands()
