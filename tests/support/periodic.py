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
