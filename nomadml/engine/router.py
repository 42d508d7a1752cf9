"""A model's router: bring it up, show it, change its routing table, take it down.

One router per model (not per cluster): a model's weights, reloads and faults never
touch another model's traffic, its routing table is a small variable of its own
(and its own ACL path), and all majors of the model still answer behind one address.
The router job is rendered from the shipped template and registered like any job
nomadml writes (ownership meta, check-and-set under the job lock)."""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nomadml.adapters.job_lock import register_exclusively
from nomadml.adapters.metric_scrape import router_counts
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.acl import bind_command
from nomadml.core.jobs import render_router, routes_variable
from nomadml.core.plan import check_owner
from nomadml.core.routing import (
    Line,
    RoutingTable,
    Split,
    check,
    from_variable,
    with_new_line,
    without_lines,
)
from nomadml.core.spec import ModelSpec, parse_version
from nomadml.core.task_state import waits_for_variable
from nomadml.engine.lines import managed_jobs
from nomadml.engine.prepare import parse_and_validate
from nomadml.errors import (
    BadInput,
    Conflict,
    ExitCode,
    NomadMLError,
    OperationFailed,
    OperationTimeout,
)
from nomadml.events import Emit, Event

READY_S = 90.0
CONFIRM_S = 10.0  # a written table reaches every router within this, or set_line says so
RESEND_S = 1.5  # a router not on the new table by then is given it again
POLL_S = 0.02  # how often a router is asked which table it serves
ATTEMPTS = 8  # a write lost to another writer: re-read, the same change re-applied


class TableContended(NomadMLError):
    """Another writer kept changing the routing table while this change was applied."""

    exit_code = ExitCode.CONFLICT

    def __init__(self, model: str) -> None:
        super().__init__(
            f"{model}: the routing table {routes_variable(model)} was changed by another "
            f"writer before each of {ATTEMPTS} writes; nothing written, try again"
        )


@dataclass(frozen=True)
class Changed:
    """A change written: the table it was applied to, the table written, and what a
    router that serves this write answers at /nomadml-router/table."""

    before: RoutingTable
    table: RoutingTable
    serving: str


@dataclass(frozen=True)
class RouterState:
    model: str
    addresses: list[str]  # http://host:port of each healthy router allocation
    table: RoutingTable | None
    problem: str = ""  # the routing variable, when it is not a valid table
    stale: tuple[str, ...] = ()  # routers serving an older write than the variable's
    unserved: dict[str, int] = field(default_factory=dict)  # backend: the router's own 503s


def running_lines(api: NomadAPI, model: str) -> RoutingTable:
    """The table that routes every running line of `model` to what it serves now: its
    stable version takes all of the line's traffic (a canary in flight takes none until
    its weight is set); the newest major is the default."""
    lines = []
    for job in managed_jobs(api, model):
        meta = job.get("Meta") or {}
        if meta.get("nomadml.model") != model or job.get("Status") == "dead":
            continue
        version = str(meta.get("nomadml.version", ""))
        if not version or meta.get("nomadml.role"):
            continue
        major = parse_version(version)[0]
        stable, canary = _serving(api, str(job["ID"]))
        serving = sorted(stable) or [version]
        splits = [Split(serving[-1], 100)]
        splits += [Split(v, 0) for v in sorted((stable | canary) - {serving[-1]})]
        lines.append(Line(str(job["ID"]), major, tuple(splits)))
    if not lines:
        raise BadInput(f"no running line of model {model!r} to route to")
    lines.sort(key=lambda line: line.major)
    return check(RoutingTable(model, tuple(lines), lines[-1].major))


def read_table(api: NomadAPI, model: str) -> RoutingTable | None:
    """The routing table in the variable (None if there is none); an invalid one is
    refused with the reason (the router keeps rendering its last good one)."""
    return read_table_from(model, api.get_variable(routes_variable(model)))


def write_table(api: NomadAPI, table: RoutingTable, cas: int | None = None) -> str:
    """Check, then write: a table the router could not serve is never written. Returns
    what a router that serves this write answers at /nomadml-router/table. With `cas`,
    only if the variable's ModifyIndex is still `cas` (0: there is none), else Conflict."""
    items = check(table).as_variable()
    items["written"] = secrets.token_hex(8)
    api.put_variable(routes_variable(table.model), items, cas=cas)
    return f"{items['check']} {items['written']}"


Change = Callable[[RoutingTable], RoutingTable | None]


def change_table(
    api: NomadAPI, model: str, change: Change, rebuild: bool = False
) -> Changed | None:
    """Read the table with its ModifyIndex, apply `change` (None: nothing to write),
    write with check-and-set. A write another writer got in before is not lost or
    overwritten: the table is read again and the same change applied to theirs.
    No table (or an invalid one): None (BadInput), unless `rebuild`: then the change
    applies to the table of what runs."""
    path = routes_variable(model)
    for _ in range(ATTEMPTS):
        variable = api.get_variable(path)
        index = int(variable["ModifyIndex"]) if variable else 0
        current = None
        try:
            current = read_table_from(model, variable)
        except BadInput:
            if not rebuild:
                raise
        if current is None and not rebuild:
            return None
        before = current if current is not None else running_lines(api, model)
        table = change(before)
        if table is None:
            return None
        try:
            return Changed(before, table, write_table(api, table, cas=index))
        except Conflict:
            continue
    raise TableContended(model)


def read_table_from(model: str, variable: Any) -> RoutingTable | None:
    """The table in a routing variable as read (None: there is none)."""
    return from_variable(model, variable.get("Items") or {}) if variable else None


def confirm(api: NomadAPI, table: RoutingTable, serving: str) -> list[str]:
    """Wait until every router answers with the table `serving` names (a write reaches
    traffic in about 0.2 s: render, reload). HAProxy loses a reload signal that comes
    while it is still reloading; a router still on an older table after RESEND_S is
    given the same table again (a new write renders a new file, and a new signal).
    A router that does not answer at all is left out: it renders the newest table when
    it starts. Returns the routers still on an older table after CONFIRM_S."""
    deadline = time.monotonic() + CONFIRM_S
    resend = time.monotonic() + RESEND_S
    waiting = [f"http://{r['Address']}:{r['Port']}" for r in api.service(f"{table.model}-router")]
    while True:
        answers = {address: _serves(address) for address in waiting}
        waiting = [a for a, said in answers.items() if said is not None and said != serving]
        if not waiting or time.monotonic() > deadline:
            return waiting
        if time.monotonic() >= resend:
            serving = _resend(api, table, serving)
            resend = time.monotonic() + RESEND_S
        time.sleep(POLL_S)


def _resend(api: NomadAPI, table: RoutingTable, serving: str) -> str:
    """The same table written again, only if the variable still holds this write (a
    newer write by another writer is never overwritten: the routers are then waited
    for on that one, which was applied to this)."""
    variable = api.get_variable(routes_variable(table.model))
    items = (variable or {}).get("Items") or {}
    if variable is None or f"{items.get('check')} {items.get('written')}" != serving:
        return f"{items.get('check')} {items.get('written')}" if variable else serving
    try:
        return write_table(api, table, cas=int(variable["ModifyIndex"]))
    except Conflict:
        return serving  # the next look finds the newer write


def _serves(address: str) -> str | None:
    """What the router at `address` serves (None: it does not answer)."""
    from nomadml.adapters.serving_http import call

    status, body = call(f"{address}/nomadml-router/table", timeout_s=1)
    if status is None:
        return None
    return body.decode(errors="replace").strip() if status == 200 else ""


def set_line(api: NomadAPI, model: str, line: Line) -> RoutingTable:
    """Replace one line's split (e.g. 1.0.0=95 1.1.0=5) in the current table (a table
    broken by hand is rebuilt from what runs, as its error message promises); the
    other lines stay as the table has them when it is written (check-and-set)."""
    figures: list[dict[str, Any]] = []

    def replace_line(current: RoutingTable) -> RoutingTable:
        known = {existing.job: existing for existing in current.lines}
        if line.job not in known:
            raise BadInput(
                f"{line.job} is not a line of {model}'s router (lines: {', '.join(known)})"
            )
        _check_running(api, line)
        lines = tuple(line if x.job == line.job else x for x in current.lines)
        table = check(RoutingTable(model, lines, current.default_major, current.across))
        ended = _ended(current, line)
        figures.clear()
        if ended is not None:
            from nomadml.engine import experiment

            # Read before the write: the router's reload starts its counters anew.
            figures.append(experiment.arm_figures(api, model, ended))
        return table

    changed = change_table(api, model, replace_line, rebuild=True)
    assert changed is not None  # replace_line always writes
    stale = confirm(api, changed.table, changed.serving)
    ended = _ended(changed.before, line)
    if ended is not None:
        from nomadml.engine import experiment

        experiment.record_end(api, model, ended, figures[0])
    _stale(model, stale)
    return changed.table


def _check_running(api: NomadAPI, line: Line) -> None:
    running = _running_versions(api, line.job)
    missing = [s.version for s in line.splits if s.weight and s.version not in running]
    if line.mirror is not None and line.mirror.version not in running:  # copies to no one
        missing.append(f"{line.mirror.version} (the mirror)")
    if missing:
        raise BadInput(
            f"{line.job}: no running server of {', '.join(missing)} "
            f"(running: {', '.join(sorted(running)) or 'none'})"
        )


def _ended(current: RoutingTable, line: Line) -> Line | None:
    """The experiment on `line`'s job that replacing it with `line` ends."""
    before = next((x for x in current.lines if x.job == line.job), None)
    return before if before is not None and before.sticky and before != line else None


def publish(api: NomadAPI, model: str, change: Change, rebuild: bool = False) -> Changed | None:
    """Apply `change` to the table (check-and-set, see change_table) and wait until
    every router serves it; None: there is no table, or the change leaves it as it is."""
    changed = change_table(api, model, change, rebuild)
    if changed is not None:
        _stale(model, confirm(api, changed.table, changed.serving))
    return changed


def _stale(model: str, stale: list[str]) -> None:
    if stale:
        raise OperationTimeout(
            f"{model}: the routing table is written, but router(s) {', '.join(stale)} still "
            f"serve an older one after {CONFIRM_S:.0f} s (see `nomadml router show {model}`)"
        )


def running_versions(api: NomadAPI, job_id: str) -> set[str]:
    """The versions the line's registrations serve (stable and canaries)."""
    return _running_versions(api, job_id)


def route_all(api: NomadAPI, model: str, line: str, version: str, emit: Emit) -> None:
    """All of `line`'s traffic to `version` at the model's router, when it routes the
    line (before a canary promoted by hand takes over from stable, whose allocations
    Nomad then stops); a routing change that fails is a note, not a stop."""
    try:
        table = read_table(api, model)
    except BadInput:  # a table broken by hand: set_line rebuilds it from what runs
        routed = api.get_variable(routes_variable(model)) is not None
    else:
        routed = table is not None and any(x.job == line for x in table.lines)
    if not routed:
        return
    major = parse_version(version)[0]
    try:
        set_line(api, model, Line(line, major, (Split(version, 100),)))
    except NomadMLError as err:
        emit(Event("note", line, f"router: {line} not routed to {version}: {err}"))
        return
    emit(Event("note", line, f"router: {version} takes all of {line}"))


def route_new_line(api: NomadAPI, model: str, line: str, version: str, emit: Emit) -> None:
    """A healthy line the model's router does not route yet (a new major beside the
    old): into the table, the default when it is the newest major, once it serves (so
    no unversioned request reaches it before); a routing change that fails is a note."""
    major = parse_version(version)[0]
    new = Line(line, major, (Split(version, 100),))
    try:
        changed = publish(api, model, lambda table: _if_changed(table, with_new_line(table, new)))
    except NomadMLError as err:
        emit(Event("note", line, f"router: {line} not routed: {err}"))
        return
    if changed is None:
        return
    routed = changed.table
    default = ", the default for unversioned requests" if routed.default_major == major else ""
    emit(Event("note", line, f"router: {line} routed to {version}{default}"))


def route_line(api: NomadAPI, model: str, line: Line, emit: Emit) -> None:
    """set_line during a rollout: a table written that a router has not taken yet is a
    note, and the rollout goes on (that router renders the newest table when it can)."""
    try:
        set_line(api, model, line)
    except OperationTimeout as err:
        emit(Event("note", line.job, f"router: {err}"))


def unroute_lines(api: NomadAPI, model: str, jobs: list[str], emit: Emit) -> None:
    """Lines about to retire leave the model's router table first, so a request naming
    their major gets the router's 404 for an unknown version, never a 503 from a line
    with no server left; a routing change that fails is a note (the retirement goes on)."""
    if not jobs:
        return
    try:
        changed = publish(api, model, lambda table: _if_changed(table, without_lines(table, jobs)))
    except NomadMLError as err:
        emit(Event("note", jobs[0], f"router: {', '.join(jobs)} still routed: {err}"))
        return
    if changed is None:
        return
    emit(Event("note", jobs[0], f"router: {', '.join(jobs)} no longer routed"))


def _if_changed(table: RoutingTable, changed: RoutingTable) -> RoutingTable | None:
    return None if changed == table else changed


def _running_versions(api: NomadAPI, job_id: str) -> set[str]:
    stable, canary = _serving(api, job_id)
    return stable | canary


def _serving(api: NomadAPI, job_id: str) -> tuple[set[str], set[str]]:
    """The versions the line's registrations serve: (stable ones, canaries)."""
    stable: set[str] = set()
    canary: set[str] = set()
    for reg in api.job_services(job_id):
        tags = [str(t) for t in reg.get("Tags") or []]
        versions = {t.removeprefix("version=") for t in tags if t.startswith("version=")}
        (canary if "canary" in tags else stable).update(versions)
    return stable, canary


def up(api: NomadAPI, spec: ModelSpec, image: str, count: int = 2) -> RouterState:
    """Write the routing table (what runs now, unless one exists), register the router
    job, and wait until its allocations answer."""
    if read_table(api, spec.name) is None:
        with contextlib.suppress(Conflict):  # another `router up` wrote it first
            write_table(api, running_lines(api, spec.name), cas=0)
    hcl = render_router(spec, image, count)
    job = parse_and_validate(api, hcl, f"{spec.name} router")
    api = api.scoped(job.get("Namespace"))
    existing = api.job(job["ID"])
    check_owner(job["ID"], existing, spec.name)
    enforce = int(existing["JobModifyIndex"]) if existing else 0
    before = {a["ID"] for a in api.job_allocations(job["ID"])} if existing else set()
    register_exclusively(api, job, enforce_index=enforce, source=hcl)
    deadline = time.monotonic() + READY_S
    index = 0
    while True:
        state = show(api, spec.name)
        if len(state.addresses) >= count:
            return state
        held = _held_by_the_table(api, spec.name)
        # A router placed by this command, held: said at once. One placed before (the
        # policy bound since?) is given the time Nomad's template retry takes (backoff
        # up to a minute), and named if it still waits at the deadline.
        if held and held[0] not in before:
            raise OperationFailed(_unreadable_table(spec.name, held[1]))
        if time.monotonic() > deadline:
            said = f"; {_unreadable_table(spec.name, held[1])}" if held else ""
            raise OperationTimeout(
                f"{spec.name}-router: {len(state.addresses)}/{count} routers answering "
                f"after {READY_S:.0f} s{said}"
            )
        # Wakes when a registration appears or goes; a registered router that does
        # not answer yet is asked again after the wait.
        index = api.get(f"service/{spec.name}-router", index, wait=2).index


def _held_by_the_table(api: NomadAPI, model: str) -> tuple[str, str] | None:
    """(allocation id, namespace) of a router held before it starts because its template
    may not read the routing table (which exists): with ACLs on, the router job's
    workload identity needs the router policy bound to it."""
    path = routes_variable(model)
    for alloc in api.job_allocations(f"{model}-router"):
        if alloc.get("DesiredStatus") != "run":
            continue
        for state in (alloc.get("TaskStates") or {}).values():
            if waits_for_variable(state, path) and api.get_variable(path) is not None:
                return str(alloc["ID"]), str(alloc.get("Namespace") or "default")
    return None


def _unreadable_table(model: str, namespace: str) -> str:
    command = bind_command("router", namespace, f"{model}-router", f"nomadml-router-{model}")
    return (
        f"{model}-router cannot read its routing table {routes_variable(model)}: its workload "
        f"identity needs the router policy ({command})"
    )


def show(api: NomadAPI, model: str, required: bool = False) -> RouterState:
    """The router's healthy addresses and its routing table (or what is wrong with it);
    `required`: a model with no router job and no table is BadInput."""
    addresses = []
    for reg in api.service(f"{model}-router"):
        addresses.append(f"http://{reg['Address']}:{reg['Port']}")
    healthy = _healthy(api, model, addresses)
    variable = api.get_variable(routes_variable(model))
    if required and not addresses and variable is None and api.job(f"{model}-router") is None:
        # Nothing to show is not an empty router: a misspelt model would look fine.
        raise BadInput(f"{model} has no router (`nomadml router up SPEC` starts one)")
    items = (variable or {}).get("Items") or {}
    written = f"{items.get('check')} {items.get('written')}"
    stale = tuple(a for a in healthy if _serves(a) != written)
    nosrv = router_counts(api, model, "/").unserved if healthy else {}
    try:
        return RouterState(model, healthy, read_table(api, model), stale=stale, unserved=nosrv)
    except BadInput as err:
        return RouterState(model, healthy, None, str(err), stale, nosrv)


def _healthy(api: NomadAPI, model: str, addresses: list[str]) -> list[str]:
    from nomadml.adapters.serving_http import call

    return [a for a in addresses if call(f"{a}/nomadml-router/health", timeout_s=2)[0] == 200]


def down(api: NomadAPI, model: str) -> None:
    """Stop and purge the router job, and delete its routing table."""
    job = api.job(f"{model}-router")
    if job is None:
        raise BadInput(f"{model} has no router")
    check_owner(job["ID"], job, model)
    api.stop_job(job["ID"], purge=True)
    api.request("DELETE", f"var/{routes_variable(model)}")
