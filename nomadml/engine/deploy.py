"""`deploy`: plan, register with check-and-set, tag, watch, gate, then promote or
fail through Nomad. Every decision comes from core.decide; the watch does the I/O."""

from __future__ import annotations

import time
from typing import Any

from nomadml.adapters.metric_scrape import DirectScrape, MetricSource, RouterMetrics
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.adapters.prometheus import PrometheusSource, PromQueries
from nomadml.core.decide import Action
from nomadml.core.schema import seconds
from nomadml.core.spec import ModelSpec
from nomadml.engine.job_version import register_version
from nomadml.engine.majors import retire_old_majors
from nomadml.engine.prepare import Prepared, plan
from nomadml.engine.result import RolloutResult
from nomadml.engine.shadow import ShadowPhase
from nomadml.engine.steps import SteppedGates
from nomadml.engine.watch import WatchOptions, watch
from nomadml.errors import BadInput, NomadMLError
from nomadml.events import Emit, Event, discard


def deploy(
    api: NomadAPI,
    prepared: Prepared,
    *,
    no_promote: bool = False,
    timeout_s: float | None = None,
    emit: Emit = discard,
    stream: bool = True,
) -> RolloutResult:
    """Plan, register with check-and-set, tag, watch, gate, promote or fail.
    `stream=False` watches with blocking queries instead of the event stream."""
    started = time.monotonic()
    spec, version = prepared.spec, prepared.release.version
    job, summary = plan(api, prepared)
    api = api.scoped(job.get("Namespace"))
    job_id = job["ID"]
    emit(Event("plan", job_id, summary.lines()[0], {"totals": summary.totals()}))
    if summary.change == "Edited":  # a new job's diff is the whole job: not worth printing
        for line in summary.lines()[1:]:
            emit(Event("plan", job_id, line))
    if summary.placement_failures:
        reasons = "; ".join(f"{g}: {r}" for g, r in summary.placement_failures.items())
        return RolloutResult(
            Action.FAILED,
            job_id,
            version,
            f"cannot be placed: {reasons}",
            seconds=time.monotonic() - started,
        )
    options = WatchOptions(
        no_promote=no_promote, timeout_s=timeout_s or default_timeout(spec), stream=stream
    )
    if not summary.changed:
        current = api.job(job_id) or {}
        emit(Event("note", job_id, f"{job_id} already runs {version}; following its deployment"))
        return watch(
            api,
            job_id,
            int(current.get("Version", 0)),
            version,
            options,
            gate_runner(prepared, api),
            emit,
            started=started,
        )
    gates = gate_runner(prepared, api, emit)
    answer, job_version = register_version(
        api,
        job,
        enforce_index=summary.job_modify_index,
        source=prepared.hcl,
        model_version=version,
        record={
            "kind": "deploy",
            "outcome": "running",
            "spec_hash": spec.spec_hash,
            "image": prepared.release.model_image,
        },
        why=f"nomadml deploy of {spec.name} {version} (spec {spec.spec_hash})",
        emit=emit,
    )
    result = watch(
        api,
        job_id,
        job_version,
        version,
        options,
        gates,
        emit,
        eval_id=answer.get("EvalID"),
        started=started,
        after_index=int(answer.get("JobModifyIndex") or 0),
    )
    if result.action is Action.SUCCEEDED:
        from nomadml.engine.router import route_new_line

        route_new_line(api, spec.name, job_id, version, emit)  # a new major: now it serves
        # Only a healthy new line retires older majors; a failed one never does.
        retire_old_majors(api, spec.name, job_id, spec.lifecycle, emit)
    if isinstance(gates, SteppedGates):
        _settle_routes(api, gates, result, emit)
    settle(api, prepared, result, emit)
    if spec.guard.bake:
        from nomadml.engine.guard import arm

        arm(api, spec, result, emit)  # the bake itself: `nomadml guard` (or deploy's CLI)
    return result


def _settle_routes(api: NomadAPI, gates: SteppedGates, result: RolloutResult, emit: Emit) -> None:
    """After stepped canaries: the line's traffic all to what it now runs."""
    from nomadml.core.routing import Line, Split, line_major
    from nomadml.engine import router

    if not gates.active:
        return
    keep = gates.canary if result.action is Action.SUCCEEDED else gates.stable
    settled = Line(gates.line, line_major(gates.line), (Split(keep, 100),))
    try:
        router.set_line(api, gates.model, settled)
    except NomadMLError as err:  # the rollout is done; the table follows when it can
        emit(Event("note", gates.line, f"router table not updated: {err}"))
        return
    emit(Event("note", gates.line, f"router: {keep} takes all of {gates.line}"))


def settle(api: NomadAPI, prepared: Prepared, result: RolloutResult, emit: Emit) -> None:
    """The rollout's outcome in the model registry, for a version it holds."""
    record = prepared.record
    if record is None:
        return
    from nomadml.adapters.model_store import ModelRegistry
    from nomadml.engine.stages import settle_rollout

    stage = settle_rollout(ModelRegistry(api), record, result.action, result.reason, result.gates)
    if stage is not None:
        data = {"version": record.version, "stage": stage}
        emit(Event("stage", record.model, f"{record.model} {record.version} -> {stage}", data))


def default_timeout(spec: ModelSpec) -> float:
    """Nomad's own deadline for the rollout plus the gates, plus a margin."""
    return seconds(spec.update.progress_deadline) + seconds(spec.gates.window) * 2 + 60


def gate_runner(prepared: Prepared, api: NomadAPI, emit: Emit = discard) -> Any:
    spec = prepared.spec
    if not spec.gates.analysis or spec.update.canary == 0:
        return None
    if spec.gates.probe.enabled:  # a bad probe file is one line before anything is sent
        from nomadml.engine.probes import load_instances

        load_instances(spec)
    if spec.gates.source == "prometheus":  # so is a query Prometheus refuses
        _prometheus(spec).check(prepared.job_id)
    if spec.update.steps:
        stepped = _stepped(prepared, api, emit)
        if stepped is not None:
            return stepped
    return _runner(prepared, api)


def _stepped(prepared: Prepared, api: NomadAPI, emit: Emit) -> SteppedGates | None:
    """Canary steps through the model's router: when the model has one, and its table
    routes this line to one stable version (that version keeps the rest)."""
    from nomadml.core.routing import line_major
    from nomadml.engine import router

    spec, job_id = prepared.spec, prepared.job_id
    table = router.read_table(api, spec.name)
    line = table.line(line_major(job_id)) if table is not None else None
    stable = [s.version for s in line.splits if s.weight == 100] if line is not None else []
    running = api.job(job_id) if line is None and spec.update.shadow.share else None
    if running is not None and running.get("Status") != "dead":
        # A line's first version has no canary and nothing to compare with: no shadow.
        raise BadInput(
            f"{spec.source}: update.shadow: no router routes {job_id} (the shadow phase "
            f"mirrors traffic at the model's router): run `nomadml router up {spec.source}` "
            "first, or remove [update.shadow]"
        )
    if line is not None and not stable:
        # Split between versions (an A/B test, weights set by hand): no one stable
        # version keeps the rest, so neither steps nor a shadow phase can run.
        split = " ".join(f"{s.version}={s.weight}%" for s in line.splits)
        if spec.update.shadow.share:
            raise BadInput(
                f"{spec.source}: update.shadow: the router splits {job_id} ({split}), so no "
                f"one stable version is mirrored: route it to one first (`nomadml router "
                f"weights {spec.name} {job_id} VERSION=100`), or remove [update.shadow]"
            )
        emit(Event("note", job_id, f"update.steps: the router splits this line ({split}); "
                   "the canary count decides the canary's share"))  # fmt: skip
        return None
    if not stable or stable[0] == prepared.release.version:
        emit(Event("note", job_id, "update.steps: no router routes this line yet; "
                   "the canary count decides the canary's share"))  # fmt: skip
        return None
    source: MetricSource | None = None
    if spec.gates.source == "router":
        # The router counts what each version answered: the gates read it from
        # wherever the router is reachable, not from the allocations themselves.
        source = RouterMetrics(
            api, spec.name, spec.gates.metrics.path, job_id, stable[0], prepared.release.version
        )
    emit(Event("note", job_id, f"gates read {'the router' if source else 'each allocation'}"
               f"'s metrics (gates.source = {spec.gates.source})"))  # fmt: skip
    shadow = None
    if spec.update.shadow.share:
        shadow = ShadowPhase(
            api,
            spec.name,
            job_id,
            stable[0],
            prepared.release.version,
            spec.update.shadow,
            seconds(spec.gates.interval),
        )
    return SteppedGates(
        api,
        spec.name,
        job_id,
        stable[0],
        prepared.release.version,
        spec.update.steps,
        lambda: _runner(prepared, api, source),
        shadow,
        judged=spec.gates.judge.enabled,
    )


def _runner(prepared: Prepared, api: NomadAPI, source: MetricSource | None = None) -> Any:
    spec = prepared.spec
    direct = source is None
    if source is None and spec.gates.source == "prometheus":
        source = _prometheus(spec)
    elif source is None:  # no router routes the line, or the spec asks for the fallback
        source = DirectScrape(api, spec.gates.metrics, spec.serving.metrics_path)
    runner: Any
    if spec.gates.judge.enabled:
        from nomadml.engine.judge_runner import JudgeRunner

        runner = JudgeRunner(spec.gates, source)
    else:
        from nomadml.engine.gate_runner import GateRunner

        runner = GateRunner(spec.gates, source)
    if spec.gates.probe.enabled and (direct or isinstance(source, RouterMetrics)):
        from nomadml.engine.probes import Prober, ProbingGates, load_instances

        # Through the router when the gates read it (it counts the probes apart).
        via = None
        if isinstance(source, RouterMetrics):
            via = (spec.name, source.stable, source.canary)
        body = load_instances(spec)
        runner = ProbingGates(
            runner, Prober(api, prepared.job_id, body, spec.gates.probe.rate_per_s, via)
        )
    return runner


def _prometheus(spec: ModelSpec) -> PrometheusSource:

    p = spec.gates.prometheus
    return PrometheusSource(
        PromQueries(p.url, p.requests, p.errors, p.latency), f"{spec.source}: gates.prometheus"
    )
