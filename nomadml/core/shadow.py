"""The shadow phase of a rollout: before a canary serves anyone, the router mirrors a
share of its line's live requests to it (the clients only ever get stable's answer),
compares each of its answers with stable's and counts agreements, disagreements,
errors, replays dropped when its queue was full, and a latency histogram
(router_metrics.lua). Here, those counts are read from a scrape and judged: enough
compared answers, agreement with stable at or above the threshold, a p95 within the
bound. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

from nomadml.core.metrics import Sample, quantile
from nomadml.core.spec import Shadow

SHADOW_REQUESTS = "nomadml_router_shadow_requests_total"
SHADOW_BUCKETS = "nomadml_router_shadow_duration_seconds_bucket"
OUTCOMES = {"agree": "agreed", "disagree": "disagreed", "error": "errors", "dropped": "dropped"}
LATENCY_PERCENTILE = 0.95

Buckets = tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class ShadowCounts:
    """What one router (or all, summed) counted for one shadow version."""

    agreed: int = 0
    disagreed: int = 0
    errors: int = 0  # the shadow failed to answer, or answered a non-2xx
    dropped: int = 0  # not replayed: the router's replay queue was full
    buckets: Buckets = ()  # cumulative latency histogram (upper bound s, count)

    @property
    def compared(self) -> int:
        return self.agreed + self.disagreed + self.errors

    def _combine(self, other: ShadowCounts, sign: int) -> ShadowCounts:
        mine, theirs = dict(self.buckets), dict(other.buckets)
        buckets = tuple(
            (bound, mine.get(bound, 0.0) + sign * theirs.get(bound, 0.0))
            for bound in sorted(set(mine) | set(theirs))
        )
        counts = {
            f.name: getattr(self, f.name) + sign * getattr(other, f.name)
            for f in fields(self)
            if f.name != "buckets"
        }
        return ShadowCounts(**counts, buckets=buckets)

    def __add__(self, other: ShadowCounts) -> ShadowCounts:
        return self._combine(other, 1)

    def __sub__(self, other: ShadowCounts) -> ShadowCounts:
        return self._combine(other, -1)

    def went_back(self, before: ShadowCounts) -> bool:
        """Fewer than before: the router process was reloaded and counts anew."""
        return any(getattr(self, OUTCOMES[o]) < getattr(before, OUTCOMES[o]) for o in OUTCOMES)


def shadow_counts(samples: Iterable[Sample], backend: str) -> ShadowCounts:
    """One shadow backend's counts from one router's scrape (none yet: zeros)."""
    counts = dict.fromkeys(OUTCOMES.values(), 0)
    buckets: list[tuple[float, float]] = []
    for s in samples:
        if s.label("backend") != backend:
            continue
        outcome = s.label("outcome")
        if s.name == SHADOW_REQUESTS and outcome in OUTCOMES:
            counts[OUTCOMES[outcome]] = int(s.value)
        elif s.name == SHADOW_BUCKETS:
            le = s.label("le")
            buckets.append((float("inf") if le == "+Inf" else float(le or "nan"), s.value))
    return ShadowCounts(**counts, buckets=tuple(sorted(buckets)))


def carried(banked: ShadowCounts, last: ShadowCounts, now: ShadowCounts) -> ShadowCounts:
    """What a router counted before its latest reload, kept: `last` is added to the
    bank when `now` went back (the reload started the counters at zero)."""
    return banked + last if now.went_back(last) else banked


@dataclass(frozen=True)
class ShadowVerdict:
    state: str  # pending | passed | failed | inconclusive
    reason: str
    values: dict[str, Any]

    @property
    def verdict(self) -> str:
        """The record's word, as the gate records say it."""
        return {"passed": "pass", "failed": "fail"}.get(self.state, self.state)


def shadow_values(counts: ShadowCounts) -> dict[str, Any]:
    """The numbers a record, `status` and `history` show for a shadow."""
    latency = quantile(counts.buckets, LATENCY_PERCENTILE) if counts.buckets else None
    agreement = counts.agreed / counts.compared if counts.compared else None
    return {
        "shadow_compared": counts.compared,
        "shadow_agreed": counts.agreed,
        "shadow_disagreed": counts.disagreed,
        "shadow_errors": counts.errors,
        "shadow_dropped": counts.dropped,
        "shadow_agreement": None if agreement is None else round(agreement, 4),
        "shadow_latency_ms": None if latency is None else round(latency * 1000, 2),
    }


def judge_shadow(
    counts: ShadowCounts, rule: Shadow, elapsed_s: float, limit_s: float
) -> ShadowVerdict:
    """Pass when at least rule.min_requests answers were compared, the share of them
    identical to stable's is at least rule.min_agreement (a shadow error is not an
    agreement) and the shadow's p95 is within rule.max_latency_ms; fail when they
    were compared and either is not met; inconclusive when `limit_s` passed without
    enough answers (a quiet hour: never a silent pass, never a false rollback)."""
    values = shadow_values(counts)
    agreement, latency_ms = values["shadow_agreement"], values["shadow_latency_ms"]
    if counts.compared < rule.min_requests:
        said = f"{counts.compared} shadow answers compared, need {rule.min_requests}"
        if elapsed_s >= limit_s:
            return ShadowVerdict("inconclusive", f"after {elapsed_s:.0f} s: {said}", values)
        return ShadowVerdict("pending", said, values)
    reasons = []
    if counts.agreed < rule.min_agreement * counts.compared:
        reasons.append(
            f"shadow agreed with stable on {counts.agreed} of {counts.compared} answers "
            f"({100 * agreement:.1f}%), need {100 * rule.min_agreement:g}%"
        )
    if latency_ms is not None and latency_ms > rule.max_latency_ms:
        reasons.append(
            f"shadow p{100 * LATENCY_PERCENTILE:g} {latency_ms:.0f} ms > {rule.max_latency_ms:g} ms"
        )
    if reasons:
        return ShadowVerdict("failed", "; ".join(reasons), values)
    return ShadowVerdict(
        "passed",
        f"shadow agreed with stable on {counts.agreed} of {counts.compared} answers",
        values,
    )
