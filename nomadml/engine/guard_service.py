"""The always-on guard: `nomadml guard --all` watches every managed line (or one model's)
and bakes each line whose rollout record says "baking", one thread per bake, for as long
as it runs; `up` registers it as a Nomad service job (templates/guard.nomad.hcl).

It keeps nothing that matters in memory: each bake's state is in the line's rollout record
(a Nomad Variable), written after every look, so a restarted allocation resumes every bake
from its last look; acting on a regression is a check-and-set claim on that record, so two
guards (an old allocation still stopping, a new one starting) never act twice on one."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nomadml.adapters.job_lock import register_exclusively
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.jobs import TASK_API, render_guard
from nomadml.engine.guard import bake
from nomadml.engine.guard_record import armed
from nomadml.engine.lines import managed_jobs
from nomadml.engine.prepare import parse_and_validate
from nomadml.engine.workload_policy import require_bound_policy
from nomadml.errors import BadInput, NomadMLError, NotOwned
from nomadml.events import Emit, Event, discard

RESCAN_S = 5.0  # the longest a new bake waits to be picked up (a job change wakes it sooner)
ACTIVE = ("baking", "rolling-back")


@dataclass(frozen=True)
class GuardJob:
    job_id: str
    version: int
    note: str = ""  # what could not be checked (a policy bound to the job)


def watch_all(
    api: NomadAPI,
    model: str | None = None,
    emit: Emit = discard,
    until: Callable[[], bool] = lambda: False,
) -> None:
    """Bake every line that has a bake in progress, until `until()` says stop."""
    lock = threading.Lock()

    def said(event: Event) -> None:  # one event at a time, whichever thread says it
        with lock:
            emit(event)

    running: dict[tuple[str, int], threading.Thread] = {}
    index = 0
    said(Event("note", model or "*", f"guard: watching {model or 'every model'}'s lines"))
    while not until():
        for line, job_version in _baking(api, model):
            thread = running.get((line, job_version))
            if thread is not None and thread.is_alive():
                continue
            thread = threading.Thread(
                target=_bake_one, args=(api, line, said), name=f"guard {line}", daemon=True
            )
            running[(line, job_version)] = thread
            thread.start()
        # Wakes when any job changes (a deploy, a promotion); else rescans anyway, since
        # the guard record is written when the deploy's watch ends.
        index = max(api.get("jobs", index, wait=RESCAN_S).index, 1)


def _baking(api: NomadAPI, model: str | None) -> list[tuple[str, int]]:
    out = []
    for job in managed_jobs(api, model):
        meta = job.get("Meta") or {}
        if meta.get("nomadml.role") or job.get("Status") == "dead":
            continue  # routers, retraining, the guard itself
        try:
            job_version, data, _ = armed(api, str(job["ID"]))
        except BadInput:
            continue  # never deployed with a [guard] bake
        if data.get("status") in ACTIVE:
            out.append((str(job["ID"]), job_version))
    return out


def _bake_one(api: NomadAPI, line: str, emit: Emit) -> None:
    own = NomadAPI(api.settings)  # one client per thread
    try:
        bake(own, line, emit)
    except NomadMLError as err:  # the next rescan starts it again from the record
        emit(Event("note", line, f"guard: bake of {line} stopped: {err}"))


def up(
    api: NomadAPI,
    model: str = "",
    driver: str = "raw_exec",
    image: str = "",
    nomad_addr: str = "",
    task_api: bool = False,
) -> GuardJob:
    """Register the always-on guard as a service job (one model's, or every model's).
    `task_api`: it reaches Nomad through its own agent's Task API with its workload
    identity (a cluster with ACLs and mutual TLS: nothing secret in the job); with ACLs
    on, a policy must be bound to the job first (else nothing is registered)."""
    if driver == "docker" and not image:
        raise BadInput("--image: the docker driver needs an image holding nomadml")
    job_id = f"{model}-guard" if model else "nomadml-guard"
    address = TASK_API if task_api else nomad_addr or ",".join(api.settings.addresses)
    hcl = render_guard(job_id, model, driver, image, address)
    job = parse_and_validate(api, hcl, job_id)
    existing = api.job(job_id)
    _check_owner(job_id, existing)
    # Without a bound policy every call the guard makes would be refused, seen only in
    # its log: refused here, before anything is registered.
    name = f"nomadml-guard-{model}" if model else "nomadml-guard"
    note = require_bound_policy(api, job_id, "operator", name) if task_api else ""
    enforce = int(existing["JobModifyIndex"]) if existing else 0
    register_exclusively(api, job, enforce_index=enforce, source=hcl)
    return GuardJob(job_id, int((api.job(job_id) or {}).get("Version", 0)), note)


def _check_owner(job_id: str, existing: dict[str, Any] | None) -> None:
    meta = (existing or {}).get("Meta") or {}
    if existing is not None and meta.get("nomadml.role") != "guard":
        raise NotOwned(f"job {job_id} exists and is not nomadml's guard; refusing to overwrite it")
