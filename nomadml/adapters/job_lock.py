"""Registering a job so that, of two writers planned at the same index, one wins.

Nomad checks a register's EnforceIndex against a state snapshot taken before the
raft apply, so two registers carrying the same index can both succeed (15 of 40
concurrent pairs did on Nomad 1.10.5 here). A variable lock is decided inside the
FSM, so nomadml takes one per job, re-reads the job's modify index under it, and only
then registers with check-and-set. The lock lives for seconds and has a TTL, so a
writer killed while holding it delays the next one by at most that TTL.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
import time
from typing import Any

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.errors import Conflict, NomadMLError

LOCK_TTL = "30s"


def lock_path(job_id: str) -> str:
    return f"nomadml/locks/{job_id}"


def holder() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()} pid {os.getpid()}"


def register_exclusively(
    api: NomadAPI,
    job: dict[str, Any],
    *,
    enforce_index: int,
    source: str | None = None,
) -> Any:
    """Register `job` only if its JobModifyIndex is still `enforce_index` (0: new job)."""
    job_id = str(job["ID"])
    where = f"/v1/job/{job_id}"
    try:
        lock_id = api.acquire_lock(
            lock_path(job_id), LOCK_TTL, {"holder": holder(), "since": str(int(time.time()))}
        )
    except Conflict as err:
        held = api.get_variable(lock_path(job_id)) or {}
        who = (held.get("Items") or {}).get("holder", "another writer")
        raise Conflict(
            "PUT",
            where,
            err.status,
            f"{job_id} is being registered by {who} right now (job changed since it was "
            "planned); plan again",
        ) from err
    try:
        current = api.job(job_id)
        index = int(current["JobModifyIndex"]) if current else 0
        if index != enforce_index:
            raise Conflict(
                "PUT",
                where,
                409,
                f"{job_id} changed since it was planned: planned at job modify index "
                f"{enforce_index}, it is now {index} (conflicting job modify index); plan again",
            )
        return api.register(job, enforce_index=enforce_index, source=source)
    finally:
        with contextlib.suppress(NomadMLError):  # if this fails, the lock's TTL frees it
            api.release_lock(lock_path(job_id), lock_id)
