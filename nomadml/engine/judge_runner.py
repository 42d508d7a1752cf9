"""The sequential judge during a rollout (`[gates.judge] enabled = true`): every
interval, each place's counters since the canaries turned healthy are read (the
router's per-version counters, or each allocation's metrics endpoint),
summed per arm (canary, stable) and handed to `core.judge` with the previous verdict
(one test per rollout, however often it looks). It decides as soon as the evidence
suffices: pass, fail, or at the deadline `inconclusive`, which becomes what the spec
says (await the operator: exit 8; fail; or promote). Same interface as GateRunner."""

from __future__ import annotations

import time
from typing import Any

from nomadml.adapters.metric_scrape import MetricSource
from nomadml.core.judge import JudgeConfig, Verdict, estimate, evidence, judge, slow_threshold
from nomadml.core.metrics import Snapshot, buckets_record, delta, merge, quantile
from nomadml.core.prediction_sequential import SequentialShift, sequential_shift
from nomadml.core.schema import seconds
from nomadml.core.spec import Gates
from nomadml.events import Emit, Event

INCONCLUSIVE = {"await": "inconclusive", "fail": "failed", "promote": "passed"}


class JudgeRunner:
    def __init__(self, gates: Gates, source: MetricSource) -> None:
        spec = gates.judge
        self.source = source
        self.cfg = JudgeConfig(
            alpha=spec.alpha,
            error_increase=spec.error_increase,
            slow_increase=spec.slow_increase,
            latency=spec.latency,
        )
        self.interval, self.deadline_s = seconds(gates.interval), seconds(spec.deadline)
        self.on_inconclusive = spec.on_inconclusive
        # Each arm's latency between looks, at the gates' percentile: for the record and the
        # report's charts (the judge itself counts slow requests).
        self.percentile = gates.latency_percentile
        self._arms: tuple[Snapshot, Snapshot] = (Snapshot(), Snapshot())
        self.baseline: dict[str, Snapshot] = {}
        self.stable_before: Snapshot | None = None
        self.slow_above_s: float | None = None
        self.verdict: Verdict | None = None
        self.active, self.started, self.next_sample = False, 0.0, 0.0
        self.state, self.reason = "pending", ""
        self.estimated = False
        self._records: list[dict[str, Any]] = []
        # [gates.predictions] with the judge: the sequential test of the predicted labels,
        # looked at with the judge's cadence; a pass waits for min_predictions of them.
        self.predictions = gates.predictions if gates.predictions.enabled else None
        self.shift: SequentialShift | None = None
        self.judged: Verdict | None = None  # the judge's pass, while predictions are awaited

    def history(self) -> list[dict[str, Any]]:
        return list(self._records)

    def restart(self) -> None:
        """Judge afresh (a canary was replaced): the evidence so far was another
        allocation's; a decision already taken stays."""
        if self.state != "pending":
            return
        self._arms = (Snapshot(), Snapshot())
        self.baseline = {}
        self.stable_before = None
        self.verdict = None
        self.shift, self.judged = None, None
        self.active = False

    def step(self, job_id: str, canary_ids: list[str], emit: Emit) -> tuple[str, str]:
        """Look if due; return (pending|passed|failed|inconclusive, reason)."""
        now = time.monotonic()
        if not self.active:
            self.active, self.started, self.next_sample = True, now, now
        if self.state != "pending" or now < self.next_sample:
            return self.state, self.reason
        self.next_sample = now + self.interval
        canary, stable = self._since_start(job_id, set(canary_ids))
        elapsed = now - self.started
        at_deadline = elapsed >= self.deadline_s
        if canary is None or stable is None or (canary.requests == 0 and not at_deadline):
            return self.state, self.reason
        if not self.estimated and elapsed > 0 and canary.requests + stable.requests > 0:
            self._estimate(job_id, canary, stable, elapsed, emit)
        if self.judged is None:
            ev = evidence(canary, stable, self.slow_above_s, stable_before=self.stable_before)
            self.verdict = judge(ev, self.cfg, deadline=at_deadline, previous=self.verdict)
        assert self.verdict is not None
        said = self.verdict.describe()
        record: dict[str, Any] = {
            "t": round(elapsed, 1),
            "verdict": self.verdict.decision,
            "values": {
                "canary_requests": int(canary.requests),
                "canary_errors": int(canary.errors),
                "stable_requests": int(stable.requests),
                "stable_errors": int(stable.errors),
                **self._latency_since_last_look(canary, stable),
            },
            "judge": self.verdict.as_dict(),
            "source": self.source.name,
        }
        decision = self._with_predictions(canary, stable, at_deadline, record)
        if decision != self.verdict.decision:
            said = str(record["predictions"]["said"])
        if decision != "inconclusive" and stable.buckets:
            # The deciding look keeps stable's merged histogram (compact, once per
            # rollout): the post-promotion guard's latency baseline. After a rollout
            # judged at the router it is the router's, and the guard reads the router.
            record["stable_histogram"] = buckets_record(stable.buckets)
        record["verdict"] = decision
        self._records.append(record)
        emit(Event("gate", job_id, said, record))
        if decision == "pass":
            self.state = "passed"
        elif decision == "fail":
            self.state, self.reason = "failed", said
        elif decision == "inconclusive-at-deadline":
            self.state = INCONCLUSIVE[self.on_inconclusive]
            self.reason = f"{said} (on_inconclusive = {self.on_inconclusive})"
        return self.state, self.reason

    def _with_predictions(
        self, canary: Snapshot, stable: Snapshot, at_deadline: bool, record: dict[str, Any]
    ) -> str:
        """The look's decision with the prediction check: a shift fails the canary
        whatever the judge says; the judge's pass waits (its verdict kept) until the
        canary gave min_predictions predictions, at most until the deadline."""
        decision = self.verdict.decision if self.verdict else "inconclusive"
        check = self.predictions
        if check is None:
            return decision
        self.shift = sequential_shift(
            dict(canary.predictions), dict(stable.predictions), check.alpha, self.shift
        )
        shown: dict[str, Any] = self.shift.as_dict()
        record["predictions"] = shown
        record["values"]["canary_predictions"] = int(self.shift.canary_n)
        record["values"]["stable_predictions"] = int(self.shift.stable_n)
        if self.shift.shifted:
            shown["said"] = self.shift.describe()
            return "fail"
        if decision != "pass":
            return decision
        self.judged = self.verdict
        if self.shift.canary_n >= check.min_predictions:
            return "pass"
        waiting = (
            f"{self.verdict.describe() if self.verdict else 'pass'}; predictions: "
            f"{self.shift.canary_n:.0f} of the {check.min_predictions} canary predictions "
            "a pass needs"
        )
        shown["said"] = waiting
        return "inconclusive-at-deadline" if at_deadline else "inconclusive"

    def _since_start(
        self, job_id: str, canary_ids: set[str]
    ) -> tuple[Snapshot | None, Snapshot | None]:
        """Each arm's traffic since the canaries turned healthy (an allocation's first
        scrape is its zero). Stable's counters at that moment are its history before
        the rollout, which steers the judge and sets what "slow" means."""
        canaries: list[Snapshot] = []
        stables: list[Snapshot] = []
        first_stables: list[Snapshot] = []
        for reading in self.source.read(job_id, canary_ids):
            key, snap = reading.key, reading.snapshot
            if key not in self.baseline:
                self.baseline[key] = snap
                if not reading.canary:
                    first_stables.append(snap)
            since = delta(self.baseline[key], snap)
            (canaries if reading.canary else stables).append(since)
        if self.stable_before is None and first_stables:
            self.stable_before = merge(first_stables)
            if self.cfg.latency:
                self.slow_above_s = slow_threshold(self.stable_before, self.cfg)
        if not canaries or not stables:
            return None, None
        return merge(canaries), merge(stables)

    def _estimate(
        self, job_id: str, canary: Snapshot, stable: Snapshot, elapsed: float, emit: Emit
    ) -> None:
        """Once traffic is seen: about how long the judge needs, said before it decides."""
        total = canary.requests + stable.requests
        if total <= 0 or stable.requests <= 0 or canary.requests <= 0:
            return
        self.estimated = True
        before = self.stable_before or stable
        base = before.errors / before.requests if before.requests else 0.0
        guess = estimate(
            total / elapsed,
            min(max(base, 0.0), 0.5),
            self.cfg.error_increase,
            self.cfg.alpha,
            min(max(canary.requests / total, 0.01), 0.99),
            config=self.cfg,
        )
        emit(
            Event(
                "note",
                job_id,
                guess.describe(total / elapsed, self.cfg.error_increase, self.cfg.alpha),
            )
        )

    def _latency_since_last_look(self, canary: Snapshot, stable: Snapshot) -> dict[str, Any]:
        """Each arm's latency (ms, at the gates' percentile) in the traffic since the
        previous look; None for an arm without observations."""
        before, self._arms = self._arms, (canary, stable)
        out: dict[str, Any] = {"latency_percentile": self.percentile}
        for arm, now, then in (("canary", canary, before[0]), ("stable", stable, before[1])):
            q = quantile(delta(then, now).buckets, self.percentile)
            out[f"{arm}_latency_ms"] = None if q is None else round(q * 1000.0, 3)
        return out
