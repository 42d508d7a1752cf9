"""Forcing a periodic Nomad job (the retraining job) and waiting for the run it
launched, with blocking queries and a deadline."""

from __future__ import annotations

import time

from nomadml.adapters.nomad_api import NomadAPI


def force_and_wait(nomad: NomadAPI, job_id: str, timeout_s: float = 240) -> str:
    """Launch the periodic job now; return the child job's id once it is dead (or
    the deadline passed: the caller's assertions on its allocation say what is wrong)."""

    def children() -> set[str]:
        jobs = nomad.request("GET", "jobs", params={"prefix": f"{job_id}/periodic-"}).body
        return {j["ID"] for j in jobs or []}

    before = children()
    nomad.request("PUT", f"job/{job_id}/periodic/force")
    launched = children() - before
    assert len(launched) == 1, launched
    child = launched.pop()
    deadline, index = time.monotonic() + timeout_s, 0
    while time.monotonic() < deadline:
        answer = nomad.get(f"job/{child}", index, wait=10)  # wakes when the job changes
        if (answer.body or {}).get("Status") == "dead":
            break
        index = answer.index
    return child


def force_and_read(nomad: NomadAPI, job_id: str) -> tuple[str, str, dict[str, str]]:
    """The retraining job with the trainer's image (tasks `train`, then `nomadml` as
    poststop): launch it now and wait (blocking queries) until the child and both its
    tasks are dead; (the allocation's client status, its id, each task's stdout +
    stderr: the trainer's may be empty, Nomad lost a container's output that exited at once)."""
    child = force_and_wait(nomad, job_id, timeout_s=300)
    deadline = time.monotonic() + 120
    (alloc,) = nomad.job_allocations(child)
    # The job is dead as soon as the trainer failed; nomadml's poststop task runs after.
    index = 0
    while time.monotonic() < deadline:
        answer = nomad.get(f"allocation/{alloc['ID']}", index, wait=10)
        alloc, index = answer.body or {}, answer.index
        states = (alloc.get("TaskStates") or {}).values()
        if len(states) == 2 and all(s["State"] == "dead" for s in states):
            break
    logs = {
        task: nomad.task_log_tail(alloc["ID"], task, "stdout", size=20000)
        + nomad.task_log_tail(alloc["ID"], task, "stderr", size=5000)
        for task in ("train", "nomadml")
    }
    return str(alloc["ClientStatus"]), alloc["ID"], logs
