"""Rollback, decided: which earlier job version to return to, and how to place it.
Pure functions of the job and its versions as Nomad reports them."""

from __future__ import annotations

import copy
from typing import Any

from nomadml.errors import BadInput

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


def all_at_once(
    target: dict[str, Any], rolled_back_from: str, auto_promote: bool = True
) -> dict[str, Any]:
    """The target job as a new version placed all at once beside the running
    allocations (canary = count, auto-promoted): the previous version comes back in
    one start time, with no dip in capacity and no manual promotion. Pure.
    `auto_promote=False`: the caller promotes once it saw the canaries healthy (a router
    must move the line's traffic to them before the promotion stops the current ones).

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
            tg["Update"]["AutoPromote"] = auto_promote and bool(tg.get("Count"))
    if new.get("Update"):
        most = max((int(tg.get("Count") or 0) for tg in groups), default=0)
        new["Update"]["Canary"] = most
        new["Update"]["AutoPromote"] = auto_promote and bool(most)
    new["Meta"] = {**(new.get("Meta") or {}), "nomadml.rolled_back_from": rolled_back_from}
    return new
