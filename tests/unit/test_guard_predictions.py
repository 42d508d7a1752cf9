"""The guard's test of the predicted labels after a promotion (core/prediction_guard.py),
for a rollout that had the sequential prediction gate: a version that predicts like stable
did is called shifted at most alpha of the time however often the guard looks (seeded
streams), a gross shift is caught within a few looks, a late one too, a label the version
never predicted during the rollout counts as "(other)", and the labels since the promotion
survive a resume (the state goes through JSON at every look)."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence

from nomadml.core.guard import (
    Baseline,
    GuardConfig,
    GuardState,
    Look,
    baseline_from_gates,
    decide,
)
from nomadml.core.judge import JudgeConfig
from nomadml.core.metrics import Snapshot
from nomadml.core.prediction_guard import OTHER, PredictionBaseline, check_predictions
from nomadml.core.prediction_sequential import sequential_shift

IRIS = {"setosa": 1 / 3, "versicolor": 1 / 3, "virginica": 1 / 3}
SKEWED = {"setosa": 0.60, "versicolor": 0.33, "virginica": 0.07}  # like the C=0.001 model
FOUR = {"a": 0.5, "b": 0.3, "c": 0.15, "d": 0.05}
CFG = GuardConfig(
    bake_s=600.0, interval_s=2.0, judge=JudgeConfig(alpha=0.01, error_increase=0.02, latency=False)
)


def draw(rng: random.Random, q: Mapping[str, float], n: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for label in rng.choices(list(q), list(q.values()), k=n):
        out[label] = out.get(label, 0.0) + 1
    return out


def rollout(rng: random.Random, q: Mapping[str, float], n: int, alpha: float) -> Baseline:
    """What a passed rollout leaves: stable's counts and the canary's labels."""
    stable, canary = draw(rng, q, n), draw(rng, q, n)
    return Baseline(
        Snapshot(2 * n, 0.0), predictions=PredictionBaseline(stable, tuple(canary), alpha)
    )


def bake(
    rng: random.Random, base: Baseline, streams: Sequence[Mapping[str, float]], per_look: int = 50
) -> int | None:
    """Looks until "regressed" (None: the bake cleared); one stream per look."""
    state = GuardState()
    for i, q in enumerate(streams):
        block = Snapshot(per_look, 0.0, predictions=tuple(sorted(draw(rng, q, per_look).items())))
        decision = decide(Look((i + 1) * CFG.interval_s, block), base, state, CFG)
        state = GuardState.from_dict(json.loads(json.dumps(decision.state.as_dict())))
        if decision.action == "regressed":
            assert "predictions shifted" in decision.reason
            return i + 1
        if decision.action == "cleared":
            return None
    return None


def test_a_version_that_predicts_like_stable_is_rarely_called_shifted() -> None:
    """400 bakes of 60 looks (3,000 predictions each) at alpha 0.05, four labels, a 300-
    prediction baseline: Ville's bound allows 20 alarms; the test is conservative."""
    alarms = 0
    for seed in range(400):
        rng = random.Random(seed)
        base = rollout(rng, FOUR, 300, 0.05)
        alarms += bake(rng, base, [FOUR] * 60) is not None
    assert alarms <= 0.05 * 400
    print(f"alarms: {alarms} of 400")


def test_a_gross_shift_is_caught_within_a_few_looks() -> None:
    looks = []
    for seed in range(40):
        rng = random.Random(1000 + seed)
        base = rollout(rng, IRIS, 990, 0.001)
        looks.append(bake(rng, base, [SKEWED] * 60))
    assert all(n is not None and n <= 4 for n in looks), looks


def test_a_shift_that_starts_after_good_looks_is_caught() -> None:
    """20 good looks (1,000 predictions like stable), then the skew: the good ones must be
    outweighed first (a test, not a change detector): 9-25 more looks here (median 14),
    against 2-3 for a shift from the start."""
    looks = []
    for seed in range(20):
        rng = random.Random(2000 + seed)
        base = rollout(rng, IRIS, 990, 0.001)
        looks.append(bake(rng, base, [IRIS] * 20 + [SKEWED] * 40))
    assert all(n is not None and 20 < n <= 50 for n in looks), str(looks)
    print(f"caught at looks {sorted(n for n in looks if n)}")


def test_a_label_never_predicted_during_the_rollout_counts_as_other() -> None:
    base = PredictionBaseline({"yes": 500.0, "no": 500.0}, ("no", "yes"), 0.01)
    check = check_predictions(base, {"yes": 100.0, "no": 100.0, "maybe": 200.0})
    assert check.promoted == {"yes": 100.0, "no": 100.0, OTHER: 200.0}
    assert check.shifted
    assert "predictions shifted: 400 since promotion" in check.describe()
    alike = check_predictions(base, {"yes": 100.0, "no": 100.0})
    assert not alike.shifted and alike.log_e < 0


def test_the_rollouts_two_arm_test_cannot_fire_without_stable_predictions() -> None:
    """Why the guard does not reuse it: with stable's counts frozen, every block's null
    point is the promoted arm's own alternative, and each e-value is exactly 1."""
    stable = {"setosa": 330.0, "versicolor": 330.0, "virginica": 330.0}
    shift = sequential_shift({"setosa": 10.0}, stable, 0.001)
    promoted = {"setosa": 10.0}
    for _ in range(50):
        promoted = {k: promoted.get(k, 0.0) + 50 * SKEWED[k] for k in SKEWED}
        shift = sequential_shift(promoted, stable, 0.001, shift)
    assert abs(shift.log_e) < 1e-9 and not shift.shifted


def test_no_predictions_exposed_means_no_prediction_verdict() -> None:
    base = Baseline(Snapshot(1000, 0.0), predictions=PredictionBaseline(IRIS, tuple(IRIS), 0.01))
    state = GuardState()
    for i in range(5):
        decision = decide(Look((i + 1) * 2.0, Snapshot(50, 0.0)), base, state, CFG)
        state = decision.state
        assert decision.action == "watch"
        assert not decision.evidence["predictions"]["shifted"]


def test_the_baseline_comes_from_the_deciding_gate_record() -> None:
    shift = sequential_shift(
        {"setosa": 250.0, "versicolor": 250.0}, {"setosa": 240.0, "virginica": 260.0}, 0.001
    )
    record = {
        "values": {"stable_requests": 500, "stable_errors": 0},
        "predictions": shift.as_dict(),
    }
    base = baseline_from_gates([record])
    assert base is not None and base.predictions is not None
    assert base.predictions.labels == ("setosa", "versicolor")  # the canary's: the alphabet
    assert base.predictions.stable == {"setosa": 240.0, "virginica": 260.0}
    assert Baseline.from_dict(json.loads(json.dumps(base.as_dict()))) == base
    del record["predictions"]
    plain = baseline_from_gates([record])
    assert plain is not None and plain.predictions is None and "predictions" not in plain.as_dict()


def test_labels_a_router_counted_are_the_servers_labels_again() -> None:
    """Through the router the labels were the header's, percent-encoded; the guard reads
    the servers' own counters (plain labels): the baseline is decoded, so a version that
    still predicts "class 1" is not taken for one that predicts "(other)"."""
    shift = sequential_shift(
        {"class%201": 300.0, "na%C3%AFve": 300.0}, {"class%201": 290.0, "na%C3%AFve": 310.0}, 0.001
    )
    record = {
        "values": {"stable_requests": 600, "stable_errors": 0},
        "predictions": shift.as_dict(),
        "source": "router",
    }
    base = baseline_from_gates([record])
    assert base is not None and base.predictions is not None
    assert base.predictions.labels == ("class 1", "na\u00efve")
    assert base.predictions.stable == {"class 1": 290.0, "na\u00efve": 310.0}
    assert not check_predictions(base.predictions, {"class 1": 500.0, "na\u00efve": 500.0}).shifted
    capped = {"a": 500.0, "other": 10.0}  # the router's labels past its 64 per version
    routed = PredictionBaseline.from_gate(sequential_shift(capped, capped, 0.01).as_dict(), True)
    assert routed is not None and routed.labels == (OTHER, "a")
    assert not check_predictions(routed, {"a": 500.0, "zz-unseen": 10.0}).shifted
    record["source"] = "direct"  # a server's own label is never decoded
    direct = baseline_from_gates([record])
    assert direct is not None and direct.predictions is not None
    assert direct.predictions.labels == ("class%201", "na%C3%AFve")
