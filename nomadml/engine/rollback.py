"""Bring an earlier model version back, fast. After a promotion, Nomad's own revert
re-registers the old version with its canary settings, so it waits for a manual
promotion (Nomad issue #10882). nomadml registers the earlier job version with
canaries switched off instead: a plain rolling update, no promotion needed."""

from __future__ import annotations

import contextlib
import copy
import time
from typing import Any

from nomadml.adapters import rollout_records as history
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.decide import Action
from nomadml.core.plan import check_owner
from nomadml.engine.rollout import (
    RolloutResult,
    WatchOptions,
    follow_revert,
    register_version,
    watch,
)
from nomadml.errors import BadInput, NomadMLError
from nomadml.events import Emit, Event, discard

SERVER_FIELDS = (
    "Version",
    "JobModifyIndex",
    "ModifyIndex",
    "CreateIndex",
    "SubmitTime",
    "Stable",
    "Status",
    "StatusDescription",
    "VersionTag",
)


def choose_target(
    job: dict[str, Any], versions: list[dict[str, Any]], to: str | None
) -> dict[str, Any]:
    """The job version to return to: the newest stable earlier version running
    another model version, or the newest one running `to`. Pure."""
    current = (job.get("Meta") or {}).get("nomadml.version")
    earlier = [v for v in versions if v["Version"] < job["Version"]]
    if to is not None:
        matching = [v for v in earlier if (v.get("Meta") or {}).get("nomadml.version") == to]
        if not matching:
            kept = sorted({(v.get("Meta") or {}).get("nomadml.version", "?") for v in earlier})
            raise BadInput(
                f"{job['ID']}: model version {to} is not among the job versions Nomad "
                f"kept (kept: {', '.join(kept) or 'none'})"
            )
        stable = [v for v in matching if v.get("Stable")]
        return (stable or matching)[0]
    others = [v for v in earlier if (v.get("Meta") or {}).get("nomadml.version") != current]
    stable = [v for v in others if v.get("Stable")]
    if not stable:
        raise BadInput(
            f"{job['ID']}: no earlier stable job version with another model version to roll back to"
        )
    return stable[0]


def all_at_once(target: dict[str, Any], rolled_back_from: str) -> dict[str, Any]:
    """The target job as a new version placed all at once beside the running
    allocations (canary = count, auto-promoted): the previous version comes back in
    one start time, with no dip in capacity and no manual promotion. Pure.

    (A plain rolling update, canary = 0, replaces one allocation after another and
    was measured twice as slow as `nomad job revert` with a prompt promotion.)"""
    new = copy.deepcopy(target)
    for key in SERVER_FIELDS:
        new.pop(key, None)
    new["Stop"] = False
    groups = new.get("TaskGroups") or []
    for tg in groups:
        if tg.get("Update"):
            tg["Update"]["Canary"] = int(tg.get("Count") or 0)
            tg["Update"]["AutoPromote"] = bool(tg.get("Count"))
    if new.get("Update"):
        most = max((int(tg.get("Count") or 0) for tg in groups), default=0)
        new["Update"]["Canary"] = most
        new["Update"]["AutoPromote"] = bool(most)
    new["Meta"] = {**(new.get("Meta") or {}), "nomadml.rolled_back_from": rolled_back_from}
    return new


def rollback(
    api: NomadAPI,
    job_id: str,
    to: str | None = None,
    *,
    timeout_s: float = 600.0,
    emit: Emit = discard,
) -> RolloutResult:
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
        )
    target = choose_target(job, api.job_versions(job_id), to)
    model_version = str(target["Meta"].get("nomadml.version", "?"))
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
            "re-registered with canary = count, auto_promote = true\n" + source
        )
    answer, new_version = register_version(
        api,
        all_at_once(target, current),
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
        WatchOptions(timeout_s=timeout_s),
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
    return result
