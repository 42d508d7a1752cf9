"""Following Nomad's revert of a failed deployment, and promoting: the two writes a
watch makes to a deployment besides failing it."""

from __future__ import annotations

import time

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.engine.interrupts import deferred
from nomadml.errors import NomadAPIError
from nomadml.events import Emit, Event


def promote_deployment(api: NomadAPI, job_id: str, deployment_id: str, emit: Emit) -> bool:
    """Promote the deployment's canaries; one already promoted (or ended) is fine."""
    try:
        with deferred():
            api.promote(deployment_id)
    except NomadAPIError as err:
        if "terminal" in err.message or "already promoted" in err.message.lower():
            return True
        if "healthy allocations" in err.message:
            # A canary placed again (a drained or lost node) is not healthy yet: Nomad
            # refuses, nothing changed; the watch asks again once it is.
            emit(Event("note", job_id, f"not promoted yet: {err.message.strip()}"))
            return False
        raise
    emit(Event("promote", job_id, f"promoted deployment {deployment_id[:8]}"))
    return True


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
            promote_deployment(api, job_id, dep["ID"], emit)
        api.deployment(dep["ID"], answer.index, wait=5)
