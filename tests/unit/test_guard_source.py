"""The guard reads where the rollout was judged: after a rollout judged at the router, the
promoted version's numbers come from the router and stable's baseline is the router's
histogram, so errors and latency are judged on one measurement. A router that reloads
mid-bake starts its counters again; that is a reset, not negative traffic or a burst."""

from __future__ import annotations

import math
import random

import pytest

from nomadml.core.guard import Baseline, GuardConfig, GuardState, Look, baseline_from_gates, decide
from nomadml.core.guard_source import block_since, from_router, source_of
from nomadml.core.judge import JudgeConfig
from nomadml.core.metrics import Snapshot, buckets_record, merge

# The router's Lua buckets (router_metrics.lua): finer than a server's, network included.
ROUTER_BOUNDS = (
    0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025,
    0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, math.inf,
)  # fmt: skip
CFG = GuardConfig(
    bake_s=300.0,
    interval_s=5.0,
    judge=JudgeConfig(alpha=0.01, error_increase=0.05, slow_increase=0.1),
)


def at_router(n: int, median_s: float, rng: random.Random, errors: int = 0) -> Snapshot:
    """n requests as the router counts them: server time plus ~1 ms of network."""
    times = [median_s * math.exp(rng.gauss(0.0, 0.4)) + 0.001 for _ in range(n)]
    buckets = tuple((b, float(sum(t <= b for t in times))) for b in ROUTER_BOUNDS)
    return Snapshot(float(n), float(errors), buckets)


def _record(stable: Snapshot, source: str) -> dict[str, object]:
    return {
        "verdict": "pass",
        "source": source,
        "values": {"stable_requests": stable.requests, "stable_errors": stable.errors},
        "judge": {"slow_above_s": 0.01},
        "stable_histogram": buckets_record(stable.buckets),
    }


def _bake(base: Baseline, blocks: list[Snapshot]) -> tuple[list[str], str]:
    state, actions, reason = GuardState(), list[str](), ""
    for i, block in enumerate(blocks):
        got = decide(Look(5.0 * (i + 1), block), base, state, CFG)
        actions.append(got.action)
        state, reason = got.state, got.reason
        if got.action != "watch":
            break
    return actions, reason


# --------------------------------------------------------------------------- the source


@pytest.mark.parametrize(("source", "reads"), [("router", "router"), ("direct", "servers")])
def test_the_guard_reads_where_the_rollout_was_judged(source: str, reads: str) -> None:
    rng = random.Random(1)
    record = _record(at_router(900, 0.004, rng, errors=2), source)
    assert source_of(record) == reads
    base = baseline_from_gates([record])
    assert base is not None and base.source == reads
    assert base.traffic.buckets[-1] == (math.inf, 900.0)  # the router's 20 buckets, kept
    assert Baseline.from_dict(base.as_dict()) == base  # the record carries it to a resume


def test_an_older_record_without_a_source_is_read_from_the_servers() -> None:
    assert Baseline.from_dict({"requests": 10, "errors": 0}).source == "servers"


# --------------------------------------------------------------------------- latency


def test_latency_is_judged_against_the_routers_baseline() -> None:
    """Stable answered in ~4 ms at the router during the rollout (bound 10 ms); the
    promoted version does too for 20 looks, then takes ~40 ms: regressed on latency
    within two looks of the change, with no error at all."""
    rng = random.Random(11)
    base = baseline_from_gates([_record(at_router(1200, 0.004, rng), "router")])
    assert base is not None
    blocks = [at_router(50, 0.004, rng) for _ in range(20)]
    blocks += [at_router(50, 0.04, rng) for _ in range(10)]
    actions, reason = _bake(base, blocks)
    assert actions[-1] == "regressed" and len(actions) <= 22, actions
    assert reason.startswith("regression: latency"), reason


def test_as_fast_as_stable_at_the_router_rarely_alarms() -> None:
    """200 seeded bakes of a version exactly as fast as stable, both measured at the
    router (network time on both sides): alarms <= alpha."""
    alarms = 0
    for seed in range(200):
        rng = random.Random(seed)
        base = baseline_from_gates([_record(at_router(1200, 0.004, rng), "router")])
        assert base is not None
        alarms += _bake(base, [at_router(50, 0.004, rng) for _ in range(61)])[0][-1] == "regressed"
    assert alarms / 200 <= CFG.judge.alpha, alarms


# --------------------------------------------------------------------------- a reload


def test_a_router_reload_mid_bake_is_a_reset_not_a_regression() -> None:
    """Two routers count the promoted version; router a reloads after look 10 (its
    counters start again at zero). Each block is what was served since the previous
    look -- never negative, no burst of the counts from before the reload -- and a
    version as good as stable clears the bake."""
    rng = random.Random(5)
    base = baseline_from_gates([_record(at_router(1200, 0.004, rng), "router")])
    assert base is not None
    total = {"a/m-v1-1_1_0": Snapshot(), "b/m-v1-1_1_0": Snapshot()}
    last: dict[str, Snapshot] = {}
    state, served = GuardState(), Snapshot()
    for look in range(61):
        if look == 11:
            total["a/m-v1-1_1_0"] = Snapshot()  # the reload: a starts counting anew
        new = {}
        for key in total:
            new[key] = at_router(25, 0.004, rng, errors=int(rng.random() < 0.1))
            total[key] = merge([total[key], new[key]])
        block, last = block_since(last, dict(total))
        if look == 0:
            assert block == Snapshot()  # every place's first reading is its zero
        else:
            assert block.requests == 50 and all(n >= 0 for _, n in block.buckets), look
            assert block.buckets[-1][1] == 50
            served = merge([served, *new.values()])
        got = decide(Look(5.0 * (look + 1), block), base, state, CFG)
        state = got.state
        assert got.action != "regressed", (look, got.reason)
    assert got.action == "cleared", got.reason
    assert state.seen["errors"][0] == served.requests


def test_a_router_that_does_not_answer_keeps_its_last_reading() -> None:
    last = {"a": Snapshot(100, 1), "b": Snapshot(40, 0)}
    block, kept = block_since(last, {"a": Snapshot(130, 1)})
    assert block == Snapshot(30, 0) and kept == {"a": Snapshot(130, 1), "b": Snapshot(40, 0)}
    block, _ = block_since(kept, {"a": Snapshot(150, 2), "b": Snapshot(70, 0)})
    assert (block.requests, block.errors) == (50, 1)  # b's 30 are counted when it answers


def test_the_routers_labels_are_the_servers() -> None:
    """The router counted the percent-encoded header labels; its "other" is the guard's."""
    snap = Snapshot(3, 0, predictions=(("class%201", 2.0), ("other", 1.0)))
    assert from_router(snap).predictions == (("(other)", 1.0), ("class 1", 2.0))
