"""`nomadml render | validate | plan | deploy`: from a spec and a model version to a
Nomad job, checked, planned and rolled out."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from nomadml.cli.common import SECONDS, F, nomad_client, report, webhook_sink
from nomadml.errors import ExitCode, NomadUnreachable

if TYPE_CHECKING:
    from nomadml.engine.prepare import Prepared, ReleasePolicy


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
    policy: ReleasePolicy | None = None,
) -> Prepared:
    from nomadml.core.spec import load_spec
    from nomadml.engine.prepare import prepare_release

    ctx = click.get_current_context()
    return prepare_release(
        load_spec(spec),
        version,
        nomad=lambda: nomad_client(ctx),
        model_image=model_image,
        serving_image=serving_image,
        templates=templates,
        pin_serving=pin_serving,
        policy=policy,
    )


@click.command()
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
    import json

    prepared = _prepare(spec, version, model_image, serving_image, templates, pin_serving=False)
    if not as_json:
        click.echo(prepared.hcl, nl=False)
        return
    from nomadml.engine.prepare import parse_and_validate

    job = parse_and_validate(nomad_client(ctx), prepared.hcl, str(spec))
    click.echo(json.dumps(job, indent=2, sort_keys=True))


@click.command()
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
    from nomadml.core.spec import load_spec
    from nomadml.engine.prepare import parse_and_validate, render_checked

    rendered = render_checked(load_spec(spec), templates)
    click.echo(f"{spec}: spec and templates ok ({', '.join(rendered)} rendered)")
    api = nomad_client(ctx)
    try:
        api.leader()
    except NomadUnreachable as err:
        click.echo(f"{spec}: Nomad checks skipped: {err}")
        return
    for what, hcl in rendered.items():
        parse_and_validate(api, hcl, f"{spec} ({what})")
    click.echo(f"{spec}: Nomad parses and validates the {' and '.join(rendered)}")


@click.command()
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
    from nomadml.engine.prepare import plan as plan_release

    prepared = _prepare(spec, version, model_image, serving_image, templates)
    _, summary = plan_release(nomad_client(ctx), prepared)
    for line in summary.lines():
        click.echo(line)
    ctx.exit(int(ExitCode.CHANGES if summary.changed else ExitCode.OK))


@click.command()
@release_options
@click.option("--no-promote", is_flag=True, help="Stop when canaries pass their gates (exit 8).")
@click.option(
    "--timeout",
    "timeout_s",
    type=SECONDS,
    help="Client-side deadline in seconds (default: progress deadline + gates + 60).",
)
@click.option("--json", "as_json", is_flag=True, help="Print events as JSON lines.")
@click.option(
    "--force",
    is_flag=True,
    help="Deploy a version the model registry would refuse (needs --reason; audited).",
)
@click.option("--reason", default="", help="Why --force overrides the registry (audited).")
@click.option(
    "--unregistered",
    is_flag=True,
    help="Deploy a bare --image the model registry does not hold.",
)
@click.option(
    "--no-bake",
    is_flag=True,
    help="After promotion, leave the [guard] bake to `nomadml guard LINE` instead of "
    "watching it here.",
)
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
    force: bool,
    reason: str,
    unregistered: bool,
    no_bake: bool,
) -> None:
    """Roll a model version out: plan, register (check-and-set), watch, gate,
    then promote or roll back. Ctrl-C detaches; the deployment goes on in Nomad.

    The model registry decides what may go out: a validated version (approved,
    where the model's policy requires it). A success makes it the production
    version of its major; a canary its gates fail is rejected."""
    from nomadml.cli.progress import Printer
    from nomadml.engine.deploy import deploy as run_deploy
    from nomadml.engine.prepare import ReleasePolicy
    from nomadml.events import fanout

    policy = ReleasePolicy(force=force, reason=reason, unregistered=unregistered)
    printer = Printer("json" if as_json else "auto")
    resume = " ".join(
        [f"nomadml deploy {spec} --version {version}"]
        + [f"{flag} {value}" for flag, value in (("--image", model_image),
           ("--serving-image", serving_image)) if value]
        + [f"--templates {folder}" for folder in templates]
        + (["--unregistered"] if unregistered else [])
    )  # fmt: skip
    webhook = None
    try:
        prepared = _prepare(spec, version, model_image, serving_image, templates, policy=policy)
        webhook = webhook_sink(prepared.spec.notify)
        emit = fanout(printer, webhook) if webhook else printer
        result = run_deploy(
            nomad_client(ctx), prepared, no_promote=no_promote, timeout_s=timeout_s, emit=emit
        )
    except KeyboardInterrupt:
        printer.close()
        if printer.past_plan:
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
    report(result, as_json)
    if not as_json and result.action.value == "await-promotion":
        click.echo(f"promote with: nomadml promote {result.job_id}")
    if prepared.spec.guard.bake and result.action.value == "succeeded" and not no_bake:
        from nomadml.cli.guard import run_bake

        printer = Printer("json" if as_json else "auto")
        baked = run_bake(nomad_client(ctx), result.job_id, printer)
        printer.close()
        if not as_json:
            click.echo(f"{result.job_id}: guard {baked.outcome} — {baked.reason}")
        ctx.exit(int(baked.exit_code))
    ctx.exit(int(result.exit_code))
