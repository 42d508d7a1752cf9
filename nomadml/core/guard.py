"""The post-promotion guard's decision: has the promoted version regressed against the
stable version it replaced?

Part of the pure core: no I/O. After a promotion the old allocations are gone, so there is
no stable arm to measure beside the new version any more. What remains is the baseline:
stable's traffic during the rollout (requests, errors, latency histogram), stored in the
rollout record. Every look the caller hands over the promoted version's traffic since the
previous look (a block) and the previous state; `decide` says "watch", "regressed" or, at
the end of the bake period, "cleared".

With `compare = "judge"` the comparison is the judge's (core/judge.py: the same signals,
alpha, effect bounds and tolerances, the same counting of errors and slow requests), made
into a change detector, because a version that degrades only after a while is exactly what
the guard is for:

* Stable's rate is not known exactly, only its counts (N, X) during the rollout. The guard
  uses an upper confidence bound u: the largest p with N kl(X/N, p) <= ln(1/delta) (Chernoff),
  wrong with probability at most delta.
* Against the known rate b = u + tolerance, a block of n requests with x bad has, for an
  alternative rate a > b, the e-value (a/b)^x ((1-a)/(1-b))^(n-x): its mean is at most 1
  whenever the promoted version's rate is at most b (it grows with the rate).
* A one-shot product of e-values is slow to notice a late change (good blocks before it
  count against every alternative). The guard keeps the Shiryaev-Roberts statistic
  R_t = e_t (R_{t-1} + 1) per alternative (the sum of the products started at every look),
  mixed over a fixed grid of increases. Under the null R_t - t is a supermartingale, so
  R_t + (L - t) is a nonnegative supermartingale for the bake's at most L looks, and by
  Ville's inequality P(R_t ever reaches L / level within the bake) <= level.
* Each signal gets alpha / (2 k) for the bound and alpha / (2 k) for the detector (k signals):
  the chance that a version no worse than stable (+ tolerance) is ever called a regression
  during the bake is at most alpha.

Where the rollout had the sequential prediction gate ([gates.predictions] with the judge),
the promoted version's predicted labels since the promotion are tested against stable's
label counts from the rollout too (core/prediction_guard.py: anytime-valid at the gate's
own alpha, on top of the judge's; the rollout's two-arm test cannot fire with one arm).

Assumption (the guard's, on top of the judge's): stable's rate during the rollout is the rate
the line had to keep; a change in the traffic itself after the rollout (a new kind of request)
looks like a regression.

With `compare = "thresholds"` the [gates] thresholds judge windows of the promoted version's
traffic against the baseline (core/gates.py), and `fail_after` failing windows in a row are
a regression: simpler, and with no stated false-alarm rate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from nomadml.core.gates import GateConfig, evaluate, stats
from nomadml.core.guard_source import Source, source_of
from nomadml.core.judge import Counts, JudgeConfig, Signal, evidence, slow_threshold
from nomadml.core.metrics import Buckets, Snapshot, buckets_from_record, buckets_record
from nomadml.core.prediction_guard import PredictionBaseline, check_predictions
from nomadml.errors import BadInput

__all__ = [
    "Baseline",
    "GuardConfig",
    "GuardDecision",
    "GuardState",
    "Look",
    "decide",
    "upper_bound",
]

Action = Literal["watch", "regressed", "cleared"]
Compare = Literal["judge", "thresholds"]

# The alternatives of the change detector: (increase over the bound as a multiple of the
# effect bound, weight). Like the judge's grid, most weight on one to four effect bounds;
# the tail makes a gross regression (half the requests failing) cross on its first block.
_GRID: tuple[tuple[float, float], ...] = (
    (1.0, 4.0),
    (2.0, 4.0),
    (4.0, 3.0),
    (8.0, 2.0),
    (16.0, 1.0),
    (32.0, 1.0),
)
_RATE_CAP = 0.999  # alternatives at or above this rate are left out
_NEG_INF = float("-inf")


@dataclass(frozen=True)
class GuardConfig:
    """What the guard watches for, and for how long (seconds). Stored in the rollout record
    with the baseline, so a guard resumes from Nomad alone, without the spec."""

    bake_s: float
    interval_s: float
    compare: Compare = "judge"
    on_regression: Literal["rollback", "alert"] = "rollback"
    retrain: bool = False
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    gates: GateConfig = field(default_factory=GateConfig)

    def __post_init__(self) -> None:
        if not 0.0 < self.interval_s <= self.bake_s:
            raise BadInput(
                f"guard.bake: {self.bake_s:g} s is shorter than one evaluation interval "
                f"({self.interval_s:g} s)"
            )

    @property
    def max_looks(self) -> int:
        """The most looks one bake takes (the detector's threshold is set for them)."""
        return math.floor(self.bake_s / self.interval_s) + 1

    def as_dict(self) -> dict[str, Any]:
        j, g = self.judge, self.gates
        return {
            "bake_s": self.bake_s,
            "interval_s": self.interval_s,
            "compare": self.compare,
            "on_regression": self.on_regression,
            "retrain": self.retrain,
            "judge": {
                "alpha": j.alpha,
                "error_increase": j.error_increase,
                "error_tolerance": j.error_tolerance,
                "slow_increase": j.slow_increase,
                "slow_tolerance": j.slow_tolerance,
                "slow_percentile": j.slow_percentile,
                "slow_above_ms": j.slow_above_ms,
                "latency": j.latency,
            },
            "gates": {
                "window": g.window,
                "min_requests": g.min_requests,
                "max_error_rate": g.max_error_rate,
                "max_error_rate_increase": g.max_error_rate_increase,
                "latency_percentile": g.latency_percentile,
                "max_latency_ms": g.max_latency_ms,
                "max_latency_ratio": g.max_latency_ratio,
                "fail_after": g.fail_after,
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GuardConfig:
        try:
            return cls(
                bake_s=float(data["bake_s"]),
                interval_s=float(data["interval_s"]),
                compare=data["compare"],
                on_regression=data["on_regression"],
                retrain=bool(data["retrain"]),
                judge=JudgeConfig(**dict(data["judge"])),
                gates=GateConfig(**dict(data["gates"])),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise BadInput(f"guard record: not a guard configuration ({err})") from None


@dataclass(frozen=True)
class Baseline:
    """Stable's traffic during the rollout, the latency bound that defines "slow" (fixed
    before the promoted version's traffic is seen), and stable's latency at the gates'
    percentile as the gates measured it (the thresholds' relative latency check)."""

    traffic: Snapshot
    slow_above_s: float | None = None
    latency_ms: float | None = None
    # With the rollout's sequential prediction gate: stable's label counts (judge mode).
    predictions: PredictionBaseline | None = None
    # Where the rollout was judged, so where the guard reads (core/guard_source.py).
    source: Source = "servers"

    def as_dict(self) -> dict[str, Any]:
        out = {
            "requests": self.traffic.requests,
            "errors": self.traffic.errors,
            "buckets": buckets_record(self.traffic.buckets),
            "slow_above_s": self.slow_above_s,
            "latency_ms": self.latency_ms,
        }
        if self.predictions is not None:
            out["predictions"] = self.predictions.as_dict()
        if self.source != "servers":
            out["source"] = self.source
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Baseline:
        try:
            buckets = buckets_from_record(data.get("buckets") or [])
            snap = Snapshot(float(data["requests"]), float(data["errors"]), buckets)
            slow, latency = data.get("slow_above_s"), data.get("latency_ms")
            predicted = data.get("predictions")
            return cls(
                snap,
                None if slow is None else float(slow),
                None if latency is None else float(latency),
                None if predicted is None else PredictionBaseline.from_dict(predicted),
                source_of(data),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise BadInput(f"guard record: not a baseline ({err})") from None


@dataclass(frozen=True)
class GuardState:
    """What one look leaves for the next: the detector per signal (log R per alternative),
    the promoted version's counts so far, and the thresholds mode's failing streak."""

    looks: int = 0
    log_r: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    seen: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # requests, bad
    failing: int = 0
    predicted: Mapping[str, float] = field(default_factory=dict)  # by label, since promotion

    def as_dict(self) -> dict[str, Any]:
        return {
            "looks": self.looks,
            "log_r": {
                k: [None if v == _NEG_INF else v for v in vs] for k, vs in self.log_r.items()
            },
            "seen": {k: list(v) for k, v in self.seen.items()},
            "failing": self.failing,
            "predicted": dict(self.predicted),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GuardState:
        try:
            return cls(
                int(data.get("looks", 0)),
                {
                    str(k): tuple(_NEG_INF if v is None else float(v) for v in vs)
                    for k, vs in dict(data.get("log_r") or {}).items()
                },
                {
                    str(k): (float(v[0]), float(v[1]))
                    for k, v in dict(data.get("seen") or {}).items()
                },
                int(data.get("failing", 0)),
                {str(k): float(v) for k, v in dict(data.get("predicted") or {}).items()},
            )
        except (TypeError, ValueError, IndexError) as err:
            raise BadInput(f"guard record: not a guard state ({err})") from None


@dataclass(frozen=True)
class Look:
    """One observation: the promoted version's traffic since the previous look (`block`),
    its traffic over the last gates.window (`window`, thresholds mode), and the time since
    the bake started."""

    elapsed_s: float
    block: Snapshot
    window: Snapshot | None = None


@dataclass(frozen=True)
class GuardDecision:
    action: Action
    reason: str
    state: GuardState
    evidence: dict[str, Any]


# --------------------------------------------------------------------------- the bound


def _kl(p: float, q: float) -> float:
    """kl(p, q) of two Bernoulli rates, 0 < q < 1."""
    out = 0.0
    if p > 0:
        out += p * math.log(p / q)
    if p < 1:
        out += (1 - p) * math.log((1 - p) / (1 - q))
    return out


def upper_bound(counts: Counts, delta: float) -> float:
    """The largest rate p with n kl(x/n, p) <= ln(1/delta): an upper confidence bound on
    the rate that produced x bad of n, wrong with probability at most delta. 1 for n = 0."""
    n, x = counts.requests, counts.bad
    if n <= 0:
        return 1.0
    p_hat, budget = x / n, math.log(1.0 / delta) / n
    low, high = p_hat, 1.0
    for _ in range(80):
        mid = (low + high) / 2
        if mid >= 1.0 or _kl(p_hat, mid) > budget:
            high = mid
        else:
            low = mid
    return high


# --------------------------------------------------------------------------- the detector


def _log_e(block: Counts, a: float, b: float) -> float:
    n, x = block.requests, block.bad
    return x * math.log(a / b) + (n - x) * (math.log1p(-a) - math.log1p(-b))


def _alternatives(bound: float, effect: float) -> list[tuple[float, float]]:
    """(rate, weight) of the alternatives above the null's rate `bound`."""
    out = [(bound + k * effect, w) for k, w in _GRID if bound + k * effect < _RATE_CAP]
    total = sum(w for _, w in out)
    return [(a, w / total) for a, w in out]


def _log_sum_exp(parts: Sequence[float]) -> float:
    top = max(parts, default=_NEG_INF)
    if top == _NEG_INF:
        return _NEG_INF
    return top + math.log(sum(math.exp(p - top) for p in parts))


def _detect(
    signal: Signal,
    block: Counts,
    before: Counts,
    previous: tuple[float, ...],
    cfg: GuardConfig,
) -> tuple[tuple[float, ...], bool, dict[str, Any]]:
    """One signal's Shiryaev-Roberts update: (new log R per alternative, crossed?, evidence)."""
    tolerance, effect = cfg.judge.bounds(signal)
    level = cfg.judge.alpha / (2 * len(cfg.judge.signals))
    u = upper_bound(before, level)
    b = u + tolerance
    alternatives = _alternatives(b, effect) if b < _RATE_CAP else []
    if not previous or len(previous) != len(alternatives):
        previous = tuple(_NEG_INF for _ in alternatives)
    log_r = tuple(
        _log_e(block, a, b) + _log_sum_exp([r, 0.0])
        for (a, _), r in zip(alternatives, previous, strict=True)
    )
    stat = _log_sum_exp([math.log(w) + r for (_, w), r in zip(alternatives, log_r, strict=True)])
    threshold = math.log(cfg.max_looks / level)
    crossed = bool(alternatives) and stat >= threshold
    shown = {
        "baseline_rate": before.bad / before.requests if before.requests else None,
        "baseline_bound": u,
        "log_statistic": None if stat == _NEG_INF else round(stat, 3),
        "log_threshold": round(threshold, 3),
        "level": level,
    }
    return log_r, crossed, shown


def _judged(look: Look, baseline: Baseline, state: GuardState, cfg: GuardConfig) -> GuardDecision:
    slow_above = baseline.slow_above_s
    if cfg.judge.latency and slow_above is None:
        slow_above = slow_threshold(baseline.traffic, cfg.judge)
    ev = evidence(look.block, baseline.traffic, slow_above if cfg.judge.latency else None)
    log_r, seen = dict(state.log_r), dict(state.seen)
    shown: dict[str, dict[str, Any]] = {}
    regressed: list[str] = []
    for signal in cfg.judge.signals:
        comparison = ev.comparison(signal)
        if comparison is None:
            continue  # no histogram: the latency signal has nothing to count
        block, before = comparison.canary, comparison.stable
        log_r[signal], crossed, shown[signal] = _detect(
            signal, block, before, state.log_r.get(signal, ()), cfg
        )
        requests, bad = seen.get(signal, (0.0, 0.0))
        seen[signal] = (requests + block.requests, bad + block.bad)
        shown[signal]["requests"], shown[signal]["bad"] = seen[signal]
        if crossed:
            regressed.append(signal)
    new = replace(state, looks=state.looks + 1, log_r=log_r, seen=seen)
    evidence_data: dict[str, Any] = {"compare": "judge", "alpha": cfg.judge.alpha, "signals": shown}
    said: list[str] = []
    if baseline.predictions is not None:
        predicted = dict(state.predicted)
        for label, n in look.block.predictions:
            predicted[label] = predicted.get(label, 0.0) + n
        new = replace(new, predicted=predicted)
        check = check_predictions(baseline.predictions, predicted)
        evidence_data["predictions"] = check.as_dict()
        if check.shifted:
            said.append(check.describe())
    if regressed or said:
        parts = []
        for name in regressed:
            s = shown[name]
            rate = s["bad"] / s["requests"] if s["requests"] else 0.0
            parts.append(
                f"{name} {100 * rate:.2f}% of {s['requests']:.0f} since promotion vs stable "
                f"{_pct(s['baseline_rate'])} during the rollout (bound "
                f"{_pct(s['baseline_bound'])}), log e {s['log_statistic']} >= {s['log_threshold']}"
            )
        reason = "regression: " + "; ".join(parts + said)
        return GuardDecision("regressed", reason, new, evidence_data)
    return _watch_or_clear(look, new, evidence_data, cfg)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def _thresholds(
    look: Look, baseline: Baseline, state: GuardState, cfg: GuardConfig
) -> GuardDecision:
    window = look.window if look.window is not None else look.block
    percentile = cfg.gates.latency_percentile
    stable = stats(baseline.traffic, percentile)
    if stable.latency_ms is None:  # no histogram kept: the latency the gates measured
        stable = replace(stable, latency_ms=baseline.latency_ms)
    result = evaluate(stats(window, percentile), stable, cfg.gates)
    failing = state.failing + 1 if result.verdict == "fail" else 0
    if result.verdict == "insufficient":
        failing = state.failing
    new = replace(state, looks=state.looks + 1, failing=failing)
    shown = {"compare": "thresholds", "verdict": result.verdict, "values": result.values}
    if failing >= cfg.gates.fail_after:
        reason = f"regression: {failing} failing windows in a row: " + "; ".join(result.reasons)
        return GuardDecision("regressed", reason, new, shown)
    return _watch_or_clear(look, new, shown, cfg)


def _watch_or_clear(
    look: Look, state: GuardState, shown: dict[str, Any], cfg: GuardConfig
) -> GuardDecision:
    if look.elapsed_s >= cfg.bake_s or state.looks >= cfg.max_looks:
        return GuardDecision(
            "cleared", f"no regression within the {cfg.bake_s:g} s bake", state, shown
        )
    return GuardDecision("watch", "baking", state, shown)


def decide(look: Look, baseline: Baseline, state: GuardState, cfg: GuardConfig) -> GuardDecision:
    """One look of the bake: "regressed" as soon as the promoted version's traffic shows a
    regression against the baseline, "cleared" at the end of the bake, else "watch"."""
    if cfg.compare == "thresholds":
        return _thresholds(look, baseline, state, cfg)
    return _judged(look, baseline, state, cfg)


def baseline_from_gates(records: Sequence[Mapping[str, Any]]) -> Baseline | None:
    """Stable's numbers during the rollout from the gate records it left: the judge's
    counts since the canaries turned healthy, else the thresholds' last window with
    stable traffic; with stable's latency where a gate measured it, and stable's merged
    latency histogram (with the judge's latency bound) where the deciding look kept it
    (`stable_histogram`, `judge.slow_above_s`), all as measured where the rollout was judged:
    the router's numbers after a rollout judged at the router (the guard then reads the
    router too). None when no gate measured stable."""
    for record in reversed(records):
        values = record.get("values") or {}
        requests = values.get("stable_requests")
        if not isinstance(requests, int | float) or requests <= 0:
            continue
        latency = values.get("stable_latency_ms")
        latency_ms = float(latency) if isinstance(latency, int | float) else None
        if isinstance(values.get("stable_errors"), int | float):
            errors = float(values["stable_errors"])
        elif isinstance(values.get("stable_error_rate"), int | float):
            errors = round(float(values["stable_error_rate"]) * requests)
        else:
            continue
        buckets, slow_above = _histogram_of(record)
        traffic = Snapshot(float(requests), errors, buckets)
        predicted = record.get("predictions")
        source = source_of(record)
        encoded = source == "router"  # the header's percent-encoded labels
        predictions = PredictionBaseline.from_gate(predicted, encoded) if predicted else None
        return Baseline(traffic, slow_above, latency_ms, predictions, source)
    return None


def _histogram_of(record: Mapping[str, Any]) -> tuple[Buckets, float | None]:
    """A gate record's stable histogram and the judge's latency bound, if it kept them (a
    histogram that does not read is left out: the guard then judges errors only)."""
    try:
        buckets = buckets_from_record(record.get("stable_histogram") or [])
    except (TypeError, ValueError):
        buckets = ()
    slow = (record.get("judge") or {}).get("slow_above_s")
    slow_above = float(slow) if isinstance(slow, int | float) and slow > 0 else None
    return buckets, slow_above
