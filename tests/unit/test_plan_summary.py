"""Plan summaries and the ownership rule, from recorded Nomad plan answers."""

from __future__ import annotations

from typing import Any

import pytest

from nomadml.core.plan import check_owner, summarize
from nomadml.errors import NotOwned

NEW_VERSION_PLAN: dict[str, Any] = {
    "JobModifyIndex": 42,
    "Diff": {
        "Type": "Edited",
        "Fields": [
            {"Type": "Edited", "Name": "Meta[nomadml.version]", "Old": "1.0.0", "New": "1.1.0"}
        ],
        "TaskGroups": [
            {
                "Type": "Edited",
                "Name": "model",
                "Updates": {"canary": 1, "ignore": 2},
                "Tasks": [
                    {
                        "Type": "Edited",
                        "Name": "serve",
                        "Fields": [
                            {
                                "Type": "Edited",
                                "Name": "Env[NOMADML_MODEL_VERSION]",
                                "Old": "1.0.0",
                                "New": "1.1.0",
                            }
                        ],
                    }
                ],
            }
        ],
    },
    "Annotations": {"DesiredTGUpdates": {"model": {"Canary": 1, "Ignore": 2}}},
    "Warnings": "",
}


def test_new_version_plan_reports_canary_and_field_changes() -> None:
    s = summarize("iris-v1", NEW_VERSION_PLAN)
    assert s.changed and s.job_modify_index == 42
    assert s.totals()["Canary"] == 1 and s.totals()["DestructiveUpdate"] == 0
    lines = s.lines()
    assert lines[0] == (
        "job iris-v1: edited — 0 to place, 1 canary, 0 destructive, 0 in-place, 0 to stop"
    )
    assert "  ~ Meta[nomadml.version]: '1.0.0' => '1.1.0'" in lines
    assert "  ~ group model (1 canary, 2 ignore)" in lines
    assert "      ~ Env[NOMADML_MODEL_VERSION]: '1.0.0' => '1.1.0'" in lines


def test_unchanged_plan() -> None:
    s = summarize(
        "iris-v1",
        {
            "JobModifyIndex": 7,
            "Diff": {"Type": "None"},
            "Annotations": {"DesiredTGUpdates": {"model": {"Ignore": 2}}},
        },
    )
    assert not s.changed
    assert s.lines() == ["job iris-v1: no changes"]


def test_placement_failures_and_warnings_are_reported() -> None:
    plan = {
        "Diff": {"Type": "Added"},
        "Warnings": "a warning\n",
        "FailedTGAllocs": {
            "model": {
                "DimensionExhausted": {"memory": 1},
                "ConstraintFiltered": {"missing host volume": 1},
            }
        },
    }
    lines = summarize("x-v1", plan).lines()
    assert "warning: a warning" in lines
    assert "placement failure in group model: memory (1); missing host volume (1)" in lines


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({}, "was not created by nomadml"),
        ({"nomadml.managed": "false"}, "was not created by nomadml"),
        ({"nomadml.managed": "true", "nomadml.model": "other"}, "belongs to model 'other'"),
    ],
)
def test_ownership_refusals(meta: dict[str, str], message: str) -> None:
    with pytest.raises(NotOwned, match=message):
        check_owner("iris-v1", {"Meta": meta}, "iris")


def test_ownership_accepts_new_and_own_jobs() -> None:
    check_owner("iris-v1", None, "iris")
    check_owner("iris-v1", {"Meta": {"nomadml.managed": "true", "nomadml.model": "iris"}}, "iris")
