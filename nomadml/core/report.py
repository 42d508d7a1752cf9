"""The rollout report's data: which rollout, what the gates saw at every look, the judge's
evidence, the versions' registry stages and audit entries, and the outcome.

Part of the pure core: built from what Nomad and the registry hold (the rollout records,
the job's versions, the registry's records and audit entries), passed in as data.
`choose_rollout` picks the rollout (the latest one nomadml ran on the line, or the one a
deployment id names); `assemble` builds the typed report that the page is drawn from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nomadml.core.model_version import ModelVersion
from nomadml.core.rollout_series import (
    Look,
    looks_from_gates,
    looks_from_record,
    steps_from_gates,
    steps_from_record,
)
from nomadml.errors import BadInput

__all__ = [
    "AuditEntry",
    "JudgeEvidence",
    "RolloutReport",
    "SignalEvidence",
    "VersionStory",
    "assemble",
    "choose_rollout",
    "versions_involved",
]

# The threshold gates' limits, as recorded with every window, in the order shown.
LIMITS = (
    "min_requests",
    "max_error_rate",
    "max_error_rate_increase",
    "latency_percentile",
    "max_latency_ms",
    "max_latency_ratio",
)


# What the two versions were to the rollout: (the one it brought, the one that ran before).
ROLES = {
    "deploy": ("canary", "stable"),
    "promote": ("canary", "stable"),
    "rollback": ("rolled back to", "rolled back from"),
}


@dataclass(frozen=True)
class SignalEvidence:
    """One signal's sequential tests at the last look (errors, or slow requests)."""

    signal: str
    canary_requests: float
    canary_bad: float
    stable_requests: float
    stable_bad: float
    tolerance: float
    effect_bound: float
    e_fail: float | None  # None: beyond what a float holds
    fail_threshold: float
    e_pass: float | None
    pass_threshold: float


@dataclass(frozen=True)
class JudgeEvidence:
    """The judge's last verdict and what it rests on."""

    decision: str
    signal: str | None
    alpha: float
    looks: int
    slow_above_ms: float | None
    tests: tuple[SignalEvidence, ...]


@dataclass(frozen=True)
class AuditEntry:
    at: str
    actor: str
    action: str
    version: str
    details: str  # the entry's details as compact JSON


@dataclass(frozen=True)
class VersionStory:
    """A model version in the rollout: its role, its registry stage now, its audit entries."""

    version: str
    role: str  # what the version was to the rollout (ROLES)
    stage: str | None  # None: not in the registry (deployed with --unregistered)
    stage_changed_at: str
    audit: tuple[AuditEntry, ...]


@dataclass(frozen=True)
class ShadowLook:
    """One look of the shadow phase: what the routers compared so far (cumulative)."""

    at: float
    verdict: str
    compared: int
    agreed: int
    errors: int
    dropped: int
    agreement: float | None
    latency_ms: float | None
    reason: str


def shadow_looks(gates: Sequence[Mapping[str, Any]]) -> tuple[ShadowLook, ...]:
    """The shadow phase's looks (it runs first: its clock is the rollout's)."""
    looks = []
    for g in gates:
        if g.get("phase") != "shadow":
            continue
        v = g.get("values") or {}
        looks.append(
            ShadowLook(
                _number(g.get("t")) or 0.0,
                str(g.get("verdict") or ""),
                int(_number(v.get("shadow_compared")) or 0),
                int(_number(v.get("shadow_agreed")) or 0),
                int(_number(v.get("shadow_errors")) or 0),
                int(_number(v.get("shadow_dropped")) or 0),
                _number(v.get("shadow_agreement")),
                _number(v.get("shadow_latency_ms")),
                "; ".join(str(r) for r in g.get("reasons") or []),
            )
        )
    return tuple(looks)


@dataclass(frozen=True)
class RolloutReport:
    line: str
    model: str
    job_version: int
    deployment: str
    operation: str
    model_version: str
    previous_version: str | None
    outcome: str
    reason: str
    seconds: float | None
    recorded_at: str
    counts: str  # "interval": traffic since the previous look; "window": the gates' window
    percentile: float | None
    looks: tuple[Look, ...]
    steps: tuple[tuple[float, int], ...]  # (seconds, canary's share %) where a step began
    judge: JudgeEvidence | None
    limits: tuple[tuple[str, float], ...]  # the threshold gates' limits (no judge)
    versions: tuple[VersionStory, ...]
    shadow: tuple[ShadowLook, ...] = ()  # the shadow phase's looks, before any step


def choose_rollout(
    line: str, records: Mapping[int, Mapping[str, Any]], deployment: str | None = None
) -> tuple[int, Mapping[str, Any]]:
    """(job version, record) of the rollout to report: the deployment `deployment` names
    (its full id or a prefix of at least 8 characters, as deploy prints it), or else the
    latest rollout nomadml ran on the line."""
    ran = {n: r for n, r in records.items() if r.get("deployment")}
    if not ran:
        raise BadInput(f"{line}: nomadml has run no rollout on this line (no rollout record)")
    if deployment is None:
        latest = max(ran)
        return latest, ran[latest]
    if len(deployment) < 8:
        raise BadInput(f"--deployment {deployment}: give at least 8 characters of the id")
    found = [n for n, r in ran.items() if str(r["deployment"]).startswith(deployment)]
    if len(found) != 1:
        known = ", ".join(str(ran[n]["deployment"])[:8] for n in sorted(ran, reverse=True)[:5])
        raise BadInput(
            f"--deployment {deployment}: not a rollout nomadml ran on {line} (its latest: {known})"
        )
    return found[0], ran[found[0]]


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _judge(gates: Sequence[Mapping[str, Any]]) -> JudgeEvidence | None:
    last = next((g["judge"] for g in reversed(gates) if isinstance(g.get("judge"), Mapping)), None)
    if last is None:
        return None
    tests = []
    for t in last.get("tests") or []:
        canary, stable = t.get("canary") or {}, t.get("stable") or {}
        tests.append(
            SignalEvidence(
                signal=str(t.get("signal")),
                canary_requests=_number(canary.get("requests")) or 0.0,
                canary_bad=_number(canary.get("bad")) or 0.0,
                stable_requests=_number(stable.get("requests")) or 0.0,
                stable_bad=_number(stable.get("bad")) or 0.0,
                tolerance=_number(t.get("tolerance")) or 0.0,
                effect_bound=_number(t.get("effect_bound")) or 0.0,
                e_fail=_number(t.get("e_fail")),
                fail_threshold=_number(t.get("fail_threshold")) or 0.0,
                e_pass=_number(t.get("e_pass")),
                pass_threshold=_number(t.get("pass_threshold")) or 0.0,
            )
        )
    slow = _number(last.get("slow_above_s"))
    return JudgeEvidence(
        decision=str(last.get("decision")),
        signal=None if last.get("signal") is None else str(last.get("signal")),
        alpha=_number(last.get("alpha")) or 0.0,
        looks=int(_number(last.get("looks")) or 0),
        slow_above_ms=None if slow is None else slow * 1000.0,
        tests=tuple(tests),
    )


def _limits(gates: Sequence[Mapping[str, Any]]) -> tuple[tuple[str, float], ...]:
    values = next((g.get("values") for g in reversed(gates) if "judge" not in g), None) or {}
    return tuple((k, float(values[k])) for k in LIMITS if _number(values.get(k)) is not None)


def previous_version(job_versions: Sequence[Mapping[str, Any]], job_version: int) -> str | None:
    """The model version the line ran before: the newest stable job version before it."""
    earlier = [
        v for v in job_versions if int(v.get("Version", -1)) < job_version and v.get("Stable")
    ]
    if not earlier:
        return None
    newest = max(earlier, key=lambda v: int(v["Version"]))
    found = (newest.get("Meta") or {}).get("nomadml.version")
    return None if found is None else str(found)


def versions_involved(
    job_version: int, record: Mapping[str, Any], job_versions: Sequence[Mapping[str, Any]]
) -> tuple[str, str | None]:
    """(the version the rollout brought, the one that ran before it or None): the versions
    whose registry records and audit entries the report shows."""
    version = str(record.get("model_version") or "")
    before = previous_version(job_versions, job_version)
    if before is None and record.get("from"):
        before = str(record["from"])  # a rollback's record names where it came from
    return version, before if before != version else None


def _story(
    version: str,
    role: str,
    registered: ModelVersion | None,
    audit: Sequence[Mapping[str, Any]],
) -> VersionStory:
    entries = tuple(
        AuditEntry(
            at=str(e.get("at", "")),
            actor=str(e.get("actor", "")),
            action=str(e.get("action", "")),
            version=str(e.get("version", "")),
            details=json.dumps(e.get("details"), sort_keys=True, separators=(",", ":")),
        )
        for e in sorted(audit, key=lambda e: (str(e.get("at", "")), str(e.get("id", ""))))
        if e.get("version") == version
    )
    return VersionStory(
        version=version,
        role=role,
        stage=None if registered is None else registered.stage,
        stage_changed_at="" if registered is None else registered.stage_changed_at,
        audit=entries,
    )


def assemble(
    line: str,
    model: str,
    job_version: int,
    record: Mapping[str, Any],
    job_versions: Sequence[Mapping[str, Any]],
    registered: Mapping[str, ModelVersion | None],
    audit: Sequence[Mapping[str, Any]],
) -> RolloutReport:
    """The report of one rollout from its record, the job's versions (for the version that
    ran before), the registry's records of the versions involved and the model's audit log."""
    gates = [g for g in record.get("gates") or [] if isinstance(g, Mapping)]
    series = record.get("series")
    looks = looks_from_record(series) or looks_from_gates(gates)
    steps = steps_from_record(series) or steps_from_gates(gates)
    stored = series if isinstance(series, Mapping) else {}
    counts = str(
        stored.get("counts") or ("interval" if any("judge" in g for g in gates) else "window")
    )
    percentile = _number(stored.get("percentile"))
    if percentile is None:
        percentile = next(
            (p for g in gates if (p := _number((g.get("values") or {}).get("latency_percentile")))),
            None,
        )
    version, before = versions_involved(job_version, record, job_versions)
    operation = str(record.get("operation") or record.get("kind") or "deploy")
    new, old = ROLES.get(operation, ROLES["deploy"])
    stories = [_story(version, new, registered.get(version), audit)]
    if before is not None:
        stories.append(_story(before, old, registered.get(before), audit))
    seconds = _number(record.get("seconds"))
    return RolloutReport(
        line=line,
        model=model,
        job_version=job_version,
        deployment=str(record.get("deployment") or ""),
        operation=operation,
        model_version=version,
        previous_version=before,
        outcome=str(record.get("outcome") or "unknown"),
        reason=str(record.get("reason") or ""),
        seconds=seconds,
        recorded_at=str(record.get("recorded_at") or ""),
        counts=counts,
        percentile=percentile,
        looks=looks,
        steps=steps,
        judge=_judge(gates),
        limits=() if _judge(gates) else _limits(gates),
        versions=tuple(stories),
        shadow=shadow_looks(gates),
    )
