"""A/B experiments at the model's router: a fixed split between versions of one line,
sticky by a header's or a cookie's value (the same key reaches the same arm every
time, at every router), with each arm's requests, errors and latency as the routers
counted them. Its start and its end (with the numbers at that moment) go to the
model's audit trail (`nomadml model history`); `nomadml status` shows it running.

An experiment ends when the line's split is set again (`nomadml router weights`, or a
rollout's canary steps)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from nomadml.adapters.metric_scrape import router_counts
from nomadml.adapters.model_store import ModelRegistry
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.metrics import MetricNames
from nomadml.core.router_metrics import ArmNumbers, across_numbers, arm_numbers, unserved_versions
from nomadml.core.routing import Across, Line, RoutingTable, Split, Sticky, check, parse_weights
from nomadml.core.spec import parse_version
from nomadml.engine import router
from nomadml.errors import BadInput


def start(api: NomadAPI, model: str, split: str, sticky: Sticky) -> RoutingTable:
    """Split one line between the arms of `split` (e.g. `1.1.0=50,1.2.0=50`), sticky by
    `sticky`; the line's other versions keep weight 0 (reachable by naming them)."""
    words = [w.strip() for w in split.split(",") if w.strip()]
    for word in words:
        parse_version(word.partition("=")[0], f"--split {word}")
    majors = sorted({parse_version(w.partition("=")[0])[0] for w in words})
    if len(majors) != 1:
        raise BadInput(
            f"--split {split}: the arms must be versions of one major (one line), "
            f"not of {', '.join(map(str, majors))}"
        )
    job = f"{model}-v{majors[0]}"
    arms = parse_weights(job, majors[0], words).splits
    if len([a for a in arms if a.weight]) < 2:
        raise BadInput(f"--split {split}: an A/B split needs at least two arms with a share")
    current = router.read_table(api, model) or router.running_lines(api, model)
    named = {a.version for a in arms}
    existing = current.line(majors[0])
    rest = (
        [Split(s.version, 0) for s in existing.splits if s.version not in named] if existing else []
    )
    line = Line(job, majors[0], (*arms, *rest), sticky)
    table = router.set_line(api, model, line)  # checks weights and running arms first
    shown = ",".join(f"{a.version}={a.weight}" for a in arms)
    ModelRegistry(api).audit(
        model, "ab-start", shown, {"line": job, "split": shown, "sticky": str(sticky)}
    )
    return table


def start_across(api: NomadAPI, model: str, split: str, sticky: Sticky) -> RoutingTable:
    """Split the requests that name no version between lines (majors), e.g. `1=50,2=50`,
    sticky by `sticky`; each line's own split applies within its share."""
    arms = []
    for word in (w.strip() for w in split.split(",") if w.strip()):
        major, _, weight = word.partition("=")
        if not (major.isdigit() and weight.isdigit()):
            raise BadInput(f"--split {word!r}: expected MAJOR=PERCENT such as 1=50")
        arms.append((int(major), int(weight)))
    figures: list[dict[str, Any]] = []

    def set_across(current: RoutingTable) -> RoutingTable:
        table = check(replace(current, across=Across(tuple(arms), sticky)))
        for arm, _ in arms:
            line = table.line(arm)
            assert line is not None  # check() refuses an arm without a line
            if not {s.version for s in line.splits if s.weight} & router.running_versions(
                api, line.job
            ):
                raise BadInput(
                    f"--split {split}: no running server of {line.job}'s versions with a share"
                )
        figures[:] = [across_figures(api, current)] if current.across is not None else []
        return table

    changed = router.publish(api, model, set_across, rebuild=True)
    assert changed is not None  # set_across always writes
    table, ended = changed.table, changed.before.across
    registry = ModelRegistry(api)
    if ended is not None:
        registry.audit(model, "ab-end", str(ended), figures[0])
    registry.audit(model, "ab-start", str(table.across), {"across": split, "sticky": str(sticky)})
    return table


def end_across(api: NomadAPI, model: str) -> RoutingTable:
    """End the A/B experiment across majors: unversioned requests to the default line."""
    figures: list[dict[str, Any]] = []

    def end(current: RoutingTable) -> RoutingTable:
        if current.across is None:
            raise BadInput(f"{model}: no A/B experiment across majors runs")
        figures[:] = [across_figures(api, current)]
        return replace(current, across=None)

    changed = router.publish(api, model, end)
    if changed is None:
        raise BadInput(f"{model}: no A/B experiment across majors runs")
    ModelRegistry(api).audit(model, "ab-end", str(changed.before.across), figures[0])
    return changed.table


def across_figures(api: NomadAPI, table: RoutingTable) -> dict[str, Any]:
    """The experiment across majors: each arm (a line) as the routers counted it, its
    versions summed."""
    assert table.across is not None
    counts = router_counts(api, table.model, MetricNames.path)
    arms = across_numbers(table, table.across, counts.backends)
    return {
        "across": str(table.across),
        "sticky": str(table.across.sticky),
        "path": MetricNames.path,
        "routers": counts.routers,
        "counting_since": counts.since,
        "arms": [a.as_dict() for a in arms],
        "shown": [str(a) for a in arms],
    }


def arm_figures(api: NomadAPI, model: str, line: Line) -> dict[str, Any]:
    """The running experiment on `line`: its arms as the routers counted them."""
    counts = router_counts(api, model, MetricNames.path)
    arms: list[ArmNumbers] = arm_numbers(line, counts.backends)
    return {
        "line": line.job,
        "sticky": str(line.sticky),
        "path": MetricNames.path,
        "routers": counts.routers,
        "counting_since": counts.since,
        "arms": [a.as_dict() for a in arms],
        "shown": [str(a) for a in arms],
    }


def record_end(api: NomadAPI, model: str, ended: Line, figures: dict[str, Any]) -> None:
    """The experiment's last numbers in the audit trail, when its split is replaced."""
    shown = ",".join(f"{s.version}={s.weight}" for s in ended.splits if s.weight)
    ModelRegistry(api).audit(model, "ab-end", shown, figures)


def annotate(api: NomadAPI, rows: list[dict[str, Any]]) -> None:
    """Add each running experiment to its line's status row."""
    tables: dict[str, RoutingTable | None] = {}
    nosrv: dict[str, dict[str, int]] = {}
    for row in rows:
        model = str(row.get("model") or "")
        if not model:
            continue
        if model not in tables:
            try:
                tables[model] = router.read_table(api, model)
            except BadInput:
                tables[model] = None  # an invalid table: `router show` says why
        table = tables[model]
        line = next((x for x in table.lines if x.job == row["job"]), None) if table else None
        if line is not None:
            if model not in nosrv:
                nosrv[model] = router_counts(api, model, MetricNames.path).unserved
            if unserved := unserved_versions(line, nosrv[model]):
                row["router_unserved"] = unserved
        if line is not None and line.sticky is not None:
            row["experiment"] = arm_figures(api, model, line)
        if table and table.across and line and line.major == table.default_major:
            row["experiment"] = across_figures(api, table)  # shown once: the default line
        if line is not None and line.mirror is not None:
            from nomadml.engine.shadow import shadow_figures

            row["shadow"] = shadow_figures(api, model, line, line.mirror)
