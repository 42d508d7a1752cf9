"""Watching a deployment to its end: observe (the deployment from Nomad's event
stream, failed allocations' own words, the gates), decide (core.decide, pure), act
(promote, fail, finish). The loop's memory is one WatchState; it never waits
forever (a client-side deadline) and survives a lost connection for RECONNECT_S."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

from nomadml.adapters import rollout_records as history
from nomadml.adapters.event_stream import DeploymentChanges
from nomadml.adapters.nomad_api import BLOCKING_WAIT_S, NomadAPI
from nomadml.core.decide import Action, Decision, Observation, decide
from nomadml.core.observe import (
    canaries_ready,
    failed_tasks,
    groups,
    placed_canaries,
    placement_failures,
    unhealthy,
)
from nomadml.engine.interrupts import deferred
from nomadml.engine.result import RolloutResult
from nomadml.engine.revert import follow_revert, promote_deployment
from nomadml.errors import NomadMLError, NomadUnreachable
from nomadml.events import Emit, Event, discard

# How long a lost connection to Nomad is retried before giving up (with a resume hint).
RECONNECT_S = 60.0


@dataclass
class WatchOptions:
    no_promote: bool = False
    timeout_s: float = 900.0
    gates: Any = None  # a GateRunner, or None for health-only gates
    stream: bool = True  # follow Nomad's event stream (False: blocking queries)
    operation: str = "deploy"  # what is being followed: deploy, promote or rollback


def _find_deployment(
    api: NomadAPI, job_id: str, job_version: int, deadline: float, after_index: int = 0
) -> tuple[dict[str, Any] | None, int]:
    """The deployment of `job_version` and its index, waiting for Nomad to create it.
    `after_index` (the register's JobModifyIndex) lets the first read block until then."""
    index = after_index
    while time.monotonic() < deadline:
        wait = max(1.0, min(BLOCKING_WAIT_S, deadline - time.monotonic()))
        answer = api.get(f"job/{job_id}/deployment", index, wait)
        dep = answer.body
        if dep and int(dep.get("JobVersion", -1)) >= job_version:
            return dict(dep), answer.index  # (a newer one: superseded, the caller says so)
        if answer.index == index or not dep:  # no change within the wait, or none at all
            job = api.job(job_id) or {}
            if (
                int(job.get("Version", 0)) == job_version
                and job.get("Status") == "running"
                and not dep
            ):
                return None, 0  # a version without an update strategy needs no deployment
        index = max(answer.index, 1)
    return None, 0


def _unhealthy_reasons(api: NomadAPI, allocs: list[dict[str, Any]]) -> tuple[str, ...]:
    reasons = []
    for stub in unhealthy(allocs)[:3]:
        alloc = api.request("GET", f"allocation/{stub['ID']}").body or stub
        for task, text in failed_tasks(alloc):
            tail = api.task_log_tail(alloc["ID"], task).strip().splitlines()
            said = f" — {task} said: {tail[-1][:300]}" if tail else ""
            reasons.append(f"alloc {alloc['ID'][:8]} task {task}: {text}{said}")
    return tuple(reasons)


@dataclass
class WatchState:
    """What the watch loop remembers between observations."""

    deployment: dict[str, Any]
    deadline: float
    placement_failures: tuple[str, ...] = ()
    unhealthy_reasons: tuple[str, ...] = ()
    canaries_announced: bool = False
    promote_requested: bool = False
    fail_requested_at: float | None = None
    last_reason: str = ""
    lost_since: float | None = None
    canaries: frozenset[str] = frozenset()  # the placed canaries the gates last judged


def watch(
    api: NomadAPI,
    job_id: str,
    job_version: int,
    model_version: str,
    options: WatchOptions,
    gates: Any,
    emit: Emit = discard,
    *,
    eval_id: str | None = None,
    started: float | None = None,
    after_index: int = 0,
) -> RolloutResult:
    """Follow the deployment of `job_version` to an end state (never forever)."""
    calls_before = api.calls
    started = time.monotonic() if started is None else started
    deadline = started + options.timeout_s
    result = RolloutResult(Action.TIMEOUT, job_id, model_version, "", job_version)
    result.operation = options.operation
    dep, dep_index = _find_deployment(api, job_id, job_version, deadline, after_index)
    if dep is None:
        result.action, result.reason = (Action.SUCCEEDED, "no deployment needed")
        if time.monotonic() >= deadline:
            result.action, result.reason = (
                Action.TIMEOUT,
                "no deployment appeared before the deadline",
            )
        result.seconds = time.monotonic() - started
        return result
    result.deployment_id = dep["ID"]
    emit(
        Event(
            "deployment",
            job_id,
            f"deployment {dep['ID'][:8]} for job version {dep['JobVersion']}",
            {"deployment": dep["ID"]},
        )
    )
    state = WatchState(dep, deadline)
    if eval_id:
        state.placement_failures = placement_failures(api.evaluation(eval_id).body)
    with DeploymentChanges(api, dep, dep_index, stream=options.stream) as changes:
        while True:
            if not _next_change(api, changes, state, gates, job_id, emit):
                continue
            obs = _observe(api, state, options, gates, job_id, result, emit)
            decision = decide(obs)
            if _act(api, state, decision, obs, job_id, result, emit):
                result.watch_calls = api.calls - calls_before
                return _finish(api, result, decision, state, started, emit)


def _next_change(
    api: NomadAPI,
    changes: DeploymentChanges,
    state: WatchState,
    gates: Any,
    job_id: str,
    emit: Emit,
) -> bool:
    """Wait for the deployment to change (or the gates' next sample, or the deadline);
    False after a lost connection that is still being retried."""
    now = time.monotonic()
    wait = min(BLOCKING_WAIT_S, max(0.5, state.deadline - now))
    if gates is not None and gates.active:
        wait = min(wait, max(0.2, gates.next_sample - now))
    try:
        fresh = changes.next(wait)
    except NomadUnreachable as err:
        state.lost_since = state.lost_since or time.monotonic()
        if time.monotonic() - state.lost_since > RECONNECT_S or time.monotonic() >= state.deadline:
            raise NomadUnreachable(
                api.settings.address,
                f"{err}; the deployment goes on without nomadml — resume with the same "
                "deploy command",
            ) from None
        emit(Event("note", job_id, f"lost Nomad ({err}); retrying"))
        time.sleep(min(2.0, RECONNECT_S / 10))
        return False
    state.lost_since = None
    if fresh is not None:
        state.deployment = fresh
    return True


def _observe(
    api: NomadAPI,
    state: WatchState,
    options: WatchOptions,
    gates: Any,
    job_id: str,
    result: RolloutResult,
    emit: Emit,
) -> Observation:
    """The facts decide() needs: the deployment's groups, failed allocations' own
    words, and (once the canaries are healthy) one gate step."""
    dep = state.deployment
    group_states = groups(dep)
    if any(g.unhealthy for g in group_states) and not state.unhealthy_reasons:
        # Allocations are read only when something failed: the deployment itself
        # carries the counts and the canary ids, so a healthy watch never lists them.
        allocs = list(api.deployment_allocations(dep["ID"]).body or [])
        state.unhealthy_reasons = _unhealthy_reasons(api, allocs)
    ready = canaries_ready(group_states)
    if ready and not state.canaries_announced:
        state.canaries_announced = True
        progress = _progress_data(Observation(dep["Status"], groups=group_states), state.deadline)
        emit(Event("canary-healthy", job_id, "canaries healthy", progress))
    gate_state, gate_reason = "none", ""
    if gates is not None and ready and not state.promote_requested:
        canaries = frozenset(placed_canaries(dep))
        if state.canaries and not canaries <= state.canaries:
            # A canary was replaced (its node drained or lost): what the gates saw was
            # another allocation's traffic. The replacement is judged afresh.
            new = ", ".join(sorted(c[:8] for c in canaries - state.canaries))
            emit(Event("note", job_id, f"canary replaced by {new}: the gates judge afresh"))
            gates.restart()
        state.canaries = canaries
        gate_state, gate_reason = gates.step(job_id, sorted(canaries), emit)
        result.gates = gates.history()
    return Observation(
        status=dep["Status"],
        description=dep.get("StatusDescription", ""),
        groups=group_states,
        gates=gate_state,
        gate_reason=gate_reason,
        placement_failures=state.placement_failures,
        unhealthy_reasons=state.unhealthy_reasons,
        promote_requested=state.promote_requested,
        fail_requested=state.fail_requested_at is not None,
        no_promote=options.no_promote,
        timed_out=time.monotonic() >= state.deadline,
    )


def _act(
    api: NomadAPI,
    state: WatchState,
    decision: Decision,
    obs: Observation,
    job_id: str,
    result: RolloutResult,
    emit: Emit,
) -> bool:
    """Carry out the decision; True when it is final."""
    if decision.reason != state.last_reason:
        emit(Event("progress", job_id, decision.reason, _progress_data(obs, state.deadline)))
        state.last_reason = decision.reason
    dep_id = state.deployment["ID"]
    if decision.action is Action.PROMOTE:
        state.promote_requested = promote_deployment(api, job_id, dep_id, emit)
    elif decision.action is Action.FAIL:
        emit(Event("fail", job_id, f"failing deployment {dep_id[:8]}: {decision.reason}"))
        with deferred():
            api.fail_deployment(dep_id)
        state.fail_requested_at = time.monotonic()
        result.reason = decision.reason
    return decision.action.final


def _progress_data(obs: Observation, deadline: float) -> dict[str, Any]:
    return {
        "status": obs.status,
        "groups": {
            g.name: {
                "canaries": g.desired_canaries,
                "placed": g.placed_canaries,
                "healthy": g.healthy,
                "unhealthy": g.unhealthy,
                "promoted": g.promoted,
            }
            for g in obs.groups
        },
        "gates": obs.gates,
        "seconds_left": max(0, round(deadline - time.monotonic())),
    }


def _finish(
    api: NomadAPI,
    result: RolloutResult,
    decision: Decision,
    state: WatchState,
    started: float,
    emit: Emit,
) -> RolloutResult:
    result.action = decision.action
    result.reason = result.reason or decision.reason
    if decision.action is Action.ROLLED_BACK:
        result.reason = (
            f"{result.reason}; {decision.reason}"
            if result.reason != decision.reason
            else result.reason
        )
        t0 = state.fail_requested_at or time.monotonic()
        follow_revert(api, result.job_id, int(result.job_version or 0), state.deadline, emit)
        result.rollback_seconds = time.monotonic() - t0
    result.seconds = time.monotonic() - started
    if result.job_version is not None:
        with contextlib.suppress(NomadMLError):  # the record is a report; the rollout is done
            history.record(
                api, result.job_id, result.job_version, {"kind": "deploy", **result.as_record()}
            )
    emit(
        Event(
            "result", result.job_id, f"{decision.action.value}: {result.reason}", result.as_dict()
        )
    )
    return result
