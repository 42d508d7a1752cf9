"""Canary gate decisions: one window's verdict, and the streaks that promote or fail a canary."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from nomadml.core.gates import (
    GateConfig,
    GateResult,
    GateTracker,
    Outcome,
    Verdict,
    WindowStats,
    evaluate,
    stats,
)
from nomadml.core.metrics import MetricNames, Snapshot, delta, parse, snapshot
from nomadml.core.spec import parse_spec

INF = math.inf
CFG = GateConfig()  # the spec defaults: min 20 requests, 1% errors (+1%), p95 <= 500 ms, 1.5 x


def window(requests: int, errors: int = 0, latency_ms: float | None = 100.0) -> WindowStats:
    return WindowStats(
        requests=float(requests),
        errors=float(errors),
        error_rate=errors / requests if requests else None,
        latency_ms=latency_ms,
    )


@dataclass(frozen=True)
class Case:
    canary: WindowStats
    stable: WindowStats | None
    verdict: Verdict
    reasons: tuple[str, ...] = ()
    cfg: dict[str, Any] = field(default_factory=dict)


CASES: dict[str, Case] = {
    "good canary": Case(window(100, 0, 120), window(300, 0, 110), "pass"),
    "canary better than a struggling stable": Case(
        window(100, 1, 100), window(100, 5, 300), "pass"
    ),
    "high error rate": Case(window(80, 10), None, "fail", ("error rate 12.5% > max 1.0%",)),
    "slow canary, absolute": Case(
        window(100, 0, 610), window(300, 0, 580), "fail", ("p95 latency 610 ms > max 500 ms",)
    ),
    "slow relative to stable": Case(
        window(100, 0, 310),
        window(200, 0, 120),
        "fail",
        ("p95 latency 310 ms > 1.5 x stable 120 ms",),
    ),
    "error rate increase relative to stable": Case(
        window(100, 5),
        window(200, 2),
        "fail",
        ("error rate 5.0% > stable 1.0% + 1.0%",),
        {"max_error_rate": 0.1},
    ),
    "stable without enough traffic: only absolute checks": Case(
        window(100, 0, 310), window(19, 0, 120), "pass"
    ),
    "stable without enough traffic, canary over an absolute limit": Case(
        window(100, 5, 310), window(5, 0, 120), "fail", ("error rate 5.0% > max 1.0%",)
    ),
    "no stable allocations: only absolute checks": Case(window(100, 1, 490), None, "pass"),
    "insufficient canary traffic": Case(
        window(19, 19, 9000),
        window(300),
        "insufficient",
        ("19 canary requests in the window, need at least 20",),
    ),
    "zero traffic everywhere": Case(
        window(0, 0, None),
        window(0, 0, None),
        "insufficient",
        ("0 canary requests in the window, need at least 20",),
    ),
    "exactly min_requests is enough": Case(window(20, 0, 100), None, "pass"),
    "absolute thresholds exactly at the limit": Case(window(100, 1, 500.0), None, "pass"),
    "relative thresholds exactly at the limit": Case(
        window(100, 2, 180), window(100, 1, 120), "pass", (), {"max_error_rate": 0.1}
    ),
    "at the limit up to float rounding (0.7 + 0.1 < 0.8, 1.15 x 200 < 230)": Case(
        window(100, 80, 230),
        window(100, 70, 200),
        "pass",
        (),
        {"max_error_rate": 1.0, "max_error_rate_increase": 0.1, "max_latency_ratio": 1.15},
    ),
    "just over the limit shows enough digits": Case(
        window(10_000, 101), None, "fail", ("error rate 1.01% > max 1.00%",)
    ),
    "latency just over the limit shows enough digits": Case(
        window(100, 0, 500.4), None, "fail", ("p95 latency 500.4 ms > max 500.0 ms",)
    ),
    "several failures at once lists them all": Case(
        window(100, 20, 900),
        window(100, 0, 100),
        "fail",
        (
            "error rate 20.0% > max 1.0%",
            "p95 latency 900 ms > max 500 ms",
            "error rate 20.0% > stable 0.0% + 1.0%",
            "p95 latency 900 ms > 1.5 x stable 100 ms",
        ),
    ),
    "a fast model a few ms slower is noise, not a regression (4 -> 10 ms)": Case(
        window(100, 0, 10), window(100, 0, 4), "pass"
    ),
    "slower by more than the floor fails, named by the floor": Case(
        window(100, 0, 30), window(100, 0, 4), "fail", ("p95 latency 30 ms > stable 4 ms + 20 ms",)
    ),
    "no floor: the ratio alone (0 ms)": Case(
        window(100, 0, 10),
        window(100, 0, 4),
        "fail",
        ("p95 latency 10 ms > 1.5 x stable 4 ms",),
        {"min_latency_increase_ms": 0.0},
    ),
    "stable has no latency data: no relative latency check": Case(
        window(100, 0, 400), window(100, 0, None), "pass"
    ),
    "stable latency 0: no relative latency check": Case(
        window(100, 0, 400), window(100, 0, 0.0), "pass"
    ),
    "canary without latency data: error checks only": Case(
        window(100, 0, None), window(100, 0, 100), "pass"
    ),
    "other percentile named in the reason": Case(
        window(100, 0, 700),
        None,
        "fail",
        ("p99 latency 700 ms > max 500 ms",),
        {"latency_percentile": 0.99},
    ),
    "min_requests 0 with no traffic has nothing to fail": Case(
        window(0, 0, None), window(0, 0, None), "pass", (), {"min_requests": 0}
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_evaluate(case: Case) -> None:
    result = evaluate(case.canary, case.stable, replace(CFG, **case.cfg))
    assert (result.verdict, result.reasons) == (case.verdict, case.reasons)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_evaluate_values_are_json_and_complete(case: Case) -> None:
    values = evaluate(case.canary, case.stable, replace(CFG, **case.cfg)).values
    json.dumps(values, allow_nan=False)
    assert {
        "canary_requests",
        "canary_error_rate",
        "canary_latency_ms",
        "stable_requests",
        "stable_error_rate",
        "stable_latency_ms",
        "min_requests",
        "max_error_rate",
        "max_error_rate_increase",
        "latency_percentile",
        "max_latency_ms",
        "max_latency_ratio",
    } <= values.keys()
    assert all(v is None or type(v) in (int, float) for v in values.values())


def test_evaluate_values_record_measurements_and_limits_used() -> None:
    values = evaluate(window(100, 5, 310), window(200, 2, 120), CFG).values
    assert values == {
        "canary_requests": 100,
        "canary_errors": 5,
        "canary_error_rate": 0.05,
        "canary_latency_ms": 310,
        "stable_requests": 200,
        "stable_errors": 2,
        "stable_error_rate": 0.01,
        "stable_latency_ms": 120,
        "min_requests": 20,
        "latency_percentile": 0.95,
        "max_error_rate": 0.01,
        "max_error_rate_increase": 0.01,
        "max_latency_ms": 500.0,
        "max_latency_ratio": 1.5,
        "min_latency_increase_ms": 20.0,
        "relative_error_rate_limit": 0.02,
        "relative_latency_limit_ms": 180,
    }
    assert type(values["canary_requests"]) is int


def test_evaluate_values_without_a_baseline() -> None:
    values = evaluate(window(100), window(3), CFG).values
    assert values["stable_requests"] == 3
    assert values["relative_error_rate_limit"] is None
    assert values["relative_latency_limit_ms"] is None
    none = evaluate(window(100), None, CFG).values
    assert none["stable_requests"] is None and none["stable_latency_ms"] is None


def test_evaluate_values_turn_non_finite_numbers_into_null() -> None:
    canary = WindowStats(requests=INF, errors=math.nan, error_rate=math.nan, latency_ms=INF)
    values = evaluate(canary, None, CFG).values
    assert values["canary_requests"] is None
    assert values["canary_error_rate"] is None
    assert values["canary_latency_ms"] is None
    json.dumps(values, allow_nan=False)


# --------------------------------------------------------------------------- stats


def test_stats_of_a_window() -> None:
    snap = Snapshot(
        requests=40.0,
        errors=2.0,
        buckets=((0.1, 20.0), (0.25, 36.0), (0.5, 40.0), (INF, 40.0)),
        count=40.0,
        sum=5.0,
    )
    result = stats(snap, 0.95)
    assert (result.requests, result.errors, result.error_rate) == (40.0, 2.0, 0.05)
    # rank 38 in (0.25, 0.5]: 250 ms + 250 ms * 2/4
    assert result.latency_ms == pytest.approx(375.0)
    assert stats(snap, 0.5).latency_ms == pytest.approx(100.0)


def test_stats_without_traffic_has_no_rates() -> None:
    assert stats(Snapshot(), 0.95) == WindowStats(0.0, 0.0, None, None)
    quiet = Snapshot(buckets=((0.1, 0.0), (INF, 0.0)))
    assert stats(quiet, 0.95).latency_ms is None


def test_scrapes_to_verdict() -> None:
    """Two scrapes each of a canary and a stable allocation, through to a verdict."""

    def scrape(ok: int, failed: int, fast: int, slow: int) -> Snapshot:
        total = fast + slow
        text = f"""\
nomadml_requests_total{{path="/predict",code="200"}} {ok}
nomadml_requests_total{{path="/predict",code="500"}} {failed}
nomadml_requests_total{{path="/health",code="500"}} 999
nomadml_request_duration_seconds_bucket{{le="0.1"}} {fast}
nomadml_request_duration_seconds_bucket{{le="1"}} {total}
nomadml_request_duration_seconds_bucket{{le="+Inf"}} {total}
nomadml_request_duration_seconds_count {total}
nomadml_request_duration_seconds_sum {total * 0.05}
"""
        return snapshot(parse(text), MetricNames())

    canary = delta(scrape(10, 0, 10, 0), scrape(48, 2, 30, 20))
    stable = delta(scrape(500, 1, 501, 0), scrape(600, 1, 601, 0))
    result = evaluate(stats(canary, 0.95), stats(stable, 0.95), CFG)
    assert result.verdict == "fail"
    assert result.values["canary_requests"] == 40
    assert result.values["canary_error_rate"] == pytest.approx(0.05)
    # canary p95: rank 38 in (0.1 s, 1 s] = 0.1 + 0.9 * 18/20; stable: 0.1 * 95/100
    assert result.values["canary_latency_ms"] == pytest.approx(910.0)
    assert result.values["stable_latency_ms"] == pytest.approx(95.0)
    assert result.reasons == (
        "error rate 5.0% > max 1.0%",
        "p95 latency 910 ms > max 500 ms",
        "error rate 5.0% > stable 0.0% + 1.0%",
        "p95 latency 910 ms > 1.5 x stable 95 ms",
    )


# --------------------------------------------------------------------------- config


def test_gate_config_defaults_equal_spec_defaults() -> None:
    spec = parse_spec('[model]\nname = "iris"\n', "iris.toml")
    assert GateConfig.from_spec(spec.gates) == GateConfig()


def test_gate_config_from_spec() -> None:
    text = """\
[model]
name = "iris"

[gates]
window = "1m30s"
interval = "10s"
consecutive_passes = 5
min_requests = 50
max_error_rate = 0.02
latency_percentile = 0.99
max_latency_ms = 250.0

[gates.metrics]
requests_total = "http_requests_total"
path_label = "handler"
path = "/v1/predict"
"""
    cfg = GateConfig.from_spec(parse_spec(text, "iris.toml").gates, fail_after=3)
    assert (cfg.window, cfg.interval, cfg.consecutive_passes) == (90.0, 10.0, 5)
    assert (cfg.min_requests, cfg.max_error_rate, cfg.latency_percentile) == (50, 0.02, 0.99)
    assert (cfg.max_latency_ms, cfg.max_latency_ratio, cfg.fail_after) == (250.0, 1.5, 3)
    assert cfg.metrics == MetricNames(
        requests_total="http_requests_total", path_label="handler", path="/v1/predict"
    )


@pytest.mark.parametrize(
    "bad", [{"consecutive_passes": 0}, {"fail_after": 0}, {"latency_percentile": 1.5}]
)
def test_gate_config_rejects_impossible_values(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        GateConfig(**bad)


# --------------------------------------------------------------------------- tracker


def _result(verdict: Verdict) -> GateResult:
    return GateResult(verdict, {"canary_requests": 100})


@pytest.mark.parametrize(
    ("verdicts", "outcomes"),
    [
        (["pass", "pass", "pass"], ["pending", "pending", "passed"]),
        (
            ["pass", "pass", "fail", "pass", "pass", "pass"],
            ["pending", "pending", "pending", "pending", "pending", "passed"],
        ),
        (["fail", "fail"], ["pending", "failed"]),
        (["pass", "fail", "fail"], ["pending", "pending", "failed"]),
        (
            ["fail", "pass", "fail", "pass", "fail"],
            ["pending"] * 5,
        ),
        (
            ["pass", "insufficient", "pass", "insufficient", "pass"],
            ["pending", "pending", "pending", "pending", "passed"],
        ),
        (["fail", "insufficient", "fail"], ["pending", "pending", "failed"]),
        (["insufficient"] * 10, ["pending"] * 10),
        (
            ["pass", "pass", "pass", "fail", "fail"],
            ["pending", "pending", "passed", "passed", "passed"],
        ),
        (
            ["fail", "fail", "pass", "pass", "pass"],
            ["pending", "failed", "failed", "failed", "failed"],
        ),
    ],
    ids=[
        "three passes",
        "a failure resets the pass streak",
        "two failures",
        "failures after a pass",
        "alternating never decides",
        "insufficient between passes",
        "insufficient between failures",
        "never enough traffic",
        "passed stays passed",
        "failed stays failed",
    ],
)
def test_tracker_sequences(verdicts: list[Verdict], outcomes: list[Outcome]) -> None:
    tracker = GateTracker(CFG)
    seen = [tracker.observe(_result(v)) for v in verdicts]
    assert seen == outcomes
    assert tracker.outcome == outcomes[-1]
    assert [r.verdict for r in tracker.history] == verdicts


def test_tracker_with_other_streak_lengths() -> None:
    eager = GateTracker(replace(CFG, consecutive_passes=1, fail_after=1))
    assert eager.observe(_result("insufficient")) == "pending"
    assert eager.observe(_result("pass")) == "passed"
    strict = GateTracker(replace(CFG, fail_after=1))
    assert strict.observe(_result("fail")) == "failed"
    patient = GateTracker(replace(CFG, fail_after=3))
    assert [patient.observe(_result("fail")) for _ in range(3)] == ["pending", "pending", "failed"]


def test_tracker_history_keeps_every_result_in_order() -> None:
    tracker = GateTracker(CFG)
    results = [
        evaluate(window(100), None, CFG),
        evaluate(window(5), None, CFG),
        evaluate(window(100, 50), None, CFG),
    ]
    for result in results:
        tracker.observe(result)
    assert tracker.history == tuple(results)
    assert (tracker.passes, tracker.failures) == (0, 1)
    json.dumps([r.values for r in tracker.history], allow_nan=False)
