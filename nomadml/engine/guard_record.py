"""The guard's record: the `guard` field of the promoted job version's rollout record
(a Nomad Variable). It holds what a guard needs to run from Nomad alone and where every
bake stands; each change of status is a check-and-set on the variable, so two guards
never both act on one regression and a restarted guard goes on from the last look.

Statuses: awaiting-promotion -> baking -> cleared | superseded, or baking ->
rolling-back -> rolled-back | rollback-failed, or baking -> regressed (alert only)."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from nomadml.adapters import rollout_records as history
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.guard import GuardDecision, GuardState
from nomadml.engine.result import RolloutResult
from nomadml.errors import BadInput, ExitCode, NomadMLError
from nomadml.events import Emit, Event

FIELD = "guard"  # the rollout record's field the guard owns
# A claimed regression still "rolling-back" after this long: its guard stopped mid-way
# (the claim to the rollback's registration takes about a second).
TAKEOVER_S = 30.0
FINAL = ("cleared", "rolled-back", "regressed", "rollback-failed", "superseded")
EXIT_CODES = {
    "cleared": ExitCode.OK,
    "superseded": ExitCode.OK,
    "rolled-back": ExitCode.ROLLED_BACK,
    "regressed": ExitCode.FAILED,
    "rollback-failed": ExitCode.FAILED,
}


@dataclass
class GuardResult:
    line: str
    version: str
    outcome: str  # one of FINAL
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)
    rollback: RolloutResult | None = None
    retraining: str | None = None  # the dispatched retraining job
    looks: int = 0

    @property
    def exit_code(self) -> ExitCode:
        return EXIT_CODES[self.outcome]

    def as_dict(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "version": self.version,
            "outcome": self.outcome,
            "reason": self.reason,
            "evidence": self.evidence,
            "looks": self.looks,
            "rollback": self.rollback.as_dict() if self.rollback else None,
            "retraining": self.retraining,
        }


def armed(api: NomadAPI, line: str) -> tuple[int, dict[str, Any], int]:
    """(the job version whose bake this is, its guard record, the job version the line
    runs now): the newest record with a guard; BadInput when there is none."""
    job = api.job(line)
    if job is None:
        raise BadInput(f"no job {line} in Nomad")
    if (job.get("Meta") or {}).get("nomadml.managed") != "true":
        raise BadInput(f"{line} is not a model line nomadml manages")
    current = int(job["Version"])
    record, _ = history.read(api, line, current)
    if isinstance(record.get(FIELD), dict):
        return current, record[FIELD], current
    for job_version, older in sorted(history.records(api, line).items(), reverse=True):
        if isinstance(older.get(FIELD), dict):
            return job_version, older[FIELD], current
    version = (job.get("Meta") or {}).get("nomadml.version", "?")
    raise BadInput(
        f"{line}: job version {current} ({version}) has nothing to bake: it was not "
        "promoted by a deploy whose spec sets [guard] bake"
    )


def record_of(api: NomadAPI, line: str, job_version: int) -> dict[str, Any]:
    record, _ = history.read(api, line, job_version)
    data = record.get(FIELD)
    return data if isinstance(data, dict) else {}


def save_state(
    api: NomadAPI, line: str, job_version: int, state: GuardState, decision: GuardDecision
) -> None:
    record, index = history.read(api, line, job_version)
    data = record.get(FIELD)
    if not isinstance(data, dict) or data.get("status") != "baking":
        return
    data = {**data, "state": state.as_dict(), "evidence": decision.evidence}
    history.replace_field(api, line, job_version, FIELD, data, index)


def started_by_promotion(api: NomadAPI, line: str, job_version: int, emit: Emit) -> bool:
    """A manual promotion of canaries whose deploy armed a guard starts their bake."""
    fields = {"promoted_at": time.time()}
    started = claim(api, line, job_version, "baking", fields, expect="awaiting-promotion")
    if started is not None:
        emit(
            Event(
                "note",
                line,
                f"guard: {started.get('version')} bakes from now: "
                f"nomadml guard {line} (or the always-on guard) watches it",
            )
        )
    return started is not None


def claim(
    api: NomadAPI,
    line: str,
    job_version: int,
    status: str,
    fields: dict[str, Any],
    expect: str = "baking",
) -> dict[str, Any] | None:
    """Move the guard record from `expect` to `status` with check-and-set; None when
    another guard moved it first (then that guard acts, not this one)."""
    for _ in range(5):
        record, index = history.read(api, line, job_version)
        data = record.get(FIELD)
        if not isinstance(data, dict) or data.get("status") != expect:
            return None
        new = {**data, **fields, "status": status}
        if history.replace_field(api, line, job_version, FIELD, new, index):
            return new
    return None


def write_outcome(
    api: NomadAPI, line: str, job_version: int, data: dict[str, Any], result: GuardResult
) -> None:
    final = {
        **data,
        "status": result.outcome,
        "reason": result.reason,
        "finished_at": time.time(),
        "rollback": result.rollback.as_dict() if result.rollback else None,
        "retraining": result.retraining,
    }
    with contextlib.suppress(NomadMLError):  # the line is back; the record follows it
        history.record(api, line, job_version, {FIELD: final})


def settled(line: str, version: str, data: dict[str, Any]) -> GuardResult:
    """What an earlier look (or another guard) decided, read from the record."""
    status = str(data.get("status"))
    # "rolling-back": another guard claimed the regression and acts on it.
    outcome = status if status in FINAL else "regressed"
    looks = int((data.get("state") or {}).get("looks", 0))
    return GuardResult(
        line,
        version,
        outcome,
        str(data.get("reason", status)),
        dict(data.get("evidence") or {}),
        looks=looks,
    )
