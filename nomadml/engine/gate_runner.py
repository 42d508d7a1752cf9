"""Canary analysis during a rollout: read the metric source (the router's
per-version counters, or every allocation's metrics endpoint) at the gate interval,
compare the canary's last window with the stable version's, and turn the verdicts
into pending / passed / failed. The judging is pure (gates.py); this class reads the
source and keeps the windows."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from nomadml.adapters.metric_scrape import MetricSource
from nomadml.core.gates import GateConfig, GateTracker, evaluate, stats
from nomadml.core.metrics import Snapshot, buckets_record, delta, merge
from nomadml.core.spec import Gates
from nomadml.events import Emit, Event


class GateRunner:
    def __init__(self, gates_spec: Gates, source: MetricSource) -> None:
        self.cfg = GateConfig.from_spec(gates_spec)
        self.source = source
        self.tracker = GateTracker(self.cfg)
        self.windows: dict[str, deque[tuple[float, Snapshot]]] = {}
        self.active = False
        self.started = 0.0
        self.next_sample = 0.0
        self._records: list[dict[str, Any]] = []
        # Not enough traffic for this long after canaries turned healthy fails the gate.
        self.give_up_after = self.cfg.window * (self.cfg.consecutive_passes + 2)
        self.verdict_reason = ""
        self.gave_up = False

    @property
    def outcome(self) -> str:
        return "failed" if self.gave_up else self.tracker.outcome

    def history(self) -> list[dict[str, Any]]:
        return list(self._records)

    def restart(self) -> None:
        """Judge afresh (a canary was replaced): no window, streak or clock carries over;
        a decision already taken stays."""
        if self.outcome != "pending":
            return
        self.tracker = GateTracker(self.cfg)
        self.windows.clear()
        self.active = False

    def step(self, job_id: str, canary_ids: list[str], emit: Emit) -> tuple[str, str]:
        """Sample if due; return (pending|passed|failed, reason)."""
        now = time.monotonic()
        if not self.active:
            self.active, self.started, self.next_sample = True, now, now
        if self.outcome != "pending":
            return self.outcome, self.verdict_reason
        if now < self.next_sample:
            return "pending", ""
        self.next_sample = now + self.cfg.interval
        canaries, stables = self._scrape(job_id, set(canary_ids), now)
        if not canaries:
            return "pending", ""
        stable = merge(stables) if stables else None
        result = evaluate(
            stats(merge(canaries), self.cfg.latency_percentile),
            stats(stable, self.cfg.latency_percentile) if stable else None,
            self.cfg,
        )
        outcome = self.tracker.observe(result)
        record: dict[str, Any] = {
            "t": round(now - self.started, 1),
            "verdict": result.verdict,
            "values": result.values,
            "reasons": list(result.reasons),
            "source": self.source.name,
        }
        if outcome != "pending" and stable is not None and stable.buckets:
            # The deciding window keeps stable's histogram: the guard's latency baseline,
            # measured where the guard will read (the router's, with gates.source router).
            record["stable_histogram"] = buckets_record(stable.buckets)
        self._records.append(record)
        emit(
            Event(
                "gate",
                job_id,
                self._describe(result.verdict, result.values, result.reasons),
                record,
            )
        )
        if outcome == "failed":
            self.verdict_reason = "; ".join(result.reasons)
        elif outcome == "pending" and now - self.started > self.give_up_after:
            self.gave_up = True
            self.verdict_reason = f"no verdict after {self.give_up_after:.0f} s: " + (
                "; ".join(result.reasons) or "not enough passing windows"
            )
        return self.outcome, self.verdict_reason

    def _scrape(
        self, job_id: str, canary_ids: set[str], now: float
    ) -> tuple[list[Snapshot], list[Snapshot]]:
        """Window deltas per place (allocation, or router and version), split into
        canary and stable; a place that cannot be read this round adds nothing."""
        canaries: list[Snapshot] = []
        stables: list[Snapshot] = []
        for reading in self.source.read(job_id, canary_ids):
            window = self.windows.setdefault(reading.key, deque())
            window.append((now, reading.snapshot))
            while len(window) > 2 and now - window[1][0] >= self.cfg.window:
                window.popleft()
            if len(window) < 2:
                continue
            (canaries if reading.canary else stables).append(delta(window[0][1], window[-1][1]))
        return canaries, stables

    @staticmethod
    def _describe(verdict: str, values: dict[str, Any], reasons: tuple[str, ...]) -> str:
        def pct(v: Any) -> str:
            return "n/a" if v is None else f"{100 * v:.2f}%"

        def ms(v: Any) -> str:
            return "n/a" if v is None else f"{v:.0f} ms"

        def probes(side: str) -> str:
            n = values.get(f"{side}_probe_requests")
            return f" ({n} probes)" if n else ""

        text = (
            f"gate {verdict}: canary {values.get('canary_requests', 0)} req{probes('canary')},"
            " errors "
            f"{pct(values.get('canary_error_rate'))}, latency {ms(values.get('canary_latency_ms'))}"
            f" | stable {values.get('stable_requests', 0)} req{probes('stable')}, errors "
            f"{pct(values.get('stable_error_rate'))}, latency {ms(values.get('stable_latency_ms'))}"
        )
        return text + (f" — {'; '.join(reasons)}" if reasons and verdict != "pass" else "")
