"""How a Nomad task ended, read from its recorded state (pure)."""

from __future__ import annotations

from typing import Any


def trainer_exit_code(state: dict[str, Any]) -> int | None:
    """The exit code of a finished task, from its Terminated event."""
    for event in reversed(state.get("Events") or []):
        if event.get("Type") == "Terminated":
            return int(event.get("ExitCode") or 0)
    return None


def last_event(state: dict[str, Any]) -> str:
    """What Nomad said last about the task (e.g. "Policy allows no restarts")."""
    events = state.get("Events") or []
    if not events:
        return "no events"
    last = events[-1]
    return str(last.get("DisplayMessage") or last.get("Type") or "?")


def waits_for_variable(state: dict[str, Any], path: str) -> bool:
    """A task held before it starts by a template that cannot read the Nomad Variable
    `path`. Nomad says "Missing: nomad.var.block(PATH@namespace.region)" both for a
    variable that does not exist and for one the task's workload identity may not read
    (with ACLs on, any path outside nomad/jobs/<its job> without a policy bound to it)."""
    for event in reversed(state.get("Events") or []):
        kind = event.get("Type")
        if kind in ("Started", "Terminated", "Killing", "Restarting"):
            return False
        if kind == "Template":
            return f"nomad.var.block({path}@" in str(event.get("DisplayMessage") or "")
    return False
