"""Progress as data: the rollout engine emits typed events; the CLI decides how
to show them (terminal, plain lines, JSON lines)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    kind: str  # plan, registered, deployment, progress, gate, promote, fail, revert, result, note
    job_id: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": round(self.at, 3),
            "kind": self.kind,
            "job": self.job_id,
            "message": self.message,
            **({"data": self.data} if self.data else {}),
        }


Emit = Callable[[Event], None]


def discard(_: Event) -> None:
    """An event sink that shows nothing."""


def fanout(*sinks: Emit) -> Emit:
    """One sink that passes every event to each of `sinks`, in order."""

    def emit(event: Event) -> None:
        for sink in sinks:
            sink(event)

    return emit
