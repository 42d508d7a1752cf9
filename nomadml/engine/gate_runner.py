"""Canary analysis during a rollout: scrape every allocation's metrics endpoint at
the gate interval, compare the canary's last window with the stable version's, and
turn the verdicts into pending / passed / failed. The judging is pure (gates.py);
this class does the scraping and keeps the windows."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from nomadml.adapters.metric_scrape import MetricScraper
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.gates import GateConfig, GateTracker, evaluate, stats
from nomadml.core.metrics import Snapshot, delta, merge
from nomadml.core.spec import Gates
from nomadml.events import Emit, Event


class GateRunner:
    def __init__(self, api: NomadAPI, gates_spec: Gates, metrics_path: str) -> None:
        self.api = api
        self.cfg = GateConfig.from_spec(gates_spec)
        self.metrics_path = metrics_path
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
        self.scraper = MetricScraper(self.cfg.metrics)

    @property
    def outcome(self) -> str:
        return "failed" if self.gave_up else self.tracker.outcome

    def history(self) -> list[dict[str, Any]]:
        return list(self._records)

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
        result = evaluate(
            stats(merge(canaries), self.cfg.latency_percentile),
            stats(merge(stables), self.cfg.latency_percentile) if stables else None,
            self.cfg,
        )
        outcome = self.tracker.observe(result)
        record = {
            "t": round(now - self.started, 1),
            "verdict": result.verdict,
            "values": result.values,
            "reasons": list(result.reasons),
        }
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
        """Window deltas per allocation, split into canary and stable."""
        canaries: list[Snapshot] = []
        stables: list[Snapshot] = []
        for reg in self.api.job_services(job_id):
            alloc = reg["AllocID"]
            url = f"http://{reg['Address']}:{reg['Port']}{self.metrics_path}"
            snap = self.scraper.scrape(url)
            if snap is None:
                continue  # an allocation that cannot be scraped this round adds nothing
            window = self.windows.setdefault(alloc, deque())
            window.append((now, snap))
            while len(window) > 2 and now - window[1][0] >= self.cfg.window:
                window.popleft()
            if len(window) < 2:
                continue
            (canaries if alloc in canary_ids else stables).append(
                delta(window[0][1], window[-1][1])
            )
        return canaries, stables

    @staticmethod
    def _describe(verdict: str, values: dict[str, Any], reasons: tuple[str, ...]) -> str:
        def pct(v: Any) -> str:
            return "n/a" if v is None else f"{100 * v:.2f}%"

        def ms(v: Any) -> str:
            return "n/a" if v is None else f"{v:.0f} ms"

        text = (
            f"gate {verdict}: canary {values.get('canary_requests', 0)} req, errors "
            f"{pct(values.get('canary_error_rate'))}, latency {ms(values.get('canary_latency_ms'))}"
            f" | stable {values.get('stable_requests', 0)} req, errors "
            f"{pct(values.get('stable_error_rate'))}, latency {ms(values.get('stable_latency_ms'))}"
        )
        return text + (f" — {'; '.join(reasons)}" if reasons and verdict != "pass" else "")
