"""Moving model versions through their stages: the validation gates (candidate ->
validated or rejected) and the operator's stage changes, each audited in the
registry. The rules themselves are core.lifecycle's."""

from __future__ import annotations

from typing import Any

from nomadml.adapters.model_store import ModelRegistry
from nomadml.core.lifecycle import GateReport, check_transition, validation_gates
from nomadml.core.model_version import ModelVersion
from nomadml.core.spec import Validation
from nomadml.errors import BadInput


def registered(registry: ModelRegistry, name: str, version: str) -> ModelVersion:
    """The registry's record of NAME VERSION, or a clear error."""
    found = registry.get(name, version)
    if found is None:
        raise BadInput(f"{name} {version} is not registered")
    return found


def validate_version(
    registry: ModelRegistry, candidate: ModelVersion, rules: Validation, by: str = ""
) -> GateReport:
    """Run the validation gates against the production version of the candidate's
    major (another major has another schema: its numbers do not compare); the
    candidate becomes validated or rejected, with the gate values recorded on it."""
    in_production = registry.in_stage(candidate.model, "production", major=candidate.major)
    production = in_production[-1] if in_production else None
    report = validation_gates(candidate, production, rules)
    stage = "validated" if report.passed else "rejected"
    gates = {"passed": report.passed, "values": report.values, "reasons": report.reasons}
    registry.update(candidate.model, candidate.version, {"gates": gates})
    details: dict[str, Any] = {"gates": report.values, "reasons": report.reasons}
    if by:
        details["by"] = by
    registry.set_stage(candidate.model, candidate.version, stage, details)
    return report


def move_to_stage(
    registry: ModelRegistry,
    name: str,
    version: str,
    target: str,
    details: dict[str, Any],
) -> ModelVersion:
    """Move a version to `target`, checked before anything changes (nothing is
    half-done on refusal); a new production version archives the previous one of
    the same major (another major's production version serves its own clients)."""
    current = registered(registry, name, version)
    check_transition(version, current.stage, target)
    if target == "production":
        for old in registry.in_stage(name, "production", major=current.major):
            registry.set_stage(name, old.version, "archived", {"replaced_by": version})
    return registry.set_stage(name, version, target, details)
