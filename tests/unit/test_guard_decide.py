"""The post-promotion guard's decision (core/guard.py), driven by tables of looks: a
version that degrades after a while is caught within a look or two, one as good as stable
clears the bake, the false-alarm rate over seeded streams stays below alpha, the
thresholds mode needs failing windows in a row, and the state survives a JSON round trip."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from nomadml.core.gates import GateConfig
from nomadml.core.guard import (
    Baseline,
    GuardConfig,
    GuardDecision,
    GuardState,
    Look,
    baseline_from_gates,
    decide,
    upper_bound,
)
from nomadml.core.judge import Counts, JudgeConfig
from nomadml.core.metrics import Snapshot
from nomadml.errors import BadInput

ERRORS_ONLY = JudgeConfig(alpha=0.01, error_increase=0.02, latency=False)
CFG = GuardConfig(bake_s=120.0, interval_s=2.0, judge=ERRORS_ONLY)


def baseline(requests: float, errors: float) -> Baseline:
    return Baseline(Snapshot(requests, errors))


def run(
    blocks: Sequence[tuple[float, float]], base: Baseline, cfg: GuardConfig = CFG
) -> list[GuardDecision]:
    """Feed (requests, errors) blocks one look each until a final decision."""
    state, out = GuardState(), []
    for i, (n, x) in enumerate(blocks):
        look = Look(elapsed_s=(i + 1) * cfg.interval_s, block=Snapshot(n, x))
        decision = decide(look, base, state, cfg)
        out.append(decision)
        state = decision.state
        if decision.action != "watch":
            break
    return out


@dataclass(frozen=True)
class Case:
    name: str
    base: tuple[float, float]
    blocks: Sequence[tuple[float, float]]
    action: str  # the final action
    looks: int  # how many looks it took


CASES = [
    Case("as good as stable: cleared at the end", (1000, 10), [(30, 0)] * 61, "cleared", 61),
    Case("no errors anywhere: cleared", (500, 0), [(30, 0)] * 61, "cleared", 61),
    Case(
        "degrades after 20 good looks: caught at once",
        (1000, 0),
        [(30, 0)] * 20 + [(30, 15)] * 40,
        "regressed",
        21,
    ),
    Case(
        "a mild late rise (+10 pt) is caught within a few looks",
        (1000, 0),
        [(30, 0)] * 20 + [(30, 3)] * 40,
        "regressed",
        23,
    ),
    Case(
        "stable's own rate is not a regression",
        (2000, 100),
        [(40, 2)] * 61,
        "cleared",
        61,
    ),
    Case("no traffic at all: nothing to say, cleared", (1000, 0), [(0, 0)] * 61, "cleared", 61),
    Case("no baseline: never called a regression", (0, 0), [(30, 15)] * 61, "cleared", 61),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_decisions(case: Case) -> None:
    out = run(case.blocks, baseline(*case.base))
    assert out[-1].action == case.action, out[-1].reason
    assert len(out) <= case.looks, (len(out), out[-1].reason)
    if case.action == "regressed":
        assert len(out) >= 21  # never before the degradation
        assert out[-1].reason.startswith("regression: errors "), out[-1].reason


def test_the_evidence_says_what_was_compared() -> None:
    out = run([(30, 0)] * 5 + [(30, 15)], baseline(1000, 0))
    ev = out[-1].evidence
    assert ev["compare"] == "judge" and ev["alpha"] == 0.01
    errors = ev["signals"]["errors"]
    assert errors["requests"] == 180 and errors["bad"] == 15
    assert errors["baseline_rate"] == 0.0 and 0 < errors["baseline_bound"] < 0.02
    assert errors["log_statistic"] >= errors["log_threshold"]


def test_false_alarms_stay_below_alpha() -> None:
    """300 seeded bakes of a version exactly as good as stable (2 % errors, the baseline
    measured on 1,000 requests): the share called a regression stays below alpha."""
    alarms = 0
    for seed in range(300):
        rng = random.Random(seed)
        base_errors = sum(rng.random() < 0.02 for _ in range(1000))
        blocks = [(20, sum(rng.random() < 0.02 for _ in range(20))) for _ in range(61)]
        alarms += run(blocks, baseline(1000, base_errors))[-1].action == "regressed"
    assert alarms / 300 <= 0.01, alarms


def test_latency_regression() -> None:
    buckets = ((0.1, 950.0), (0.5, 1000.0), (math.inf, 1000.0))
    base = Baseline(Snapshot(1000, 0, buckets), slow_above_s=0.1)
    cfg = GuardConfig(bake_s=60, interval_s=2, judge=JudgeConfig(slow_increase=0.05))
    fast = Snapshot(30, 0, ((0.1, 29.0), (0.5, 30.0), (math.inf, 30.0)))
    slow = Snapshot(30, 0, ((0.1, 5.0), (0.5, 30.0), (math.inf, 30.0)))
    state = GuardState()
    for i in range(5):
        got = decide(Look(2.0 * (i + 1), fast), base, state, cfg)
        assert got.action == "watch", got.reason
        state = got.state
    got = decide(Look(12.0, slow), base, state, cfg)
    assert got.action == "regressed" and "latency" in got.reason, got.reason


def test_thresholds_need_failing_windows_in_a_row() -> None:
    cfg = GuardConfig(
        bake_s=60, interval_s=2, compare="thresholds", gates=GateConfig(min_requests=10)
    )
    base = baseline(1000, 0)
    bad, good, quiet = Snapshot(30, 10), Snapshot(30, 0), Snapshot(3, 3)
    state = GuardState()
    for i, (block, action) in enumerate(
        [(bad, "watch"), (good, "watch"), (bad, "watch"), (quiet, "watch"), (bad, "regressed")]
    ):
        got = decide(Look(2.0 * (i + 1), bad, window=block), base, state, cfg)
        assert got.action == action, (i, got.reason)
        state = got.state
    assert got.reason.startswith("regression: 2 failing windows in a row"), got.reason


def test_state_and_config_survive_json() -> None:
    out = run([(30, 0)] * 3, baseline(1000, 3))
    state = out[-1].state
    again = GuardState.from_dict(json.loads(json.dumps(state.as_dict())))
    assert again == state
    cfg = GuardConfig.from_dict(json.loads(json.dumps(CFG.as_dict())))
    assert cfg == CFG
    base = Baseline(Snapshot(10, 1, ((0.1, 9.0), (math.inf, 10.0))), 0.1)
    assert Baseline.from_dict(json.loads(json.dumps(base.as_dict()))) == base


def test_a_bake_shorter_than_one_interval_is_refused() -> None:
    with pytest.raises(BadInput, match=r"guard.bake: 1 s is shorter than one evaluation"):
        GuardConfig(bake_s=1, interval_s=2)


@pytest.mark.parametrize(
    ("n", "x", "low", "high"),
    [(0, 0, 1.0, 1.0), (1000, 0, 0.004, 0.006), (1000, 100, 0.12, 0.14), (10, 10, 1.0, 1.0)],
)
def test_upper_bound(n: float, x: float, low: float, high: float) -> None:
    u = upper_bound(Counts(n, x), 0.005)
    assert low <= u <= high, u


def test_thresholds_compare_latency_with_what_the_gates_measured_of_stable() -> None:
    """The gate records keep stable's latency, not its histogram: the relative latency
    check uses it (5 ms x 1.5), two slow windows in a row are a regression."""
    cfg = GuardConfig(
        bake_s=60, interval_s=2, compare="thresholds", gates=GateConfig(min_requests=10)
    )
    base = Baseline(Snapshot(1000, 0), latency_ms=5.0)
    slow = Snapshot(30, 0, ((0.005, 0.0), (0.1, 30.0), (math.inf, 30.0)))
    state = GuardState()
    for i, action in enumerate(["watch", "regressed"]):
        got = decide(Look(2.0 * (i + 1), slow, window=slow), base, state, cfg)
        assert got.action == action, got.reason
        state = got.state
    assert "latency" in got.reason, got.reason


def test_the_baseline_comes_from_the_gate_records() -> None:
    judged: list[dict[str, Any]] = [
        {"values": {"stable_requests": 80, "stable_errors": 2, "stable_latency_ms": 6}}
    ]
    windows: list[dict[str, Any]] = [
        {"values": {"stable_requests": 40, "stable_error_rate": 0.05}},
        {"values": {"stable_requests": 0, "stable_error_rate": None}},
    ]
    assert baseline_from_gates(judged) == Baseline(Snapshot(80, 2), latency_ms=6.0)
    assert baseline_from_gates(windows) == Baseline(Snapshot(40, 2))
    assert baseline_from_gates([]) is None
