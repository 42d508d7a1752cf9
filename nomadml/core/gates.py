"""Canary gates: is the new model version good enough to promote?

Part of the pure core: no I/O, standard library only. Each window's scrapes (see
`nomadml.core.metrics`) become `WindowStats` for the canaries and for the stable allocations;
`evaluate` judges one window, and `GateTracker` turns successive judgements into a decision.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from nomadml.core.metrics import MetricNames, Snapshot, quantile
from nomadml.core.prediction_shift import PredictionCheck, ShiftResult, compare
from nomadml.core.schema import seconds
from nomadml.core.spec import Gates
from nomadml.core.spec_schema import schema_default

__all__ = [
    "GateConfig",
    "GateResult",
    "GateTracker",
    "Outcome",
    "Verdict",
    "WindowStats",
    "evaluate",
    "stats",
]

Verdict = Literal["pass", "fail", "insufficient"]
Outcome = Literal["pending", "passed", "failed"]
Values = dict[str, float | int | str | None]

# Thresholds are written in decimal and compared with computed floats (1/100 vs 0.01, a sum of
# two rates, an interpolated latency); a value one rounding error above its limit is at the limit.
_REL_TOLERANCE = 1e-9
_ABS_TOLERANCE = 1e-12
_NO_PREDICTION_CHECK = PredictionCheck(
    enabled=False,
    test=schema_default("gates.predictions.test"),
    alpha=schema_default("gates.predictions.alpha"),
    max_psi=schema_default("gates.predictions.max_psi"),
    min_predictions=schema_default("gates.predictions.min_predictions"),
)


@dataclass(frozen=True)
class GateConfig:
    """The metric gates of the spec's `gates` table, durations in seconds. The defaults
    are the spec's own (read from its schema, defined there once).

    `fail_after` is not in the spec: it is how many consecutive failing windows fail the
    canary. One window of a few dozen requests is noisy (a single slow or failed request can
    cross a threshold), so the default of 2 keeps one bad window from killing a good canary,
    while a really bad one still fails within two intervals.
    """

    window: float = seconds(schema_default("gates.window"))
    interval: float = seconds(schema_default("gates.interval"))
    consecutive_passes: int = schema_default("gates.consecutive_passes")
    min_requests: int = schema_default("gates.min_requests")
    max_error_rate: float = schema_default("gates.max_error_rate")
    max_error_rate_increase: float = schema_default("gates.max_error_rate_increase")
    latency_percentile: float = schema_default("gates.latency_percentile")
    max_latency_ms: float = schema_default("gates.max_latency_ms")
    max_latency_ratio: float = schema_default("gates.max_latency_ratio")
    min_latency_increase_ms: float = schema_default("gates.min_latency_increase_ms")
    metrics: MetricNames = field(default_factory=MetricNames)
    predictions: PredictionCheck = field(default_factory=lambda: _NO_PREDICTION_CHECK)
    fail_after: int = 2

    def __post_init__(self) -> None:
        if self.consecutive_passes < 1 or self.fail_after < 1:
            raise ValueError("consecutive_passes and fail_after must be at least 1")
        if not 0.0 <= self.latency_percentile <= 1.0:
            raise ValueError(f"latency_percentile must be in [0, 1], got {self.latency_percentile}")

    @classmethod
    def from_spec(cls, gates: Gates, fail_after: int = 2) -> GateConfig:
        """From a spec's typed `gates`; `health` and `analysis` are the caller's."""
        return cls(
            window=seconds(gates.window),
            interval=seconds(gates.interval),
            consecutive_passes=gates.consecutive_passes,
            min_requests=gates.min_requests,
            max_error_rate=gates.max_error_rate,
            max_error_rate_increase=gates.max_error_rate_increase,
            latency_percentile=gates.latency_percentile,
            max_latency_ms=gates.max_latency_ms,
            max_latency_ratio=gates.max_latency_ratio,
            min_latency_increase_ms=gates.min_latency_increase_ms,
            metrics=gates.metrics,
            predictions=gates.predictions,
            fail_after=fail_after,
        )


@dataclass(frozen=True)
class WindowStats:
    """One window's traffic on the gated path, for a group of allocations."""

    requests: float
    errors: float
    error_rate: float | None  # None without requests: no rate, rather than a perfect one
    latency_ms: float | None  # at the configured percentile; None without observations
    predictions: Mapping[str, float] = field(default_factory=dict)  # by predicted label
    probes: float = 0.0  # of `requests`, nomadml's own probes


def stats(snapshot: Snapshot, percentile: float) -> WindowStats:
    """Summarise a window (a `metrics.delta`, possibly `metrics.merge`d) at `percentile`."""
    latency = quantile(snapshot.buckets, percentile)
    return WindowStats(
        requests=snapshot.requests,
        errors=snapshot.errors,
        error_rate=snapshot.errors / snapshot.requests if snapshot.requests > 0 else None,
        latency_ms=latency * 1000.0 if latency is not None else None,
        predictions=dict(snapshot.predictions),
        probes=snapshot.probes,
    )


@dataclass(frozen=True)
class GateResult:
    """One window's judgement.

    `values` holds every number measured and every threshold used (JSON-safe: numbers or None);
    `reasons` has one line per failed check, or for "insufficient" why there is no verdict.
    """

    verdict: Verdict
    values: Values
    reasons: tuple[str, ...] = ()


# --------------------------------------------------------------------------- formatting


def _json_number(value: float | None) -> float | int | None:
    """Counts as ints when whole; NaN and infinities (not valid JSON) as None."""
    if value is None or not math.isfinite(value):
        return None
    return int(value) if float(value).is_integer() else value


def _percent(value: float, digits: int) -> str:
    return f"{value * 100:.{digits}f}%"


def _ms(value: float, digits: int) -> str:
    return f"{value:.{digits}f} ms"


def _shown_apart(
    value: float, limit: float, render: Callable[[float, int], str], start: int
) -> int:
    """Fewest decimals (at least `start`) at which value and limit print differently, so a
    reason never reads like "1.0% > max 1.0%"."""
    for digits in range(start, start + 4):
        if render(value, digits) != render(limit, digits):
            return digits
    return start + 4


def _percentile_name(q: float) -> str:
    return f"p{q * 100:g}"


def _exceeds(value: float, limit: float) -> bool:
    close = math.isclose(value, limit, rel_tol=_REL_TOLERANCE, abs_tol=_ABS_TOLERANCE)
    return value > limit and not close


# --------------------------------------------------------------------------- checks


def _absolute_checks(canary: WindowStats, cfg: GateConfig) -> list[str]:
    reasons: list[str] = []
    rate, latency = canary.error_rate, canary.latency_ms
    if rate is not None and _exceeds(rate, cfg.max_error_rate):
        d = _shown_apart(rate, cfg.max_error_rate, _percent, 1)
        reasons.append(f"error rate {_percent(rate, d)} > max {_percent(cfg.max_error_rate, d)}")
    if latency is not None and _exceeds(latency, cfg.max_latency_ms):
        d = _shown_apart(latency, cfg.max_latency_ms, _ms, 0)
        name = _percentile_name(cfg.latency_percentile)
        reasons.append(f"{name} latency {_ms(latency, d)} > max {_ms(cfg.max_latency_ms, d)}")
    return reasons


def _error_rate_limit(stable: WindowStats, cfg: GateConfig) -> float | None:
    if stable.error_rate is None:
        return None
    return stable.error_rate + cfg.max_error_rate_increase


def _latency_limit(stable: WindowStats, cfg: GateConfig) -> float | None:
    """The ratio to stable, but never within `min_latency_increase_ms` of it."""
    # A stable latency of 0 means every request beat the first bucket bound: no usable baseline.
    if not stable.latency_ms:
        return None
    return max(
        cfg.max_latency_ratio * stable.latency_ms,
        stable.latency_ms + cfg.min_latency_increase_ms,
    )


def _relative_checks(canary: WindowStats, stable: WindowStats, cfg: GateConfig) -> list[str]:
    reasons: list[str] = []
    rate, rate_limit = canary.error_rate, _error_rate_limit(stable, cfg)
    if rate is not None and rate_limit is not None and _exceeds(rate, rate_limit):
        d = _shown_apart(rate, rate_limit, _percent, 1)
        base, increase = stable.error_rate or 0.0, cfg.max_error_rate_increase
        reasons.append(
            f"error rate {_percent(rate, d)} > stable {_percent(base, d)} + {_percent(increase, d)}"
        )
    latency, latency_limit = canary.latency_ms, _latency_limit(stable, cfg)
    if latency is not None and latency_limit is not None and _exceeds(latency, latency_limit):
        d = _shown_apart(latency, latency_limit, _ms, 0)
        name = _percentile_name(cfg.latency_percentile)
        base = stable.latency_ms or 0.0
        if cfg.max_latency_ratio * base >= base + cfg.min_latency_increase_ms:
            bound = f"{cfg.max_latency_ratio:g} x stable {_ms(base, d)}"
        else:
            bound = f"stable {_ms(base, d)} + {cfg.min_latency_increase_ms:g} ms"
        reasons.append(f"{name} latency {_ms(latency, d)} > {bound}")
    return reasons


def _baseline(stable: WindowStats | None, cfg: GateConfig) -> WindowStats | None:
    """The stable allocations, if they saw enough traffic to compare against."""
    if stable is None or stable.requests < cfg.min_requests:
        return None
    return stable


def _values(
    canary: WindowStats, stable: WindowStats | None, baseline: WindowStats | None, cfg: GateConfig
) -> Values:
    return {
        "canary_requests": _json_number(canary.requests),
        "canary_errors": _json_number(canary.errors),
        "canary_error_rate": _json_number(canary.error_rate),
        "canary_latency_ms": _json_number(canary.latency_ms),
        "stable_requests": _json_number(stable.requests if stable else None),
        "stable_errors": _json_number(stable.errors if stable else None),
        "stable_error_rate": _json_number(stable.error_rate if stable else None),
        "stable_latency_ms": _json_number(stable.latency_ms if stable else None),
        "min_requests": cfg.min_requests,
        "latency_percentile": cfg.latency_percentile,
        "max_error_rate": cfg.max_error_rate,
        "max_error_rate_increase": cfg.max_error_rate_increase,
        "max_latency_ms": cfg.max_latency_ms,
        "max_latency_ratio": cfg.max_latency_ratio,
        "min_latency_increase_ms": cfg.min_latency_increase_ms,
        # The limits actually applied against stable; None when there was no usable baseline.
        "relative_error_rate_limit": _json_number(
            _error_rate_limit(baseline, cfg) if baseline else None
        ),
        "relative_latency_limit_ms": _json_number(
            _latency_limit(baseline, cfg) if baseline else None
        ),
    }


def evaluate(canary: WindowStats, stable: WindowStats | None, cfg: GateConfig) -> GateResult:
    """Judge one window of canary traffic, against the stable allocations when possible.

    Fewer than `min_requests` canary requests gives "insufficient". Otherwise the canary must
    stay within the absolute limits and, if the stable allocations also saw `min_requests`,
    within the limits relative to them; every failed check is listed.
    """
    baseline = _baseline(stable, cfg)
    values = _values(canary, stable, baseline, cfg)
    if canary.probes or (stable and stable.probes):
        # How much of the evidence was nomadml's own probes (quiet hours).
        values["canary_probe_requests"] = _json_number(canary.probes)
        values["stable_probe_requests"] = _json_number(stable.probes if stable else None)
    if canary.requests < cfg.min_requests:
        shown = _json_number(canary.requests)
        why = f"{shown} canary requests in the window, need at least {cfg.min_requests}"
        return GateResult("insufficient", values, (why,))
    reasons = _absolute_checks(canary, cfg)
    if baseline is not None:
        reasons += _relative_checks(canary, baseline, cfg)
    if cfg.predictions.enabled:
        shift = compare(canary.predictions, stable.predictions if stable else {}, cfg.predictions)
        values.update(_shift_values(shift))
        if shift.shifted:
            reasons.append(shift.describe(cfg.predictions))
        elif not shift.enough and not reasons:
            # Errors and latency pass, but the model-level check could not look: no verdict.
            why = (
                f"{shift.canary_n:.0f} canary and {shift.stable_n:.0f} stable predictions by label "
                f"in the window, need {cfg.predictions.min_predictions} each "
                f"({cfg.metrics.predictions_total}{{{cfg.metrics.prediction_label}}})"
            )
            return GateResult("insufficient", values, (why,))
    return GateResult("fail" if reasons else "pass", values, tuple(reasons))


def _shift_values(shift: ShiftResult) -> Values:
    return {
        "prediction_test": shift.test,
        "prediction_statistic": _json_number(round(shift.statistic, 6)),
        "prediction_p_value": _json_number(shift.p_value),
        "canary_predictions": _json_number(shift.canary_n),
        "stable_predictions": _json_number(shift.stable_n),
    }


# --------------------------------------------------------------------------- decision


class GateTracker:
    """Turns successive window results into a decision.

    "passed" after `consecutive_passes` passes in a row, "failed" after `fail_after` failures
    in a row, "pending" until then. An "insufficient" window is neutral: it neither counts
    towards nor breaks either streak, because quiet traffic says nothing about the model.
    Once decided the outcome stays: the caller has acted on it, and a later window cannot
    undo a promotion or a rollback.
    """

    def __init__(self, cfg: GateConfig) -> None:
        self.cfg = cfg
        self.passes = 0
        self.failures = 0
        self._outcome: Outcome = "pending"
        self._history: list[GateResult] = []

    @property
    def history(self) -> tuple[GateResult, ...]:
        """Every result observed, oldest first."""
        return tuple(self._history)

    @property
    def outcome(self) -> Outcome:
        """The current decision."""
        return self._outcome

    def observe(self, result: GateResult) -> Outcome:
        """Record one window's result and return the (possibly new) decision."""
        self._history.append(result)
        if self._outcome != "pending":
            return self._outcome
        if result.verdict == "pass":
            self.passes, self.failures = self.passes + 1, 0
        elif result.verdict == "fail":
            self.passes, self.failures = 0, self.failures + 1
        if self.passes >= self.cfg.consecutive_passes:
            self._outcome = "passed"
        elif self.failures >= self.cfg.fail_after:
            self._outcome = "failed"
        return self._outcome
