"""A/B experiments at the model's router: a fixed split between versions of one line,
sticky by a header's or a cookie's value (the same key reaches the same arm every
time, at every router), with each arm's requests, errors and latency as the routers
counted them. Its start and its end (with the numbers at that moment) go to the
model's audit trail (`nomadml model history`); `nomadml status` shows it running.

An experiment ends when the line's split is set again (`nomadml router weights`, or a
rollout's canary steps)."""

from __future__ import annotations

from typing import Any

from nomadml.adapters.metric_scrape import router_counts
from nomadml.adapters.model_store import ModelRegistry
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.metrics import MetricNames
from nomadml.core.router_metrics import ArmNumbers, arm_numbers, unserved_versions
from nomadml.core.routing import Line, RoutingTable, Split, Sticky, parse_weights
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
        if line is not None and line.mirror is not None:
            from nomadml.engine.shadow import shadow_figures

            row["shadow"] = shadow_figures(api, model, line, line.mirror)
