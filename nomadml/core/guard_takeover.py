"""Taking over a claimed regression whose guard stopped mid-way, decided: what the
line runs now and its newest deployment say which step of the rollback is left. Pure.

A guard that stopped after registering the rollback (routed lines: not auto-promoted,
nomadml promotes once the earlier version's canaries are healthy) leaves that deployment
waiting; the next guard follows it (router table, then the promotion), never registers
a second rollback."""

from __future__ import annotations

from typing import Any, Literal

TakeoverStep = Literal["register", "follow", "done", "failed", "moved-on"]


def takeover_step(
    baked_job_version: int,
    regressed: str,
    job: dict[str, Any],
    deployment: dict[str, Any] | None,
) -> TakeoverStep:
    """register: the line still runs the regressed job version (no rollback yet);
    follow: the rollback is registered and its deployment runs (waiting for its canaries
    or for the promotion); done: the rollback's deployment ended successfully (or needs
    none); failed: it ended otherwise; moved-on: the line runs a job version that is not
    the rollback from `regressed` (an operator's deploy or rollback)."""
    current = int(job.get("Version", -1))
    if current == baked_job_version:
        return "register"
    meta = job.get("Meta") or {}
    if current < baked_job_version or meta.get("nomadml.rolled_back_from") != regressed:
        return "moved-on"
    if deployment is None or deployment.get("JobVersion") != current:
        return "done"  # no deployment for it: nothing waits for a promotion
    status = deployment.get("Status")
    if status in ("running", "pending", "paused", "initializing", "blocked"):
        return "follow"
    return "done" if status == "successful" else "failed"
