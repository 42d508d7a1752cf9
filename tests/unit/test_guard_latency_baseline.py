"""Stable's latency histogram from the rollout to the guard: the deciding look of the judge
(and of the threshold gates) keeps stable's merged histogram, compactly, in its gate record;
the guard's baseline reads it back with the judge's latency bound, so `compare = "judge"`
judges slow requests too; a version that turns slow after its promotion is a regression,
one that stays as fast as stable is not; the rollout record stays well under 64 KiB."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from nomadml.adapters.metric_scrape import Reading
from nomadml.core.decide import Action
from nomadml.core.guard import Baseline, GuardConfig, GuardState, Look, baseline_from_gates, decide
from nomadml.core.judge import JudgeConfig, evidence
from nomadml.core.metrics import Snapshot, buckets_from_record, buckets_record, quantile
from nomadml.core.spec import load_spec
from nomadml.engine.judge_runner import JudgeRunner
from nomadml.engine.result import RolloutResult
from nomadml.events import Event

BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, math.inf)
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "iris"


def histogram(latencies: list[float]) -> tuple[tuple[float, float], ...]:
    return tuple((b, float(sum(v <= b for v in latencies))) for b in BOUNDS)


def served(n: int, median_s: float, rng: random.Random, errors: int = 0) -> Snapshot:
    """n requests with lognormal latency around `median_s`, as a server's counters say."""
    latencies = [median_s * math.exp(rng.gauss(0.0, 0.4)) for _ in range(n)]
    return Snapshot(float(n), float(errors), histogram(latencies))


# --------------------------------------------------------------------------- the encoding


def _slow_count(buckets: tuple[tuple[float, float], ...], bound: float) -> float | None:
    ev = evidence(Snapshot(1, 0, buckets), Snapshot(1, 0, buckets), bound)
    return None if ev.slow is None else ev.slow.canary.bad


@pytest.mark.parametrize("seed", range(40))
def test_the_compact_histogram_loses_nothing_the_guard_reads(seed: int) -> None:
    """Every quantile and every count above a bucket bound is the same after the round
    trip through JSON; a fast server's histogram keeps a handful of its eleven pairs."""
    rng = random.Random(seed)
    median = rng.choice([0.002, 0.004, 0.03, 0.2, 1.5])
    buckets = served(rng.randint(0, 2000), median, rng).buckets
    stored = buckets_record(buckets)
    back = buckets_from_record(json.loads(json.dumps(stored)))
    for q in (0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0):
        assert quantile(back, q) == quantile(buckets, q), (q, stored)
    for bound in BOUNDS[:-1]:
        assert _slow_count(back, bound) == _slow_count(buckets, bound), (bound, stored)
    assert back[-1] == buckets[-1]


def test_a_fast_servers_histogram_is_short() -> None:
    rng = random.Random(7)
    stored = buckets_record(served(1000, 0.002, rng).buckets)
    assert len(stored) <= 5, stored
    assert stored[-1] == ["+Inf", 1000]
    assert len(json.dumps(stored)) < 80


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"le": 1}, "list of"),
        ([[0.1, 5], [0.05, 6], ["+Inf", 6]], "must rise"),
        ([[0.1, 5], ["+Inf", 4]], "must not fall"),
        ([[0.1, 5]], r"\+Inf"),
        ([[0.1, -1], ["+Inf", 1]], "pair"),
        ([[0.1]], "pair"),
    ],
)
def test_a_histogram_that_does_not_read_is_refused(data: Any, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        buckets_from_record(data)


# --------------------------------------------------------------------------- the runner


class _Arms:
    """A metric source: one stable and one canary allocation whose counters grow by the
    given traffic at every read."""

    name = "direct"

    def __init__(self) -> None:
        self.rng = random.Random(3)
        self.stable = served(5000, 0.004, self.rng)  # its history before the rollout
        self.canary = Snapshot()

    def read(self, job_id: str, canary_ids: set[str]) -> list[Reading]:
        from nomadml.core.metrics import merge

        self.stable = merge([self.stable, served(60, 0.004, self.rng)])
        self.canary = merge([self.canary, served(30, 0.004, self.rng)])
        return [Reading("s", False, self.stable), Reading("c", True, self.canary)]


def _judged_rollout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str = "direct"
) -> list[dict[str, Any]]:
    text = (EXAMPLE / "iris.toml").read_text()
    text = text.replace(
        "[validation]",
        "[gates.judge]\nenabled = true\nerror_increase = 0.05\nslow_increase = 0.1\n\n[validation]",
        1,
    )
    (tmp_path / "data").mkdir()
    spec_path = tmp_path / "spec.toml"
    spec_path.write_text(text)
    spec = load_spec(spec_path)
    clock = [1000.0]
    fake_time = SimpleNamespace(monotonic=lambda: clock[0])
    monkeypatch.setattr("nomadml.engine.judge_runner.time", fake_time)
    arms = _Arms()
    arms.name = source
    runner = JudgeRunner(spec.gates, arms)
    events: list[Event] = []
    state = "pending"
    for _ in range(200):
        state, _ = runner.step("m-v1", ["c"], events.append)
        clock[0] += 5.0
        if state != "pending":
            break
    assert state == "passed", runner.history()[-1]
    return runner.history()


def test_the_deciding_look_keeps_stables_histogram_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = _judged_rollout(tmp_path, monkeypatch)
    kept = [r for r in records if "stable_histogram" in r]
    assert kept == [records[-1]]  # once, on the look that decided
    last = records[-1]
    buckets = buckets_from_record(last["stable_histogram"])
    assert buckets[-1][1] == last["values"]["stable_requests"]  # since the canary started
    base = baseline_from_gates(records)
    assert base is not None
    assert base.traffic.requests == last["values"]["stable_requests"]
    assert base.traffic.buckets == buckets
    assert base.slow_above_s == last["judge"]["slow_above_s"] == 0.01

    # The rollout record keeps it within the budget of a Nomad Variable (64 KiB).
    result = RolloutResult(Action.SUCCEEDED, "m-v1", "1.1.0", "passed", 3, "d" * 36)
    result.gates = records * 40
    stored = result.as_record()
    assert stored["gates"][-1]["stable_histogram"] == last["stable_histogram"]
    assert len(json.dumps({k: json.dumps(v) for k, v in stored.items()})) < 48 * 1024


def test_the_routers_histogram_is_kept_for_a_guard_that_reads_the_router(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rollout judged at the router keeps the router's histogram (its buckets, the
    network in its times), and the baseline says the guard reads the router too: one
    measurement on both sides (tests/unit/test_guard_source.py)."""
    records = _judged_rollout(tmp_path, monkeypatch, source="router")
    kept = [r for r in records if "stable_histogram" in r]
    assert kept == [records[-1]]
    base = baseline_from_gates(records)
    assert base is not None and base.source == "router"
    assert base.traffic.buckets == buckets_from_record(records[-1]["stable_histogram"])
    assert Baseline.from_dict(json.loads(json.dumps(base.as_dict()))) == base


def test_baseline_reads_the_histogram_and_the_judges_bound() -> None:
    record = {
        "values": {"stable_requests": 900, "stable_errors": 3},
        "judge": {"slow_above_s": 0.25},
        "stable_histogram": [[0.1, 800], [0.25, 860], ["+Inf", 900]],
    }
    base = baseline_from_gates([record])
    assert base == Baseline(
        Snapshot(900, 3, ((0.1, 800.0), (0.25, 860.0), (math.inf, 900.0))), slow_above_s=0.25
    )
    spoiled = {**record, "stable_histogram": [[0.25, 800], [0.1, 900]]}
    assert baseline_from_gates([spoiled]) == Baseline(Snapshot(900, 3), slow_above_s=0.25)


# --------------------------------------------------------------------------- the guard


CFG = GuardConfig(
    bake_s=300.0,
    interval_s=5.0,
    judge=JudgeConfig(alpha=0.01, error_increase=0.05, slow_increase=0.1),
)


def _bake(base: Baseline, blocks: list[Snapshot]) -> list[str]:
    state, actions = GuardState(), list[str]()
    for i, block in enumerate(blocks):
        got = decide(Look(5.0 * (i + 1), block), base, state, CFG)
        actions.append(got.action)
        state = got.state
        if got.action != "watch":
            assert "latency" in got.reason or got.action == "cleared", got.reason
            break
    return actions


def test_a_version_that_turns_slow_after_its_promotion_is_a_regression() -> None:
    """Stable answered in ~4 ms during the rollout (bound 10 ms: its p95 bucket); the
    promoted version does too for 20 looks, then takes ~60 ms: regressed on the latency
    signal within two looks of the change, with no error at all."""
    rng = random.Random(11)
    base = Baseline(served(1200, 0.004, rng), slow_above_s=0.01)
    blocks = [served(50, 0.004, rng) for _ in range(20)] + [
        served(50, 0.06, rng) for _ in range(10)
    ]
    actions = _bake(base, blocks)
    assert actions[-1] == "regressed" and len(actions) <= 22, actions


def test_without_the_histogram_the_guard_judges_errors_only() -> None:
    rng = random.Random(11)
    base = Baseline(Snapshot(1200, 0), slow_above_s=0.01)
    blocks = [served(50, 0.06, rng) for _ in range(61)]
    assert _bake(base, blocks)[-1] == "cleared"


def test_as_fast_as_stable_rarely_alarms() -> None:
    """200 seeded bakes of a version exactly as fast as stable: alarms <= alpha."""
    alarms = 0
    for seed in range(200):
        rng = random.Random(seed)
        base = Baseline(served(1200, 0.004, rng), slow_above_s=0.01)
        blocks = [served(50, 0.004, rng) for _ in range(61)]
        alarms += _bake(base, blocks)[-1] == "regressed"
    assert alarms / 200 <= CFG.judge.alpha, alarms
