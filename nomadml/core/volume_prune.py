"""Which installed model versions a line's nodes keep, and the one-shot job that
removes the rest from every node's host volume (`nomadml volume prune`). Pure.

A version stays while Nomad could still run it for the line: any job version Nomad
keeps for it (tagged or not: `rollback` and Nomad's own revert bring those back) or
any allocation not yet finished. Other majors and other models are never touched
(their own lines decide for them)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from nomadml.errors import BadInput, NotOwned

Json = Mapping[str, Any]

ROLE = "volume-prune"
TEMPLATE = "volume-prune.nomad.hcl"
_LIVE = ("pending", "running")


@dataclass(frozen=True)
class PruneOrder:
    """What the prune job needs, read from the line's own job."""

    line: str
    model: str
    major: int
    keep: tuple[str, ...]
    image: str  # the line's model image: it carries the bootstrap program
    volume: str  # the host volume's source name
    datacenters: tuple[str, ...]
    namespace: str
    region: str

    @property
    def job_id(self) -> str:
        return f"{self.line}-{ROLE}"


def _version_of(job: Json) -> str | None:
    meta = job.get("Meta") or {}
    return meta.get("nomadml.version")


def kept_versions(versions: Iterable[Json], allocations: Iterable[Json]) -> tuple[str, ...]:
    """Model versions any kept job version names, or any unfinished allocation runs."""
    keep = {v for job in versions if (v := _version_of(job))}
    for alloc in allocations:
        if alloc.get("ClientStatus") in _LIVE and (v := _version_of(alloc.get("Job") or {})):
            keep.add(v)
    return tuple(sorted(keep))


def prune_order(
    line: str, job: Json | None, versions: Iterable[Json], allocations: Iterable[Json]
) -> PruneOrder:
    """The order for `line`, or one clear error: no such line, not nomadml's, no volume."""
    if job is None:
        raise BadInput(f"line {line!r}: no such job in Nomad (see `nomadml status`)")
    meta = job.get("Meta") or {}
    if meta.get("nomadml.managed") != "true" or meta.get("nomadml.role", "model") != "model":
        raise NotOwned(f"line {line!r}: not a model line nomadml manages; nothing pruned")
    groups = job.get("TaskGroups") or []
    volumes = [v for g in groups for v in (g.get("Volumes") or {}).values()]
    tasks = [t for g in groups for t in (g.get("Tasks") or []) if t.get("Name") == "bootstrap"]
    if not volumes or not tasks:
        raise BadInput(f"line {line!r}: its job has no host volume or bootstrap task")
    return PruneOrder(
        line=line,
        model=str(meta["nomadml.model"]),
        major=int(meta["nomadml.major"]),
        keep=kept_versions(versions, allocations),
        image=str(tasks[0]["Config"]["image"]),
        volume=str(volumes[0]["Source"]),
        datacenters=tuple(job.get("Datacenters") or ["*"]),
        namespace=str(job.get("Namespace") or "default"),
        region=str(job.get("Region") or "global"),
    )


def prune_values(order: PruneOrder, dry_run: bool, tool_version: str) -> dict[str, Any]:
    """Values for the shipped volume-prune template."""
    return {
        "job": {
            "id": order.job_id,
            "datacenters": list(order.datacenters),
            "namespace": order.namespace,
            "region": order.region,
            "meta": {
                "nomadml.managed": "true",
                "nomadml.model": order.model,
                "nomadml.line": order.line,
                "nomadml.role": ROLE,
                "nomadml.tool_version": tool_version,
            },
        },
        "model": {"name": order.model, "major": order.major, "image": order.image},
        "volume": {"source": order.volume},
        "keep": ",".join(order.keep),
        "dry_run": dry_run,
    }
