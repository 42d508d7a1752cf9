"""The rollout decision, driven through a table of situations."""

from __future__ import annotations

import pytest

from nomadml.core.decide import Action, GroupState, Observation, decide

CANARY_WAITING = GroupState(
    "model", desired_total=2, desired_canaries=1, placed_canaries=1, healthy=1
)
CANARY_PLACED_UNHEALTHY_YET = GroupState("model", 2, 1, 1, healthy=0)
CANARY_NOT_PLACED = GroupState("model", 2, 1, 0, 0)
PROMOTED = GroupState("model", 2, 1, 1, healthy=2, promoted=True)
NO_CANARY = GroupState("model", 2, 0, 0, healthy=1)
UNHEALTHY = GroupState("model", 2, 1, 1, healthy=0, unhealthy=1)
TWO_CANARIES_ONE_HEALTHY = GroupState("model", 4, 2, 2, healthy=1)
MANUAL = "Deployment is running but requires manual promotion"

TABLE: list[tuple[str, Observation, Action, str]] = [
    (
        "successful",
        Observation("successful", "Deployment completed successfully"),
        Action.SUCCEEDED,
        "completed",
    ),
    (
        "failed and reverted",
        Observation(
            "failed", "Failed due to unhealthy allocations - rolling back to job version 3"
        ),
        Action.ROLLED_BACK,
        "rolling back to job version 3",
    ),
    (
        "failed by us and reverted",
        Observation(
            "failed",
            "Deployment marked as failed - rolling back to job version 0",
            fail_requested=True,
        ),
        Action.ROLLED_BACK,
        "version 0",
    ),
    (
        "failed, nothing to revert to",
        Observation(
            "failed", "Failed due to progress deadline - no stable job version to auto revert to"
        ),
        Action.FAILED,
        "no stable job version",
    ),
    (
        "failed without auto revert",
        Observation("failed", "Deployment marked as failed"),
        Action.FAILED,
        "marked as failed",
    ),
    (
        "cancelled by a newer version",
        Observation("cancelled", "Cancelled due to newer version of job"),
        Action.CANCELLED,
        "newer version",
    ),
    (
        "client deadline reached",
        Observation(
            "running", "Deployment is running", (CANARY_PLACED_UNHEALTHY_YET,), timed_out=True
        ),
        Action.TIMEOUT,
        "deadline",
    ),
    (
        "deadline beats a pending fail",
        Observation("running", "", (UNHEALTHY,), fail_requested=True, timed_out=True),
        Action.TIMEOUT,
        "deadline",
    ),
    (
        "end state beats deadline",
        Observation("successful", "done", timed_out=True),
        Action.SUCCEEDED,
        "done",
    ),
    (
        "placement failed",
        Observation(
            "running",
            "",
            (CANARY_NOT_PLACED,),
            placement_failures=("group model: memory exhausted: 1",),
        ),
        Action.FAIL,
        "memory exhausted",
    ),
    (
        "unhealthy canary, with the task's words",
        Observation(
            "running", "", (UNHEALTHY,), unhealthy_reasons=("task bootstrap: checksum mismatch",)
        ),
        Action.FAIL,
        "checksum mismatch",
    ),
    (
        "unhealthy without details",
        Observation("running", "", (UNHEALTHY,)),
        Action.FAIL,
        "an allocation is unhealthy",
    ),
    (
        "fail already requested",
        Observation("running", "", (UNHEALTHY,), fail_requested=True),
        Action.WAIT,
        "waiting for Nomad to fail",
    ),
    (
        "canary not placed yet",
        Observation("running", "", (CANARY_NOT_PLACED,)),
        Action.WAIT,
        "0/1 placed",
    ),
    (
        "canary placed, not healthy yet",
        Observation("running", "", (CANARY_PLACED_UNHEALTHY_YET,)),
        Action.WAIT,
        "0/1 healthy",
    ),
    (
        "one of two canaries healthy",
        Observation("running", "", (TWO_CANARIES_ONE_HEALTHY,)),
        Action.WAIT,
        "1/2 healthy",
    ),
    (
        "healthy canary, gates measuring",
        Observation("running", MANUAL, (CANARY_WAITING,), gates="pending"),
        Action.RUN_GATES,
        "measuring",
    ),
    (
        "healthy canary, gates failed",
        Observation(
            "running", MANUAL, (CANARY_WAITING,), gates="failed", gate_reason="error rate 50% > 1%"
        ),
        Action.FAIL,
        "error rate 50%",
    ),
    (
        "healthy canary, gates passed",
        Observation("running", MANUAL, (CANARY_WAITING,), gates="passed"),
        Action.PROMOTE,
        "gates passed",
    ),
    (
        "judge inconclusive at the deadline: the operator decides",
        Observation(
            "running", MANUAL, (CANARY_WAITING,), gates="inconclusive", gate_reason="judge: 3 req"
        ),
        Action.AWAIT_PROMOTION,
        "no verdict by the deadline: judge: 3 req; promote or roll back",
    ),
    (
        "healthy canary, health-only gates",
        Observation("running", MANUAL, (CANARY_WAITING,)),
        Action.PROMOTE,
        "canaries healthy",
    ),
    (
        "healthy canary, --no-promote",
        Observation("running", MANUAL, (CANARY_WAITING,), gates="passed", no_promote=True),
        Action.AWAIT_PROMOTION,
        "not promoting",
    ),
    (
        "promotion requested, waiting",
        Observation("running", MANUAL, (CANARY_WAITING,), gates="passed", promote_requested=True),
        Action.WAIT,
        "promotion requested",
    ),
    (
        "promoted by someone else",
        Observation("running", "Deployment is running", (PROMOTED,), gates="pending"),
        Action.WAIT,
        "running",
    ),
    (
        "no canaries: rolling update",
        Observation("running", "Deployment is running", (NO_CANARY,)),
        Action.WAIT,
        "running",
    ),
    (
        "paused by an operator",
        Observation("paused", "Deployment is paused", (CANARY_PLACED_UNHEALTHY_YET,)),
        Action.WAIT,
        "paused",
    ),
    (
        "gates failed but someone promoted",
        Observation("running", "", (PROMOTED,), gates="failed"),
        Action.WAIT,
        "",
    ),
]


@pytest.mark.parametrize(
    ("observation", "action", "why"), [row[1:] for row in TABLE], ids=[row[0] for row in TABLE]
)
def test_decision_table(observation: Observation, action: Action, why: str) -> None:
    decision = decide(observation)
    assert decision.action is action
    assert why in decision.reason


def test_table_is_big_enough() -> None:
    assert len(TABLE) >= 20


def test_rolled_back_reports_the_version() -> None:
    d = decide(Observation("failed", "Deployment marked as failed - rolling back to job version 7"))
    assert d.rolled_back_to == 7


def test_final_actions() -> None:
    assert {a for a in Action if a.final} == {
        Action.AWAIT_PROMOTION,
        Action.SUCCEEDED,
        Action.ROLLED_BACK,
        Action.FAILED,
        Action.CANCELLED,
        Action.TIMEOUT,
    }
