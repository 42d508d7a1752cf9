"""The post-promotion guard: after `deploy` promotes, the line stays under watch for the
spec's `[guard] bake`. Every evaluation interval: observe (the promoted version's traffic
since the last look, from each of its allocations' /metrics) -> decide (core.guard, pure)
-> act (on a regression: roll the line back at once, alert, dispatch retraining).

`arm` runs at the end of a successful deploy: it stores in the rollout record what the
guard needs to run from Nomad alone (its configuration, stable's traffic during the
rollout as the baseline, the promotion time, the metric names, the webhook). `bake` runs
or resumes the bake of a line in the foreground (`nomadml guard LINE`; `deploy` goes on
into it). Its state is written to the rollout record after every look, and the step from
"baking" to acting is a check-and-set on that record: two guards never act twice on one
regression, and a guard that restarts goes on from the last look."""

from __future__ import annotations

import contextlib
import time
from collections import deque
from typing import Any

from nomadml.adapters import rollout_records as history
from nomadml.adapters.metric_scrape import MetricScraper, RouterMetrics
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.decide import Action
from nomadml.core.gates import GateConfig
from nomadml.core.guard import (
    Baseline,
    GuardConfig,
    GuardDecision,
    GuardState,
    Look,
    baseline_from_gates,
    decide,
)
from nomadml.core.guard_source import Source, block_since, from_router
from nomadml.core.guard_takeover import takeover_step
from nomadml.core.judge import JudgeConfig
from nomadml.core.metrics import MetricNames, Snapshot, merge
from nomadml.core.schema import seconds
from nomadml.core.spec import ModelSpec
from nomadml.engine.guard_record import (
    FIELD,
    TAKEOVER_S,
    GuardResult,
    armed,
    claim,
    record_of,
    save_state,
    settled,
    write_outcome,
)
from nomadml.engine.result import RolloutResult
from nomadml.errors import BadInput, NomadMLError
from nomadml.events import Emit, Event, discard


def config_of(spec: ModelSpec) -> GuardConfig:
    """The guard's configuration from a spec with `[guard] bake` set."""
    judge = spec.gates.judge
    return GuardConfig(
        bake_s=seconds(spec.guard.bake),
        interval_s=seconds(spec.gates.interval),
        compare="thresholds" if spec.guard.compare == "thresholds" else "judge",
        on_regression="alert" if spec.guard.on_regression == "alert" else "rollback",
        retrain=spec.guard.retrain,
        judge=JudgeConfig(
            alpha=judge.alpha,
            error_increase=judge.error_increase,
            slow_increase=judge.slow_increase,
            latency=judge.latency,
        ),
        gates=GateConfig.from_spec(spec.gates),
    )


def arm(
    api: NomadAPI, spec: ModelSpec, result: RolloutResult, emit: Emit = discard
) -> dict[str, Any] | None:
    """After a successful rollout of a spec with `[guard] bake`: the guard's record
    (configuration, baseline, promotion time); None when there is nothing to guard.
    Canaries left for a manual promotion get the record too, "awaiting-promotion":
    `nomadml promote` starts the bake (`started_by_promotion`)."""
    waiting = result.action is Action.AWAIT_PROMOTION
    if not spec.guard.bake or result.job_version is None:
        return None
    if result.action is not Action.SUCCEEDED and not waiting:
        return None
    cfg = config_of(spec)
    baseline = baseline_from_gates(result.gates)
    if baseline is None:
        emit(
            Event(
                "note",
                result.job_id,
                "guard: no stable traffic was measured during the "
                "rollout; only absolute thresholds can find a regression",
            )
        )
    data = {
        "status": "awaiting-promotion" if waiting else "baking",
        "model": spec.name,
        "version": result.model_version,
        "promoted_at": None if waiting else time.time(),
        "config": cfg.as_dict(),
        "baseline": (baseline or Baseline(Snapshot())).as_dict(),
        "metrics": {
            "names": {k: getattr(spec.gates.metrics, k) for k in _METRIC_FIELDS},
            "path": spec.serving.metrics_path,
        },
        "notify": {"webhook_url": spec.notify.webhook_url, "secret_env": spec.notify.secret_env},
        "state": GuardState().as_dict(),
    }
    history.record(api, result.job_id, result.job_version, {FIELD: data})
    emit(
        Event(
            "note",
            result.job_id,
            f"guard: {result.model_version} bakes for {spec.guard.bake} "
            f"{'once promoted ' if waiting else ''}"
            f"(compare = {cfg.compare}, on_regression = {cfg.on_regression})",
        )
    )
    return data


_METRIC_FIELDS = (
    "requests_total",
    "duration_seconds",
    "path_label",
    "path",
    "code_label",
    "predictions_total",  # the predicted labels, where the rollout had a prediction gate
    "prediction_label",
)


class _Observer:
    """The promoted version's traffic, look by look, where the rollout was judged: each
    of its allocations' /metrics, or (after a rollout judged at the router) what every
    router counted for its backend. A block is the sum of every place's change since the
    previous look (core.guard_source.block_since: a first reading is a zero, a reset -- a
    restart, a router reload -- counts from the reset)."""

    def __init__(
        self, api: NomadAPI, line: str, version: str, data: dict[str, Any], source: Source
    ) -> None:
        metrics = data.get("metrics") or {}
        names = MetricNames(**dict(metrics.get("names") or {}))
        self.api, self.line, self.version = api, line, version
        self.scraper = MetricScraper(names)
        self.path = str(metrics.get("path") or "/metrics")
        self.router: RouterMetrics | None = None
        if source == "router":  # the promoted version is both "arms": one backend
            model = str(data.get("model"))
            self.router = RouterMetrics(api, model, names.path, line, version, version)
        self.last: dict[str, Snapshot] = {}
        self.recent: deque[tuple[float, Snapshot]] = deque()

    def _read(self) -> dict[str, Snapshot]:
        if self.router is not None:
            return {r.key: from_router(r.snapshot) for r in self.router.read(self.line, set())}
        now = {}
        for reg in self.api.job_services(self.line):
            if f"version={self.version}" not in (reg.get("Tags") or []):
                continue
            snap = self.scraper.scrape(f"http://{reg['Address']}:{reg['Port']}{self.path}")
            if snap is not None:
                now[str(reg["AllocID"])] = snap
        return now

    def block(self, window_s: float) -> tuple[Snapshot, Snapshot]:
        """(traffic since the previous look, traffic over the last `window_s`)."""
        block, self.last = block_since(self.last, self._read())
        now = time.monotonic()
        self.recent.append((now, block))
        while self.recent and now - self.recent[0][0] > window_s:
            self.recent.popleft()
        return block, merge(b for _, b in self.recent)


def bake(api: NomadAPI, line: str, emit: Emit = discard) -> GuardResult:
    """Run (or resume) the bake of what `line` runs now, in the foreground, to its end."""
    job_version, data, current = armed(api, line)
    version = str(data.get("version", "?"))
    claimed_for = time.time() - float(data.get("detected_at") or 0)
    if data.get("status") == "rolling-back" and claimed_for > TAKEOVER_S:
        # The guard that claimed it stopped before finishing: this one finishes it.
        cfg = GuardConfig.from_dict(data.get("config") or {})
        return _act(api, line, job_version, data, cfg, emit)
    if data.get("status") == "awaiting-promotion":
        raise BadInput(
            f"{line}: {version} awaits its promotion (nomadml promote {line}); its bake starts then"
        )
    if data.get("status") != "baking":  # decided before (by this or another guard)
        return settled(line, version, data)
    if current != job_version:
        return _superseded(api, line, job_version, data, current, emit)
    cfg = GuardConfig.from_dict(data.get("config") or {})
    baseline = Baseline.from_dict(data.get("baseline") or {})
    state = GuardState.from_dict(data.get("state") or {})
    started = float(data.get("promoted_at") or time.time())
    observer = _Observer(api, line, version, data, baseline.source)
    watched = baseline.predictions is not None and cfg.compare == "judge"
    labels = "; predicted labels too" if watched else ""
    where = " at the router" if baseline.source == "router" else ""
    emit(
        Event(
            "note",
            line,
            f"guard: watching {version} until "
            f"{time.strftime('%H:%M:%S', time.gmtime(started + cfg.bake_s))} UTC "
            f"({cfg.compare}{where}, look every {cfg.interval_s:g} s{labels})",
        )
    )
    observer.block(cfg.gates.window)  # every allocation's zero
    index, next_look = 0, time.monotonic() + cfg.interval_s
    while True:
        # Wakes at once when the job changes (a new deploy, a rollback by hand), but
        # looks once per evaluation interval: the detector's bound counts the looks.
        answer = api.get(f"job/{line}", index, wait=max(0.5, next_look - time.monotonic()))
        index = max(answer.index, 1)
        job = answer.body or {}
        if int(job.get("Version", -1)) != job_version:
            return _superseded(api, line, job_version, data, job.get("Version"), emit)
        if time.monotonic() < next_look:
            continue
        next_look = time.monotonic() + cfg.interval_s
        block, window = observer.block(cfg.gates.window)
        decision = decide(Look(time.time() - started, block, window), baseline, state, cfg)
        state = decision.state
        if decision.action == "watch":
            with contextlib.suppress(NomadMLError):  # the state is for a resume; the bake goes on
                save_state(api, line, job_version, state, decision)
            continue
        return _conclude(api, line, job_version, data, decision, cfg, emit)


def _superseded(
    api: NomadAPI, line: str, job_version: int, data: dict[str, Any], now: Any, emit: Emit
) -> GuardResult:
    """The line runs another job version than the one baking (a deploy or a rollback
    by hand): that change is the operator's; the bake ends without acting."""
    reason = f"{line} moved on to job version {now}"
    return _finish(api, line, job_version, data, "superseded", reason, {}, emit)


def _conclude(
    api: NomadAPI,
    line: str,
    job_version: int,
    data: dict[str, Any],
    decision: GuardDecision,
    cfg: GuardConfig,
    emit: Emit,
) -> GuardResult:
    version = str(data.get("version", "?"))
    if decision.action == "cleared":
        return _finish(
            api,
            line,
            job_version,
            data,
            "cleared",
            decision.reason,
            decision.evidence,
            emit,
            state=decision.state,
        )
    acting = "rolling-back" if cfg.on_regression == "rollback" else "regressed"
    fields = {
        "reason": decision.reason,
        "evidence": decision.evidence,
        "state": decision.state.as_dict(),
        "detected_at": time.time(),
    }
    claimed = claim(api, line, job_version, acting, fields)
    if claimed is None:
        return settled(line, version, record_of(api, line, job_version))
    emit(
        Event(
            "regression",
            line,
            f"{version}: {decision.reason}",
            {"version": version, "evidence": decision.evidence, "on_regression": cfg.on_regression},
        )
    )
    _audit(api, data, version, line, decision.reason, decision.evidence)
    return _act(api, line, job_version, claimed, cfg, emit)


def _act(
    api: NomadAPI,
    line: str,
    job_version: int,
    claimed: dict[str, Any],
    cfg: GuardConfig,
    emit: Emit,
) -> GuardResult:
    """Act on a claimed regression: roll back (when the line still runs the regressed
    job version: the rollback registers with check-and-set, so it happens once), then
    dispatch retraining, then record the outcome."""
    version = str(claimed.get("version", "?"))
    reason, evidence = str(claimed.get("reason", "")), dict(claimed.get("evidence") or {})
    looks = int((claimed.get("state") or {}).get("looks", 0))
    result = GuardResult(line, version, "regressed", reason, evidence, looks=looks)
    if cfg.on_regression == "rollback":
        from nomadml.engine.guard_actions import finish_rollback, roll_back, settle_route

        job = api.job(line) or {}
        current = int(job.get("Version", -1))
        # A takeover: an earlier guard may have registered the rollback before it stopped
        # (routed: its deployment waits for nomadml's promotion). Never a second one.
        step = takeover_step(job_version, version, job, api.latest_deployment(line))
        if step == "register":
            result.rollback = roll_back(api, line, version, emit)
        elif step == "follow":
            result.rollback = finish_rollback(api, line, version, current, emit)
        if result.rollback is not None:
            ok = result.rollback.action is Action.SUCCEEDED
            result.outcome = "rolled-back" if ok else "rollback-failed"
            if not ok:
                result.reason += (
                    f"; the rollback {result.rollback.action.value}: {result.rollback.reason}"
                )
        elif step == "failed":
            result.outcome = "rollback-failed"
            result.reason += f"; the rollback's deployment (job version {current}) failed"
        else:
            if step == "done":  # the stopped guard may have left the regressed version at 0%
                settle_route(api, line, emit)
            result.outcome = "rolled-back"
            result.reason += f"; the line already moved on to job version {current}"
    if cfg.retrain:
        from nomadml.engine.guard_actions import dispatch_retraining

        result.retraining = dispatch_retraining(api, str(claimed.get("model")), line, version, emit)
    write_outcome(api, line, job_version, claimed, result)
    emit(Event("guard", line, f"guard: {result.outcome}: {result.reason}", result.as_dict()))
    return result


def _audit(
    api: NomadAPI,
    data: dict[str, Any],
    version: str,
    line: str,
    reason: str,
    evidence: dict[str, Any],
) -> None:
    from nomadml.adapters.model_store import ModelRegistry

    with contextlib.suppress(NomadMLError):  # the audit follows the decision, never blocks it
        ModelRegistry(api).audit(
            str(data.get("model")),
            "regression",
            version,
            {"line": line, "reason": reason, "evidence": evidence},
        )


def _finish(
    api: NomadAPI,
    line: str,
    job_version: int,
    data: dict[str, Any],
    outcome: str,
    reason: str,
    evidence: dict[str, Any],
    emit: Emit,
    state: GuardState | None = None,
) -> GuardResult:
    fields: dict[str, Any] = {"reason": reason, "evidence": evidence, "finished_at": time.time()}
    if state is not None:
        fields["state"] = state.as_dict()
    claimed = claim(api, line, job_version, outcome, fields)
    version = str(data.get("version", "?"))
    if claimed is None:
        return settled(line, version, record_of(api, line, job_version))
    result = GuardResult(
        line, version, outcome, reason, evidence, looks=state.looks if state else 0
    )
    emit(Event("guard", line, f"guard: {outcome}: {reason}", result.as_dict()))
    return result
