"""The rollout report's data (core/report.py): which rollout a report is about, and what it
shows of the record, the judge's evidence, the versions and their audit entries."""

from __future__ import annotations

from typing import Any

import pytest

from nomadml.core.model_version import ModelVersion
from nomadml.core.report import assemble, choose_rollout, previous_version
from nomadml.errors import BadInput

DEP_A, DEP_B, DEP_C = "aaaaaaaa-1111-2222", "bbbbbbbb-3333-4444", "bbbbbbbc-5555-6666"
RECORDS: dict[int, dict[str, Any]] = {
    0: {"kind": "deploy", "deployment": DEP_A, "model_version": "1.0.0"},
    1: {"kind": "deploy", "deployment": DEP_B, "model_version": "1.1.0"},
    2: {"kind": "deploy", "outcome": "running", "model_version": "1.2.0"},  # no deployment yet
    3: {"kind": "rollback", "deployment": DEP_C, "model_version": "1.0.0"},
}

CHOICES: dict[str, tuple[dict[int, dict[str, Any]], str | None, int | str]] = {
    # records, --deployment -> job version chosen, or the start of the error line
    "the latest rollout nomadml ran": (RECORDS, None, 3),
    "a full deployment id": (RECORDS, DEP_B, 1),
    "the 8 characters deploy prints": (RECORDS, "aaaaaaaa", 0),
    "a prefix two deployments share": (RECORDS, "bbbbbbb", "--deployment bbbbbbb: give at least 8"),
    "an ambiguous 8-character prefix is no rollout": (
        {1: RECORDS[1], 4: {**RECORDS[1], "model_version": "1.3.0"}},
        "bbbbbbbb",
        "--deployment bbbbbbbb: not a rollout nomadml ran on iris-v1",
    ),
    "an id nomadml never ran": (
        RECORDS,
        "cccccccc-0000",
        "--deployment cccccccc-0000: not a rollout",
    ),
    "a line without records": ({}, None, "iris-v1: nomadml has run no rollout on this line"),
    "records without any deployment": (
        {2: RECORDS[2]},
        None,
        "iris-v1: nomadml has run no rollout",
    ),
}


@pytest.mark.parametrize("name", CHOICES)
def test_choose_rollout(name: str) -> None:
    records, deployment, expected = CHOICES[name]
    if isinstance(expected, int):
        assert choose_rollout("iris-v1", records, deployment)[0] == expected
        return
    with pytest.raises(BadInput) as err:
        choose_rollout("iris-v1", records, deployment)
    assert str(err.value).startswith(expected), str(err.value)
    assert "\n" not in str(err.value)


JOB_VERSIONS = [
    {"Version": 0, "Stable": True, "Meta": {"nomadml.version": "1.0.0"}},
    {"Version": 1, "Stable": False, "Meta": {"nomadml.version": "1.1.0"}},  # failed canary
    {"Version": 2, "Stable": True, "Meta": {"nomadml.version": "1.0.0"}},  # Nomad's revert
    {"Version": 3, "Stable": False, "Meta": {"nomadml.version": "1.2.0"}},
]


@pytest.mark.parametrize(
    ("job_version", "expected"), [(3, "1.0.0"), (1, "1.0.0"), (0, None), (2, "1.0.0")]
)
def test_the_version_that_ran_before_is_the_newest_stable_one(
    job_version: int, expected: str | None
) -> None:
    assert previous_version(JOB_VERSIONS, job_version) == expected


def _verdict(decision: str, e_fail: float | None) -> dict[str, Any]:
    test = {
        "signal": "errors",
        "canary": {"requests": 400, "bad": 90},
        "stable": {"requests": 800, "bad": 2},
        "tolerance": 0.0,
        "effect_bound": 0.2,
        "e_fail": e_fail,
        "fail_threshold": 100.0,
        "e_pass": 0.001,
        "pass_threshold": 100.0,
        "state": {"fail": [], "pass": []},
    }
    return {"decision": decision, "signal": "errors", "alpha": 0.01, "slow_above_s": None,
            "looks": 7, "tests": [test]}  # fmt: skip


def _judged(t: float, decision: str, c: int, ce: int, e_fail: float | None) -> dict[str, Any]:
    values = {"canary_requests": c, "canary_errors": ce, "stable_requests": 2 * c,
              "stable_errors": 0}  # fmt: skip
    return {"t": t, "verdict": decision, "values": values, "judge": _verdict(decision, e_fail)}


def _registered(version: str, stage: str) -> ModelVersion:
    return ModelVersion.from_record(
        {
            "model": "iris",
            "version": version,
            "stage": stage,
            "stage_changed_at": "2026-12-01T10:00:05Z",
        }
    )


AUDIT = [
    {"id": "2", "at": "2026-12-01T10:00:05Z", "actor": "user:ci", "action": "stage",
     "version": "1.2.0", "details": {"from": "validated", "to": "rejected", "by": "rollout"}},
    {"id": "1", "at": "2026-12-01T09:00:00Z", "actor": "user:ci", "action": "register",
     "version": "1.2.0", "details": {"stage": "candidate"}},
    {"id": "3", "at": "2026-12-01T08:00:00Z", "actor": "user:ci", "action": "register",
     "version": "1.0.0", "details": {"stage": "candidate"}},
    {"id": "4", "at": "2026-12-01T08:00:00Z", "actor": "user:ci", "action": "register",
     "version": "9.9.9", "details": {}},
]  # fmt: skip


def test_a_judged_rollout_report() -> None:
    record = {
        "kind": "deploy",
        "operation": "deploy",
        "deployment": DEP_B,
        "model_version": "1.2.0",
        "outcome": "rolled-back",
        "reason": "gate failed: judge fail: errors e=1.2e+03",
        "seconds": 61.25,
        "recorded_at": "2026-12-01T10:00:06Z",
        "gates": [_judged(0, "inconclusive", 100, 5, 3.0), _judged(2, "fail", 400, 90, None)],
    }
    registered = {"1.2.0": _registered("1.2.0", "rejected"), "1.0.0": None}
    report = assemble("iris-v1", "iris", 3, record, JOB_VERSIONS, registered, AUDIT)
    assert (report.outcome, report.operation, report.deployment) == ("rolled-back", "deploy", DEP_B)
    assert (report.model_version, report.previous_version, report.counts) == (
        "1.2.0",
        "1.0.0",
        "interval",
    )
    assert [(k.at, k.canary.requests, k.canary.errors, k.verdict) for k in report.looks] == [
        (0, 100, 5, "inconclusive"),
        (2, 300, 85, "fail"),
    ]
    judge = report.judge
    assert judge is not None and (judge.decision, judge.alpha, judge.looks) == ("fail", 0.01, 7)
    (errors,) = judge.tests
    assert (errors.canary_requests, errors.canary_bad, errors.stable_requests) == (400, 90, 800)
    assert (errors.effect_bound, errors.fail_threshold, errors.e_fail) == (0.2, 100.0, None)
    assert report.limits == ()
    canary, stable = report.versions
    assert (canary.version, canary.role, canary.stage) == ("1.2.0", "canary", "rejected")
    assert [e.action for e in canary.audit] == ["register", "stage"]  # in time order
    assert '"to":"rejected"' in canary.audit[1].details
    assert (stable.version, stable.role, stable.stage) == ("1.0.0", "stable", None)
    assert [e.action for e in stable.audit] == ["register"]


def test_a_threshold_rollout_report_shows_the_limits() -> None:
    values = {"canary_requests": 40, "canary_errors": 0, "canary_latency_ms": 12.0,
              "stable_requests": 80, "stable_errors": 0, "stable_latency_ms": 11.0,
              "min_requests": 10, "max_error_rate": 0.01, "max_error_rate_increase": 0.01,
              "latency_percentile": 0.99, "max_latency_ms": 500,
              "max_latency_ratio": 1.5}  # fmt: skip
    record = {"deployment": DEP_A, "model_version": "1.0.0", "outcome": "succeeded",
              "gates": [{"t": 0, "verdict": "pass", "values": values}]}  # fmt: skip
    report = assemble("iris-v1", "iris", 0, record, JOB_VERSIONS, {}, [])
    assert report.judge is None and report.previous_version is None
    assert report.percentile == 0.99 and report.counts == "window"
    assert dict(report.limits)["max_latency_ms"] == 500
    assert report.looks[0].canary.latency_ms == 12.0
    assert [v.role for v in report.versions] == ["canary"]


def test_a_health_only_rollout_has_no_looks() -> None:
    record = {"deployment": DEP_A, "model_version": "1.0.0", "outcome": "succeeded", "gates": []}
    report = assemble("iris-v1", "iris", 0, record, [], {}, [])
    assert report.looks == () and report.judge is None and report.limits == ()


def test_a_rollback_names_the_versions_by_what_they_were_to_it() -> None:
    """`nomadml rollback` records where it came from; with Nomad's job versions gone
    (Nomad keeps only the newest), that record still names the version before."""
    record = {"kind": "rollback", "operation": "rollback", "from": "1.2.0",
              "deployment": DEP_C, "model_version": "1.0.0", "outcome": "succeeded"}  # fmt: skip
    report = assemble("iris-v1", "iris", 4, record, [], {}, [])
    assert report.operation == "rollback" and report.previous_version == "1.2.0"
    assert [(v.version, v.role) for v in report.versions] == [
        ("1.0.0", "rolled back to"),
        ("1.2.0", "rolled back from"),
    ]
