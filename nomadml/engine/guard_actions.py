"""What the post-promotion guard does about a regression: roll the line back, through
the model's router where it routes the line, and dispatch the model's retraining.

After a promotion the earlier version's allocations are gone, so the router has nothing
to shift traffic to. The rollback is nomadml's post-promotion rollback (engine/rollback.py:
the earlier job version placed all at once beside the current allocations); where a router
routes the line, its table moves the line's traffic to the earlier version the moment that
version's allocations are healthy, before the regressed ones stop.

Retraining: Nomad accepts a job that is both periodic and parameterized, but its periodic
dispatcher never tracks it (`IsPeriodicActive` excludes parameterized jobs; a forced launch
answers "can't force run non-tracked job"), so the schedule would silently stop. The guard
dispatches a second job instead, `<model>-retrain-dispatch`: the retraining job rendered
with a `parameterized` block in place of `periodic` (`nomadml schedule-retraining` registers
both when `[guard] retrain = true`)."""

from __future__ import annotations

import contextlib

from nomadml.adapters import rollout_records as history
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.decide import Action
from nomadml.core.routing import Line, Split
from nomadml.engine.result import RolloutResult
from nomadml.engine.rollback import rollback
from nomadml.engine.watch import WatchOptions, watch
from nomadml.errors import BadInput, NomadMLError
from nomadml.events import Emit, Event

ROLLBACK_TIMEOUT_S = 600.0


def roll_back(api: NomadAPI, line: str, regressed: str, emit: Emit) -> RolloutResult:
    """Roll `line` back from the regressed version; the router (if it routes the line)
    follows as soon as the earlier version is healthy."""
    model, major, _ = _running(api, line)
    routed = model is not None and _routes(api, model, line)
    # Routed: nomadml promotes (not Nomad on its own), so the table moves on the
    # "canary-healthy" event before the promotion stops the regressed allocations;
    # auto-promoted, a deployment could complete between two looks and the event
    # came too late (the router then answered 503 for the regressed version).
    result = rollback(
        api,
        line,
        timeout_s=ROLLBACK_TIMEOUT_S,
        emit=_routing(api, model if routed else None, line, major, regressed, emit),
        auto_promote=not routed,
    )
    if routed and model is not None:
        _route(api, model, Line(line, major, (Split(result.model_version, 100),)), emit)
    return result


def finish_rollback(
    api: NomadAPI, line: str, regressed: str, job_version: int, emit: Emit
) -> RolloutResult:
    """Follow a rollback an earlier guard registered (job version `job_version`) to its
    end: where a router routes the line its table moves once the canaries are healthy,
    then nomadml promotes them (the watch's PROMOTE); nothing is registered."""
    model, major, target = _running(api, line)
    routed = model is not None and _routes(api, model, line)
    emit(
        Event(
            "note",
            line,
            f"guard: following the rollback to {target} an earlier guard registered "
            f"(job version {job_version})",
        )
    )
    result = watch(
        api,
        line,
        job_version,
        target,
        WatchOptions(timeout_s=ROLLBACK_TIMEOUT_S, operation="rollback"),
        None,
        _routing(api, model if routed else None, line, major, regressed, emit),
    )
    result.rollback_seconds = result.seconds
    with contextlib.suppress(NomadMLError):  # the line is back; the record follows it
        history.record(
            api, line, job_version, {"kind": "rollback", "from": regressed, **result.as_dict()}
        )
    if routed and model is not None and result.action is Action.SUCCEEDED:
        _route(api, model, Line(line, major, (Split(target, 100),)), emit)
    return result


def settle_route(api: NomadAPI, line: str, emit: Emit) -> None:
    """A rollback found complete on takeover: where a router routes the line and its
    table still names another version (the stopped guard's `earlier 100%, regressed 0%`),
    the line goes to what it runs, alone."""
    from nomadml.engine import router

    model, major, target = _running(api, line)
    if model is None or not _routes(api, model, line):
        return
    wanted = Line(line, major, (Split(target, 100),))
    table = router.read_table(api, model)
    routed = [x for x in (table.lines if table else ()) if x.job == line]
    if routed and routed[0].splits != wanted.splits:
        _route(api, model, wanted, emit)


def _routing(
    api: NomadAPI, model: str | None, line: str, major: int, regressed: str, emit: Emit
) -> Emit:
    """The rollback's events, and (when `model`'s router routes the line) the table's
    move to the earlier version on "canary-healthy", before the promotion."""

    def on_event(event: Event) -> None:
        emit(event)
        if model is not None and event.kind == "canary-healthy":
            target = str(((api.job(line) or {}).get("Meta") or {}).get("nomadml.version", ""))
            _route(api, model, Line(line, major, (Split(target, 100), Split(regressed, 0))), emit)

    return on_event


def _running(api: NomadAPI, line: str) -> tuple[str | None, int, str]:
    """From one read of the line's job: its model, its major, the version it runs."""
    meta = (api.job(line) or {}).get("Meta") or {}
    model = meta.get("nomadml.model")
    version = str(meta.get("nomadml.version", "?"))
    return (str(model) if model else None), int(line.rpartition("-v")[2] or 0), version


def _routes(api: NomadAPI, model: str, line: str) -> bool:
    from nomadml.engine import router

    try:
        table = router.read_table(api, model)
    except BadInput:
        return False
    return table is not None and any(existing.job == line for existing in table.lines)


def _route(api: NomadAPI, model: str, line: Line, emit: Emit) -> None:
    from nomadml.engine import router

    try:
        router.set_line(api, model, line)
    except NomadMLError as err:  # the rollback goes on; the table follows when it can
        emit(Event("note", line.job, f"router table not updated: {err}"))
        return
    shares = ", ".join(f"{s.version} {s.weight}%" for s in line.splits)
    emit(Event("note", line.job, f"router: {line.job} -> {shares}"))


def dispatch_job_id(model: str) -> str:
    return f"{model}-retrain-dispatch"  # core/jobs.py retraining_values(dispatch=True)


def dispatch_retraining(
    api: NomadAPI, model: str, line: str, regressed: str, emit: Emit
) -> str | None:
    """Dispatch the model's retraining job; the dispatched job's id, or None (said why)."""
    job_id = dispatch_job_id(model)
    if api.job(job_id) is None:
        emit(
            Event(
                "note",
                line,
                f"guard: no {job_id} job to dispatch: register it with "
                "nomadml schedule-retraining (spec with [guard] retrain = true)",
            )
        )
        return None
    body = {"Meta": {"reason": "regression", "line": line, "regressed_version": regressed}}
    try:
        answer = api.request("POST", f"job/{job_id}/dispatch", body=body).body or {}
    except NomadMLError as err:
        emit(Event("note", line, f"guard: dispatching {job_id} failed: {err}"))
        return None
    dispatched = str(answer.get("DispatchedJobID", ""))
    emit(
        Event(
            "retrain",
            model,
            f"retraining dispatched after {regressed} regressed: {dispatched}",
            {"outcome": "dispatched", "job": dispatched, "line": line, "version": regressed},
        )
    )
    return dispatched
