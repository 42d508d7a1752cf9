"""What a Nomad plan says, in operator terms. Pure: takes the plan API's answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nomadml.errors import NotOwned

# The docker driver's fingerprint of `plugin "docker" { config { volumes { enabled = true } } }`
# (Nomad sets no attribute without it). Groups whose docker tasks mount host paths (the
# retraining job's nomadml task: the engine's socket) are constrained to it.
DOCKER_VOLUMES = "${attr.driver.docker.volumes.enabled}"
NO_DOCKER_VOLUMES = (
    "no eligible node's docker driver allows the host-path volumes the group mounts: "
    'add volumes { enabled = true } to the clients\' plugin "docker" { config { ... } } block'
)
COUNTS = ("Place", "Canary", "DestructiveUpdate", "InPlaceUpdate", "Stop", "Migrate", "Ignore")
MARK = {"Added": "+", "Deleted": "-", "Edited": "~"}


@dataclass(frozen=True)
class PlanSummary:
    job_id: str
    change: str  # None, Added, Edited, Deleted
    job_modify_index: int
    groups: dict[str, dict[str, int]] = field(default_factory=dict)
    diff: list[str] = field(default_factory=list)
    warnings: str = ""
    placement_failures: dict[str, str] = field(default_factory=dict)
    # groups no node can run however free it is: none allows docker host-path volumes
    no_docker_volumes: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return self.change != "None"

    def totals(self) -> dict[str, int]:
        return {k: sum(g.get(k, 0) for g in self.groups.values()) for k in COUNTS}

    def lines(self) -> list[str]:
        t = self.totals()
        head = (
            f"job {self.job_id}: no changes"
            if not self.changed
            else f"job {self.job_id}: {self.change.lower()} — {t['Place']} to place, "
            f"{t['Canary']} canary, {t['DestructiveUpdate']} destructive, "
            f"{t['InPlaceUpdate']} in-place, {t['Stop']} to stop"
        )
        out = [head, *self.diff]
        out += [f"warning: {w}" for w in self.warnings.splitlines() if w.strip()]
        out += [
            f"placement failure in group {g}: {why}" for g, why in self.placement_failures.items()
        ]
        return out


def _diff_lines(diff: dict[str, Any], indent: str = "  ") -> list[str]:
    out: list[str] = []
    for f in diff.get("Fields") or []:
        if f.get("Type") in MARK:
            old, new = f.get("Old", ""), f.get("New", "")
            out.append(f"{indent}{MARK[f['Type']]} {f['Name']}: {old!r} => {new!r}")
    for obj in diff.get("Objects") or []:
        if obj.get("Type") in MARK:
            out.append(f"{indent}{MARK[obj['Type']]} {obj['Name']}")
            out.extend(_diff_lines(obj, indent + "  "))
    for key, kind in (("TaskGroups", "group"), ("Tasks", "task")):
        for child in diff.get(key) or []:
            if child.get("Type") in MARK:
                updates = child.get("Updates") or {}
                note = ", ".join(f"{n} {k}" for k, n in sorted(updates.items()) if n)
                out.append(
                    f"{indent}{MARK[child['Type']]} {kind} {child['Name']}"
                    + (f" ({note})" if note else "")
                )
                out.extend(_diff_lines(child, indent + "  "))
    return out


def _host_volumes(job: dict[str, Any] | None, group: str) -> list[str]:
    for tg in (job or {}).get("TaskGroups") or []:
        if tg.get("Name") == group:
            volumes = (tg.get("Volumes") or {}).values()
            return sorted(str(v.get("Source")) for v in volumes if v.get("Type") == "host")
    return []


def no_docker_volumes(metric: dict[str, Any]) -> bool:
    """A group's placement failed because no node that passed the other filters allows
    docker host-path volumes (not because the eligible ones are busy now)."""
    filtered = metric.get("ConstraintFiltered") or {}
    exhausted = int(metric.get("NodesExhausted") or 0)
    return not exhausted and any(str(k).startswith(DOCKER_VOLUMES) for k in filtered)


def summarize(job_id: str, plan: dict[str, Any], job: dict[str, Any] | None = None) -> PlanSummary:
    """Nomad's plan in a few numbers and lines; `job` (the planned one) lets a placement
    failure name what the group asked for (Nomad counts nodes, it names no volume)."""
    diff = plan.get("Diff") or {}
    updates = ((plan.get("Annotations") or {}).get("DesiredTGUpdates")) or {}
    groups = {name: {k: int(v.get(k, 0) or 0) for k in COUNTS} for name, v in updates.items()}
    failures: dict[str, str] = {}
    refused: list[str] = []
    for group, metric in (plan.get("FailedTGAllocs") or {}).items():
        reasons = [f"{k} ({v})" for k, v in (metric.get("DimensionExhausted") or {}).items()]
        reasons += [f"{k} ({v})" for k, v in (metric.get("ConstraintFiltered") or {}).items()]
        volumes = _host_volumes(job, group)
        if volumes and any("host volume" in r for r in reasons):
            named = ", ".join(repr(v) for v in volumes)
            reasons.append(f"no eligible node has the host volume {named} the group mounts")
        if no_docker_volumes(metric):
            refused.append(group)
            reasons.append(NO_DOCKER_VOLUMES)
        failures[group] = "; ".join(reasons) or f"{metric.get('NodesEvaluated', 0)} nodes evaluated"
    return PlanSummary(
        job_id=job_id,
        change=str(diff.get("Type") or "None"),
        job_modify_index=int(plan.get("JobModifyIndex") or 0),
        groups=groups,
        diff=_diff_lines(diff),
        warnings=str(plan.get("Warnings") or ""),
        placement_failures=failures,
        no_docker_volumes=tuple(refused),
    )


def check_owner(job_id: str, existing: dict[str, Any] | None, model: str) -> None:
    """Refuse to touch a job nomadml did not create, or one of another model."""
    if existing is None:
        return
    meta = existing.get("Meta") or {}
    if meta.get("nomadml.managed") != "true":
        raise NotOwned(
            f"job {job_id} exists but was not created by nomadml (no nomadml.managed meta); "
            "refusing to overwrite it"
        )
    if meta.get("nomadml.model") != model:
        raise NotOwned(
            f"job {job_id} belongs to model {meta.get('nomadml.model')!r}, not {model!r}; "
            "refusing to overwrite it"
        )
