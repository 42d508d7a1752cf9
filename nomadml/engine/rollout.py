"""The rollout engine: register a new model version with check-and-set, watch its
deployment with blocking queries, run the canary gates, then promote or fail it
through Nomad. Every decision comes from decide(); this module does the I/O."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from nomadml.adapters import rollout_records as history
from nomadml.adapters.event_stream import DeploymentChanges
from nomadml.adapters.job_lock import register_exclusively
from nomadml.adapters.nomad_api import BLOCKING_WAIT_S, NomadAPI
from nomadml.core.decide import Action, Decision, Observation, decide
from nomadml.core.observe import failed_tasks, groups, placement_failures, unhealthy
from nomadml.core.schema import seconds
from nomadml.core.spec import ModelSpec
from nomadml.engine.interrupts import deferred
from nomadml.engine.majors import retire_old_majors
from nomadml.engine.prepare import Prepared, plan
from nomadml.errors import ExitCode, NomadAPIError, NomadMLError, NomadUnreachable
from nomadml.events import Emit, Event, discard

EXIT_CODES = {
    Action.SUCCEEDED: ExitCode.OK,
    Action.ROLLED_BACK: ExitCode.ROLLED_BACK,
    Action.FAILED: ExitCode.FAILED,
    Action.CANCELLED: ExitCode.FAILED,
    Action.AWAIT_PROMOTION: ExitCode.AWAITING_PROMOTION,
    Action.TIMEOUT: ExitCode.TIMEOUT,
}
# How long a lost connection to Nomad is retried before giving up (with a resume hint).
RECONNECT_S = 60.0


@dataclass
class RolloutResult:
    action: Action
    job_id: str
    model_version: str
    reason: str
    job_version: int | None = None
    deployment_id: str | None = None
    gates: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    rollback_seconds: float | None = None
    watch_calls: int = 0  # Nomad API requests made while watching (benchmarks read it)

    @property
    def exit_code(self) -> ExitCode:
        return EXIT_CODES[self.action]

    def as_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.action.value,
            "job": self.job_id,
            "model_version": self.model_version,
            "job_version": self.job_version,
            "deployment": self.deployment_id,
            "reason": self.reason,
            "seconds": round(self.seconds, 2),
            "rollback_seconds": None
            if self.rollback_seconds is None
            else round(self.rollback_seconds, 2),
            "gates": self.gates,
        }


@dataclass
class WatchOptions:
    no_promote: bool = False
    timeout_s: float = 900.0
    gates: Any = None  # a GateRunner, or None for health-only gates
    stream: bool = True  # follow Nomad's event stream (False: blocking queries)


def deploy(
    api: NomadAPI,
    prepared: Prepared,
    *,
    no_promote: bool = False,
    timeout_s: float | None = None,
    emit: Emit = discard,
    stream: bool = True,
) -> RolloutResult:
    """Plan, register with check-and-set, tag, watch, gate, promote or fail.
    `stream=False` watches with blocking queries instead of the event stream."""
    started = time.monotonic()
    spec, version = prepared.spec, prepared.release.version
    job, summary = plan(api, prepared)
    api = api.scoped(job.get("Namespace"))
    job_id = job["ID"]
    emit(Event("plan", job_id, summary.lines()[0], {"totals": summary.totals()}))
    if summary.change == "Edited":  # a new job's diff is the whole job: not worth printing
        for line in summary.lines()[1:]:
            emit(Event("plan", job_id, line))
    if summary.placement_failures:
        reasons = "; ".join(f"{g}: {r}" for g, r in summary.placement_failures.items())
        return RolloutResult(
            Action.FAILED,
            job_id,
            version,
            f"cannot be placed: {reasons}",
            seconds=time.monotonic() - started,
        )
    options = WatchOptions(
        no_promote=no_promote, timeout_s=timeout_s or default_timeout(spec), stream=stream
    )
    if not summary.changed:
        current = api.job(job_id) or {}
        emit(Event("note", job_id, f"{job_id} already runs {version}; following its deployment"))
        return watch(
            api,
            job_id,
            int(current.get("Version", 0)),
            version,
            options,
            gate_runner(prepared, api),
            emit,
            started=started,
        )
    answer, job_version = register_version(
        api,
        job,
        enforce_index=summary.job_modify_index,
        source=prepared.hcl,
        model_version=version,
        record={
            "kind": "deploy",
            "outcome": "running",
            "spec_hash": spec.spec_hash,
            "image": prepared.release.model_image,
        },
        why=f"nomadml deploy of {spec.name} {version} (spec {spec.spec_hash})",
        emit=emit,
    )
    result = watch(
        api,
        job_id,
        job_version,
        version,
        options,
        gate_runner(prepared, api),
        emit,
        eval_id=answer.get("EvalID"),
        started=started,
        after_index=int(answer.get("JobModifyIndex") or 0),
    )
    if result.action is Action.SUCCEEDED:
        # Only a healthy new line retires older majors; a failed one never does.
        retire_old_majors(api, spec.name, job_id, spec.lifecycle, emit)
    return result


def default_timeout(spec: ModelSpec) -> float:
    """Nomad's own deadline for the rollout plus the gates, plus a margin."""
    return seconds(spec.update.progress_deadline) + seconds(spec.gates.window) * 2 + 60


def gate_runner(prepared: Prepared, api: NomadAPI) -> Any:
    spec = prepared.spec
    if not spec.gates.analysis or spec.update.canary == 0:
        return None
    from nomadml.engine.gate_runner import GateRunner

    return GateRunner(api, spec.gates, spec.serving.metrics_path)


def register_version(
    api: NomadAPI,
    job: dict[str, Any],
    *,
    enforce_index: int,
    source: str | None,
    model_version: str,
    record: dict[str, Any],
    why: str,
    emit: Emit,
) -> tuple[dict[str, Any], int]:
    """Register `job` (check-and-set, under the job's lock), then record it in the
    rollout history and tag it v<model_version>; returns Nomad's answer and the new
    job version. A signal waits until all three are done: they go in together."""
    job_id = str(job["ID"])
    with deferred():
        answer = register_exclusively(api, job, enforce_index=enforce_index, source=source)
        registered = api.job(job_id) or {}
        job_version = int(registered.get("Version", 0))
        if (registered.get("Meta") or {}).get("nomadml.version") != model_version:
            raise NomadMLError(
                f"{job_id}: changed by someone else right after registering; "
                "check `nomadml history`"
            )
        emit(
            Event(
                "registered",
                job_id,
                f"registered {job_id} version {job_version} "
                f"(model {model_version}, evaluation {answer.get('EvalID', '')[:8]})",
                {"job_version": job_version, "eval": answer.get("EvalID")},
            )
        )
        history.record(api, job_id, job_version, {"model_version": model_version, **record})
        tag_version(api, job_id, model_version, job_version, why)
    return answer, job_version


def tag_version(api: NomadAPI, job_id: str, model_version: str, job_version: int, why: str) -> None:
    """Name the job version after the model version; the tag moves to the newest."""
    tag = f"v{model_version}"
    with contextlib.suppress(NomadAPIError):  # no such tag yet
        api.untag_version(job_id, tag)
    api.tag_version(job_id, tag, job_version, why)


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
    failures: tuple[str, ...] = ()
    if eval_id:
        evaluation = api.evaluation(eval_id).body
        failures = placement_failures(evaluation)
    with DeploymentChanges(api, dep, dep_index, stream=options.stream) as changes:
        reasons: tuple[str, ...] = ()
        promote_requested = fail_requested = False
        announced = False
        fail_requested_at = 0.0
        last = ""
        lost_since: float | None = None
        while True:
            now = time.monotonic()
            wait = min(BLOCKING_WAIT_S, max(0.5, deadline - now))
            if gates is not None and gates.active:
                wait = min(wait, max(0.2, gates.next_sample - now))
            try:
                fresh = changes.next(wait)
                lost_since = None
            except NomadUnreachable as err:
                lost_since = lost_since or time.monotonic()
                if time.monotonic() - lost_since > RECONNECT_S or time.monotonic() >= deadline:
                    raise NomadUnreachable(
                        api.settings.address,
                        f"{err}; the deployment goes on "
                        f"without nomadml — resume with the same deploy command",
                    ) from None
                emit(Event("note", job_id, f"lost Nomad ({err}); retrying"))
                time.sleep(min(2.0, RECONNECT_S / 10))
                continue
            if fresh is not None:
                dep = fresh
            if any(g.unhealthy for g in groups(dep)) and not reasons:
                # Allocations are read only when something failed: the deployment itself
                # carries the counts and the canary ids, so a healthy watch never lists them.
                reasons = _unhealthy_reasons(
                    api, list(api.deployment_allocations(dep["ID"]).body or [])
                )
            gate_state, gate_reason = "none", ""
            group_states = groups(dep)
            canaries_ready = (
                bool(group_states)
                and all(g.healthy >= g.desired_canaries for g in group_states if g.desired_canaries)
                and any(g.desired_canaries and not g.promoted for g in group_states)
            )
            if canaries_ready and not announced:
                announced = True
                emit(
                    Event(
                        "canary-healthy",
                        job_id,
                        "canaries healthy",
                        _progress_data(Observation(dep["Status"], groups=group_states), deadline),
                    )
                )
            if gates is not None and canaries_ready and not promote_requested:
                canary_ids = [
                    a
                    for g in (dep.get("TaskGroups") or {}).values()
                    for a in g.get("PlacedCanaries") or []
                ]
                gate_state, gate_reason = gates.step(job_id, canary_ids, emit)
                result.gates = gates.history()
            obs = Observation(
                status=dep["Status"],
                description=dep.get("StatusDescription", ""),
                groups=group_states,
                gates=gate_state,
                gate_reason=gate_reason,
                placement_failures=failures,
                unhealthy_reasons=reasons,
                promote_requested=promote_requested,
                fail_requested=fail_requested,
                no_promote=options.no_promote,
                timed_out=time.monotonic() >= deadline,
            )
            decision = decide(obs)
            if decision.reason != last:
                emit(Event("progress", job_id, decision.reason, _progress_data(obs, deadline)))
                last = decision.reason
            if decision.action is Action.PROMOTE:
                promote_requested = _promote(api, job_id, dep["ID"], emit)
            elif decision.action is Action.FAIL:
                emit(
                    Event("fail", job_id, f"failing deployment {dep['ID'][:8]}: {decision.reason}")
                )
                with deferred():
                    api.fail_deployment(dep["ID"])
                fail_requested, fail_requested_at = True, time.monotonic()
                result.reason = decision.reason
            elif decision.action.final:
                result.watch_calls = api.calls - calls_before
                return _finish(api, result, decision, fail_requested_at, started, deadline, emit)


def _promote(api: NomadAPI, job_id: str, deployment_id: str, emit: Emit) -> bool:
    try:
        with deferred():
            api.promote(deployment_id)
    except NomadAPIError as err:
        if "terminal" in err.message or "already promoted" in err.message.lower():
            return True
        raise
    emit(Event("promote", job_id, f"promoted deployment {deployment_id[:8]}"))
    return True


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
    fail_at: float,
    started: float,
    deadline: float,
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
        t0 = fail_at or time.monotonic()
        follow_revert(api, result.job_id, int(result.job_version or 0), deadline, emit)
        result.rollback_seconds = time.monotonic() - t0
    result.seconds = time.monotonic() - started
    if result.job_version is not None:
        with contextlib.suppress(NomadMLError):  # the record is a report; the rollout is done
            history.record(
                api, result.job_id, result.job_version, {"kind": "deploy", **result.as_dict()}
            )
    emit(
        Event(
            "result", result.job_id, f"{decision.action.value}: {result.reason}", result.as_dict()
        )
    )
    return result


def follow_revert(
    api: NomadAPI, job_id: str, failed_version: int, deadline: float, emit: Emit
) -> None:
    """Follow Nomad's revert to success, promoting it if it waits for promotion
    (a revert to a canary-enabled version goes through a canary phase, #10882)."""
    index = 0
    while time.monotonic() < deadline:
        answer = api.get(f"job/{job_id}/deployment", index, wait=5)
        index = max(answer.index, 1)
        dep = answer.body
        if not dep or int(dep.get("JobVersion", -1)) <= failed_version:
            continue  # blocks until the revert's deployment appears
        if dep["Status"] in ("successful", "failed", "cancelled"):
            emit(Event("revert", job_id, f"revert deployment {dep['ID'][:8]} {dep['Status']}"))
            return
        if "manual promotion" in dep.get("StatusDescription", ""):
            _promote(api, job_id, dep["ID"], emit)
        api.deployment(dep["ID"], answer.index, wait=5)
