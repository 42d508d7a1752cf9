"""Canary steps as the watch loop drives them: each step sets the canary's share at
the router and starts fresh gates; a passed last step is a pass; a failed gate takes
the canary's weight to 0 before anything else (rollback by routing)."""

from __future__ import annotations

from typing import Any

import pytest

from nomadml.core.routing import Line
from nomadml.engine import router
from nomadml.engine.steps import SteppedGates
from nomadml.events import Event


class ScriptedGates:
    """A gate runner that answers what it is told, one answer per step() call."""

    def __init__(self, answers: list[str]) -> None:
        self.answers, self.active, self.next_sample = answers, False, 0.0

    def step(self, job_id: str, canary_ids: list[str], emit: Any) -> tuple[str, str]:
        state = self.answers.pop(0)
        return state, "error rate 50% > max 1%" if state == "failed" else ""

    def history(self) -> list[dict[str, Any]]:
        return [{"verdict": "x"}]

    def restart(self) -> None:
        self.restarted = True


def _run(
    monkeypatch: pytest.MonkeyPatch, per_step: list[list[str]], judged: bool = False
) -> tuple[list[int], list[tuple[str, str]]]:
    weights: list[int] = []

    def set_line(api: object, model: str, line: Line) -> None:
        assert line.job == "iris-v1" and [s.version for s in line.splits] == ["1.0.0", "1.1.0"]
        weights.append(line.splits[1].weight)

    monkeypatch.setattr(router, "set_line", set_line)
    runners = iter(ScriptedGates(list(answers)) for answers in per_step)
    api: Any = None  # the router calls are replaced above
    gates = SteppedGates(
        api, "iris", "iris-v1", "1.0.0", "1.1.0", (20, 100), lambda: next(runners), judged=judged
    )
    events: list[Event] = []
    states: list[tuple[str, str]] = []
    for _ in range(sum(len(a) for a in per_step)):
        state = gates.step("iris-v1", ["c1"], events.append)
        states.append(state)
        if state[0] in ("passed", "failed"):
            break
    return weights, states


def test_steps_pass_one_after_another(monkeypatch: pytest.MonkeyPatch) -> None:
    weights, states = _run(monkeypatch, [["pending", "passed"], ["pending", "passed"]])
    assert weights == [20, 100]
    assert [s for s, _ in states] == ["pending", "pending", "pending", "passed"]


def test_with_the_judge_the_last_step_has_no_stable_arm_to_compare_with(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At 100% stable serves no one: the judge could only wait for its deadline. The
    canary passed at 20% passes, with its weight at 100% (no look at 100% asked for)."""
    weights, states = _run(monkeypatch, [["pending", "passed"], []], judged=True)
    assert weights == [20, 100]
    assert states[-1] == ("passed", "passed at 20%")


def test_a_failed_gate_routes_the_canary_to_nothing_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    weights, states = _run(monkeypatch, [["pending", "failed"]])
    assert weights == [20, 0]
    assert states[-1] == ("failed", "at 20%: error rate 50% > max 1%")


def test_each_gate_entry_carries_its_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """The record (and `nomadml report`) can tell where each step began."""
    monkeypatch.setattr(router, "set_line", lambda api, model, line: None)
    runners = iter([ScriptedGates(["passed"]), ScriptedGates(["pending"])])
    api: Any = None
    gates = SteppedGates(api, "iris", "iris-v1", "1.0.0", "1.1.0", (20, 100), lambda: next(runners))
    gates.step("iris-v1", ["c1"], lambda event: None)  # step 20 passes: on to 100
    gates.step("iris-v1", ["c1"], lambda event: None)
    assert [entry["step"] for entry in gates.history()] == [20, 100]
