"""The shadow phase of a stepped rollout (`[update.shadow]`): the canary takes none of
its line's traffic, the model's router mirrors `share` percent of the line's requests
to it and compares its answers with stable's; the verdict (core.shadow) decides
whether the canary goes on to its steps or is rolled back, having served no one.

Same interface as the gate runners (active, next_sample, step, history, restart);
SteppedGates drives it before the first step."""

from __future__ import annotations

import time
from typing import Any

from nomadml.adapters.metric_scrape import shadow_readings
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.routing import Line, Mirror, Split, backend_name, line_major
from nomadml.core.schema import seconds
from nomadml.core.shadow import ShadowCounts, carried, judge_shadow, shadow_values
from nomadml.core.spec import Shadow
from nomadml.engine import router
from nomadml.events import Emit, Event


class ShadowPhase:
    def __init__(
        self,
        api: NomadAPI,
        model: str,
        line: str,
        stable: str,
        canary: str,
        rule: Shadow,
        interval_s: float,
    ) -> None:
        self.api, self.model, self.line = api, model, line
        self.stable, self.canary, self.rule = stable, canary, rule
        self.interval_s = interval_s
        self.backend = backend_name(line, canary)
        self.active, self.next_sample, self.started = False, 0.0, 0.0
        self.outcome, self.reason = "pending", ""
        self._records: list[dict[str, Any]] = []
        self._last: dict[str, ShadowCounts] = {}  # per router allocation, as last read
        self._banked = ShadowCounts()  # counted by router processes since reloaded
        self._baseline = ShadowCounts()  # what a replaced canary's shadow counted

    def history(self) -> list[dict[str, Any]]:
        return list(self._records)

    def restart(self) -> None:
        """A canary was replaced: judge afresh, from what is counted from now on."""
        if self.outcome == "pending" and self.active:
            self._baseline = self._total()
            self.started = time.monotonic()

    def start(self, emit: Emit) -> None:
        """The canary takes no traffic; `share` percent of the line's is mirrored to it."""
        line = Line(
            self.line,
            line_major(self.line),
            (Split(self.stable, 100), Split(self.canary, 0)),
            mirror=Mirror(self.canary, self.rule.share, self.rule.compare, self.rule.tolerance),
        )
        router.route_line(self.api, self.model, line, emit)
        said = (
            f"router: {self.canary} shadows {self.rule.share}% of {self.line} (its answers "
            f"are compared with {self.stable}'s and discarded; it serves no client)"
        )
        emit(Event("note", self.line, said, {"shadow": self.rule.share}))
        self.active = True
        self.started = self.next_sample = time.monotonic()

    def _total(self) -> ShadowCounts:
        """Everything counted so far, over every router (one that does not answer this
        round adds what it said last) and across their reloads."""
        for key, now in shadow_readings(self.api, self.model, self.backend).items():
            self._banked = carried(self._banked, self._last.get(key, ShadowCounts()), now)
            self._last[key] = now
        total = self._banked
        for counts in self._last.values():
            total = total + counts
        return total

    def step(self, job_id: str, canary_ids: list[str], emit: Emit) -> tuple[str, str]:
        """(pending|passed|failed|inconclusive, reason)."""
        now = time.monotonic()
        if self.outcome != "pending" or now < self.next_sample:
            return self.outcome, self.reason
        self.next_sample = now + self.interval_s
        verdict = judge_shadow(
            self._total() - self._baseline,
            self.rule,
            now - self.started,
            seconds(self.rule.timeout),
        )
        record = {
            "t": round(now - self.started, 1),
            "phase": "shadow",
            "verdict": verdict.verdict,
            "values": verdict.values,
            "reasons": [verdict.reason] if verdict.state == "failed" else [],
            "source": "router",
        }
        self._records.append(record)
        v = verdict.values
        agreement = v["shadow_agreement"]
        latency = v["shadow_latency_ms"]
        emit(
            Event(
                "gate",
                job_id,
                f"shadow {verdict.verdict}: {self.canary} agreed with {self.stable} on "
                f"{v['shadow_agreed']} of {v['shadow_compared']} answers"
                f" ({'n/a' if agreement is None else f'{100 * agreement:.1f}%'}), "
                f"{v['shadow_errors']} errors, {v['shadow_dropped']} dropped, p95 "
                f"{'n/a' if latency is None else f'{latency:.0f} ms'}",
                record,
            )
        )
        if verdict.state != "pending":
            self.outcome, self.reason = verdict.state, verdict.reason
        return self.outcome, self.reason


def shadow_figures(api: NomadAPI, model: str, line: Line, mirror: Mirror) -> dict[str, Any]:
    """A running shadow on `line` as the routers counted it (since their last reload)."""
    total = ShadowCounts()
    for counts in shadow_readings(api, model, backend_name(line.job, mirror.version)).values():
        total = total + counts
    return {"version": mirror.version, "share": mirror.share, **shadow_values(total)}
