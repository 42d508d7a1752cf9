"""The rollout decision: a pure function from what nomadml observes about a
deployment to what it should do next. The loop in engine/watch.py does the I/O; table
tests drive this function directly."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field


class Action(enum.Enum):
    WAIT = "wait"  # nothing to do until something changes
    RUN_GATES = "run-gates"  # canaries healthy: keep measuring them against stable
    PROMOTE = "promote"
    FAIL = "fail"  # fail the deployment through Nomad (Nomad reverts if auto_revert)
    AWAIT_PROMOTION = "await-promotion"  # --no-promote: stop here, canaries stay
    SUCCEEDED = "succeeded"
    ROLLED_BACK = "rolled-back"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"

    @property
    def final(self) -> bool:
        return self in FINAL


FINAL = {
    Action.AWAIT_PROMOTION,
    Action.SUCCEEDED,
    Action.ROLLED_BACK,
    Action.FAILED,
    Action.CANCELLED,
    Action.TIMEOUT,
}


@dataclass(frozen=True)
class GroupState:
    """One task group of a deployment, as Nomad reports it."""

    name: str
    desired_total: int
    desired_canaries: int = 0
    placed_canaries: int = 0
    healthy: int = 0
    unhealthy: int = 0
    promoted: bool = False


@dataclass(frozen=True)
class Observation:
    status: str  # Nomad deployment status
    description: str = ""
    groups: tuple[GroupState, ...] = ()
    gates: str = "none"  # none (health only) | pending | passed | failed | inconclusive
    gate_reason: str = ""
    placement_failures: tuple[str, ...] = ()
    unhealthy_reasons: tuple[str, ...] = ()
    promote_requested: bool = False
    fail_requested: bool = False
    no_promote: bool = False
    timed_out: bool = False


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str = ""
    rolled_back_to: int | None = field(default=None)


REVERT = re.compile(r"rolling back to job version (\d+)")


def decide(obs: Observation) -> Decision:
    """What to do next, and why, in one line an operator can read."""
    if obs.status == "successful":
        return Decision(Action.SUCCEEDED, obs.description or "deployment successful")
    if obs.status == "cancelled":
        return Decision(Action.CANCELLED, obs.description or "deployment cancelled")
    if obs.status == "failed":
        reverted = REVERT.search(obs.description)
        if reverted:
            return Decision(Action.ROLLED_BACK, obs.description, int(reverted.group(1)))
        return Decision(Action.FAILED, obs.description or "deployment failed")
    if obs.timed_out:
        return Decision(Action.TIMEOUT, f"still {obs.status} at the deadline: {obs.description}")
    if obs.fail_requested:
        return Decision(Action.WAIT, "waiting for Nomad to fail the deployment")
    if obs.placement_failures:
        return Decision(Action.FAIL, "placement failed: " + "; ".join(obs.placement_failures))
    canary_groups = [g for g in obs.groups if g.desired_canaries > 0]
    if any(g.unhealthy for g in obs.groups):
        why = "; ".join(obs.unhealthy_reasons) or "an allocation is unhealthy"
        return Decision(Action.FAIL, f"unhealthy allocation: {why}")
    if obs.status == "paused":
        return Decision(Action.WAIT, "deployment paused by an operator")
    pending = [g for g in canary_groups if not g.promoted]
    if not pending:
        # No canaries, or promoted (by us or someone else): the rolling update runs on.
        return Decision(Action.WAIT, obs.description or "rolling update in progress")
    not_ready = [g for g in pending if g.healthy < g.desired_canaries]
    if not_ready:
        g = not_ready[0]
        return Decision(
            Action.WAIT,
            f"canaries of {g.name}: {g.placed_canaries}/{g.desired_canaries} placed, "
            f"{g.healthy}/{g.desired_canaries} healthy",
        )
    if obs.gates == "failed":
        return Decision(Action.FAIL, f"gate failed: {obs.gate_reason}")
    if obs.gates == "pending":
        return Decision(Action.RUN_GATES, "canaries healthy; measuring canary against stable")
    if obs.gates == "inconclusive":
        # Not enough evidence by the deadline (a quiet hour): never a silent pass, never
        # a false rollback; the canaries stay and the operator decides.
        return Decision(
            Action.AWAIT_PROMOTION,
            f"no verdict by the deadline: {obs.gate_reason}; promote or roll back",
        )
    if obs.no_promote:
        return Decision(Action.AWAIT_PROMOTION, "canaries healthy and gates passed; not promoting")
    if obs.promote_requested:
        return Decision(Action.WAIT, "promotion requested; waiting for Nomad")
    return Decision(Action.PROMOTE, "canaries healthy and gates passed")
