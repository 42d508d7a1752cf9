"""A trainer that already ran in its own task: the retraining job's `train` task, in
the operator's training image, before nomadml's own task in the nomadml image. Its
output is a directory; how it ended is what Nomad recorded for the task."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.acl import bind_command
from nomadml.core.task_state import last_event, trainer_exit_code
from nomadml.errors import BadInput, NomadAPIError

TRAINER_STATE_WAIT_S = 60.0
Log = Callable[[str], None]


@dataclass(frozen=True)
class Trained:
    """A trainer that already ran in its own task (the retraining job's `train` task in
    the operator's training image): its output directory, and where Nomad tells how it
    ended (the allocation and task), if nomadml runs in the same allocation."""

    directory: Path
    alloc_id: str = ""
    task: str = ""
    job: str = ""  # the retraining job (a periodic run's parent), for the operator's hint


def check_trained(api: NomadAPI, trained: Trained, log: Log) -> None:
    """The trainer's own task ended with exit 0 and left metadata.json, or BadInput."""
    if trained.alloc_id and trained.task:
        try:
            state = _ended_task(api, trained)
        except NomadAPIError as err:
            if err.status not in (403, 500):  # ACLs: Nomad says "Unknown allocation"
                raise
            job = trained.job or "<model>-retrain"
            namespace = api.settings.namespace or "default"
            command = bind_command("retraining", namespace, job, f"nomadml-{job}")
            raise BadInput(
                f"cannot read this allocation ({err.message}): is the retraining policy bound "
                f"to job {job}? ({command}); nothing registered"
            ) from None
        if not state:
            raise BadInput(
                f"trainer task {trained.task!r} is not in allocation {trained.alloc_id[:8]}: "
                "nothing registered"
            )
        code = trainer_exit_code(state)
        if state.get("Failed") or code:
            raise BadInput(
                f"trainer task {trained.task!r} exited {code if code is not None else '?'}"
                f" ({last_event(state)}): nothing registered"
            )
        log(f"trainer task {trained.task!r} exited 0")
    if not (trained.directory / "metadata.json").is_file():
        raise BadInput(
            f"trainer wrote no metadata.json into {trained.directory}: nothing registered"
        )


def _ended_task(api: NomadAPI, trained: Trained) -> dict[str, Any] | None:
    """The trainer task's state once the servers know it ended: the client reports task
    states in batches, so this task may start before they hear of the trainer's end."""
    deadline, index = time.monotonic() + TRAINER_STATE_WAIT_S, 0
    state: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        answer = api.get(f"allocation/{trained.alloc_id}", index, wait=5)
        state = ((answer.body or {}).get("TaskStates") or {}).get(trained.task)
        if state and state.get("State") == "dead":
            return dict(state)
        index = answer.index
    return state
