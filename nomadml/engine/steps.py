"""Weighted canary steps through the model's router (`[update] steps = [5, 25, 50,
100]`): the canary's share of its line's traffic is set at the router, not by the
instance count, and the gates run at every step; the last step passed, the canary is
promoted. A failing gate takes the canary's weight to 0 at once (rollback by
routing: no request reaches it from that moment) before Nomad reverts the line.

With a shadow phase (`[update.shadow]`, engine/shadow.py) first: the canary takes no
traffic but a mirrored share of it; it goes on to the steps only if its answers agree
with stable's, and fails having served no one otherwise.

Same interface as GateRunner and JudgeRunner: the watch loop drives it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.routing import Line, Split, line_major
from nomadml.engine import router
from nomadml.engine.shadow import ShadowPhase
from nomadml.events import Emit, Event

Runner = Any  # a GateRunner or JudgeRunner: active, next_sample, step(), history()


class SteppedGates:
    def __init__(
        self,
        api: NomadAPI,
        model: str,
        line: str,
        stable: str,
        canary: str,
        steps: tuple[int, ...],
        new_runner: Callable[[], Runner],
        shadow: ShadowPhase | None = None,
        *,
        judged: bool = False,
    ) -> None:
        self.api, self.model, self.line = api, model, line
        self.stable, self.canary, self.steps = stable, canary, steps
        self.new_runner = new_runner
        self.index = -1
        self.runner: Runner = None
        self.active, self.next_sample = False, 0.0
        self._history: list[dict[str, Any]] = []
        self.rollback_at: float | None = None  # when the canary's weight went to 0
        self.shadow = shadow  # until it passes, the canary is judged on mirrored traffic
        # The judge compares canary with stable: at 100% stable serves no one, so after
        # an earlier step passed the last one has nothing left to judge (it would wait
        # for its deadline). Threshold gates still check the canary's own numbers there.
        self.judged = judged

    def restart(self) -> None:
        """A canary was replaced: the current step's gates judge afresh."""
        if self.shadow is not None and self.runner is None:
            self.shadow.restart()
        if self.runner is not None:
            self.runner.restart()

    def history(self) -> list[dict[str, Any]]:
        """The shadow phase's entries, then every step's, each with the canary's share."""
        shadow = self.shadow.history() if self.shadow is not None else []
        steps = self._at_step(self.runner.history()) if self.runner else []
        return shadow + self._history + steps

    def _at_step(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**entry, "step": self.steps[self.index]} for entry in entries]

    def _weigh(self, share: int, emit: Emit) -> None:
        splits = (Split(self.stable, 100 - share), Split(self.canary, share))
        line = Line(self.line, line_major(self.line), splits)
        router.route_line(self.api, self.model, line, emit)
        said = f"router: {self.canary} takes {share}% of {self.line}, {self.stable} {100 - share}%"
        emit(Event("note", self.line, said, {"step": share}))

    def _next_step(self, emit: Emit) -> None:
        if self.runner is not None:
            self._history += self._at_step(self.runner.history())
        self.index += 1
        self._weigh(self.steps[self.index], emit)
        self.runner = self.new_runner()

    def step(self, job_id: str, canary_ids: list[str], emit: Emit) -> tuple[str, str]:
        """(pending|passed|failed|inconclusive, reason), moving through the steps."""
        if not self.active:
            self.active = True
            if self.shadow is not None:
                self.shadow.start(emit)
            else:
                self._next_step(emit)
        if self.runner is None and self.shadow is not None:
            return self._shadow_step(job_id, canary_ids, emit)
        state, reason = self.runner.step(job_id, canary_ids, emit)
        self.next_sample = self.runner.next_sample
        if state == "passed" and self.index + 1 < len(self.steps):
            self._next_step(emit)
            if self.judged and self.steps[self.index] == 100:
                passed_at = self.steps[self.index - 1]
                emit(Event("note", self.line, f"judge: nothing to compare at 100% ({self.stable} "
                           f"serves no one); the canary passed at {passed_at}%"))  # fmt: skip
                return "passed", f"passed at {passed_at}%"
            return "pending", ""
        if state == "failed":
            self.rollback_at = time.monotonic()
            self._weigh(0, emit)  # rollback by routing, before Nomad reverts
            return state, f"at {self.steps[self.index]}%: {reason}"
        return state, reason

    def _shadow_step(self, job_id: str, canary_ids: list[str], emit: Emit) -> tuple[str, str]:
        """The shadow phase: passed -> the first step (the mirror ends with the new
        weights); failed -> the mirror ends, the canary having served no one."""
        assert self.shadow is not None
        state, reason = self.shadow.step(job_id, canary_ids, emit)
        self.next_sample = self.shadow.next_sample
        if state == "passed":
            emit(Event("note", self.line, f"shadow phase passed: {reason}"))
            self._next_step(emit)
            return "pending", ""
        if state == "failed":
            self.rollback_at = time.monotonic()
            self._weigh(0, emit)  # the mirror ends: the line is stable's alone
            return state, f"in the shadow phase: {reason}"
        return state, reason
