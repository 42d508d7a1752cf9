"""Model lifecycle rules, pure: stages and their transitions, version bumps,
signature compatibility, and the validation gates (metrics, size)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from nomadml.core.model_version import ModelVersion
from nomadml.core.spec import Validation, parse_version
from nomadml.errors import BadInput

# Below the precision anyone writes a regression allowance with.
REGRESSION_TOLERANCE = 1e-9
STAGES = ("candidate", "validated", "production", "archived", "rejected")
# Which stage may follow which; "rejected" is final: such a version never deploys.
TRANSITIONS = {
    "candidate": {"validated", "rejected", "archived"},
    "validated": {"production", "rejected", "archived"},
    "production": {"archived"},
    "archived": {"production"},
    "rejected": set(),
}


def check_transition(version: str, current: str, target: str) -> None:
    if target not in STAGES:
        raise BadInput(f"unknown stage {target!r}: one of {', '.join(STAGES)}")
    if target not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "nothing (final)"
        raise BadInput(f"version {version} is {current}; it can move to {allowed}, not {target}")


# Stages a deploy takes without --force: validated (its first rollout), production
# (the same version again: idempotent), archived (back to an earlier version).
DEPLOYABLE = ("validated", "production", "archived")


def deploy_refusal(
    model: str, version: str, record: ModelVersion | None, require_approval: bool
) -> str | None:
    """Why the model registry refuses to let `version` be deployed, or None. Pure."""
    if record is None:
        return (
            f"{model} {version} is not in the model registry: register and validate it "
            "(nomadml model register / validate), or deploy a bare image with --unregistered"
        )
    if record.stage not in DEPLOYABLE:
        hint = {
            "candidate": f"validate it first (nomadml model validate {model} {version} --spec …)",
            "rejected": "it can never be deployed",
        }.get(record.stage, "")
        return f"{model} {version} is {record.stage} in the model registry: {hint}".rstrip(": ")
    if require_approval and not record.approved_by:
        return (
            f"{model} {version} needs approval (the registry's policy for {model}): "
            f"nomadml model approve {model} {version}"
        )
    return None


def bump(latest: str | None, part: str) -> str:
    """The next version after `latest` (None: the first version, 1.0.0)."""
    if latest is None:
        return "1.0.0"
    major, minor, patch = parse_version(latest)
    if part == "major":
        return f"{major + 1}.0.0"
    if part == "minor":
        return f"{major}.{minor + 1}.0"
    if part == "patch":
        return f"{major}.{minor}.{patch + 1}"
    raise BadInput(f"--bump takes major, minor or patch, not {part!r}")


def next_version(versions: list[ModelVersion], signature: Any) -> str:
    """The version a retrained model gets: the next minor in the major whose latest
    version declares the same signature (1.0.0 for a model's first). A signature no
    major has is a new schema: that needs an operator's deliberate major bump, never
    a scheduled run's."""
    digest = signature_hash(signature)
    latest: dict[int, ModelVersion] = {}
    for v in versions:
        if v.major not in latest or parse_version(v.version) > parse_version(
            latest[v.major].version
        ):
            latest[v.major] = v
    same = [major for major, v in latest.items() if v.signature_hash == digest]
    if same:
        return bump(latest[max(same)].version, "minor")
    if not latest:
        return "1.0.0"
    newest = latest[max(latest)]
    raise BadInput(
        f"the trainer's input/output signature matches no major of this model (newest: "
        f"{newest.version}): a changed signature is a new major, registered deliberately "
        "(nomadml model register --bump major), not by a retraining run"
    )


def signature_hash(signature: Any) -> str:
    return hashlib.sha256(json.dumps(signature, sort_keys=True).encode()).hexdigest()[:16]


def check_signature(version: str, signature: Any, previous: ModelVersion | None) -> None:
    """A changed declared signature must come with a new major version."""
    if previous is None:
        return
    prev_major = previous.major
    if parse_version(version)[0] != prev_major:
        return
    if signature_hash(signature) != previous.signature_hash:
        raise BadInput(
            f"version {version} declares a different input/output signature than "
            f"{previous.version} (same major {prev_major}): a changed signature needs a "
            f"major bump (--bump major)"
        )


@dataclass
class GateReport:
    passed: bool
    values: dict[str, Any] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)


def validation_gates(
    candidate: ModelVersion, production: ModelVersion | None, rules: Validation
) -> GateReport:
    """Metric thresholds (absolute and against production), size, signature."""
    report = GateReport(True)
    metrics = candidate.metrics
    for name, minimum in sorted(rules.min_metrics.items()):
        value = metrics.get(name)
        report.values[f"{name}"] = value
        report.values[f"{name}_min"] = minimum
        if not isinstance(value, (int, float)):
            report.reasons.append(f"metric {name} missing from the model's metadata")
        elif value < minimum:
            report.reasons.append(f"{name} {value:.4g} < minimum {minimum:.4g}")
    if production:
        prod_metrics = production.metrics
        for name, allowed in sorted(rules.max_regression.items()):
            value, base = metrics.get(name), prod_metrics.get(name)
            report.values[f"{name}_production"] = base
            if isinstance(base, (int, float)) and not isinstance(value, (int, float)):
                # Fail closed: a candidate that does not report the metric cannot show
                # it did not regress.
                report.reasons.append(
                    f"metric {name} missing from the model's metadata "
                    f"(production {production.version} reports it; max_regression needs it)"
                )
            elif (
                isinstance(value, (int, float))
                and isinstance(base, (int, float))
                # The operator's "0.02" is decimal; 0.92 - 0.90 is 0.0200...02 in binary.
                and base - value > allowed + REGRESSION_TOLERANCE
            ):
                report.reasons.append(
                    f"{name} {value:.4g} is {base - value:.4g} below production "
                    f"{production.version} ({base:.4g}); allowed {allowed:.4g}"
                )
        same_major = production.major == candidate.major
        if same_major and production.signature_hash != candidate.signature_hash:
            report.reasons.append(
                f"signature differs from production {production.version} in the same major"
            )
    size_mb = candidate.size_bytes / 1_000_000
    report.values["size_mb"] = round(size_mb, 3)
    report.values["max_size_mb"] = rules.max_size_mb
    if size_mb > rules.max_size_mb:
        report.reasons.append(f"artifact {size_mb:.3f} MB > max {rules.max_size_mb} MB")
    report.passed = not report.reasons
    return report


def _epoch(stamp: str) -> float | None:
    import datetime as dt

    try:
        when = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)).timestamp()


# A candidate is superseded once a later version of its major got past it.
SUPERSEDING = ("validated", "production", "archived")


def expiring(versions: list[ModelVersion], now: float, after_s: float) -> list[ModelVersion]:
    """Versions whose images may go (records stay): rejected ones, and candidates a
    later version of the same major superseded, untouched for `after_s` seconds;
    never one already expired. Pure."""
    out = []
    for v in versions:
        if v.expired_at:
            continue
        if v.stage == "rejected":
            since = _epoch(v.stage_changed_at or v.created_at)
        elif v.stage == "candidate" and any(
            w.major == v.major
            and parse_version(w.version) > parse_version(v.version)
            and w.stage in SUPERSEDING
            for w in versions
        ):
            since = _epoch(v.created_at)
        else:
            continue
        if since is not None and now - since >= after_s:
            out.append(v)
    return out


def production_at(audit: list[dict[str, Any]], at: str) -> list[str]:
    """The versions in production at ISO time `at` (UTC when no zone is given), one
    per major (each major has its own production version), lowest major first, from
    the audit trail. Pure."""
    import datetime as dt

    from nomadml.errors import BadInput as _BadInput

    try:
        when = dt.datetime.fromisoformat(at.replace("Z", "+00:00"))
    except ValueError:
        raise _BadInput(f"--at {at!r}: expected an ISO time such as 2026-11-24T21:00:00Z") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    current: dict[int, str] = {}
    for entry in audit:
        stamp = dt.datetime.fromisoformat(entry["at"].replace("Z", "+00:00"))
        if stamp > when:
            break
        details = entry.get("details") or {}
        if entry["action"] != "stage":
            continue
        version = str(entry["version"])
        major = parse_version(version)[0]
        if details.get("to") == "production":
            current[major] = version
        elif details.get("from") == "production" and current.get(major) == version:
            del current[major]
    return [current[major] for major in sorted(current)]
