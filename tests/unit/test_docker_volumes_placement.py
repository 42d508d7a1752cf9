"""Whether the retraining job's nomadml task (it mounts host paths in a docker task) can
ever run, from Nomad's plan of the job constrained to the docker driver's
`driver.docker.volumes.enabled` (pure)."""

from __future__ import annotations

from typing import Any

from nomadml.core.plan import summarize

FILTERED = "${attr.driver.docker.volumes.enabled} = true"


def _plan(metric: dict[str, Any] | None) -> dict[str, Any]:
    return {"FailedTGAllocs": {"train": metric} if metric is not None else {}}


def test_some_or_all_nodes_allow_it_the_plan_places_the_run() -> None:
    # Nomad placed it (on the nodes the constraint keeps): nothing to refuse.
    summary = summarize("iris-retrain", _plan(None))
    assert summary.no_docker_volumes == () and summary.placement_failures == {}


def test_no_node_allows_it_names_the_setting_and_the_block() -> None:
    summary = summarize("iris-retrain", _plan({"ConstraintFiltered": {FILTERED: 3}}))
    assert summary.no_docker_volumes == ("train",)
    reason = summary.placement_failures["train"]
    assert reason.startswith(f"{FILTERED} (3); no eligible node's docker driver allows")
    assert 'volumes { enabled = true } to the clients\' plugin "docker"' in reason
    assert "\n" not in reason


def test_the_others_filtered_for_another_reason_still_refuses() -> None:
    # One client has no docker at all, the other has docker without volumes.
    metric = {"ConstraintFiltered": {"missing drivers": 1, FILTERED: 1}, "NodesExhausted": 0}
    assert summarize("iris-retrain", _plan(metric)).no_docker_volumes == ("train",)


def test_busy_clients_that_allow_it_are_no_refusal() -> None:
    # A node that allows volumes is only full now: the run is at its cron time.
    metric = {
        "ConstraintFiltered": {FILTERED: 2},
        "DimensionExhausted": {"memory": 1},
        "NodesExhausted": 1,
    }
    summary = summarize("iris-retrain", _plan(metric))
    assert summary.no_docker_volumes == ()
    assert "no eligible node's docker driver" not in summary.placement_failures["train"]


def test_another_constraint_alone_is_no_docker_volumes_refusal() -> None:
    metric = {"ConstraintFiltered": {"${node.class} = gpu": 2}}
    assert summarize("iris-retrain", _plan(metric)).no_docker_volumes == ()
