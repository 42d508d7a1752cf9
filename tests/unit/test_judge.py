"""The sequential canary judge: decisions on hand-made evidence, the e-value's validity checked by
exact enumeration, the state carried from look to look, its one-line config errors, the traffic
estimate, and a seeded simulation of its false-alarm rate."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from nomadml.core.judge import (
    Comparison,
    Counts,
    Decision,
    Evidence,
    JudgeConfig,
    Signal,
    Verdict,
    estimate,
    evidence,
    judge,
    log_e_block,
    slow_threshold,
)
from nomadml.core.metrics import Snapshot
from nomadml.errors import BadInput

INF = math.inf
CFG = JudgeConfig()  # alpha 0.01; effect bounds +1 pt errors, +5 pt slow; tolerance 0
BOUND = 0.25  # seconds: the latency bound of the hand-made evidence
ALPHA = "\N{GREEK SMALL LETTER ALPHA}"


def pair(canary: tuple[float, float], stable: tuple[float, float]) -> Comparison:
    return Comparison(Counts(*canary), Counts(*stable))


def ev(
    errors: tuple[tuple[float, float], tuple[float, float]],
    slow: tuple[tuple[float, float], tuple[float, float]] | None = None,
) -> Evidence:
    """Evidence from ((canary requests, bad), (stable requests, bad)) per signal."""
    if slow is None:
        return Evidence(pair(*errors))
    return Evidence(pair(*errors), pair(*slow), BOUND)


TYPICAL_SLOW = ((6000, 240), (12000, 480))  # 4 % slow on both arms: latency passes


@dataclass(frozen=True)
class Case:
    """The evidence reached in `looks` equal steps (the judge asked at each), optionally with
    stable's counts before the rollout; the decision at the last look."""

    evidence: Evidence
    decision: Decision
    signal: Signal | None = None
    deadline: bool = False
    cfg: dict[str, Any] = field(default_factory=dict)
    looks: int = 10
    before: tuple[float, float] | None = None  # stable's errors before: requests, bad


def _share(c: Comparison | None, k: int, looks: int) -> Comparison | None:
    if c is None:
        return None
    f = k / looks
    return pair(
        (c.canary.requests * f, c.canary.bad * f), (c.stable.requests * f, c.stable.bad * f)
    )


def run(case: Case) -> Verdict:
    """Ask the judge at each of the case's looks, as a rollout does, each continuing the last."""
    cfg, verdict = JudgeConfig(**case.cfg), None
    before = Counts(*case.before) if case.before else None
    for k in range(1, case.looks + 1):
        errors = _share(case.evidence.errors, k, case.looks)
        assert errors is not None
        got = Evidence(
            errors,
            _share(case.evidence.slow, k, case.looks),
            case.evidence.slow_above_s,
            stable_before_errors=before,
        )
        verdict = judge(got, cfg, deadline=case.deadline and k == case.looks, previous=verdict)
        if verdict.decision in ("pass", "fail"):
            break
    assert verdict is not None
    return verdict


CASES: dict[str, Case] = {
    "clear fail: 5 % errors against 1 %": Case(
        ev(((800, 40), (1600, 16)), ((800, 40), (1600, 80))), "fail", "errors"
    ),
    "clear pass: equal rates, plenty of traffic": Case(
        ev(((6000, 30), (12000, 60)), TYPICAL_SLOW), "pass", "errors"
    ),
    "inconclusive on little data": Case(
        ev(((50, 1), (100, 1)), ((50, 2), (100, 5))), "inconclusive"
    ),
    "stable and canary without errors pass": Case(
        ev(((1000, 0), (2000, 0)), ((1000, 50), (2000, 100))), "pass", "errors"
    ),
    "stable without errors, canary with many: fail": Case(
        ev(((1000, 12), (2000, 0)), ((1000, 50), (2000, 100))), "fail", "errors"
    ),
    "stable without errors, canary with a few: keep measuring": Case(
        ev(((1000, 3), (2000, 0)), ((1000, 50), (2000, 100))), "inconclusive"
    ),
    "deadline without a decision is not a pass": Case(
        ev(((50, 1), (100, 1)), ((50, 2), (100, 5))), "inconclusive-at-deadline", deadline=True
    ),
    "deadline does not hide a decision": Case(
        ev(((800, 40), (1600, 16)), ((800, 40), (1600, 80))), "fail", "errors", deadline=True
    ),
    "latency-driven fail": Case(
        ev(((1000, 10), (2000, 20)), ((1000, 120), (2000, 100))), "fail", "latency"
    ),
    "both worse: the stronger evidence names the signal": Case(
        ev(((800, 40), (1600, 16)), ((800, 120), (1600, 80))), "fail", "latency"
    ),
    "errors pass, latency not yet: keep measuring": Case(
        ev(((6000, 30), (12000, 60)), ((300, 30), (600, 40))), "inconclusive"
    ),
    "no latency histogram: latency can never pass": Case(
        ev(((6000, 30), (12000, 60))), "inconclusive-at-deadline", deadline=True
    ),
    "latency off: errors alone decide": Case(
        ev(((6000, 30), (12000, 60))), "pass", "errors", cfg={"latency": False}
    ),
    "an increase within the tolerance does not fail (and is below the effect bound)": Case(
        ev(((800, 40), (1600, 16)), ((800, 40), (1600, 80))),
        "pass",
        "errors",
        cfg={"error_tolerance": 0.04, "error_increase": 0.08},
    ),
    "an increase just above the tolerance: keep measuring": Case(
        ev(((800, 40), (1600, 16)), ((800, 40), (1600, 80))),
        "inconclusive",
        cfg={"error_tolerance": 0.03, "error_increase": 0.04},
    ),
    "one look at all the traffic decides too": Case(
        ev(((800, 40), (1600, 16)), ((800, 40), (1600, 80))), "fail", "errors", looks=1
    ),
    "a baseline of stable's errors steers the alternative, same decision": Case(
        ev(((2000, 20), (4000, 4)), TYPICAL_SLOW), "fail", "errors", before=(36000, 36)
    ),
    "a large effect bound passes a mildly worse canary": Case(
        ev(((2000, 40), (4000, 40)), TYPICAL_SLOW), "pass", "errors", cfg={"error_increase": 0.05}
    ),
    "no stable traffic: nothing to compare": Case(
        ev(((800, 40), (0, 0)), ((800, 40), (0, 0))), "inconclusive"
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_decision(name: str) -> None:
    case = CASES[name]
    verdict = run(case)
    assert (verdict.decision, verdict.signal) == (case.decision, case.signal)
    # The evidence travels with the verdict: JSON-ready, one line to show.
    data = json.loads(json.dumps(verdict.as_dict()))
    assert data["decision"] == case.decision
    seen = case.evidence.errors.canary.requests * verdict.looks / case.looks  # it may stop early
    assert data["tests"][0]["canary"]["requests"] == pytest.approx(seen)
    line = verdict.describe()
    assert "\n" not in line
    assert line.startswith(f"judge {case.decision.replace('-at-deadline', ' at the deadline')}")


def test_fail_line_shows_e_threshold_counts_and_tolerance() -> None:
    verdict = judge(ev(((800, 18), (1600, 1)), ((800, 40), (1600, 80))), CFG)
    assert verdict.describe() == (
        f"judge fail: errors e=353 ≥ 2/{ALPHA}=200"
        " (canary 18/800 errors, stable 1/1600; tolerance +0 pt)"
    )
    errors = json.loads(json.dumps(verdict.as_dict()))["tests"][0]
    assert errors["fail_threshold"] == 200  # alpha / 2 signals
    assert errors["pass_threshold"] == 100
    assert errors["effect_bound"] == 0.01
    assert math.isclose(errors["e_fail"], math.exp(errors["log_e_fail"]))


def test_latency_line_names_the_bound() -> None:
    verdict = judge(ev(((1000, 10), (2000, 20)), ((1000, 120), (2000, 100))), CFG)
    assert "latency e=" in verdict.describe()
    assert "canary 120/1000 slower than 250 ms, stable 100/2000" in verdict.describe()


def test_overwhelming_evidence_stays_finite_in_json() -> None:
    verdict = judge(ev(((100000, 50000), (200000, 2000)), TYPICAL_SLOW), CFG)
    assert verdict.decision == "fail"
    errors = json.loads(json.dumps(verdict.as_dict()))["tests"][0]
    assert errors["e_fail"] is None  # beyond a float: the log says how much
    assert errors["log_e_fail"] > 1000
    assert "e=inf" in verdict.describe()


# --------------------------------------------------------------------------- the state


def _looks(
    steps: Sequence[tuple[tuple[float, float], tuple[float, float]]], cfg: JudgeConfig = CFG
) -> list[Verdict]:
    verdicts: list[Verdict] = []
    for errors in steps:
        previous = verdicts[-1] if verdicts else None
        verdicts.append(judge(ev(errors), replace(cfg, latency=False), previous=previous))
    return verdicts


STEPS = [((100 * k, k), (200 * k, 2 * k)) for k in range(1, 6)]


def test_each_look_continues_the_last() -> None:
    verdicts = _looks(STEPS)
    assert [v.looks for v in verdicts] == [1, 2, 3, 4, 5]
    # The e-value is the product over the blocks between looks: a stored verdict continues.
    stored = Verdict.from_dict(json.loads(json.dumps(verdicts[2].as_dict())))
    assert stored == verdicts[2]
    again = judge(ev(STEPS[3]), replace(CFG, latency=False), previous=stored)
    assert again == verdicts[3]
    # Looking less often is another (equally valid) test, with other blocks.
    sparse = judge(ev(STEPS[4]), replace(CFG, latency=False), previous=verdicts[1])
    assert sparse.test("errors") != verdicts[4].test("errors")


@pytest.mark.parametrize(
    ("previous", "errors", "message"),
    [
        (0, ((50, 0), (400, 4)), "counts since the start must not go down"),
        (0, ((300, 0), (400, 4)), "counts since the start must not go down"),
    ],
)
def test_counts_that_go_back_are_bad_input(
    previous: int, errors: tuple[tuple[float, float], tuple[float, float]], message: str
) -> None:
    verdicts = _looks(STEPS)
    with pytest.raises(BadInput, match=message):
        judge(ev(errors), replace(CFG, latency=False), previous=verdicts[previous])


def test_a_previous_verdict_of_another_test_is_bad_input() -> None:
    first = _looks(STEPS[:1])[0]
    with pytest.raises(BadInput, match="another configuration"):
        judge(ev(STEPS[1]), CFG, previous=first)  # latency on now
    with pytest.raises(BadInput, match="another configuration"):
        judge(ev(STEPS[1]), JudgeConfig(latency=False, error_increase=0.02), previous=first)
    done = judge(ev(((800, 40), (1600, 16))), replace(CFG, latency=False))
    assert done.decision == "fail"
    with pytest.raises(BadInput, match="already ended in 'fail'"):
        judge(ev(((900, 45), (1800, 18))), replace(CFG, latency=False), previous=done)
    with pytest.raises(BadInput, match="judge state: not a stored verdict"):
        Verdict.from_dict({"decision": "pass"})


# --------------------------------------------------------------------------- the e-value


def _binomial_pmf(n: int, k: int, p: float) -> float:
    return math.comb(n, k) * p**k * (1 - p) ** (n - k)


def _expected_e(
    n_c: int, n_s: int, p_c: float, p_s: float, margin: float, alt: tuple[float, float]
) -> float:
    """E[e] of one block under rates (p_c, p_s), by enumerating every outcome."""
    return sum(
        _binomial_pmf(n_c, x_c, p_c)
        * _binomial_pmf(n_s, x_s, p_s)
        * math.exp(log_e_block(Counts(n_c, x_c), Counts(n_s, x_s), margin, alt))
        for x_c in range(n_c + 1)
        for x_s in range(n_s + 1)
    )


NULL_RATES = (0.0, 0.001, 0.02, 0.1, 0.3, 0.6, 0.95, 1.0)


@pytest.mark.parametrize(
    ("n_c", "n_s", "margin", "alt"),
    [
        (5, 9, 0.0, (0.2, 0.05)),  # fail test, zero tolerance: the canary worse
        (7, 3, 0.0, (0.9, 0.3)),
        (6, 8, 0.05, (0.3, 0.1)),  # fail test with a tolerance of 5 pt
        (6, 8, 0.1, (0.05, 0.05)),  # pass test, effect bound 10 pt: the canary as bad
        (9, 4, 0.3, (0.02, 0.1)),  # pass test: the canary better
    ],
)
def test_e_value_has_mean_at_most_one_under_every_null_rate(
    n_c: int, n_s: int, margin: float, alt: tuple[float, float]
) -> None:
    worse = alt[0] > alt[1] + margin  # the fail test's null is p_c <= p_s + margin
    for p_s in NULL_RATES:
        for p_c in NULL_RATES:
            in_null = p_c <= p_s + margin if worse else p_c >= p_s + margin
            if in_null:
                assert _expected_e(n_c, n_s, p_c, p_s, margin, alt) <= 1.0 + 1e-9, (p_c, p_s)
    # ... and is worth having under the alternative.
    assert _expected_e(n_c, n_s, *alt, margin, alt) > 1.0


def test_e_value_without_traffic_in_an_arm_is_one() -> None:
    assert log_e_block(Counts(0, 0), Counts(10, 1), 0.0, (0.2, 0.1)) == 0.0
    assert log_e_block(Counts(10, 1), Counts(0, 0), 0.01, (0.01, 0.01)) == 0.0


@pytest.mark.parametrize(
    ("canary", "stable", "margin", "alt"),
    [
        ((10, 10), (10, 0), 0.0, (0.9, 0.01)),  # every canary request failed, no stable one
        ((10, 0), (10, 10), 0.5, (0.3, 0.4)),
        ((5, 5), (5, 5), 0.3, (0.99, 0.6)),  # both at rate 1
        ((7, 0), (9, 0), 0.2, (1e-6, 1e-6)),
        ((1e6, 3.5), (2e6, 0.25), 0.001, (0.003, 0.001)),  # counter arithmetic leaves fractions
    ],
)
def test_e_value_is_finite_at_the_edges(
    canary: tuple[float, float],
    stable: tuple[float, float],
    margin: float,
    alt: tuple[float, float],
) -> None:
    assert math.isfinite(log_e_block(Counts(*canary), Counts(*stable), margin, alt))


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"alpha": 0.7}, "judge.alpha: 0.7 is outside (0, 0.5)"),
        ({"alpha": 0.0}, "judge.alpha: 0 is outside (0, 0.5)"),
        ({"alpha": 0.5}, "judge.alpha: 0.5 is outside (0, 0.5)"),
        ({"error_increase": 0.0}, "judge.error_increase: 0 is outside (0, 1)"),
        ({"slow_increase": -0.1}, "judge.slow_increase: -0.1 is outside (0, 1)"),
        ({"error_tolerance": 0.01}, "judge.error_tolerance: 0.01 is outside [0, error_increase"),
        ({"slow_tolerance": -1.0}, "judge.slow_tolerance: -1 is outside [0, slow_increase"),
        ({"slow_percentile": 1.0}, "judge.slow_percentile: 1 is outside (0, 1)"),
        ({"slow_above_ms": 0.0}, "judge.slow_above_ms: 0 must be > 0"),
        ({"prior_mean": 0.0}, "judge.prior_mean: 0 is outside (0, 1)"),
        ({"prior_strength": INF}, "judge.prior_strength: inf must be > 0"),
    ],
)
def test_bad_config_is_one_line_naming_the_field(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(BadInput) as caught:
        JudgeConfig(**settings)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_bad_evidence_is_bad_input() -> None:
    with pytest.raises(BadInput, match="judge evidence: 5 bad of 3 requests"):
        Counts(3, 5)


# --------------------------------------------------------------------------- snapshots

BUCKETS_STABLE = ((0.1, 500.0), (0.25, 960.0), (0.5, 995.0), (INF, 1000.0))
BUCKETS_CANARY = ((0.1, 200.0), (0.25, 400.0), (0.5, 480.0), (INF, 500.0))


def test_evidence_from_snapshots() -> None:
    canary = Snapshot(requests=500, errors=7, buckets=BUCKETS_CANARY, count=500)
    stable = Snapshot(requests=1000, errors=2, buckets=BUCKETS_STABLE, count=1000)
    got = evidence(canary, stable, 0.25)
    assert got.errors == pair((500, 7), (1000, 2))
    assert got.slow == pair((500, 100), (1000, 40))
    assert got.slow_above_s == 0.25
    between = evidence(canary, stable, 0.3)  # not a bucket bound: counted from the one below
    assert between.slow == got.slow
    assert evidence(canary, Snapshot(requests=10), 0.25).slow is None
    assert evidence(canary, stable, None).slow is None


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({}, 0.25),  # stable's p95 lies in (0.1, 0.25]: the bound at or above it
        ({"slow_percentile": 0.99}, 0.5),
        ({"slow_percentile": 0.5}, 0.1),  # exactly on a bound
        ({"slow_percentile": 0.999}, 0.5),  # in the +Inf bucket: the highest finite bound
        ({"slow_above_ms": 300.0}, 0.3),
    ],
)
def test_slow_threshold(settings: dict[str, Any], expected: float) -> None:
    stable = Snapshot(requests=1000, buckets=BUCKETS_STABLE, count=1000)
    assert slow_threshold(stable, JudgeConfig(**settings)) == pytest.approx(expected)


def test_slow_threshold_without_histogram() -> None:
    assert slow_threshold(Snapshot(requests=10), CFG) is None


# --------------------------------------------------------------------------- the estimate


def test_estimate_needs_fewer_requests_for_larger_increases() -> None:
    needed = [estimate(15, 0.01, d, 0.01, 1 / 3) for d in (0.005, 0.01, 0.02, 0.05, 0.5)]
    requests = [n for n, _ in needed]
    assert requests == sorted(requests, reverse=True)
    assert len(set(requests)) == len(requests)
    for n, seconds in needed:
        assert seconds == pytest.approx(n / 5.0)  # a third of 15 req/s


def test_estimate_grows_with_stricter_alpha_and_lower_traffic_share() -> None:
    base = estimate(15, 0.01, 0.02, 0.01, 1 / 3)
    assert estimate(15, 0.01, 0.02, 0.001, 1 / 3).canary_requests > base.canary_requests
    assert estimate(15, 0.01, 0.02, 0.01, 0.1).seconds > base.seconds


def test_estimate_message() -> None:
    got = estimate(15, 0.01, 0.05, 0.01, 1 / 3)
    line = got.describe(15, 0.05, 0.01)
    assert line.startswith(f"at 15 req/s, detecting +5 pt errors at {ALPHA} = 0.01 needs ≈ ")
    assert f"{got.canary_requests:,.0f} canary requests ≈ " in line


def test_estimate_of_an_increase_within_the_tolerance_is_bad_input() -> None:
    cfg = JudgeConfig(error_tolerance=0.01, error_increase=0.02)
    with pytest.raises(BadInput, match=r"estimate\.increase: 0\.005 is outside \(0\.01, "):
        estimate(15, 0.01, 0.005, 0.01, 1 / 3, config=cfg)
    with pytest.raises(BadInput, match=r"estimate\.canary_share: 1 is outside"):
        estimate(15, 0.01, 0.05, 0.01, 1.0)


# --------------------------------------------------------------------------- simulation


def _binomial(rng: random.Random, n: int, p: float) -> int:
    """Binomial(n, p) by geometric jumps from one success to the next: about n * p draws."""
    count, position, log_miss = 0, 0, math.log1p(-p)
    while True:
        position += int(math.log(1.0 - rng.random()) / log_miss) + 1
        if position > n:
            return count
        count += 1


def _fails(rng: random.Random, cfg: JudgeConfig, error: float, slow: float, worse: float) -> bool:
    """Does the judge ever fail a canary (error rate `worse` above stable's), judged every 5 s
    for 5 minutes at 15 req/s, a third to the canary? It never stops at a pass: Ville's
    inequality bounds the probability of *ever* failing a good canary."""
    arms = {"canary": [0, 0, 0], "stable": [0, 0, 0]}  # requests, errors, slow
    verdict = None
    for _ in range(60):
        for arm, n, extra in (("canary", 25, worse), ("stable", 50, 0.0)):
            counts = arms[arm]
            counts[0] += n
            counts[1] += _binomial(rng, n, error + extra)
            counts[2] += _binomial(rng, n, slow)
        c, s = arms["canary"], arms["stable"]
        got = Evidence(pair((c[0], c[1]), (s[0], s[1])), pair((c[0], c[2]), (s[0], s[2])), BOUND)
        verdict = judge(got, cfg, previous=verdict)
        if verdict.decision == "fail":
            return True
        if verdict.decision == "pass":  # keep the fail test going past a pass: Ville's
            verdict = replace(verdict, decision="inconclusive", signal=None)  # bound is for ever
    return False


def test_false_alarm_rate_on_good_canaries_is_at_most_alpha() -> None:
    alpha, seeds = 0.05, 300  # a larger alpha than the default, so there is a rate to measure
    cfg = JudgeConfig(alpha=alpha)
    alarms = sum(_fails(random.Random(seed), cfg, 0.05, 0.05, 0.0) for seed in range(seeds))
    margin = 3 * math.sqrt(alpha * (1 - alpha) / seeds)  # three standard errors of the sample
    assert alarms / seeds <= alpha + margin


def test_the_same_simulation_fails_bad_canaries() -> None:
    """The false-alarm check is not vacuous: +10 pt errors fail nearly every time."""
    cfg = JudgeConfig(alpha=0.05)
    caught = sum(_fails(random.Random(seed), cfg, 0.05, 0.05, 0.10) for seed in range(30))
    assert caught >= 27
