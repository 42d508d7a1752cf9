"""`nomadml volume prune`: old model versions leave every node's host volume.

One sysbatch job (rendered from the shipped volume-prune template) runs once on each
node with the line's volume, with the bootstrap program of the line's own image;
nomadml waits for it, collects each node's report and purges the job."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from nomadml import __version__
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.render import render
from nomadml.core.volume_prune import ROLE, TEMPLATE, PruneOrder, prune_order, prune_values
from nomadml.errors import Conflict, OperationFailed, OperationTimeout

_TERMINAL = ("complete", "failed", "lost")


@dataclass(frozen=True)
class NodeReport:
    node: str
    status: str  # the allocation's client status: complete | failed | lost
    lines: tuple[str, ...]  # what the prune printed (or its error)


@dataclass(frozen=True)
class PruneReport:
    order: PruneOrder
    nodes: tuple[NodeReport, ...]
    dry_run: bool


def plan_order(api: NomadAPI, line: str) -> PruneOrder:
    """The prune order for `line`, from the line's job, kept versions and allocations."""
    job = api.job(line)
    versions = api.job_versions(line) if job else []
    live = [
        a
        for a in (api.job_allocations(line) if job else [])
        if a.get("ClientStatus") in ("pending", "running")
    ]
    full = [api.get(f"allocation/{a['ID']}").body for a in live]
    return prune_order(line, job, versions, full)


def prune(api: NomadAPI, line: str, dry_run: bool = False, timeout_s: float = 180) -> PruneReport:
    """Run the prune on every node of the line's datacenters; raises when a node failed."""
    from nomadml.engine.prepare import parse_and_validate

    order = plan_order(api, line)
    hcl = render(TEMPLATE, prune_values(order, dry_run, __version__))
    api = api.scoped(order.namespace)
    job = parse_and_validate(api, hcl, f"volume prune {line}")
    _clear_previous(api, order)
    answer = api.register(job, enforce_index=0, source=hcl)
    # On a timeout the job stays, for the operator to look at (the next prune purges it).
    allocs = _wait_done(api, order.job_id, str(answer.get("EvalID") or ""), timeout_s)
    try:
        nodes = tuple(_report(api, alloc) for alloc in allocs)
    finally:
        api.stop_job(order.job_id, purge=True)
    report = PruneReport(order, nodes, dry_run)
    failed = [n for n in nodes if n.status != "complete"]
    if failed:
        first = failed[0]
        raise OperationFailed(
            f"volume prune {line}: failed on {len(failed)} node(s), first {first.node}: "
            f"{first.lines[-1] if first.lines else first.status}"
        )
    return report


def _clear_previous(api: NomadAPI, order: PruneOrder) -> None:
    """A prune job left by a run that died: purge it if done, refuse if still running."""
    existing = api.job(order.job_id)
    if existing is None:
        return
    if (existing.get("Meta") or {}).get("nomadml.role") != ROLE:
        raise Conflict("PUT", f"/v1/job/{order.job_id}", 409, "a job of another kind has this id")
    if existing.get("Status") != "dead":
        raise Conflict(
            "PUT", f"/v1/job/{order.job_id}", 409, "a prune of this line is running now; try later"
        )
    api.stop_job(order.job_id, purge=True)


def _wait_done(api: NomadAPI, job_id: str, eval_id: str, timeout_s: float) -> list[Any]:
    """The job's allocations once its evaluation is complete and every one has ended
    (blocking queries on the job's allocations, not polling)."""
    deadline = time.monotonic() + timeout_s
    if eval_id:
        index = 0
        while True:
            answer = api.evaluation(eval_id, index)
            if (answer.body or {}).get("Status") in ("complete", "failed", "canceled"):
                break
            index = answer.index
            _check_deadline(deadline, job_id, "its evaluation")
    index = 0
    while True:
        answer = api.get(
            f"job/{job_id}/allocations", index, wait=min(30, max(1, deadline - time.monotonic()))
        )
        allocs = list(answer.body or [])
        if allocs and all(a.get("ClientStatus") in _TERMINAL for a in allocs):
            return sorted(allocs, key=lambda a: str(a.get("NodeName")))
        index = answer.index
        _check_deadline(deadline, job_id, "every node")


def _check_deadline(deadline: float, job_id: str, what: str) -> None:
    if time.monotonic() > deadline:
        raise OperationTimeout(
            f"{job_id}: {what} did not finish in time; the job is left for a look"
        )


def _report(api: NomadAPI, alloc: Any) -> NodeReport:
    status = str(alloc.get("ClientStatus"))
    out = api.task_log_tail(alloc["ID"], "prune", kind="stdout", size=16384)
    lines = [line for line in out.splitlines() if line.strip()]
    if status != "complete":
        err = api.task_log_tail(alloc["ID"], "prune", kind="stderr", size=2048)
        lines += [line for line in err.splitlines() if line.strip()][-1:]
    return NodeReport(str(alloc.get("NodeName") or alloc.get("NodeID", "?")), status, tuple(lines))


def prune_after_expiry(api: NomadAPI, model: str, versions: list[str]) -> list[PruneReport]:
    """After `model expire`: prune the volumes of each line whose major lost versions
    (a line that does not run any more has no nodes to clean)."""
    from nomadml.core.spec import parse_version

    majors = sorted({parse_version(v, "version")[0] for v in versions})
    reports = []
    for major in majors:
        line = f"{model}-v{major}"
        if api.job(line) is not None:
            reports.append(prune(api, line))
    return reports
