"""The sequential prediction test (core/prediction_sequential.py): each block's e-value
has mean <= 1 under every common label distribution (exact enumeration), so seeded
rollouts of a canary predicting like stable, looked at 60 times each, are called shifted
at most alpha of the time, also when the traffic's mix changes between looks; a canary
predicting 27/15/3 where stable predicts 15/15/15 is caught within a few hundred
predictions; the state round-trips through JSON; counts that go down are refused."""

from __future__ import annotations

import itertools
import json
import math
import random
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from nomadml.adapters.metric_scrape import Reading
from nomadml.core.metrics import Snapshot
from nomadml.core.prediction_sequential import SequentialShift, _log_e_block, sequential_shift
from nomadml.core.spec import load_spec
from nomadml.engine.judge_runner import JudgeRunner
from nomadml.errors import BadInput

LABELS = ("setosa", "versicolor", "virginica")


def _outcomes(n: int) -> list[tuple[tuple[int, ...], float]]:
    """Every split of n predictions over the three labels, with its multinomial weight."""
    out = []
    for x in itertools.product(range(n + 1), repeat=2):
        if sum(x) <= n:
            counts = (*x, n - sum(x))
            ways = math.factorial(n) / math.prod(math.factorial(c) for c in counts)
            out.append((counts, ways))
    return out


@pytest.mark.parametrize(
    ("before_c", "before_s"),
    [
        (
            {"setosa": 9, "versicolor": 1, "virginica": 0},
            {"setosa": 3, "versicolor": 3, "virginica": 4},
        ),
        (
            {"setosa": 1, "versicolor": 0, "virginica": 20},
            {"setosa": 20, "versicolor": 1, "virginica": 0},
        ),
        (
            {"setosa": 5, "versicolor": 5, "virginica": 5},
            {"setosa": 5, "versicolor": 5, "virginica": 5},
        ),
    ],
)
@pytest.mark.parametrize(
    "q", [(1 / 3, 1 / 3, 1 / 3), (0.8, 0.15, 0.05), (0.05, 0.05, 0.9), (0.5, 0.0, 0.5)]
)
def test_each_blocks_e_value_has_mean_at_most_one_under_the_null(
    before_c: dict[str, float], before_s: dict[str, float], q: tuple[float, ...]
) -> None:
    n_c, n_s = 3, 4
    mean = 0.0
    for (xc, wc), (xs, ws) in itertools.product(_outcomes(n_c), _outcomes(n_s)):
        p = wc * math.prod(qk**x for qk, x in zip(q, xc, strict=True))
        p *= ws * math.prod(qk**x for qk, x in zip(q, xs, strict=True))
        if p == 0:
            continue
        block_c = {k: float(x) for k, x in zip(LABELS, xc, strict=True) if x}
        block_s = {k: float(x) for k, x in zip(LABELS, xs, strict=True) if x}
        mean += p * math.exp(_log_e_block(block_c, block_s, before_c, before_s))
    assert mean <= 1.0 + 1e-9, mean


def _draw(rng: random.Random, shares: tuple[float, ...], n: int) -> dict[str, float]:
    got = dict.fromkeys(LABELS, 0.0)
    for label in rng.choices(LABELS, weights=shares, k=n):
        got[label] += 1
    return got


def _rollout(
    rng: random.Random,
    canary: Sequence[tuple[float, ...]],
    stable: Sequence[tuple[float, ...]],
    alpha: float,
) -> SequentialShift:
    """Looks until shifted or the streams end; 10 canary and 20 stable predictions a look."""
    test: SequentialShift | None = None
    seen_c, seen_s = dict.fromkeys(LABELS, 0.0), dict.fromkeys(LABELS, 0.0)
    for shares_c, shares_s in zip(canary, stable, strict=True):
        for k, v in _draw(rng, shares_c, 10).items():
            seen_c[k] += v
        for k, v in _draw(rng, shares_s, 20).items():
            seen_s[k] += v
        test = sequential_shift(seen_c, seen_s, alpha, test)
        if test.shifted:
            break
    assert test is not None
    return test


def test_a_canary_predicting_like_stable_is_rarely_called_shifted() -> None:
    """400 seeded rollouts of 60 looks at alpha 0.05, half of them with the mix of inputs
    changing every 10 looks (both arms alike): false alarms <= alpha."""
    alarms = 0
    for seed in range(400):
        rng = random.Random(seed)
        if seed % 2:
            mixes = [(0.6, 0.3, 0.1), (0.1, 0.3, 0.6), (0.34, 0.33, 0.33)]
            shares = [mixes[(i // 10) % 3] for i in range(60)]
        else:
            shares = [(0.5, 0.3, 0.2)] * 60
        alarms += _rollout(rng, shares, shares, 0.05).shifted
    print(f"false alarms: {alarms} of 400 at alpha 0.05")
    assert alarms / 400 <= 0.05, alarms


def test_a_canary_predicting_another_distribution_is_caught() -> None:
    """Stable 15/15/15 of 45, the canary 27/15/3 (the C = 0.001 iris model): caught in
    every seeded rollout at alpha 0.001, within 40 looks (400 canary predictions)."""
    looks = []
    for seed in range(50):
        rng = random.Random(seed)
        test = _rollout(rng, [(15, 15, 3)] * 200, [(15, 15, 15)] * 200, 0.001)
        assert test.shifted, test.as_dict()
        looks.append(test.looks)
    print(f"looks to a shift: median {sorted(looks)[25]}, max {max(looks)}")
    assert max(looks) <= 40, looks


def test_the_state_survives_json_and_the_test_goes_on() -> None:
    first = sequential_shift({"a": 10, "b": 2}, {"a": 20, "b": 20}, 0.01)
    again = SequentialShift.from_dict(json.loads(json.dumps(first.as_dict())))
    assert again == first
    assert sequential_shift({"a": 30, "b": 3}, {"a": 40, "b": 40}, 0.01, again).looks == 2
    assert "sequential: log e" in first.describe()


def test_counts_that_go_down_are_refused() -> None:
    first = sequential_shift({"a": 10, "b": 2}, {"a": 20, "b": 20}, 0.01)
    with pytest.raises(BadInput, match=r"canary 'a' went from 10 to 4"):
        sequential_shift({"a": 4, "b": 2}, {"a": 20, "b": 20}, 0.01, first)
    with pytest.raises(BadInput, match="outside"):
        sequential_shift({}, {}, 0.7)


# --------------------------------------------------------------------------- with the judge


class _Predicting:
    """A metric source: stable and canary allocations answering 30 and 15 requests a
    look without errors, each request predicting one label with the arm's shares."""

    name = "direct"

    def __init__(self, canary_shares: tuple[float, ...]) -> None:
        self.rng, self.canary_shares = random.Random(5), canary_shares
        self.snaps = {"s": Snapshot(), "c": Snapshot()}

    def read(self, job_id: str, canary_ids: set[str]) -> list[Reading]:
        for key, n, shares in (("s", 30, (1.0, 1.0, 1.0)), ("c", 15, self.canary_shares)):
            drawn = _draw(self.rng, shares, n)
            old = self.snaps[key]
            predicted = {k: dict(old.predictions).get(k, 0.0) + v for k, v in drawn.items()}
            self.snaps[key] = Snapshot(
                old.requests + n, 0.0, predictions=tuple(sorted(predicted.items()))
            )
        return [Reading("s", False, self.snaps["s"]), Reading("c", True, self.snaps["c"])]


def _runner_until_decided(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, canary_shares: tuple[float, ...]
) -> tuple[str, str, list[dict[str, Any]]]:
    example = Path(__file__).resolve().parents[2] / "examples" / "iris" / "iris.toml"
    judged = (
        "[gates.judge]\nenabled = true\nerror_increase = 0.2\nlatency = false\n\n"
        '[gates.predictions]\nenabled = true\ntest = "sequential"\nmin_predictions = 150\n\n'
        "[validation]"
    )
    (tmp_path / "spec.toml").write_text(example.read_text().replace("[validation]", judged, 1))
    clock = [100.0]
    monkeypatch.setattr(
        "nomadml.engine.judge_runner.time", SimpleNamespace(monotonic=lambda: clock[0])
    )
    runner = JudgeRunner(load_spec(tmp_path / "spec.toml").gates, _Predicting(canary_shares))
    state, reason = "pending", ""
    while state == "pending" and clock[0] < 1000:
        state, reason = runner.step("m-v1", ["c"], lambda event: None)
        clock[0] += 5.0
    return state, reason, runner.history()


def test_the_judge_fails_a_canary_whose_predictions_shift(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state, reason, records = _runner_until_decided(tmp_path, monkeypatch, (27.0, 15.0, 3.0))
    assert state == "failed" and reason.startswith("predictions shifted against stable"), reason
    assert records[-1]["verdict"] == "fail" and records[-1]["predictions"]["shifted"]
    print(f"failed after {records[-1]['values']['canary_predictions']} canary predictions")


def test_a_pass_waits_for_min_predictions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state, _, records = _runner_until_decided(tmp_path, monkeypatch, (1.0, 1.0, 1.0))
    assert state == "passed", records[-1]
    waited = [r for r in records if r["judge"]["decision"] == "pass" and r["verdict"] != "pass"]
    assert waited, "the judge passed only once min_predictions were in: nothing to show"
    assert all(r["values"]["canary_predictions"] < 150 for r in waited)
    assert records[-1]["values"]["canary_predictions"] >= 150
