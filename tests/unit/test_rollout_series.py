"""The rollout's time series (core/rollout_series.py): looks from the gates' and the judge's
entries, merging when full, the compact stored form, and the record's size cap."""

from __future__ import annotations

import json
from typing import Any

import pytest

from nomadml.core.decide import Action
from nomadml.core.rollout_series import (
    CAP,
    Arm,
    Look,
    downsample,
    fit_gates,
    looks_from_gates,
    looks_from_record,
    series_record,
    steps_from_gates,
    steps_from_record,
)
from nomadml.engine.result import RolloutResult


def gate(
    t: float, verdict: str, c: tuple[int, int], s: tuple[int, int] | None, **v: Any
) -> dict[str, Any]:
    values = {"canary_requests": c[0], "canary_errors": c[1], **v}
    if s is not None:
        values.update(stable_requests=s[0], stable_errors=s[1])
    return {"t": t, "verdict": verdict, "values": values}


def judged(t: float, verdict: str, c: tuple[int, int], s: tuple[int, int]) -> dict[str, Any]:
    return {**gate(t, verdict, c, s), "judge": {"decision": verdict, "alpha": 0.01, "tests": []}}


CASES: dict[
    str, tuple[list[dict[str, Any]], list[tuple[float, float, float, float | None, str]]]
] = {
    # (gate entries) -> [(at, canary requests, canary errors, stable requests, verdict)]
    "threshold windows are kept as measured": (
        [gate(0, "insufficient", (5, 0), (9, 0)), gate(2, "pass", (30, 1), (60, 0))],
        [(0, 5, 0, 9, "insufficient"), (2, 30, 1, 60, "pass")],
    ),
    "judge counts since the start become traffic since the previous look": (
        [judged(0, "inconclusive", (10, 1), (20, 0)), judged(2, "fail", (30, 9), (60, 1))],
        [(0, 10, 1, 20, "inconclusive"), (2, 20, 8, 40, "fail")],
    ),
    "a canary step restarts clock and counts; the steps follow each other": (
        [
            judged(0, "inconclusive", (10, 0), (20, 0)),
            judged(4, "pass", (30, 0), (60, 0)),
            judged(0, "inconclusive", (5, 0), (5, 0)),
            judged(2, "pass", (15, 0), (15, 0)),
        ],
        [
            (0, 10, 0, 20, "inconclusive"),
            (4, 20, 0, 40, "pass"),
            (4, 5, 0, 5, "inconclusive"),
            (6, 10, 0, 10, "pass"),
        ],
    ),
    "no stable allocation measured": (
        [gate(0, "pass", (25, 0), None)],
        [(0, 25, 0, None, "pass")],
    ),
    "a look without canary numbers is left out": (
        [{"t": 0, "verdict": "pending", "values": {}}, gate(1, "pass", (25, 0), (25, 0))],
        [(1, 25, 0, 25, "pass")],
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_looks_from_gate_entries(name: str) -> None:
    entries, expected = CASES[name]
    looks = looks_from_gates(entries)
    got = [
        (
            k.at,
            k.canary.requests,
            k.canary.errors,
            None if k.stable is None else k.stable.requests,
            k.verdict,
        )
        for k in looks
    ]
    assert got == expected


def _look(
    at: float, verdict: str, requests: float = 10, errors: float = 0, lat: float | None = 5
) -> Look:
    return Look(at, Arm(requests, errors, lat), Arm(requests, 0, lat), verdict)


def test_merging_keeps_every_request_the_higher_latency_and_the_weightier_verdict() -> None:
    looks = [
        _look(0, "insufficient", 10, 1, 5),
        _look(1, "fail", 20, 2, 9),
        _look(2, "pass", 30, 0, 4),
        _look(3, "inconclusive", 40, 0, None),
        _look(4, "pass", 50, 5, 7),
    ]
    merged = downsample(looks, 3)
    assert len(merged) == 3
    first, second, last = merged
    assert (first.at, first.canary.requests, first.canary.errors, first.verdict) == (
        1,
        30,
        3,
        "fail",
    )
    assert first.canary.latency_ms == 9 and first.merged == 2
    assert (second.at, second.canary.requests, second.verdict, second.merged) == (3, 70, "pass", 2)
    assert second.canary.latency_ms == 4  # a look without latency adds none
    assert last == looks[-1]  # the newest keep their resolution
    assert sum(k.canary.requests for k in merged) == sum(k.canary.requests for k in looks)
    assert downsample(looks, 10) == tuple(looks)


def test_the_stored_series_reads_back() -> None:
    entries = [
        gate(i * 2.0, "pass" if i % 2 else "fail", (20 + i, i), (40, 0), canary_latency_ms=12.345)
        for i in range(7)
    ]
    record = json.loads(json.dumps(series_record(entries)))
    assert record["counts"] == "window" and len(record["looks"]) == 7
    back = looks_from_record(record)
    assert [k.verdict for k in back] == [e["verdict"] for e in entries]
    assert back[3].canary == Arm(23, 3, 12.3)
    assert looks_from_record({"looks": [["not", "a", "look"]]}) == ()
    assert looks_from_record(None) == ()


def _judge_entry(i: int) -> dict[str, Any]:
    """A judge look as JudgeRunner records it: a full verdict with its running state."""
    test = {
        "signal": "errors",
        "canary": {"requests": 40 * i, "bad": i},
        "stable": {"requests": 80 * i, "bad": 0},
        "tolerance": 0.0,
        "effect_bound": 0.01,
        "e_fail": 1.5,
        "log_e_fail": 0.4054651081081644,
        "fail_threshold": 200.0,
        "e_pass": 0.25,
        "log_e_pass": -1.3862943611198906,
        "pass_threshold": 100.0,
        "state": {"fail": [0.123456789012345] * 9, "pass": [-0.98765432101234] * 3},
    }
    verdict = {"decision": "inconclusive", "signal": None, "alpha": 0.01, "slow_above_s": 0.25,
               "looks": i, "tests": [test, {**test, "signal": "latency"}]}  # fmt: skip
    values = {"canary_requests": 40 * i, "canary_errors": i, "stable_requests": 80 * i,
              "stable_errors": 0}  # fmt: skip
    return {"t": 2.0 * i, "verdict": "inconclusive", "values": values, "judge": verdict}


def test_a_long_rollout_record_stays_well_under_nomads_64_kib() -> None:
    """Six hours of looks every 2 s: the series is capped, the gate entries trimmed to the
    newest, and the whole record (as rollout_records stores it) stays under 48 KiB."""
    looks = 6 * 3600 // 2
    result = RolloutResult(Action.SUCCEEDED, "iris-v1", "1.1.0", "gates passed", 4, "d" * 36)
    result.gates = [_judge_entry(i) for i in range(1, looks + 1)]
    full = len(json.dumps(result.as_dict()))
    record = {"kind": "deploy", **result.as_record()}
    stored = {
        k: v if isinstance(v, str) else json.dumps(v, sort_keys=True) for k, v in record.items()
    }
    size = len(json.dumps(stored))
    assert full > 10 * 64 * 1024  # without the cap it would not fit at all
    assert size < 48 * 1024, size
    assert len(record["series"]["looks"]) <= CAP
    series = looks_from_record(record["series"])
    assert sum(k.canary.requests for k in series) == 40 * looks  # nothing dropped, only merged
    assert record["gates"][-1] == result.gates[-1]  # the deciding look's evidence is kept
    assert record["gates_kept"] == f"{len(record['gates'])} of {looks}"


def test_fit_gates_keeps_at_least_the_last_entry() -> None:
    big = [{"blob": "x" * 1000}, {"blob": "y" * 1000}]
    assert fit_gates(big, budget=100) == [big[-1]]
    assert fit_gates(big, budget=10_000) == big
    assert fit_gates([], budget=100) == []


def test_canary_steps_are_kept_where_each_began() -> None:
    """Router steps: each step's gate entries carry the canary's share; the series keeps
    where each step began on the joined clock."""
    entries = [
        {**judged(0, "inconclusive", (10, 0), (90, 0)), "step": 10},
        {**judged(4, "pass", (30, 0), (270, 0)), "step": 10},
        {**judged(0, "inconclusive", (25, 0), (75, 0)), "step": 50},
        {**judged(2, "pass", (60, 0), (140, 0)), "step": 50},
        {**judged(0, "pass", (50, 0), (0, 0)), "step": 100},
    ]
    assert steps_from_gates(entries) == ((0, 10), (4, 50), (6, 100))
    record = json.loads(json.dumps(series_record(entries)))
    assert steps_from_record(record) == ((0, 10), (4, 50), (6, 100))
    assert steps_from_gates([gate(0, "pass", (20, 0), (20, 0))]) == ()  # no router steps
    assert steps_from_record({"looks": []}) == ()


def test_a_watch_without_looks_keeps_the_deploys_looks_in_the_record() -> None:
    """`nomadml promote` follows the same job version's deployment with no gates: its
    record update must not erase the looks the deploy recorded."""
    promoted = RolloutResult(Action.SUCCEEDED, "iris-v1", "1.1.0", "promoted", 4, "d" * 36)
    promoted.operation = "promote"
    record = promoted.as_record()
    assert "gates" not in record and "series" not in record and "gates_kept" not in record
    assert record["outcome"] == "succeeded" and record["operation"] == "promote"
