"""`nomadml promote | rollback | status | history | endpoints | policy`: the model
lines running in Nomad, and the ACL policies to run them with."""

from __future__ import annotations

import click

from nomadml.cli.common import follow_options, nomad_client, notifying, report


@click.command()
@click.argument("line")
@follow_options
@click.pass_context
def promote(ctx: click.Context, line: str, timeout_s: float, as_json: bool) -> None:
    """Promote the canaries of LINE (e.g. iris-v1) and follow the deployment to its end."""
    from nomadml.cli.progress import Printer
    from nomadml.engine.promote import promote as run_promote

    printer = Printer("json" if as_json else "auto")
    with notifying(printer) as emit:
        result = run_promote(nomad_client(ctx), line, timeout_s=timeout_s, emit=emit)
    printer.close()
    report(result, as_json)
    ctx.exit(int(result.exit_code))


@click.command()
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
    from nomadml.cli.progress import Printer
    from nomadml.engine.rollback import rollback as run_rollback

    if to is not None:
        from nomadml.core.spec import parse_version

        parse_version(to, "--to")
    printer = Printer("json" if as_json else "auto")
    with notifying(printer) as emit:
        result = run_rollback(nomad_client(ctx), line, to, timeout_s=timeout_s, emit=emit)
    printer.close()
    report(result, as_json)
    ctx.exit(int(result.exit_code))


@click.command()
@click.argument("line", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option(
    "--watch", "follow", is_flag=True, help="Print again whenever a job changes (Ctrl-C ends)."
)
@click.pass_context
def status(ctx: click.Context, line: str | None, as_json: bool, follow: bool) -> None:
    """Model lines in Nomad: model version, job version, what runs, what is in flight.

    LINE may be a job (iris-v1) or a model name (iris: all its majors)."""
    import json

    from nomadml.cli.tables import format_status
    from nomadml.engine.lines import status as gather

    api = nomad_client(ctx)
    index = 0
    while True:
        rows = gather(api, line)
        click.echo(json.dumps(rows, indent=2) if as_json else "\n".join(format_status(rows)))
        if not follow:
            return
        index = api.get("jobs", max(index, 1)).index
        click.echo("")


@click.command()
@click.argument("line")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def history(ctx: click.Context, line: str, as_json: bool) -> None:
    """LINE's job versions with their model versions, deployments, outcomes and gate values."""
    import json

    from nomadml.cli.tables import format_history
    from nomadml.engine.lines import line_histories

    for job_id, rows in line_histories(nomad_client(ctx), line).items():
        click.echo(
            json.dumps({job_id: rows}, indent=2)
            if as_json
            else "\n".join(format_history(job_id, rows))
        )


@click.command()
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
    import json

    from nomadml.engine.endpoints import model_endpoints

    found = model_endpoints(nomad_client(ctx), model, major, include_unhealthy=show_all)
    if as_json:
        click.echo(json.dumps([e.as_dict() for e in found], indent=2))
        return
    for e in found:
        flags = ("" if e.healthy else " unhealthy") + (" canary" if e.canary else "")
        click.echo(f"{e.line} {e.major} {e.version} {e.url}{flags}")


@click.command()
@click.argument("name", required=False)
def policy(name: str | None) -> None:
    """Print the least-privilege ACL policy NAME (HCL, for `nomad acl policy apply`),
    or list the policies nomadml ships."""
    import importlib.resources

    from nomadml.core.acl import POLICIES
    from nomadml.errors import BadInput

    if name is None:
        for known, what in POLICIES.items():
            click.echo(f"{known:<12} {what}")
        return
    if name not in POLICIES:
        raise BadInput(f"no policy {name!r}: one of {', '.join(POLICIES)}")
    click.echo(
        (importlib.resources.files("nomadml") / "policies" / f"{name}.hcl").read_text(), nl=False
    )
