"""The model registry decides what ships, against the shared fake Nomad (its
variables have Nomad's check-and-set): which stages a deploy takes, approvals from
the model's recorded policy whatever flags are passed, what a rollout's outcome
and a rollback write on the versions involved."""

from __future__ import annotations

from typing import Any

import pytest
from support.fake_nomad import FakeNomad

from nomadml.adapters.model_store import ModelRegistry
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.decide import Action
from nomadml.core.lifecycle import deploy_refusal
from nomadml.core.model_version import ModelVersion
from nomadml.engine import stages
from nomadml.errors import BadInput
from nomadml.settings import NomadSettings


@pytest.fixture()
def registry(fake_nomad: FakeNomad) -> ModelRegistry:
    fake_nomad.script("GET", "/v1/acl/token/self", 400, b"ACL support disabled", times=50)
    return ModelRegistry(NomadAPI(NomadSettings.from_env({"NOMAD_ADDR": fake_nomad.address})))


def _add(registry: ModelRegistry, version: str, stage: str = "candidate") -> None:
    registry.create({"model": "churn", "version": version, "stage": "candidate"})
    path = {"candidate": [], "validated": ["validated"], "production": ["validated", "production"]}
    for step in path.get(stage, ["validated", stage]):
        registry.set_stage("churn", version, step, {})


def _record(stage: str, approved_by: str = "") -> ModelVersion:
    fields: dict[str, Any] = {"model": "churn", "version": "1.2.0", "stage": stage}
    if approved_by:
        fields["approved_by"] = approved_by
    return ModelVersion.from_record(fields)


@pytest.mark.parametrize(
    ("stage", "approval_needed", "approved_by", "refusal"),
    [
        ("validated", False, "", None),
        ("production", False, "", None),
        ("archived", False, "", None),
        ("candidate", False, "", "churn 1.2.0 is candidate in the model registry: validate"),
        ("rejected", False, "", "churn 1.2.0 is rejected in the model registry: it can never"),
        ("validated", True, "", "churn 1.2.0 needs approval"),
        ("validated", True, "user:ops", None),
    ],
)
def test_which_versions_a_deploy_takes(
    stage: str, approval_needed: bool, approved_by: str, refusal: str | None
) -> None:
    found = deploy_refusal("churn", "1.2.0", _record(stage, approved_by), approval_needed)
    assert (found is None) if refusal is None else (found or "").startswith(refusal), found
    assert "--unregistered" in (deploy_refusal("churn", "1.2.0", None, False) or "")


def test_approval_comes_from_the_recorded_policy_whatever_the_flags(
    registry: ModelRegistry,
) -> None:
    _add(registry, "1.0.0", "validated")
    registry.record_policy("churn", True)
    registry.record_policy("churn", False)  # a spec alone never turns it off again
    assert registry.requires_approval("churn")
    with pytest.raises(BadInput, match=r"churn 1\.0\.0 needs approval"):
        stages.move_to_stage(registry, "churn", "1.0.0", "production", {})
    assert (registry.get("churn", "1.0.0") or _record("?")).stage == "validated"
    approved = stages.approve(registry, "churn", "1.0.0", "signed off by the risk team")
    assert approved.approved_by.startswith("user:")
    moved = stages.move_to_stage(registry, "churn", "1.0.0", "production", {})
    assert moved.stage == "production"
    actions = [(e["action"], e["version"]) for e in registry.audit_log("churn")]
    assert ("policy", "-") in actions and ("approve", "1.0.0") in actions


def test_production_is_per_major_and_a_rollout_settles_its_version(
    registry: ModelRegistry,
) -> None:
    _add(registry, "1.0.0", "production")
    _add(registry, "2.0.0", "production")
    _add(registry, "1.1.0", "validated")
    record = registry.get("churn", "1.1.0")
    assert record is not None
    assert stages.settle_rollout(registry, record, Action.SUCCEEDED, "", []) == "production"
    stage = {r.version: r.stage for r in registry.versions("churn")}
    assert stage == {"1.0.0": "archived", "1.1.0": "production", "2.0.0": "production"}

    _add(registry, "1.2.0", "validated")
    bad = registry.get("churn", "1.2.0")
    assert bad is not None
    gates = [{"verdict": "fail", "values": {"canary_error_rate": 0.5}}]
    reason = "gate failed: error rate 50% > max 1.0%"
    assert stages.settle_rollout(registry, bad, Action.ROLLED_BACK, reason, gates) == "rejected"
    rejected = registry.get("churn", "1.2.0")
    assert rejected is not None and rejected.stage == "rejected"
    entry = registry.audit_log("churn")[-1]
    assert entry["details"]["gates"] == {"canary_error_rate": 0.5}
    # A timeout or a placement failure says nothing about the model.
    _add(registry, "1.3.0", "validated")
    other = registry.get("churn", "1.3.0")
    assert other is not None
    assert stages.settle_rollout(registry, other, Action.TIMEOUT, "deadline", []) is None
    assert stages.settle_rollout(registry, other, Action.ROLLED_BACK, "unhealthy", []) is None


def test_a_rollback_is_recorded_on_both_versions(registry: ModelRegistry) -> None:
    _add(registry, "1.0.0", "production")
    _add(registry, "1.1.0", "production")
    stages.record_rollback(registry, "churn", "1.1.0", "1.0.0", "churn-v1")
    stage = {r.version: r.stage for r in registry.versions("churn")}
    assert stage == {"1.0.0": "production", "1.1.0": "archived"}
    rollbacks = [
        (e["version"], e["details"])
        for e in registry.audit_log("churn")
        if e["action"] == "rollback"
    ]
    assert ("1.0.0", {"from": "1.1.0", "line": "churn-v1"}) in rollbacks
    assert ("1.1.0", {"to": "1.0.0", "line": "churn-v1"}) in rollbacks
