"""`nomadml router up | show | weights | down`: the router in front of a model."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from nomadml.cli.common import nomad_client
from nomadml.core.router_metrics import unserved_text, unserved_versions

if TYPE_CHECKING:
    from nomadml.engine.router import RouterState


@click.group()
def router() -> None:
    """A model's router (HAProxy, one per model): weights, version routes, one address."""


@router.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--image", help="The router image (default: the local stack's, by digest).")
@click.option(
    "--count",
    default=2,
    show_default=True,
    type=click.IntRange(1, 10),
    help="Router allocations (two: one restarting never leaves the model unserved).",
)
@click.pass_context
def up(ctx: click.Context, spec: Path, image: str | None, count: int) -> None:
    """Bring SPEC's model router up (or update it); routes what runs now."""
    from nomadml import __version__
    from nomadml.adapters.image_registry import resolve_digest
    from nomadml.core.spec import load_spec
    from nomadml.engine import router as engine

    model_spec = load_spec(spec)
    pinned = resolve_digest(image or f"{model_spec.model.registry}/nomadml/router:{__version__}")
    state = engine.up(nomad_client(ctx), model_spec, pinned, count)
    _print(state)


@router.command()
@click.argument("model")
@click.pass_context
def show(ctx: click.Context, model: str) -> None:
    """MODEL's router addresses and routing table (exit 7 if the table is invalid)."""
    from nomadml.engine import router as engine

    state = engine.show(nomad_client(ctx), model, required=True)
    _print(state)
    if state.problem:
        ctx.exit(7)


@router.command()
@click.argument("model")
@click.argument("line")
@click.argument("weights", nargs=-1, required=True)
@click.option(
    "--mirror",
    metavar="VERSION=PERCENT",
    help="Shadow: replay this share of LINE's requests to VERSION (weight 0), compare its "
    "answers with what the clients got, discard them.",
)
@click.pass_context
def weights(
    ctx: click.Context, model: str, line: str, weights: tuple[str, ...], mirror: str | None
) -> None:
    """Split LINE's traffic: e.g. `iris iris-v1 1.0.0=95 1.1.0=5` (percent, adding to 100)."""
    from nomadml.core.routing import parse_weights
    from nomadml.core.spec import parse_version
    from nomadml.engine import router as engine
    from nomadml.errors import BadInput

    major = line.rpartition("-v")[2]
    if not major.isdigit():
        raise BadInput(f"{line!r} is not a model line such as {model}-v1")
    for word in [*weights, *([mirror] if mirror else [])]:
        parse_version(word.partition("=")[0], word)
    table = engine.set_line(
        nomad_client(ctx), model, parse_weights(line, int(major), list(weights), mirror)
    )
    _print(engine.RouterState(model, [], table))


@router.command()
@click.argument("model")
@click.option(
    "--split",
    help="The arms and their shares, adding to 100: versions of one major (e.g. "
    "1.1.0=50,1.2.0=50), or majors (e.g. 1=50,2=50) to split the requests naming no version.",
)
@click.option("--sticky-header", help="Keep a client on one arm by this header's value.")
@click.option("--sticky-cookie", help="Keep a client on one arm by this cookie's value.")
@click.option("--end", "end", is_flag=True, help="End the A/B experiment across majors.")
@click.pass_context
def ab(
    ctx: click.Context,
    model: str,
    split: str | None,
    sticky_header: str | None,
    sticky_cookie: str | None,
    end: bool,
) -> None:
    """An A/B experiment: split MODEL's line between versions for good, each client kept
    on one arm by a hash of its header or cookie (no key: the plain split). Per-arm
    numbers in `nomadml status`; start and end in `nomadml model history`. It ends when
    the line's weights are set again (`nomadml router weights`). With majors as arms
    (1=50,2=50) the requests that name no version are split between the lines, each
    line's own split applying within its share; `--end` ends that."""
    from nomadml.core.routing import sticky
    from nomadml.engine import experiment
    from nomadml.engine import router as engine
    from nomadml.errors import BadInput

    if end:
        if split or sticky_header or sticky_cookie:
            raise BadInput("--end takes no --split or sticky key")
        _print(engine.RouterState(model, [], experiment.end_across(nomad_client(ctx), model)))
        return
    if not split:
        raise BadInput("an A/B split needs --split (or --end to end one across majors)")
    if (sticky_header is None) == (sticky_cookie is None):
        raise BadInput("an A/B split needs one of --sticky-header or --sticky-cookie")
    if sticky_header is not None:
        key = sticky("header", sticky_header)
    else:
        key = sticky("cookie", str(sticky_cookie))
    arms = [w.partition("=")[0].strip() for w in split.split(",") if w.strip()]
    if not arms:
        raise BadInput(f"--split {split!r}: no arms; e.g. 1.1.0=50,1.2.0=50 or 1=50,2=50")
    if any(a.isdigit() for a in arms) and not all(a.isdigit() for a in arms):
        raise BadInput(
            f"--split {split}: the arms are either versions of one major or majors, not both"
        )
    if arms and all(a.isdigit() for a in arms):  # majors: between lines
        table = experiment.start_across(nomad_client(ctx), model, split, key)
    else:
        table = experiment.start(nomad_client(ctx), model, split, key)
    _print(engine.RouterState(model, [], table))


@router.command()
@click.argument("model")
@click.pass_context
def down(ctx: click.Context, model: str) -> None:
    """Stop MODEL's router and delete its routing table."""
    from nomadml.engine import router as engine

    engine.down(nomad_client(ctx), model)
    click.echo(f"{model}-router: stopped")


def _print(state: RouterState) -> None:
    for address in state.addresses:
        older = " (serves an older table: the last good one)" if address in state.stale else ""
        click.echo(f"router {address}{older}")
    if state.problem:
        click.echo(f"routing table: INVALID: {state.problem} (the router keeps its last good one)")
    if state.table is not None:
        if state.table.across is not None:
            across = state.table.across
            click.echo(f"requests naming no version: A/B across majors {across}, sticky by "
                       f"{across.sticky}")  # fmt: skip
        for line in state.table.lines:
            split = " ".join(f"{s.version}={s.weight}%" for s in line.splits)
            default = " (default)" if line.major == state.table.default_major else ""
            ab = f" (A/B, sticky by {line.sticky})" if line.sticky else ""
            shadow = ""
            if line.mirror is not None:
                shadow = f" (shadow: {line.mirror.share}% mirrored to {line.mirror.version})"
            click.echo(f"{line.job}{default}: {split}{ab}{shadow}")
            for version, count in unserved_versions(line, state.unserved).items():
                click.echo(f"  {unserved_text(version, count)}")
