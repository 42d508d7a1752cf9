"""Progress as data: the rollout engine emits typed events; the CLI decides how
to show them (terminal, plain lines, JSON lines)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

# Every kind of event there is. A webhook receiver or a `--json` reader can rely on
# this set: mypy checks each emitter against it, and Event refuses anything else.
EventKind = Literal[
    "plan",  # what the register will change
    "registered",  # a job version was registered (and tagged, and recorded)
    "deployment",  # the deployment being followed
    "canary-healthy",  # every canary passed Nomad's health checks
    "progress",  # the rollout decision changed
    "gate",  # a canary gate window, or a version's validation gates
    "promote",  # canaries promoted
    "fail",  # a deployment failed on purpose (gates, health, deadline)
    "revert",  # Nomad's revert to the previous version finished
    "result",  # the rollout's end: outcome, reason, timings
    "retire",  # an old major line stopped
    "register",  # a model version registered in the model registry
    "stage",  # a model version moved to another stage
    "retrain",  # a retraining run's outcome
    "data-check",  # training or evaluation data failed its checks
    "expire",  # an old rejected or superseded version's image was deleted
    "regression",  # the post-promotion guard found the promoted version regressed
    "guard",  # the post-promotion guard's outcome: cleared, rolled back, regressed
    "note",  # anything else worth a line
]
EVENT_KINDS: frozenset[str] = frozenset(get_args(EventKind))


@dataclass(frozen=True)
class Event:
    kind: EventKind
    job_id: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {self.kind!r}")

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
