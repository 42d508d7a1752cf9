"""Bring an earlier model version back, fast. After a promotion, Nomad's own revert
re-registers the old version with its canary settings, so it waits for a manual
promotion (Nomad issue #10882). nomadml registers the earlier job version with
canaries switched off instead: a plain rolling update, no promotion needed."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from nomadml.adapters import rollout_records as history
from nomadml.adapters.model_store import ModelRegistry
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.decide import Action
from nomadml.core.plan import check_owner
from nomadml.core.rollback_plan import all_at_once, choose_target
from nomadml.engine.job_version import register_version
from nomadml.engine.result import RolloutResult
from nomadml.engine.revert import follow_revert
from nomadml.engine.watch import WatchOptions, watch
from nomadml.errors import BadInput, NomadMLError
from nomadml.events import Emit, Event, discard


def rollback(
    api: NomadAPI,
    job_id: str,
    to: str | None = None,
    *,
    timeout_s: float = 600.0,
    emit: Emit = discard,
    auto_promote: bool = True,
) -> RolloutResult:
    """`auto_promote=False`: Nomad does not promote the earlier version's allocations on
    its own; the watch promotes them after it emitted "canary-healthy" (a router's table
    follows on that event, before the current allocations stop)."""
    started = time.monotonic()
    job = api.job(job_id)
    if job is None:
        raise BadInput(f"no job {job_id} in Nomad")
    model = str((job.get("Meta") or {}).get("nomadml.model", ""))
    check_owner(job_id, job, model)
    current = str(job["Meta"].get("nomadml.version", "?"))
    dep: dict[str, Any] = api.latest_deployment(job_id) or {}
    in_flight = dep.get("Status") == "running" and dep.get("JobVersion") == job["Version"]
    if (
        in_flight
        and to is None
        and not any(
            g.get("Promoted") for g in dep["TaskGroups"].values() if g.get("DesiredCanaries")
        )
    ):
        # Canaries not promoted yet: failing the deployment is the rollback.
        emit(Event("fail", job_id, f"failing unpromoted deployment {dep['ID'][:8]}"))
        api.fail_deployment(dep["ID"])
        follow_revert(api, job_id, int(job["Version"]), started + timeout_s, emit)
        reverted = (api.job(job_id) or {}).get("Meta") or {}
        _record(api, model, job_id, current, str(reverted.get("nomadml.version", "?")))
        seconds = time.monotonic() - started
        return RolloutResult(
            Action.ROLLED_BACK,
            job_id,
            current,
            "unpromoted canaries failed; Nomad reverted",
            int(job["Version"]),
            dep["ID"],
            seconds=seconds,
            rollback_seconds=seconds,
            operation="rollback",
        )
    target = choose_target(job, api.job_versions(job_id), to)
    model_version = str(target["Meta"].get("nomadml.version", "?"))
    known = ModelRegistry(api).get(model, model_version)
    if known is not None and known.stage == "rejected":
        raise BadInput(
            f"{model} {model_version} is rejected in the model registry: no rollback brings it back"
        )
    emit(
        Event(
            "plan",
            job_id,
            f"rolling back {job_id} from {current} to {model_version} "
            f"(job version {target['Version']}, placed all at once beside the current one)",
        )
    )
    source = None
    with contextlib.suppress(NomadMLError):  # older versions may have no stored submission
        source = api.job_submission(job_id, int(target["Version"])).get("Source")
    if source:
        source = (
            f"# nomadml rollback from {current}: job version {target['Version']} "
            f"re-registered with canary = count, auto_promote = {str(auto_promote).lower()}\n"
            + source
        )
    answer, new_version = register_version(
        api,
        all_at_once(target, current, auto_promote),
        enforce_index=int(job["JobModifyIndex"]),
        source=source,
        model_version=model_version,
        record={"kind": "rollback", "from": current, "outcome": "running"},
        why=f"nomadml rollback from {current} to {model_version}",
        emit=emit,
    )
    result = watch(
        api,
        job_id,
        new_version,
        model_version,
        WatchOptions(timeout_s=timeout_s, operation="rollback"),
        None,
        emit,
        eval_id=answer.get("EvalID"),
        started=started,
        after_index=int(answer.get("JobModifyIndex") or 0),
    )
    result.rollback_seconds = result.seconds
    history.record(
        api, job_id, new_version, {"kind": "rollback", "from": current, **result.as_dict()}
    )
    if result.action is Action.SUCCEEDED:
        _record(api, model, job_id, current, model_version)
    return result


def _record(api: NomadAPI, model: str, line: str, from_version: str, to_version: str) -> None:
    """The rollback on both versions' registry records (for versions it holds)."""
    from nomadml.engine.stages import record_rollback

    with contextlib.suppress(NomadMLError):  # the rollback is done; the record follows it
        record_rollback(ModelRegistry(api), model, from_version, to_version, line)
