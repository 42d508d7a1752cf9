"""The sequential canary judge: is the canary worse than stable, with a stated false-alarm rate?

Part of the pure core: no I/O, standard library only. The caller feeds the counts since the canary
started (for canary and stable: requests, errors, and requests slower than a fixed latency bound)
as often as it likes, each time with the previous verdict of the same rollout; `judge` says
"fail", "pass" or "inconclusive" (keep measuring), and at the deadline
"inconclusive-at-deadline", never a silent pass. Every verdict carries its evidence and the
state the next look continues from (`Verdict.as_dict` / `Verdict.from_dict` round-trip it).

The test. Each signal (errors; slow requests) is a pair of Bernoulli streams: the canary's
requests go bad with rate p_c, stable's with rate p_s. Two hypotheses are tested on each signal:

* fail: H0 "p_c <= p_s + tolerance" (default tolerance 0: the canary is no worse than stable);
* pass: H0 "p_c >= p_s + effect bound" (the canary is worse by at least the bound that matters).

Rejecting the first fails the canary; rejecting the second (for every signal) passes it. A canary
between the two (an increase smaller than the effect bound) may end either way: that is the
indifference zone of Wald's sequential test, where neither answer is wrong.

The e-value. Both nulls are composite: stable's rate is a nuisance. The judge removes it block by
block (Turner, Ly & Grünwald, "Generic e-variables for exact sequential k-sample tests that allow
for optional stopping", 2021/2024; the Bernoulli case of the conditional tests of Lindon & Malek,
NeurIPS 2022, and Lindon et al., KDD 2022, arXiv 2205.14762). A block is the traffic between two
looks: n_c canary and n_s stable requests, x_c and x_s of them bad. For an alternative pair
(a_c, a_s), fixed before the block is seen, and a margin m, let the null point be (q + m, q) with
q the root of n_c (a_c - q - m) / ((q + m)(1 - q - m)) + n_s (a_s - q) / (q (1 - q)) = 0
(for m = 0 simply q = (n_c a_c + n_s a_s) / (n_c + n_s)), and

    e = (a_c / (q+m))^x_c ((1-a_c) / (1-q-m))^(n_c-x_c) (a_s / q)^x_s ((1-a_s) / (1-q))^(n_s-x_s).

Validity, in three steps. (1) Under rates (p_c, p_s), given the block sizes, E[e] = g_c(p_c)
g_s(p_s) with g(p) = (p a / b + (1 - p)(1 - a) / (1 - b))^n per arm. On the null's boundary
p_c = p + m, log E[e] = f(p) is concave in p (a sum of logs of linear functions), f(q) = 0 (each
factor is 1 there), and f'(q) = 0 is the defining equation of q: so f <= 0, E[e] <= 1 for every
rate pair on the boundary. (2) Off the boundary the one-sided nulls are no better: for the fail
test a_c > q + m (the alternative is worse than the null point, shown from the root equation), so
g_c grows with p_c and p_c <= p_s + m gives g_c(p_c) <= g_c(p_s + m); for the pass test
a_c < q + m and g_c falls with p_c, and p_c >= p_s + m again bounds it by the boundary (rates
past 1 - m are covered by the monotone stable factor). (3) The alternative of each block may
depend on everything seen before it (it is "predictable"): the judge takes stable's rate a_s
from stable's counts before the rollout (the optional baseline) and before the block, shrunk
towards the prior, and the canary's rate a_c = a_s + m + d (1 - a_s - m) for a fixed grid of
increases d; so the product of the blocks' e-values is, for each d, a nonnegative supermartingale
with mean <= 1 under every rate pair of the null, and so is their fixed-weight average (the
mixture over d). By Ville's inequality the probability that it ever reaches 1/level is at most
the level: the caller may look after every scrape and stop at the first crossing. The fail tests
share alpha (Bonferroni: alpha / number of signals each, since any one fails the canary); the
pass tests each run at alpha (a pass needs every signal to pass, an intersection-union test).

What this buys over the universal-inference ratio the first version used (a Beta mixture over
both rates against the null's maximum likelihood): the nuisance costs nothing, instead of about
ln(stable's bad count) / 2 nats for learning stable's rate; the grid of increases puts its weight
where operators look (a few effect bounds; `_FAIL_GRID`); and the baseline makes the first
blocks' alternative right. It stays well-behaved when stable has 0 errors: the alternative's
stable rate is shrunk away from 0, so canary errors against an error-free stable are evidence,
and two error-free arms are evidence for a pass. None of the choices (grid, weights, prior,
baseline) affects validity, only speed.

The state. Because the e-value is a product over blocks, each look needs the previous look's
counts and per-increase products: pass the previous verdict (`judge(..., previous=v)`). Without
it a look is the first block of a new test; asking again without it restarts the test, which
spends alpha again (a caller that loses its state must not restart silently).

Assumptions: requests go bad independently given the time, and which arm a request goes to does
not depend on whether it goes bad (the block conditions on each arm's request count, so the split
may drift). Stable's baseline only steers the alternative: if stable's rate changes when the
rollout starts, the judge gets slower, not wrong. The latency bound must be fixed before the
canary starts (from the configuration, or from stable's histogram before the rollout, see
`slow_threshold`): choosing it from the data being judged would bias the comparison.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal, NamedTuple

from nomadml.core.metrics import Snapshot, quantile
from nomadml.errors import BadInput

__all__ = [
    "Comparison",
    "Counts",
    "Decision",
    "Estimate",
    "Evidence",
    "JudgeConfig",
    "Signal",
    "SignalTest",
    "Verdict",
    "estimate",
    "evidence",
    "judge",
    "log_e_block",
    "slow_threshold",
]

Decision = Literal["pass", "fail", "inconclusive", "inconclusive-at-deadline"]
Signal = Literal["errors", "latency"]
JSON = dict[str, object]

_A = "\N{GREEK SMALL LETTER ALPHA}"  # spelled out: ruff flags the literal letter
_LOG_MAX = 709.0  # math.exp overflows above this
_ESTIMATE_MAX_REQUESTS = 10**9
_SIGNALS: tuple[Signal, ...] = ("errors", "latency")

# The fail test's alternatives: (increase over stable + tolerance as a multiple of the effect
# bound, weight). Most weight on one to four effect bounds, the range operators set the bound
# for; the tail up to 64 bounds makes gross regressions fail on the first look. Increases of 95 %
# of the headroom or more are left out (a fixed rule: it depends on the configuration only).
_FAIL_GRID: tuple[tuple[float, float], ...] = (
    (0.5, 2.0),
    (1.0, 4.0),
    (2.0, 4.0),
    (4.0, 3.0),
    (8.0, 1.5),
    (16.0, 1.0),
    (32.0, 1.0),
    (64.0, 1.0),
)
_MAX_SHARE_OF_HEADROOM = 0.95
# The pass test's alternatives: the canary as bad as stable, a third of the effect bound worse,
# or half as bad (a fix); most weight on "as bad", the good canary a rollout expects.
_PASS_GRID: tuple[tuple[str, float], ...] = (("same", 6.0), ("third", 2.0), ("half", 2.0))


# --------------------------------------------------------------------------- configuration


def _outside(field: str, value: float, bounds: str) -> BadInput:
    return BadInput(f"judge.{field}: {value:g} is outside {bounds}")


@dataclass(frozen=True)
class JudgeConfig:
    """What the judge guarantees and what it must catch.

    Increases are absolute, in rate points: 0.01 = one percentage point.

    `alpha`: the false-alarm rate, the probability of ever failing a canary that is no worse
    than stable (+ tolerance), however often the judge is asked; also the probability of
    passing a canary worse by at least an effect bound.
    `error_increase` / `slow_increase`: the effect bounds, the smallest increase of the error
    rate / of the share of slow requests that must not pass.
    `error_tolerance` / `slow_tolerance`: the increase that is not a failure (0: fail on any
    increase the evidence establishes); below the effect bound.
    `slow_percentile` / `slow_above_ms`: "slow" means slower than `slow_above_ms` if set, else
    than the histogram bound at or above stable's `slow_percentile` before the rollout.
    `latency`: judge the slow requests too (needs a latency histogram).
    `prior_mean` / `prior_strength`: the Beta prior that stable's rate in the alternative is
    shrunk towards (a mean and a weight in requests), before stable's baseline and counts take
    over. Validity does not depend on it, speed does, and only in the first looks.
    """

    alpha: float = 0.01
    error_increase: float = 0.01
    error_tolerance: float = 0.0
    slow_increase: float = 0.05
    slow_tolerance: float = 0.0
    slow_percentile: float = 0.95
    slow_above_ms: float | None = None
    latency: bool = True
    prior_mean: float = 0.05
    prior_strength: float = 10.0

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 0.5:
            raise _outside("alpha", self.alpha, "(0, 0.5)")
        for name in ("error", "slow"):
            increase = getattr(self, f"{name}_increase")
            tolerance = getattr(self, f"{name}_tolerance")
            if not 0.0 < increase < 1.0:
                raise _outside(f"{name}_increase", increase, "(0, 1): the effect bound must be > 0")
            if not 0.0 <= tolerance < increase:
                raise _outside(f"{name}_tolerance", tolerance, f"[0, {name}_increase={increase:g})")
        if not 0.0 < self.slow_percentile < 1.0:
            raise _outside("slow_percentile", self.slow_percentile, "(0, 1)")
        if self.slow_above_ms is not None and not 0.0 < self.slow_above_ms < math.inf:
            raise BadInput(f"judge.slow_above_ms: {self.slow_above_ms:g} must be > 0")
        if not 0.0 < self.prior_mean < 1.0:
            raise _outside("prior_mean", self.prior_mean, "(0, 1)")
        if not 0.0 < self.prior_strength < math.inf:
            raise BadInput(f"judge.prior_strength: {self.prior_strength:g} must be > 0")

    @property
    def prior(self) -> tuple[float, float]:
        """The Beta(a, b) prior of stable's rate."""
        return self.prior_mean * self.prior_strength, (1.0 - self.prior_mean) * self.prior_strength

    @property
    def signals(self) -> tuple[Signal, ...]:
        return _SIGNALS if self.latency else ("errors",)

    def bounds(self, signal: Signal) -> tuple[float, float]:
        """(tolerance, effect bound) of a signal."""
        if signal == "errors":
            return self.error_tolerance, self.error_increase
        return self.slow_tolerance, self.slow_increase


# --------------------------------------------------------------------------- evidence


@dataclass(frozen=True)
class Counts:
    """One arm's requests, and how many of them went bad."""

    requests: float
    bad: float

    def __post_init__(self) -> None:
        if not (0.0 <= self.bad <= self.requests < math.inf):
            raise BadInput(f"judge evidence: {self.bad:g} bad of {self.requests:g} requests")

    def minus(self, earlier: Counts) -> Counts:
        """The traffic since `earlier`, a look of the same counters."""
        requests, bad = self.requests - earlier.requests, self.bad - earlier.bad
        if requests < 0 or bad < 0 or bad > requests:
            raise BadInput(
                f"judge evidence: {self.bad:g} bad of {self.requests:g} requests after"
                f" {earlier.bad:g} of {earlier.requests:g} at the previous look: counts since the"
                " start must not go down"
            )
        return Counts(requests, bad)


_NONE = Counts(0.0, 0.0)


@dataclass(frozen=True)
class Comparison:
    """One signal's counts for both arms."""

    canary: Counts
    stable: Counts


@dataclass(frozen=True)
class Evidence:
    """Everything the judge looks at: errors, and requests slower than `slow_above_s`
    (`slow` is None without a latency histogram), since the canary started; optionally stable's
    counts of both before the rollout (`stable_before_errors` / `stable_before_slow`, e.g. the
    previous hour), which steer the alternative towards stable's known rate."""

    errors: Comparison
    slow: Comparison | None = None
    slow_above_s: float | None = None
    stable_before_errors: Counts | None = None
    stable_before_slow: Counts | None = None

    def comparison(self, signal: Signal) -> Comparison | None:
        return self.errors if signal == "errors" else self.slow

    def before(self, signal: Signal) -> Counts:
        got = self.stable_before_errors if signal == "errors" else self.stable_before_slow
        return got if got is not None else _NONE


def _above(snapshot: Snapshot, bound: float) -> Counts | None:
    """Observations in the histogram, and those above the largest bucket bound <= `bound`
    (a bound between buckets counts the requests in between as slow, for both arms alike)."""
    if not snapshot.buckets:
        return None
    bounds = [b for b, _ in snapshot.buckets]
    total = max(0.0, snapshot.buckets[-1][1])
    index = bisect.bisect_right(bounds, bound)
    within = snapshot.buckets[index - 1][1] if index else 0.0
    return Counts(total, min(total, max(0.0, total - within)))


def _errors(snapshot: Snapshot) -> Counts:
    return Counts(snapshot.requests, min(snapshot.errors, snapshot.requests))


def evidence(
    canary: Snapshot,
    stable: Snapshot,
    slow_above_s: float | None,
    *,
    stable_before: Snapshot | None = None,
) -> Evidence:
    """The evidence in two snapshots of the traffic since the canary started (each a
    `metrics.delta`, `metrics.merge`d over the arm's allocations), and optionally one of
    stable's traffic in a window before the rollout."""
    errors = Comparison(_errors(canary), _errors(stable))
    before_errors = _errors(stable_before) if stable_before is not None else None
    if slow_above_s is None:
        return Evidence(errors, stable_before_errors=before_errors)
    slow_canary, slow_stable = _above(canary, slow_above_s), _above(stable, slow_above_s)
    before_slow = _above(stable_before, slow_above_s) if stable_before is not None else None
    slow = (
        None if slow_canary is None or slow_stable is None else Comparison(slow_canary, slow_stable)
    )
    return Evidence(errors, slow, slow_above_s, before_errors, before_slow)


def slow_threshold(stable_before: Snapshot, cfg: JudgeConfig) -> float | None:
    """The latency bound in seconds: `slow_above_ms` if configured, else the smallest finite
    bucket bound at or above stable's `slow_percentile` in a window *before* the canary
    started. None without a usable histogram."""
    if cfg.slow_above_ms is not None:
        return cfg.slow_above_ms / 1000.0
    value = quantile(stable_before.buckets, cfg.slow_percentile)
    if value is None:
        return None
    finite = [b for b, _ in stable_before.buckets if math.isfinite(b)]
    at_or_above = [b for b in finite if b >= value or math.isclose(b, value, rel_tol=1e-9)]
    return min(at_or_above) if at_or_above else max(finite)


# --------------------------------------------------------------------------- the e-value


def _slope(u: float, a: float) -> tuple[float, float]:
    """(a - u) / (u (1 - u)) and its derivative in u (negative: decreasing)."""
    v = u * (1.0 - u)
    return (a - u) / v, -((u - a) ** 2 + a * (1.0 - a)) / (v * v)


def _null_point(n_c: float, n_s: float, margin: float, a_c: float, a_s: float) -> float:
    """Stable's rate q of the null point (q + margin, q): the root in (0, 1 - margin) of
    n_c slope(q + margin, a_c) + n_s slope(q, a_s), a decreasing function (Newton's method,
    kept inside a shrinking bracket)."""
    if margin == 0.0:
        return (n_c * a_c + n_s * a_s) / (n_c + n_s)
    lo, hi = 0.0, 1.0 - margin
    q = min(max((n_c * (a_c - margin) + n_s * a_s) / (n_c + n_s), lo + 1e-12), hi - 1e-12)
    for _ in range(100):
        (hc, dc), (hs, ds) = _slope(q + margin, a_c), _slope(q, a_s)
        h, dh = n_c * hc + n_s * hs, n_c * dc + n_s * ds
        if h > 0.0:
            lo = q
        else:
            hi = q
        step = q - h / dh
        nxt = step if lo < step < hi else 0.5 * (lo + hi)
        if abs(nxt - q) <= 1e-15 * max(q, 1e-300) or nxt in (lo, hi):
            return nxt
        q = nxt
    return q


def _log_ratio(c: Counts, a: float, b: float) -> float:
    """log of (a / b)^bad ((1 - a) / (1 - b))^good."""
    good = c.requests - c.bad
    return (c.bad * math.log(a / b) if c.bad else 0.0) + (
        good * (math.log1p(-a) - math.log1p(-b)) if good else 0.0
    )


def log_e_block(
    canary: Counts, stable: Counts, margin: float, alternative: tuple[float, float]
) -> float:
    """The log e-value of one block of traffic (between two looks) against the null's
    boundary "p_c = p_s + margin", for the alternative rates (canary, stable), both in (0, 1):
    the canary worse than that (fail test) or better (pass test). 0 (e = 1) while an arm has
    no requests in the block: one arm alone says nothing about the difference."""
    a_c, a_s = alternative
    if canary.requests <= 0 or stable.requests <= 0:
        return 0.0
    q = _null_point(canary.requests, stable.requests, margin, a_c, a_s)
    return _log_ratio(canary, a_c, q + margin) + _log_ratio(stable, a_s, q)


def _stable_rate(before: Counts, stable: Counts, cfg: JudgeConfig) -> float:
    """The alternative's stable rate for the next block: stable's baseline and counts so far,
    shrunk towards the prior."""
    a, b = cfg.prior
    return (before.bad + stable.bad + a) / (before.requests + stable.requests + a + b)


def _fail_weights(margin: float, effect: float) -> list[tuple[float, float]]:
    """(share of the headroom above stable + margin, log weight) of the fail alternatives."""
    kept = [(k * effect, w) for k, w in _FAIL_GRID if k * effect < _MAX_SHARE_OF_HEADROOM]
    total = sum(w for _, w in kept)
    return [(d, math.log(w / total)) for d, w in kept]


def _pass_weights() -> list[tuple[str, float]]:
    total = sum(w for _, w in _PASS_GRID)
    return [(kind, math.log(w / total)) for kind, w in _PASS_GRID]


def _fail_alternatives(rate: float, margin: float, effect: float) -> list[tuple[float, float]]:
    base = rate + margin
    return [(base + d * (1.0 - base), rate) for d, _ in _fail_weights(margin, effect)]


def _pass_alternatives(rate: float, effect: float) -> list[tuple[float, float]]:
    shifted = {"same": rate, "third": rate + effect / 3.0 * (1.0 - rate), "half": rate / 2.0}
    return [(shifted[kind], rate) for kind, _ in _PASS_GRID]


def _log_sum(parts: Sequence[float], log_weights: Sequence[float]) -> float:
    """log of the weighted average of exp(parts)."""
    terms = [p + w for p, w in zip(parts, log_weights, strict=True)]
    top = max(terms)
    if top == -math.inf:
        return top
    return top + math.log(sum(math.exp(t - top) for t in terms))


# --------------------------------------------------------------------------- the verdict


def _e(log_e: float) -> float:
    return math.exp(log_e) if log_e < _LOG_MAX else math.inf


def _number(value: float) -> float | int | None:
    """JSON-ready: whole floats as ints, infinities and NaN as None."""
    if not math.isfinite(value):
        return None
    return int(value) if float(value).is_integer() else value


def _points(rate: float) -> str:
    return f"+{rate * 100:.3g} pt"


def _short(value: float) -> str:
    """An e-value or threshold for a one-line message: 142, 3.1, 2.5e+07."""
    if value == math.inf:
        return "inf"
    return f"{value:.3g}" if value < 1e4 else f"{value:.2g}"


@dataclass(frozen=True)
class SignalTest:
    """Both sequential tests on one signal: the counts since the start, the bounds, the
    e-values, and the per-alternative log products the next look continues from."""

    signal: Signal
    canary: Counts
    stable: Counts
    tolerance: float
    effect: float
    log_e_fail: float
    log_e_pass: float
    fail_level: float  # the share of alpha this signal's fail test spends
    pass_level: float
    fail_parts: tuple[float, ...] = ()
    pass_parts: tuple[float, ...] = ()

    @property
    def fails(self) -> bool:
        return self.log_e_fail >= math.log(1.0 / self.fail_level)

    @property
    def passes(self) -> bool:
        return self.log_e_pass >= math.log(1.0 / self.pass_level)

    def counts(self, slow_above_s: float | None) -> str:
        """The counts for a message: canary 12/800 errors, stable 1/1600."""
        if self.signal == "errors":
            what = " errors"
        else:
            what = f" slower than {slow_above_s * 1000:g} ms" if slow_above_s is not None else ""
        c, s = self.canary, self.stable
        return f"canary {c.bad:g}/{c.requests:g}{what}, stable {s.bad:g}/{s.requests:g}"

    def as_dict(self) -> JSON:
        return {
            "signal": self.signal,
            "canary": {"requests": _number(self.canary.requests), "bad": _number(self.canary.bad)},
            "stable": {"requests": _number(self.stable.requests), "bad": _number(self.stable.bad)},
            "tolerance": self.tolerance,
            "effect_bound": self.effect,
            "e_fail": _number(_e(self.log_e_fail)),
            "log_e_fail": self.log_e_fail,
            "fail_threshold": 1.0 / self.fail_level,
            "e_pass": _number(_e(self.log_e_pass)),
            "log_e_pass": self.log_e_pass,
            "pass_threshold": 1.0 / self.pass_level,
            "state": {"fail": list(self.fail_parts), "pass": list(self.pass_parts)},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> SignalTest:
        """Back from `as_dict` (a stored verdict, to continue the test after a restart)."""
        try:
            signal = data["signal"]
            if signal not in _SIGNALS:
                raise ValueError(f"unknown signal {signal!r}")

            def counts(key: str) -> Counts:
                arm = _mapping(data[key])
                return Counts(_real(arm["requests"]), _real(arm["bad"]))

            state = _mapping(data["state"])
            return cls(
                signal="errors" if signal == "errors" else "latency",
                canary=counts("canary"),
                stable=counts("stable"),
                tolerance=_real(data["tolerance"]),
                effect=_real(data["effect_bound"]),
                log_e_fail=_real(data["log_e_fail"]),
                log_e_pass=_real(data["log_e_pass"]),
                fail_level=1.0 / _real(data["fail_threshold"]),
                pass_level=1.0 / _real(data["pass_threshold"]),
                fail_parts=tuple(_real(v) for v in _list(state["fail"])),
                pass_parts=tuple(_real(v) for v in _list(state["pass"])),
            )
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as e:
            raise BadInput(f"judge state: not a stored verdict ({e})") from None


def _real(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{value!r} is not a number")
    return float(value)


def _list(value: object) -> list[object]:
    if not isinstance(value, list):
        raise TypeError(f"{value!r} is not a list")
    return value


@dataclass(frozen=True)
class Verdict:
    """The judge's decision and the evidence behind it.

    `signal` names the signal that decided: the one that failed, or for a pass the one that
    passed last (the smallest e-value over its threshold); None while inconclusive. `looks`
    counts the looks of this test so far (this one included).
    """

    decision: Decision
    signal: Signal | None
    alpha: float
    tests: tuple[SignalTest, ...]
    slow_above_s: float | None = None
    looks: int = 1

    def test(self, signal: Signal) -> SignalTest | None:
        return next((t for t in self.tests if t.signal == signal), None)

    def as_dict(self) -> JSON:
        return {
            "decision": self.decision,
            "signal": self.signal,
            "alpha": self.alpha,
            "slow_above_s": self.slow_above_s,
            "looks": self.looks,
            "tests": [t.as_dict() for t in self.tests],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Verdict:
        """Back from `as_dict`: a stored verdict to pass as `previous`."""
        try:
            decision, signal = data["decision"], data["signal"]
            if decision not in ("pass", "fail", "inconclusive", "inconclusive-at-deadline"):
                raise ValueError(f"unknown decision {decision!r}")
            if signal is not None and signal not in _SIGNALS:
                raise ValueError(f"unknown signal {signal!r}")
            tests = _list(data["tests"])
            slow = data["slow_above_s"]
            looks = data["looks"]
            if not isinstance(looks, int):
                raise TypeError(f"looks {looks!r} is not a whole number")
            return cls(
                decision=decision,
                signal=signal,
                alpha=_real(data["alpha"]),
                tests=tuple(SignalTest.from_dict(_mapping(t)) for t in tests),
                slow_above_s=None if slow is None else _real(slow),
                looks=looks,
            )
        except (KeyError, TypeError, ValueError) as e:
            raise BadInput(f"judge state: not a stored verdict ({e})") from None

    def describe(self) -> str:
        """One line for the deploy output."""
        if self.decision == "fail":
            t = self._deciding()
            share = round(self.alpha / t.fail_level)
            level = f"1/{_A}" if share == 1 else f"{share}/{_A}"
            return (
                f"judge fail: {t.signal} e={_short(_e(t.log_e_fail))} ≥ {level}="
                f"{_short(1.0 / t.fail_level)} ({t.counts(self.slow_above_s)};"
                f" tolerance {_points(t.tolerance)})"
            )
        if self.decision == "pass":
            parts = "; ".join(
                f"{t.signal} e={_short(_e(t.log_e_pass))} ({t.counts(self.slow_above_s)},"
                f" bound {_points(t.effect)})"
                for t in self.tests
            )
            need = f"e ≥ 1/{_A}={_short(1 / self.alpha)}"
            return f"judge pass: every signal below its effect bound, {need}: {parts}"
        parts = "; ".join(
            f"{t.signal} e_fail={_short(_e(t.log_e_fail))}/{_short(1 / t.fail_level)}"
            f" e_pass={_short(_e(t.log_e_pass))}/{_short(1 / t.pass_level)}"
            f" ({t.counts(self.slow_above_s)})"
            for t in self.tests
        )
        if self.decision == "inconclusive-at-deadline":
            return f"judge inconclusive at the deadline, not passed: {parts}"
        return f"judge inconclusive, keep measuring: {parts}"

    def _deciding(self) -> SignalTest:
        test = self.test(self.signal) if self.signal else None
        if test is None:
            raise ValueError(f"a {self.decision} verdict names no signal")
        return test


def _mapping(value: object) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise TypeError(f"{value!r} is not a mapping")
    return value


def _test(
    signal: Signal,
    ev: Evidence,
    cfg: JudgeConfig,
    fail_level: float,
    previous: SignalTest | None,
) -> SignalTest:
    tolerance, effect = cfg.bounds(signal)
    comparison = ev.comparison(signal)
    # No histogram: nothing to judge, so this signal cannot pass.
    c, s = (comparison.canary, comparison.stable) if comparison else (_NONE, _NONE)
    fail_w = [w for _, w in _fail_weights(tolerance, effect)]
    pass_w = [w for _, w in _pass_weights()]
    if previous is None:
        before_c, before_s = _NONE, _NONE
        fail_parts, pass_parts = [0.0] * len(fail_w), [0.0] * len(pass_w)
    else:
        if (previous.tolerance, previous.effect) != (tolerance, effect) or (
            len(previous.fail_parts),
            len(previous.pass_parts),
        ) != (len(fail_w), len(pass_w)):
            raise BadInput(f"judge state: the previous {signal} test had another configuration")
        before_c, before_s = previous.canary, previous.stable
        fail_parts, pass_parts = list(previous.fail_parts), list(previous.pass_parts)
    block_c, block_s = c.minus(before_c), s.minus(before_s)
    rate = _stable_rate(ev.before(signal), before_s, cfg)
    if rate + tolerance < 1.0:
        for i, alt in enumerate(_fail_alternatives(rate, tolerance, effect)):
            fail_parts[i] += log_e_block(block_c, block_s, tolerance, alt)
    for i, alt in enumerate(_pass_alternatives(rate, effect)):
        pass_parts[i] += log_e_block(block_c, block_s, effect, alt)
    return SignalTest(
        signal=signal,
        canary=c,
        stable=s,
        tolerance=tolerance,
        effect=effect,
        log_e_fail=_log_sum(fail_parts, fail_w),
        log_e_pass=_log_sum(pass_parts, pass_w),
        fail_level=fail_level,
        pass_level=cfg.alpha,
        fail_parts=tuple(fail_parts),
        pass_parts=tuple(pass_parts),
    )


def judge(
    ev: Evidence, cfg: JudgeConfig, *, deadline: bool = False, previous: Verdict | None = None
) -> Verdict:
    """Judge the counts since the canary started. Ask as often as you like, passing the
    previous verdict of the same rollout each time (`previous`; None on the first look), and
    act on the first "pass" or "fail"; with `deadline`, an undecided canary is
    "inconclusive-at-deadline" (the operator's call, never a silent pass)."""
    if previous is not None:
        if previous.decision in ("pass", "fail"):
            raise BadInput(f"judge state: the test already ended in {previous.decision!r}")
        if previous.alpha != cfg.alpha or {t.signal for t in previous.tests} != set(cfg.signals):
            raise BadInput("judge state: the previous verdict had another configuration")
    level = cfg.alpha / len(cfg.signals)
    tests = tuple(
        _test(s, ev, cfg, level, previous.test(s) if previous else None) for s in cfg.signals
    )
    looks = previous.looks + 1 if previous else 1
    failing = [t for t in tests if t.fails]
    if failing:
        worst = max(failing, key=lambda t: t.log_e_fail)
        return Verdict("fail", worst.signal, cfg.alpha, tests, ev.slow_above_s, looks)
    if all(t.passes for t in tests):
        last = min(tests, key=lambda t: t.log_e_pass)
        return Verdict("pass", last.signal, cfg.alpha, tests, ev.slow_above_s, looks)
    decision: Decision = "inconclusive-at-deadline" if deadline else "inconclusive"
    return Verdict(decision, None, cfg.alpha, tests, ev.slow_above_s, looks)


# --------------------------------------------------------------------------- the estimate


class Estimate(NamedTuple):
    """About how much canary traffic the errors test needs to fail a given increase."""

    canary_requests: float  # inf: not within a billion requests
    seconds: float

    def describe(self, rate_per_s: float, increase: float, alpha: float) -> str:
        if not math.isfinite(self.canary_requests):
            return (
                f"at {rate_per_s:g} req/s, detecting {_points(increase)} errors at {_A} = {alpha:g}"
                f" needs more than {_ESTIMATE_MAX_REQUESTS:,} canary requests"
            )
        return (
            f"at {rate_per_s:g} req/s, detecting {_points(increase)} errors at {_A} = {alpha:g}"
            f" needs ≈ {self.canary_requests:,.0f} canary requests ≈ {_duration(self.seconds)}"
        )


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def estimate(
    rate_per_s: float,
    base_error_rate: float,
    increase: float,
    alpha: float,
    canary_share: float,
    *,
    config: JudgeConfig | None = None,
) -> Estimate:
    """About how many canary requests (and seconds at `rate_per_s` total, `canary_share` of
    it to the canary) the errors test needs to fail a canary whose error rate is `increase`
    above stable's `base_error_rate`.

    Deterministic: the first canary request count at which the fail e-value on the *expected*
    counts reaches its threshold (alpha / number of signals, as in `judge`; tolerance and
    effect bound from `config`), with the alternative's stable rate at `base_error_rate` (as a
    baseline of stable's counts before the rollout gives it). On expected counts each
    alternative's log e-value grows linearly with the traffic, so the estimate tracks the
    typical path and approximates the median time to fail (benchmarks/JUDGE.md compares it with
    simulation); half the canaries take longer.
    """
    cfg = replace(config, alpha=alpha) if config is not None else JudgeConfig(alpha=alpha)
    if not 0.0 < rate_per_s < math.inf:
        raise BadInput(f"estimate.rate_per_s: {rate_per_s:g} must be > 0")
    if not 0.0 < canary_share < 1.0:
        raise BadInput(f"estimate.canary_share: {canary_share:g} is outside (0, 1)")
    if not 0.0 <= base_error_rate < 1.0:
        raise BadInput(f"estimate.base_error_rate: {base_error_rate:g} is outside [0, 1)")
    if not cfg.error_tolerance < increase <= 1.0 - base_error_rate:
        raise BadInput(
            f"estimate.increase: {increase:g} is outside"
            f" ({cfg.error_tolerance:g}, {1.0 - base_error_rate:g}]: above the tolerance,"
            " within a rate of 1"
        )
    threshold = math.log(len(cfg.signals) / alpha)
    ratio = (1.0 - canary_share) / canary_share
    tolerance, effect = cfg.error_tolerance, cfg.error_increase
    rate = min(max(base_error_rate, 1e-9), 1.0 - tolerance - 1e-9)
    per_request = [  # each alternative's expected log e-value per canary request
        log_e_block(
            Counts(1.0, base_error_rate + increase),
            Counts(ratio, ratio * base_error_rate),
            tolerance,
            alt,
        )
        for alt in _fail_alternatives(rate, tolerance, effect)
    ]
    weights = [w for _, w in _fail_weights(tolerance, effect)]

    # The first n with log(sum_k w_k exp(n g_k)) >= threshold: this grows with n once it is
    # positive, so bisection on n after doubling finds it.
    def reached(n: float) -> bool:
        return _log_sum([n * g for g in per_request], weights) >= threshold

    if max(per_request) <= 0.0:
        return Estimate(math.inf, math.inf)
    hi = 1.0
    while not reached(hi):
        if hi >= _ESTIMATE_MAX_REQUESTS:
            return Estimate(math.inf, math.inf)
        hi *= 2.0
    lo = hi / 2.0
    while hi - lo > 1.0:
        mid = math.floor((lo + hi) / 2.0)
        lo, hi = (lo, float(mid)) if reached(mid) else (float(mid), hi)
    return Estimate(hi, hi / (rate_per_s * canary_share))
