"""Moving model versions through their stages: the validation gates (candidate ->
validated or rejected), approvals, the operator's stage changes, and what a rollout
or a rollback means for the versions involved, each audited in the registry. The
rules themselves are core.lifecycle's."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from nomadml.adapters.model_store import ModelRegistry, now
from nomadml.core.decide import Action
from nomadml.core.lifecycle import GateReport, check_transition, validation_gates
from nomadml.core.model_version import ModelVersion
from nomadml.core.spec import Validation
from nomadml.errors import BadInput
from nomadml.events import Emit, Event, discard


def registered(registry: ModelRegistry, name: str, version: str) -> ModelVersion:
    """The registry's record of NAME VERSION, or a clear error."""
    found = registry.get(name, version)
    if found is None:
        raise BadInput(f"{name} {version} is not registered")
    return found


def validate_version(
    registry: ModelRegistry,
    candidate: ModelVersion,
    rules: Validation,
    by: str = "",
    measure: Callable[[ModelVersion], dict[str, float]] | None = None,
) -> GateReport:
    """Run the validation gates against the production version of the candidate's
    major (another major has another schema: its numbers do not compare); the
    candidate becomes validated or rejected, with the gate values recorded on it.
    With `measure`, both versions are measured on the same evaluation data and the
    gates compare those numbers, not the trainers' own. The spec's approval policy
    is recorded for the model."""
    registry.record_policy(candidate.model, rules.require_approval)
    in_production = registry.in_stage(candidate.model, "production", major=candidate.major)
    production = in_production[-1] if in_production else None
    if measure is not None:
        measured = measure(candidate)
        baseline = measure(production) if production is not None else None
        registry.update(
            candidate.model,
            candidate.version,
            {"measured": {"metrics": measured, "production": baseline}},
        )
        candidate = replace(candidate, metrics=MappingProxyType(measured))
        if production is not None and baseline is not None:
            production = replace(production, metrics=MappingProxyType(baseline))
    report = validation_gates(candidate, production, rules)
    report.values["measured"] = measure is not None
    stage = "validated" if report.passed else "rejected"
    gates = {"passed": report.passed, "values": report.values, "reasons": report.reasons}
    registry.update(candidate.model, candidate.version, {"gates": gates})
    details: dict[str, Any] = {"gates": report.values, "reasons": report.reasons}
    if by:
        details["by"] = by
    registry.set_stage(candidate.model, candidate.version, stage, details)
    return report


def approve(registry: ModelRegistry, name: str, version: str, reason: str) -> ModelVersion:
    """Record an operator's approval of a version (who, when, why), audited."""
    current = registered(registry, name, version)
    if current.stage == "rejected":
        raise BadInput(f"{name} {version} is rejected: it can never be approved")
    by = registry.actor()
    registry.update(name, version, {"approved_by": by, "approved_at": now()})
    registry.audit(name, "approve", version, {"reason": reason})
    return registered(registry, name, version)


def move_to_stage(
    registry: ModelRegistry,
    name: str,
    version: str,
    target: str,
    details: dict[str, Any],
    *,
    check_approval: bool = True,
) -> ModelVersion:
    """Move a version to `target`, checked before anything changes (nothing is
    half-done on refusal); a version already there stays (nothing to do). A new
    production version archives the previous one of the same major (another
    major's production version serves its own clients), and needs an approval when
    the model's recorded policy says so, whatever the caller passes."""
    current = registered(registry, name, version)
    if current.stage == target:
        return current
    check_transition(version, current.stage, target)
    if (
        check_approval
        and target == "production"
        and not current.approved_by
        and registry.requires_approval(name)
    ):
        raise BadInput(
            f"{name} {version} needs approval (the registry's policy for {name}): "
            f"nomadml model approve {name} {version}, or promote with --approve"
        )
    if target == "production":
        for old in registry.in_stage(name, "production", major=current.major):
            registry.set_stage(name, old.version, "archived", {"replaced_by": version})
    return registry.set_stage(name, version, target, details)


def settle_rollout(
    registry: ModelRegistry,
    record: ModelVersion,
    action: Action,
    reason: str,
    gates: list[dict[str, Any]],
) -> str | None:
    """What a rollout's outcome means for its version: a success makes it the
    production version of its major; a canary its gates failed is rejected, with
    the gate values. Other ends (timeouts, placement failures, interrupts) say
    nothing about the model. Returns the new stage, if any."""
    if action is Action.SUCCEEDED:
        # The deploy itself was checked (or forced, and audited): no second approval.
        move_to_stage(
            registry,
            record.model,
            record.version,
            "production",
            {"by": "rollout"},
            check_approval=False,
        )
        return "production"
    if action is Action.ROLLED_BACK and reason.startswith("gate failed"):
        values = gates[-1].get("values", {}) if gates else {}
        current = registered(registry, record.model, record.version)
        if current.stage != "rejected":
            registry.set_stage(
                record.model,
                record.version,
                "rejected",
                {"by": "rollout", "reason": reason, "gates": values},
            )
        return "rejected"
    return None


def record_rollback(
    registry: ModelRegistry, model: str, from_version: str, to_version: str, line: str
) -> None:
    """A rollback on both versions' records (those the registry holds): the version
    rolled back to is its major's production version again, the one rolled away
    from is archived."""
    target = registry.get(model, to_version)
    if target is not None:
        if target.stage != "production":
            # Already done in Nomad: the record follows, an approval cannot undo it.
            details = {"by": "rollback", "from": from_version}
            move_to_stage(registry, model, to_version, "production", details, check_approval=False)
        registry.audit(model, "rollback", to_version, {"from": from_version, "line": line})
    left = registry.get(model, from_version)
    if left is not None:
        registry.audit(model, "rollback", from_version, {"to": to_version, "line": line})
        if left.stage == "production":
            registry.set_stage(model, from_version, "archived", {"by": "rollback"})


def expire_versions(
    registry: ModelRegistry,
    model: str,
    after_s: float,
    *,
    now_s: float | None = None,
    dry_run: bool = False,
    emit: Emit = discard,
) -> list[ModelVersion]:
    """Expire what the lifecycle policy lets go: rejected versions and superseded
    candidates older than `after_s`. The record stays (marked `expired_at`, audited);
    the model image is deleted from the image registry. A version any kept Nomad
    job version still references is not this function's to judge: rejected and
    superseded candidates never ran as a kept version."""
    import time

    from nomadml.adapters.image_registry import delete_image
    from nomadml.core.lifecycle import expiring

    due = expiring(registry.versions(model), time.time() if now_s is None else now_s, after_s)
    if dry_run:
        return due
    for version in due:
        deleted = delete_image(version.image) if version.image else False
        registry.update(model, version.version, {"expired_at": now()})
        details = {"stage": version.stage, "image": version.image, "deleted": deleted}
        registry.audit(model, "expire", version.version, details)
        emit(
            Event("expire", model, f"{model} {version.version} expired ({version.stage})", details)
        )
    return due
