"""A placement failure names what the group asked for (pure)."""

from __future__ import annotations

from typing import Any

from nomadml.core.plan import summarize

PLAN: dict[str, Any] = {
    "FailedTGAllocs": {
        "model": {"ConstraintFiltered": {"missing compatible host volumes": 1}},
    }
}
JOB = {
    "TaskGroups": [
        {"Name": "model", "Volumes": {"models": {"Type": "host", "Source": "models-nowhere"}}}
    ]
}


def test_a_missing_host_volume_is_named() -> None:
    failures = summarize("iris-v1", PLAN, JOB).placement_failures
    assert failures == {
        "model": "missing compatible host volumes (1); no eligible node has the host volume "
        "'models-nowhere' the group mounts"
    }


def test_without_the_job_nomad_words_alone() -> None:
    assert summarize("iris-v1", PLAN).placement_failures == {
        "model": "missing compatible host volumes (1)"
    }


def test_other_failures_name_no_volume() -> None:
    plan = {"FailedTGAllocs": {"model": {"DimensionExhausted": {"memory": 1}}}}
    assert summarize("iris-v1", plan, JOB).placement_failures == {"model": "memory (1)"}
