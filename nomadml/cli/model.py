"""`nomadml model ...`: the model registry's commands (register, validate,
promote, archive, reject, list, show, history)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from nomadml.adapters.model_store import ModelRegistry


def _checked(check: str) -> Any:
    """A click callback from a spec check (click names the argument itself)."""

    def callback(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
        from nomadml.core import spec
        from nomadml.errors import BadInput

        if value is not None:
            try:
                getattr(spec, check)(value, "-")
            except BadInput as err:
                raise click.BadParameter(str(err).removeprefix("-: ")) from None
        return value

    return callback


_name = _checked("check_name")  # NAME goes into registry paths: only a model name does
_version = _checked("parse_version")


def _registry(ctx: click.Context) -> ModelRegistry:
    from nomadml.adapters.model_store import ModelRegistry
    from nomadml.cli.common import nomad_client

    root = ctx.find_root()
    return ModelRegistry(nomad_client(root))


def _emit(ctx: click.Context) -> Any:
    """Printer, plus the webhook when configured: stage changes go out as events."""
    from nomadml.cli.common import webhook_sink
    from nomadml.cli.progress import Printer
    from nomadml.events import fanout

    printer = Printer("plain")
    sink = webhook_sink()
    if sink is not None:
        ctx.call_on_close(sink.close)
        return fanout(printer, sink)
    return printer


@click.group()
def model() -> None:
    """Model versions: register artifacts, move them through stages with gates."""


@model.command()
@click.argument("model_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", required=True, help="Model name, e.g. iris.")
@click.option("--version", help="The version to register, MAJOR.MINOR.PATCH.")
@click.option(
    "--bump",
    "bump_part",
    type=click.Choice(["major", "minor", "patch"]),
    help="Register as the next major/minor/patch after the latest version.",
)
@click.option(
    "--image-registry",
    help="Where the model image is pushed (default: the spec's [model] registry, "
    "else 127.0.0.1:5000).",
)
@click.option(
    "--spec",
    "spec_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The model's spec, whose [model] registry receives the image.",
)
@click.pass_context
def register(
    ctx: click.Context,
    model_dir: Path,
    name: str,
    version: str | None,
    bump_part: str | None,
    image_registry: str | None,
    spec_path: Path | None,
) -> None:
    """Register MODEL_DIR (model files + metadata.json) as a candidate version."""
    from nomadml.engine.registration import register_model

    if image_registry is None and spec_path is not None:
        from nomadml.core.spec import load_spec

        image_registry = load_spec(spec_path).model.registry
    image_registry = image_registry or "127.0.0.1:5000"
    record, created = register_model(
        _registry(ctx),
        model_dir,
        name,
        version=version,
        bump_part=bump_part,
        image_registry=image_registry,
        emit=_emit(ctx),
    )
    click.echo(
        f"{name} {record.version} {'registered' if created else 'unchanged'}: "
        f"stage {record.stage}, image {record.image}"
    )


@model.command()
@click.argument("name", callback=_name)
@click.argument("version", callback=_version)
@click.option(
    "--spec",
    "spec_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The model spec whose [validation] gates apply.",
)
@click.pass_context
def validate(ctx: click.Context, name: str, version: str, spec_path: Path) -> None:
    """Run the spec's validation gates on a candidate: validated, or rejected."""
    from nomadml.core.spec import load_spec
    from nomadml.engine.evaluation import measurer
    from nomadml.engine.stages import registered, validate_version
    from nomadml.events import Event

    spec = load_spec(spec_path)
    registry = _registry(ctx)
    candidate = registered(registry, name, version)
    measure = measurer(spec, spec.directory)
    report = validate_version(registry, candidate, spec.validation, measure=measure)
    target = "validated" if report.passed else "rejected"
    data = {"passed": report.passed, "values": report.values}
    _emit(ctx)(Event("gate", name, f"{name} {version} {target}", data))
    for key, value in sorted(report.values.items()):
        click.echo(f"  {key} = {value}")
    for reason in report.reasons:
        click.echo(f"  failed: {reason}")
    click.echo(f"{name} {version}: {target}")
    ctx.exit(0 if report.passed else 7)


def _stage_command(target: str, doc: str) -> click.Command:
    @click.argument("name", callback=_name)
    @click.argument("version", callback=_version)
    @click.option(
        "--approve", is_flag=True, help="Approve the version now (audited), where policy needs it."
    )
    @click.option(
        "--spec",
        "spec_path",
        type=click.Path(dir_okay=False, path_type=Path),
        help="The model spec: records its approval policy in the registry.",
    )
    @click.pass_context
    def command(
        ctx: click.Context, name: str, version: str, approve: bool, spec_path: Path | None
    ) -> None:
        from nomadml.engine import stages
        from nomadml.events import Event

        registry = _registry(ctx)
        if spec_path is not None:
            from nomadml.core.spec import load_spec

            registry.record_policy(name, load_spec(spec_path).validation.require_approval)
        current = stages.registered(registry, name, version)
        if approve and target == "production" and current.stage != target:
            from nomadml.core.lifecycle import check_transition

            check_transition(version, current.stage, target)  # refuse before approving
            stages.approve(registry, name, version, f"approved with `model {target_name(target)}`")
        stages.move_to_stage(registry, name, version, target, {"approved": approve})
        data = {"version": version, "stage": target}
        _emit(ctx)(Event("stage", name, f"{name} {version} -> {target}", data))
        click.echo(f"{name} {version}: {target}")

    command.__doc__ = doc
    return click.command(target_name(target))(command)


def target_name(target: str) -> str:
    return {"production": "promote", "archived": "archive", "rejected": "reject"}[target]


model.add_command(
    _stage_command(
        "production",
        "Move a validated version to production (the previous production version is archived).",
    )
)
model.add_command(_stage_command("archived", "Archive a version."))
model.add_command(
    _stage_command("rejected", "Reject a version: it can never be deployed or promoted again.")
)


@model.command()
@click.argument("name", callback=_name)
@click.argument("version", callback=_version)
@click.option("--reason", required=True, help="Why this version may go to production.")
@click.pass_context
def approve(ctx: click.Context, name: str, version: str, reason: str) -> None:
    """Approve a version for production (who, when and why are audited)."""
    from nomadml.engine.stages import approve as run_approve

    record = run_approve(_registry(ctx), name, version, reason)
    click.echo(f"{name} {version}: approved by {record.approved_by}")


@model.command()
@click.argument("name", callback=_name)
@click.option(
    "--after",
    help="Expire what is older than this (a duration such as 168h; default: the spec's).",
)
@click.option(
    "--spec",
    "spec_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The model spec whose lifecycle.expire_after applies.",
)
@click.option("--dry-run", is_flag=True, help="Only list what would expire.")
@click.option(
    "--prune-volumes/--keep-volumes",
    default=True,
    show_default=True,
    help="Then remove what Nomad can no longer run from the lines' host volumes "
    "(as `nomadml volume prune`).",
)
@click.pass_context
def expire(
    ctx: click.Context,
    name: str,
    after: str | None,
    spec_path: Path | None,
    dry_run: bool,
    prune_volumes: bool,
) -> None:
    """Expire NAME's rejected versions and superseded candidates: records stay (audited),
    their images are deleted from the image registry, and the host volumes of the
    lines concerned are pruned."""
    from nomadml.core.schema import DURATION, seconds
    from nomadml.engine.stages import expire_versions
    from nomadml.errors import BadInput

    if after is None and spec_path is not None:
        from nomadml.core.spec import load_spec

        after = load_spec(spec_path).lifecycle.expire_after
    if not after or not DURATION.fullmatch(after):
        raise BadInput("--after: give a duration such as 168h (or --spec with expire_after)")
    gone = expire_versions(_registry(ctx), name, seconds(after), dry_run=dry_run, emit=_emit(ctx))
    done = "would expire" if dry_run else "expired"
    for version in gone:
        click.echo(f"{name} {version.version} ({version.stage}): {done}")
    if not gone:
        click.echo(f"{name}: nothing to expire")
    if gone and prune_volumes and not dry_run:
        from nomadml.cli.common import nomad_client
        from nomadml.engine.volumes import prune_after_expiry

        for report in prune_after_expiry(nomad_client(ctx), name, [v.version for v in gone]):
            for node in report.nodes:
                for text in node.lines:
                    click.echo(f"{report.order.line} {node.node}: {text}")


@model.command(name="list")
@click.argument("name", required=False, callback=_name)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def list_versions(ctx: click.Context, name: str | None, as_json: bool) -> None:
    """Versions with stage, digest, size, metrics, who/when."""
    registry = _registry(ctx)
    rows = [r for n in ([name] if name else registry.models()) for r in registry.versions(n)]
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in rows], indent=2, sort_keys=True))
        return
    for r in rows:
        metrics = ", ".join(f"{k}={v}" for k, v in sorted(r.metrics.items()))
        click.echo(
            f"{r.model} {r.version:<10} {r.stage:<10} {r.digest[:19]} "
            f"{r.size_bytes} B  {metrics}  {r.created_by} {r.created_at}"
        )


@model.command()
@click.argument("name", callback=_name)
@click.argument("version", callback=_version)
@click.pass_context
def show(ctx: click.Context, name: str, version: str) -> None:
    """One version's full record."""
    from nomadml.engine.stages import registered

    record = registered(_registry(ctx), name, version)
    click.echo(json.dumps(record.as_dict(), indent=2, sort_keys=True))


@model.command()
@click.argument("name", callback=_name)
@click.option("--at", "at", help="An ISO time (UTC): which version was in production then.")
@click.pass_context
def history(ctx: click.Context, name: str, at: str | None) -> None:
    """The audit trail of NAME; with --at, the version in production at that time."""
    from nomadml.core.lifecycle import production_at

    log = _registry(ctx).audit_log(name)
    if at is not None:
        versions = production_at(log, at)
        click.echo(f"{name} in production at {at}: {', '.join(versions) or 'none'}")
        return
    for e in log:
        click.echo(
            f"{e['at']} {e['actor']} {e['action']} {e['version']} "
            f"{json.dumps(e.get('details', {}), sort_keys=True)}"
        )
