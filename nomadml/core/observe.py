"""Turn Nomad's answers (deployment, allocations, evaluation) into the plain facts
the decision function needs. Pure."""

from __future__ import annotations

from typing import Any

from nomadml.core.decide import GroupState

FAILURE_EVENTS = {
    "Driver Failure",
    "Failed Validation",
    "Failed Artifact Download",
    "Setup Failure",
    "Task hook failed",
    "Terminated",
    "Killed",
    "Not Restarting",
    "Alloc Unhealthy",
}


def groups(deployment: dict[str, Any]) -> tuple[GroupState, ...]:
    out = []
    for name, g in sorted((deployment.get("TaskGroups") or {}).items()):
        out.append(
            GroupState(
                name=name,
                desired_total=int(g.get("DesiredTotal") or 0),
                desired_canaries=int(g.get("DesiredCanaries") or 0),
                placed_canaries=len(g.get("PlacedCanaries") or []),
                healthy=int(g.get("HealthyAllocs") or 0),
                unhealthy=int(g.get("UnhealthyAllocs") or 0),
                promoted=bool(g.get("Promoted")),
            )
        )
    return tuple(out)


def placement_failures(evaluation: dict[str, Any] | None) -> tuple[str, ...]:
    """The scheduler's reasons when it could not place allocations."""
    if not evaluation:
        return ()
    out = []
    for group, metric in sorted((evaluation.get("FailedTGAllocs") or {}).items()):
        reasons = [f"{k}: {v}" for k, v in (metric.get("ConstraintFiltered") or {}).items()]
        reasons += [
            f"{k} exhausted: {v}" for k, v in (metric.get("DimensionExhausted") or {}).items()
        ]
        reasons += [
            f"class {k} filtered: {v}" for k, v in (metric.get("ClassFiltered") or {}).items()
        ]
        evaluated = metric.get("NodesEvaluated", 0)
        detail = ", ".join(reasons) or "no node fits"
        out.append(f"group {group}: {detail} ({evaluated} nodes evaluated)")
    return tuple(out)


def failed_tasks(alloc: dict[str, Any]) -> list[tuple[str, str]]:
    """(task, what its events say) for tasks that failed or were restarted."""
    out = []
    for task, state in sorted((alloc.get("TaskStates") or {}).items()):
        events = state.get("Events") or []
        bad = [e for e in events if e.get("Type") in FAILURE_EVENTS or e.get("FailsTask")]
        if state.get("Failed") or bad:
            said = [(e.get("DisplayMessage") or e.get("Type") or "").strip() for e in bad[-3:]]
            text = "; ".join(dict.fromkeys(said))  # restarts repeat the same words
            out.append((task, text or "task failed"))
    return out


def unhealthy(allocs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        a
        for a in allocs
        if (a.get("DeploymentStatus") or {}).get("Healthy") is False
        or a.get("ClientStatus") == "failed"
    ]


def canaries_ready(states: tuple[GroupState, ...]) -> bool:
    """Every group's canaries are healthy and some still await promotion: the moment
    the gates may look at them."""
    return (
        bool(states)
        and all(g.healthy >= g.desired_canaries for g in states if g.desired_canaries)
        and any(g.desired_canaries and not g.promoted for g in states)
    )


def placed_canaries(deployment: dict[str, Any]) -> list[str]:
    """The allocation ids of the deployment's canaries, from the deployment itself."""
    return [
        alloc
        for group in (deployment.get("TaskGroups") or {}).values()
        for alloc in group.get("PlacedCanaries") or []
    ]
