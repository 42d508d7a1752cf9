"""Model lifecycle rules (nomadml.core.lifecycle): the validation gates, which version
was in production when, version bumps, stage transitions and signature checks."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from nomadml.core.lifecycle import (
    STAGES,
    bump,
    check_signature,
    check_transition,
    expiring,
    next_version,
    production_at,
    signature_hash,
    validation_gates,
)
from nomadml.core.model_version import ModelVersion
from nomadml.core.spec import Validation, parse_spec
from nomadml.errors import BadInput

SIGNATURE: dict[str, Any] = {
    "inputs": [{"name": "x", "dtype": "float32", "shape": [-1, 4]}],
    "outputs": [{"name": "y", "dtype": "int64", "shape": [-1]}],
}
OTHER_SIGNATURE: dict[str, Any] = {
    "inputs": [{"name": "x", "dtype": "float32", "shape": [-1, 5]}],
    "outputs": [{"name": "y", "dtype": "int64", "shape": [-1]}],
}
SIG = signature_hash(SIGNATURE)
OTHER_SIG = signature_hash(OTHER_SIGNATURE)


def rules(validation: str = "") -> Validation:
    """The [validation] rules of a minimal spec with this table body."""
    text = f'[model]\nname = "iris"\n\n[validation]\n{validation}\n'
    return parse_spec(text, "x.toml").validation


def record(
    version: str,
    metrics: dict[str, Any] | None = None,
    *,
    size_bytes: int | None = 2_500_000,
    sig: str | None = SIG,
    stage: str = "candidate",
) -> ModelVersion:
    """A registry record as `register_model` stores it (the fields the gates read;
    None: the field is absent), read back the way the registry reads it."""
    stored: dict[str, Any] = {"model": "iris", "version": version, "stage": stage}
    if metrics is not None:
        stored["metrics"] = metrics
    if size_bytes is not None:
        stored["size_bytes"] = size_bytes
    if sig is not None:
        stored["signature_hash"] = sig
    return ModelVersion.from_record(stored)


def production(version: str, metrics: dict[str, Any] | None = None) -> ModelVersion:
    """The production version the gates compare with (signature SIGNATURE)."""
    return record(version, metrics, stage="production")


def test_rules_come_from_the_spec() -> None:
    """The helper builds the spec's typed [validation] table, defaults filled in."""
    got = rules("min_metrics = { accuracy = 0.9 }\nmax_regression = { f1 = 0.01 }\nmax_size_mb = 5")
    assert dict(got.min_metrics) == {"accuracy": 0.9}
    assert dict(got.max_regression) == {"f1": 0.01}
    assert got.max_size_mb == 5.0
    assert rules().max_size_mb == 1024.0


# --------------------------------------------------------------- validation_gates

SIZE_OK = {"size_mb": 2.5, "max_size_mb": 1024.0}  # the values every default-size case has


@dataclass(frozen=True)
class Gate:
    candidate: ModelVersion
    production: ModelVersion | None
    validation: str  # the [validation] table body
    reasons: tuple[str, ...]  # () means passed
    values: dict[str, Any] = field(default_factory=dict)


GATES: dict[str, Gate] = {
    "no rules, no production": Gate(record("1.0.0", {"accuracy": 0.5}), None, "", (), SIZE_OK),
    "metric above its minimum": Gate(
        record("1.0.0", {"accuracy": 0.95}),
        None,
        "min_metrics = { accuracy = 0.9 }",
        (),
        {"accuracy": 0.95, "accuracy_min": 0.9, **SIZE_OK},
    ),
    "metric exactly at its minimum passes": Gate(
        record("1.0.0", {"accuracy": 0.9}),
        None,
        "min_metrics = { accuracy = 0.9 }",
        (),
        {"accuracy": 0.9, "accuracy_min": 0.9, **SIZE_OK},
    ),
    "an integer metric is a number": Gate(
        record("1.0.0", {"accuracy": 1}),
        None,
        "min_metrics = { accuracy = 0.9 }",
        (),
        {"accuracy": 1, "accuracy_min": 0.9, **SIZE_OK},
    ),
    "metric below its minimum": Gate(
        record("1.0.0", {"accuracy": 0.85}),
        None,
        "min_metrics = { accuracy = 0.9 }",
        ("accuracy 0.85 < minimum 0.9",),
        {"accuracy": 0.85, "accuracy_min": 0.9, **SIZE_OK},
    ),
    "metric below its minimum, shown with 4 significant digits": Gate(
        record("1.0.0", {"accuracy": 0.123456}),
        None,
        "min_metrics = { accuracy = 0.98765 }",
        ("accuracy 0.1235 < minimum 0.9877",),
        {"accuracy": 0.123456, "accuracy_min": 0.98765, **SIZE_OK},
    ),
    "metric missing from the metadata": Gate(
        record("1.0.0", {"f1": 0.95}),
        None,
        "min_metrics = { accuracy = 0.9 }",
        ("metric accuracy missing from the model's metadata",),
        {"accuracy": None, "accuracy_min": 0.9, **SIZE_OK},
    ),
    "no metrics at all": Gate(
        record("1.0.0", None),
        None,
        "min_metrics = { accuracy = 0.9 }",
        ("metric accuracy missing from the model's metadata",),
        {"accuracy": None, "accuracy_min": 0.9, **SIZE_OK},
    ),
    "a metric that is not a number counts as missing": Gate(
        record("1.0.0", {"accuracy": "0.95"}),
        None,
        "min_metrics = { accuracy = 0.9 }",
        ("metric accuracy missing from the model's metadata",),
        {"accuracy": "0.95", "accuracy_min": 0.9, **SIZE_OK},
    ),
    "several minimums: every failure, in name order": Gate(
        record("1.0.0", {"recall": 0.5, "f1": 0.5, "accuracy": 0.99}),
        None,
        "min_metrics = { recall = 0.8, f1 = 0.8, accuracy = 0.9 }",
        ("f1 0.5 < minimum 0.8", "recall 0.5 < minimum 0.8"),
        {
            "accuracy": 0.99,
            "accuracy_min": 0.9,
            "f1": 0.5,
            "f1_min": 0.8,
            "recall": 0.5,
            "recall_min": 0.8,
            **SIZE_OK,
        },
    ),
    "regression within the allowance": Gate(
        record("1.1.0", {"accuracy": 0.94}),
        production("1.0.0", {"accuracy": 0.95}),
        "max_regression = { accuracy = 0.02 }",
        (),
        {"accuracy_production": 0.95, **SIZE_OK},
    ),
    "regression exactly at the allowance passes (exact binary fractions)": Gate(
        record("1.1.0", {"accuracy": 0.5}),
        production("1.0.0", {"accuracy": 0.75}),
        "max_regression = { accuracy = 0.25 }",
        (),
        {"accuracy_production": 0.75, **SIZE_OK},
    ),
    "better than production": Gate(
        record("1.1.0", {"accuracy": 0.99}),
        production("1.0.0", {"accuracy": 0.95}),
        "max_regression = { accuracy = 0.0 }",
        (),
        {"accuracy_production": 0.95, **SIZE_OK},
    ),
    "regression beyond the allowance": Gate(
        record("1.1.0", {"accuracy": 0.9}),
        production("1.0.0", {"accuracy": 0.95}),
        "max_regression = { accuracy = 0.02 }",
        ("accuracy 0.9 is 0.05 below production 1.0.0 (0.95); allowed 0.02",),
        {"accuracy_production": 0.95, **SIZE_OK},
    ),
    "regression beyond the allowance, several metrics in name order": Gate(
        record("1.1.0", {"accuracy": 0.5, "f1": 0.25}),
        production("1.0.0", {"accuracy": 0.75, "f1": 0.5}),
        "max_regression = { f1 = 0.125, accuracy = 0.125 }",
        (
            "accuracy 0.5 is 0.25 below production 1.0.0 (0.75); allowed 0.125",
            "f1 0.25 is 0.25 below production 1.0.0 (0.5); allowed 0.125",
        ),
        {"accuracy_production": 0.75, "f1_production": 0.5, **SIZE_OK},
    ),
    "no production: no regression check": Gate(
        record("1.0.0", {"accuracy": 0.1}),
        None,
        "max_regression = { accuracy = 0.02 }",
        (),
        SIZE_OK,
    ),
    "production without the metric: nothing to compare": Gate(
        record("1.1.0", {"accuracy": 0.1}),
        production("1.0.0", {"f1": 0.9}),
        "max_regression = { accuracy = 0.02 }",
        (),
        {"accuracy_production": None, **SIZE_OK},
    ),
    "signature differs from production in the same major": Gate(
        record("1.1.0", {}, sig=OTHER_SIG),
        production("1.0.0", {}),
        "",
        ("signature differs from production 1.0.0 in the same major",),
        SIZE_OK,
    ),
    "a candidate without a signature hash differs too": Gate(
        record("1.1.0", {}, sig=None),
        production("1.0.0", {}),
        "",
        ("signature differs from production 1.0.0 in the same major",),
        SIZE_OK,
    ),
    "signature differs from production in another major": Gate(
        record("2.0.0", {}, sig=OTHER_SIG), production("1.4.0", {}), "", (), SIZE_OK
    ),
    "same signature as production": Gate(
        record("1.1.0", {}), production("1.0.0", {}), "", (), SIZE_OK
    ),
    "prerelease versions: same major by their MAJOR": Gate(
        record("2.0.0-rc.1", {}, sig=OTHER_SIG),
        production("2.0.0", {}),
        "",
        ("signature differs from production 2.0.0 in the same major",),
        SIZE_OK,
    ),
    "artifact larger than allowed": Gate(
        record("1.0.0", {}, size_bytes=12_345_678),
        None,
        "max_size_mb = 10",
        ("artifact 12.346 MB > max 10.0 MB",),
        {"size_mb": 12.346, "max_size_mb": 10.0},
    ),
    "artifact exactly at the maximum passes": Gate(
        record("1.0.0", {}, size_bytes=10_000_000),
        None,
        "max_size_mb = 10",
        (),
        {"size_mb": 10.0, "max_size_mb": 10.0},
    ),
    "one byte over the maximum fails": Gate(
        record("1.0.0", {}, size_bytes=10_000_001),
        None,
        "max_size_mb = 10",
        ("artifact 10.000 MB > max 10.0 MB",),
        {"size_mb": 10.0, "max_size_mb": 10.0},
    ),
    "no size recorded: zero": Gate(
        record("1.0.0", {}, size_bytes=None),
        None,
        "max_size_mb = 0.001",
        (),
        {"size_mb": 0.0, "max_size_mb": 0.001},
    ),
    "every gate failing: metrics, regression, signature, size": Gate(
        record("1.1.0", {"accuracy": 0.5}, size_bytes=3_000_000, sig=OTHER_SIG),
        production("1.0.0", {"accuracy": 0.75}),
        "min_metrics = { accuracy = 0.9 }\nmax_regression = { accuracy = 0.125 }\nmax_size_mb = 2",
        (
            "accuracy 0.5 < minimum 0.9",
            "accuracy 0.5 is 0.25 below production 1.0.0 (0.75); allowed 0.125",
            "signature differs from production 1.0.0 in the same major",
            "artifact 3.000 MB > max 2.0 MB",
        ),
        {
            "accuracy": 0.5,
            "accuracy_min": 0.9,
            "accuracy_production": 0.75,
            "size_mb": 3.0,
            "max_size_mb": 2.0,
        },
    ),
}


@pytest.mark.parametrize("case", GATES.values(), ids=GATES.keys())
def test_validation_gates(case: Gate) -> None:
    """The report: passed exactly when no reason was found; every failing gate's
    reason, word for word, in order (minimums, regressions, signature, size); the
    values it measured, and nothing else."""
    report = validation_gates(case.candidate, case.production, rules(case.validation))
    assert report.reasons == list(case.reasons)
    assert report.passed is (not case.reasons)
    assert report.values == case.values


@pytest.mark.parametrize(("base", "candidate"), [(0.92, 0.90), (0.95, 0.94)])
def test_regression_exactly_at_the_allowance_passes(base: float, candidate: float) -> None:
    """A candidate exactly max_regression below production (as written by the operator:
    allowed 0.02, production 0.92, candidate 0.90) is within the allowance."""
    allowed = round(base - candidate, 10)
    report = validation_gates(
        record("1.1.0", {"accuracy": candidate}),
        production("1.0.0", {"accuracy": base}),
        rules(f"max_regression = {{ accuracy = {allowed} }}"),
    )
    assert report.reasons == []
    assert report.passed


def test_regression_gate_fails_when_the_candidate_lacks_the_metric() -> None:
    """max_regression on a metric production reports: a candidate without that metric
    cannot show it did not regress, so the gate does not pass."""
    report = validation_gates(
        record("1.1.0", {"f1": 0.9}),
        production("1.0.0", {"accuracy": 0.95, "f1": 0.9}),
        rules("max_regression = { accuracy = 0.02 }"),
    )
    assert not report.passed
    assert any(re.search(r"\baccuracy\b", reason) for reason in report.reasons)


# ------------------------------------------------------------------ production_at


def entry(at: str, action: str, version: str, **details: str) -> dict[str, Any]:
    """One audit entry as `ModelRegistry.audit_log` returns it (details decoded)."""
    return {
        "id": f"{at}-x",
        "at": at,
        "actor": "ops",
        "action": action,
        "version": version,
        "details": details,
    }


AUDIT = [
    entry("2026-01-01T10:00:00Z", "register", "1.0.0", stage="candidate"),
    entry("2026-01-01T11:00:00Z", "stage", "1.0.0", **{"from": "candidate", "to": "validated"}),
    entry("2026-01-01T12:00:00Z", "stage", "1.0.0", **{"from": "validated", "to": "production"}),
    entry("2026-01-02T09:00:00Z", "register", "1.1.0", stage="candidate"),
    entry("2026-01-02T10:00:00Z", "stage", "1.1.0", **{"from": "candidate", "to": "validated"}),
    # promote 1.1.0: the CLI archives the old production version first, same second
    entry("2026-01-02T12:00:00Z", "stage", "1.0.0", **{"from": "production", "to": "archived"}),
    entry("2026-01-02T12:00:00Z", "stage", "1.1.0", **{"from": "validated", "to": "production"}),
    entry("2026-01-02T13:00:00Z", "stage", "1.2.0", **{"from": "candidate", "to": "rejected"}),
    entry("2026-01-03T08:00:00Z", "stage", "1.1.0", **{"from": "production", "to": "archived"}),
    entry("2026-01-04T08:00:00Z", "stage", "1.0.0", **{"from": "archived", "to": "production"}),
]

AT: dict[str, tuple[str, str | None]] = {
    "before anything": ("2025-12-31T00:00:00Z", None),
    "registered and validated, not yet in production": ("2026-01-01T11:59:59Z", None),
    "the second it was promoted": ("2026-01-01T12:00:00Z", "1.0.0"),
    "while the first version is in production": ("2026-01-02T11:59:59Z", "1.0.0"),
    "the second the next one replaced it": ("2026-01-02T12:00:00Z", "1.1.0"),
    "a rejection changes nothing": ("2026-01-02T13:00:00Z", "1.1.0"),
    "production archived, nothing replacing it": ("2026-01-03T08:00:00Z", None),
    "an archived version promoted back": ("2026-01-04T08:00:00Z", "1.0.0"),
    "long after the last entry": ("2030-01-01T00:00:00Z", "1.0.0"),
    "a time without zone is UTC": ("2026-01-02T12:00:00", "1.1.0"),
    "+00:00 is UTC": ("2026-01-02T12:00:00+00:00", "1.1.0"),
    "another zone, converted: 13:00+01:00 is 12:00Z": ("2026-01-02T13:00:00+01:00", "1.1.0"),
    "another zone, converted: 12:59:59+01:00 is 11:59:59Z": ("2026-01-02T12:59:59+01:00", "1.0.0"),
    "fractional seconds": ("2026-01-02T11:59:59.999Z", "1.0.0"),
    "a date alone is its midnight UTC": ("2026-01-03", "1.1.0"),
}


@pytest.mark.parametrize(("at", "expected"), AT.values(), ids=AT.keys())
def test_production_at(at: str, expected: str | None) -> None:
    """The version in production at `at`: the last one promoted at or before it and
    not moved out of production since; empty when there was none."""
    assert production_at(AUDIT, at) == ([expected] if expected else [])


@pytest.fixture
def local_zone_tokyo(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local time zone is UTC+9 for the test (then restored)."""
    monkeypatch.setenv("TZ", "JST-9")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("local_zone_tokyo")
def test_production_at_naive_time_is_utc_not_local() -> None:
    """A time without zone means UTC whatever the machine's local zone (here UTC+9,
    where 12:00 local would be 03:00Z)."""
    assert production_at(AUDIT, "2026-01-02T12:00:00") == ["1.1.0"]
    assert production_at(AUDIT, "2026-01-02T11:59:59") == ["1.0.0"]


def test_production_at_ignores_leaving_production_by_another_version() -> None:
    """A version leaving production clears only itself: if another version was
    promoted meanwhile, that one stays the answer."""
    audit = [
        entry(
            "2026-01-01T12:00:00Z", "stage", "1.0.0", **{"from": "validated", "to": "production"}
        ),
        entry(
            "2026-01-02T12:00:00Z", "stage", "1.1.0", **{"from": "validated", "to": "production"}
        ),
        entry("2026-01-02T12:00:01Z", "stage", "1.0.0", **{"from": "production", "to": "archived"}),
    ]
    assert production_at(audit, "2026-01-03T00:00:00Z") == ["1.1.0"]


def test_production_at_with_a_production_version_per_major() -> None:
    """Each major has its own production version (engine.stages.move_to_stage archives
    only the same major's): once 2.0.0 leaves production, 1.0.0 (never moved out)
    is the version in production; while both were, both are listed."""
    audit = [
        entry(
            "2026-01-01T12:00:00Z", "stage", "1.0.0", **{"from": "validated", "to": "production"}
        ),
        entry(
            "2026-01-02T12:00:00Z", "stage", "2.0.0", **{"from": "validated", "to": "production"}
        ),
        entry("2026-01-03T12:00:00Z", "stage", "2.0.0", **{"from": "production", "to": "archived"}),
    ]
    assert production_at(audit, "2026-01-04T00:00:00Z") == ["1.0.0"]
    assert production_at(audit, "2026-01-02T13:00:00Z") == ["1.0.0", "2.0.0"]


def test_production_at_empty_audit() -> None:
    """No audit trail: nothing was ever in production."""
    assert production_at([], "2026-01-01T00:00:00Z") == []


@pytest.mark.parametrize("at", ["yesterday", "", "2026-13-01T00:00:00Z", "2026-01-01 25:00"])
def test_production_at_refuses_a_bad_time(at: str) -> None:
    """A time that is not ISO 8601: a BadInput quoting it, with an example."""
    message = f"--at {at!r}: expected an ISO time such as 2026-11-24T21:00:00Z"
    with pytest.raises(BadInput, match=f"^{re.escape(message)}$"):
        production_at(AUDIT, at)


# --------------------------------------------------------------------------- bump

BUMPS: dict[str, tuple[str | None, str, str]] = {
    "first version, major": (None, "major", "1.0.0"),
    "first version, minor": (None, "minor", "1.0.0"),
    "first version, patch": (None, "patch", "1.0.0"),
    "major resets minor and patch": ("1.2.3", "major", "2.0.0"),
    "minor resets patch": ("1.2.3", "minor", "1.3.0"),
    "patch": ("1.2.3", "patch", "1.2.4"),
    "from 0.0.0": ("0.0.0", "patch", "0.0.1"),
    "numeric, not textual: 9 -> 10": ("1.9.9", "minor", "1.10.0"),
    "major 9 -> 10": ("9.9.9", "major", "10.0.0"),
}


@pytest.mark.parametrize(("latest", "part", "expected"), BUMPS.values(), ids=BUMPS.keys())
def test_bump(latest: str | None, part: str, expected: str) -> None:
    """The next version: 1.0.0 first; then semver major/minor/patch increments."""
    assert bump(latest, part) == expected


@pytest.mark.parametrize("part", ["huge", "", "Major", "prerelease"])
def test_bump_refuses_an_unknown_part(part: str) -> None:
    """Only major, minor and patch: anything else is a BadInput naming it."""
    message = f"--bump takes major, minor or patch, not {part!r}"
    with pytest.raises(BadInput, match=f"^{re.escape(message)}$"):
        bump("1.2.3", part)


def test_bump_refuses_an_invalid_latest_version() -> None:
    """A latest version that is not MAJOR.MINOR.PATCH is refused, not bumped."""
    with pytest.raises(BadInput, match=r"^version: invalid model version '1\.2': expected"):
        bump("1.2", "patch")


# ------------------------------------------------------------- check_transition

ALLOWED = {
    ("candidate", "validated"),
    ("candidate", "rejected"),
    ("candidate", "archived"),
    ("validated", "production"),
    ("validated", "rejected"),
    ("validated", "archived"),
    ("production", "archived"),
    ("archived", "production"),
}
CAN_MOVE_TO = {
    "candidate": "archived, rejected, validated",
    "validated": "archived, production, rejected",
    "production": "archived",
    "archived": "production",
    "rejected": "nothing (final)",
}
EVERY_MOVE = [(current, target) for current in CAN_MOVE_TO for target in CAN_MOVE_TO]


def test_stages() -> None:
    """The five stages, in lifecycle order."""
    assert STAGES == ("candidate", "validated", "production", "archived", "rejected")


@pytest.mark.parametrize(
    ("current", "target"), sorted(ALLOWED), ids=[f"{c}->{t}" for c, t in sorted(ALLOWED)]
)
def test_allowed_transitions(current: str, target: str) -> None:
    """Each of these eight moves is allowed."""
    check_transition("1.2.0", current, target)


REFUSED = [move for move in EVERY_MOVE if move not in ALLOWED]


@pytest.mark.parametrize(("current", "target"), REFUSED, ids=[f"{c}->{t}" for c, t in REFUSED])
def test_refused_transitions(current: str, target: str) -> None:
    """Every other move (staying put included; anything out of rejected, which is
    final) is a BadInput saying where the version may go instead."""
    message = f"version 1.2.0 is {current}; it can move to {CAN_MOVE_TO[current]}, not {target}"
    with pytest.raises(BadInput, match=f"^{re.escape(message)}$"):
        check_transition("1.2.0", current, target)


def test_refused_count() -> None:
    """8 of the 25 stage pairs are allowed: 17 refused, 5 of them out of rejected."""
    assert len(REFUSED) == 17
    assert sum(current == "rejected" for current, _ in REFUSED) == 5


@pytest.mark.parametrize("current", STAGES)
@pytest.mark.parametrize("target", ["live", "Production", "", "staging"])
def test_unknown_stage(current: str, target: str) -> None:
    """An unknown target stage is refused as such, from any stage, listing the stages."""
    message = (
        f"unknown stage {target!r}: one of candidate, validated, production, archived, rejected"
    )
    with pytest.raises(BadInput, match=f"^{re.escape(message)}$"):
        check_transition("1.2.0", current, target)


# ---------------------------------------------------------------- signatures


def test_signature_hash_is_stable() -> None:
    """16 hex digits of SHA-256 over the key-sorted JSON: the value stored in records
    and image labels, so it must not change between releases."""
    assert SIG == "dcdd4a5abab0da54"
    assert re.fullmatch(r"[0-9a-f]{16}", OTHER_SIG)


def test_signature_hash_ignores_key_order_only() -> None:
    """Key order does not matter; any change in content (or list order) does."""
    reordered = {
        "outputs": [{"shape": [-1], "dtype": "int64", "name": "y"}],
        "inputs": [{"shape": [-1, 4], "name": "x", "dtype": "float32"}],
    }
    assert signature_hash(reordered) == SIG
    assert OTHER_SIG != SIG
    swapped = {"inputs": SIGNATURE["outputs"], "outputs": SIGNATURE["inputs"]}
    assert signature_hash(swapped) != SIG
    two = {"inputs": [{"name": "a"}, {"name": "b"}]}
    assert signature_hash(two) != signature_hash({"inputs": [{"name": "b"}, {"name": "a"}]})


SIGNATURE_OK: dict[str, tuple[str, dict[str, Any], ModelVersion | None]] = {
    "no previous version in the major": ("1.0.0", OTHER_SIGNATURE, None),
    "same major, same signature": ("1.3.0", SIGNATURE, record("1.2.0", sig=SIG)),
    "new major, changed signature": (
        "2.0.0",
        OTHER_SIGNATURE,
        record("1.2.0", sig=SIG),
    ),
    "older major, changed signature": (
        "1.5.0",
        OTHER_SIGNATURE,
        record("2.0.0", sig=SIG),
    ),
}


@pytest.mark.parametrize(
    ("version", "signature", "previous"), SIGNATURE_OK.values(), ids=SIGNATURE_OK.keys()
)
def test_check_signature_accepts(
    version: str, signature: dict[str, Any], previous: ModelVersion | None
) -> None:
    """Accepted: the first version, an unchanged signature, or any other major."""
    check_signature(version, signature, previous)


SIGNATURE_REFUSED: dict[str, tuple[str, ModelVersion]] = {
    "changed in the same major": ("1.3.0", record("1.2.0", sig=SIG)),
    "previous record without a hash": ("1.3.0", record("1.2.0", sig=None)),
    "prerelease of the same major": ("1.3.0-rc.1", record("1.2.0", sig=SIG)),
}


@pytest.mark.parametrize(
    ("version", "previous"), SIGNATURE_REFUSED.values(), ids=SIGNATURE_REFUSED.keys()
)
def test_check_signature_refuses(version: str, previous: ModelVersion) -> None:
    """A changed signature within a major: a BadInput asking for a major bump."""
    message = (
        f"version {version} declares a different input/output signature than 1.2.0 "
        "(same major 1): a changed signature needs a major bump (--bump major)"
    )
    with pytest.raises(BadInput, match=f"^{re.escape(message)}$"):
        check_signature(version, OTHER_SIGNATURE, previous)


# ------------------------------------------------------------------ next_version


def _versioned(version: str, signature: object) -> ModelVersion:
    return ModelVersion.from_record(
        {
            "model": "m",
            "version": version,
            "stage": "validated",
            "signature_hash": signature_hash(signature),
        }
    )


SIG_V1 = {"inputs": [{"name": "a"}], "outputs": [{"name": "y"}]}
SIG_V2 = {"inputs": [{"name": "b"}], "outputs": [{"name": "y"}]}


@pytest.mark.parametrize(
    ("existing", "signature", "expected"),
    [
        ([], SIG_V1, "1.0.0"),
        ([("1.0.0", SIG_V1)], SIG_V1, "1.1.0"),
        # A second major beside the first: v1's signature still bumps v1's minor.
        ([("1.0.0", SIG_V1), ("1.3.2", SIG_V1), ("2.0.0", SIG_V2)], SIG_V1, "1.4.0"),
        ([("1.0.0", SIG_V1), ("2.0.0", SIG_V2), ("2.1.0", SIG_V2)], SIG_V2, "2.2.0"),
    ],
)
def test_a_retrained_model_gets_the_next_minor_of_its_signatures_major(
    existing: list[tuple[str, object]], signature: object, expected: str
) -> None:
    """Retraining with a second major present bumps within the major the signature
    belongs to (not the newest major, which would need a major bump)."""
    versions = [_versioned(v, sig) for v, sig in existing]
    assert next_version(versions, signature) == expected


def test_a_retrained_model_with_a_new_signature_is_refused() -> None:
    """A scheduled run never invents a major: a new schema is an operator's decision."""
    versions = [_versioned("1.0.0", SIG_V1), _versioned("2.0.0", SIG_V2)]
    with pytest.raises(BadInput, match=r"matches no major of this model \(newest: 2\.0\.0\)"):
        next_version(versions, {"inputs": [], "outputs": []})


# ------------------------------------------------------------------ expiring

DAY = 86400.0
NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z


def _aged(version: str, stage: str, days: float, **extra: str) -> ModelVersion:
    import datetime as dt

    stamp = dt.datetime.fromtimestamp(NOW - days * DAY, dt.timezone.utc)
    at = stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    fields = {"model": "m", "version": version, "stage": stage, "created_at": at}
    if stage != "candidate":
        fields["stage_changed_at"] = at
    return ModelVersion.from_record({**fields, **extra})


@pytest.mark.parametrize(
    ("versions", "expected"),
    [
        # Rejected long enough ago: expires; recently rejected: stays.
        ([_aged("1.0.0", "rejected", 10), _aged("1.1.0", "rejected", 1)], ["1.0.0"]),
        # A candidate superseded by a later validated version of its major expires ...
        ([_aged("1.0.0", "candidate", 10), _aged("1.1.0", "validated", 9)], ["1.0.0"]),
        # ... not by another major, nor by a later candidate; nor a recent one.
        ([_aged("1.0.0", "candidate", 10), _aged("2.0.0", "production", 9)], []),
        ([_aged("1.0.0", "candidate", 10), _aged("1.1.0", "candidate", 9)], []),
        ([_aged("1.1.0", "candidate", 1), _aged("1.2.0", "production", 1)], []),
        # What serves or may come back never expires; an expired version only once.
        (
            [
                _aged("1.0.0", "production", 30),
                _aged("1.1.0", "archived", 30),
                _aged("1.2.0", "rejected", 30, expired_at="2027-01-01T00:00:00Z"),
            ],
            [],
        ),
    ],
)
def test_what_expires(versions: list[ModelVersion], expected: list[str]) -> None:
    """Rejected versions and superseded candidates older than the policy expire."""
    assert [v.version for v in expiring(versions, NOW, 7 * DAY)] == expected
