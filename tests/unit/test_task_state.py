"""A task held by a template that may not read a Nomad Variable, from its events."""

from __future__ import annotations

import pytest

from nomadml.core.task_state import waits_for_variable

PATH = "nomadml/routes/iris"
MISSING = {"Type": "Template", "DisplayMessage": f"Missing: nomad.var.block({PATH}@default.global)"}
RECEIVED = {"Type": "Received", "DisplayMessage": "Task received by client"}
SETUP = {"Type": "Task Setup", "DisplayMessage": "Building Task Directory"}
STARTED = {"Type": "Started", "DisplayMessage": "Task started by client"}


@pytest.mark.parametrize(
    ("events", "held"),
    [
        ([RECEIVED, SETUP, MISSING], True),  # rendering waits for the variable
        ([RECEIVED, SETUP, MISSING, STARTED], False),  # readable since (the policy bound)
        ([RECEIVED, SETUP, STARTED], False),
        ([RECEIVED, SETUP], False),  # not rendered yet
        ([], False),
        (  # another variable
            [RECEIVED, {**MISSING, "DisplayMessage": "Missing: nomad.var.block(x@default.global)"}],
            False,
        ),
        (  # a path that only starts like ours
            [RECEIVED, {**MISSING, "DisplayMessage": f"Missing: nomad.var.block({PATH}2@default)"}],
            False,
        ),
    ],
)
def test_a_task_held_by_an_unreadable_variable(events: list[dict[str, str]], held: bool) -> None:
    assert waits_for_variable({"Events": events}, PATH) is held
