"""The router's own metrics: what each model version answered, counted at the router.

The router (HAProxy, see templates/router.nomad.hcl and router_metrics.lua) counts, per
backend, i.e. per version of a line, the requests by path and status code and a latency
histogram from the moment a request is routed to the moment its answer leaves, and
serves them as Prometheus text at ROUTER_METRICS_PATH, with the predictions by label
the servers name in their answers' X-Nomadml-Predictions header. This module reads one such
scrape into a Snapshot per backend, in the same shape the gates read from a serving
allocation. Pure: no I/O."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from nomadml.core.metrics import MetricNames, Sample, Snapshot, merge, quantile, snapshot
from nomadml.core.routing import Across, Line, RoutingTable, backend_name

ROUTER_METRICS_PATH = "/nomadml-router/metrics"
BACKEND_LABEL = "backend"


def router_names(gated_path: str) -> MetricNames:
    """The names the router's Lua exposes, for the path the gates look at."""
    return MetricNames(
        requests_total="nomadml_router_requests_total",
        duration_seconds="nomadml_router_request_duration_seconds",
        path_label="path",
        path=gated_path,
        code_label="code",
        # What the servers said they predicted (their X-Nomadml-Predictions header),
        # counted per version and label: the prediction gate through the router.
        predictions_total="nomadml_router_predictions_total",
        prediction_label="label",
    )


def per_backend(samples: Iterable[Sample], names: MetricNames) -> dict[str, Snapshot]:
    """One Snapshot per backend the scrape names (a backend with no traffic yet is absent)."""
    grouped: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        backend = sample.label(BACKEND_LABEL)
        if backend is not None:
            grouped[backend].append(sample)
    return {backend: snapshot(group, names) for backend, group in grouped.items()}


NOSRV = "nomadml_router_nosrv_requests_total"


def unserved(samples: Iterable[Sample]) -> dict[str, int]:
    """Per backend, the requests the router answered itself because the backend had no
    usable server (its 503, every path): not the version's answers, so no gate reads
    them, but the operator sees them (`router show`, `status`)."""
    found: dict[str, int] = defaultdict(int)
    for sample in samples:
        backend = sample.label(BACKEND_LABEL)
        if sample.name == NOSRV and backend is not None:
            found[backend] += int(sample.value)
    return dict(found)


def across_numbers(
    table: RoutingTable, across: Across, counts: Mapping[str, Snapshot]
) -> list[ArmNumbers]:
    """Each arm of an A/B split across majors: its line's versions summed (every
    request to the line, whether it named the major or was split to it)."""
    arms = []
    for major, weight in across.arms:
        line = table.line(major)
        versions = line.splits if line is not None else ()
        job = line.job if line is not None else ""
        snap = merge(counts.get(backend_name(job, s.version), Snapshot()) for s in versions)
        arms.append(_arm(f"major {major}", weight, snap))
    return arms


def unserved_versions(line: Line, found: Mapping[str, int]) -> dict[str, int]:
    """`line`'s versions for which the router answered requests itself (no server)."""
    named = {backend_name(line.job, s.version): s.version for s in line.splits}
    return {named[b]: n for b, n in sorted(found.items()) if b in named and n}


def unserved_text(version: str, count: int) -> str:
    return (
        f"{count} request(s) for {version} answered 503 by the router itself: no server "
        f"of {version} was up (not counted as {version}'s answers)"
    )


COUNTING_SINCE = "nomadml_router_counting_since_seconds"
LATENCY_PERCENTILE = 0.95  # what an A/B arm's latency is shown at


def counting_since(samples: Iterable[Sample]) -> float | None:
    """When this router process started counting (a reload starts it anew)."""
    return next((s.value for s in samples if s.name == COUNTING_SINCE), None)


@dataclass(frozen=True)
class ArmNumbers:
    """One arm of an A/B split as the routers counted it."""

    version: str
    weight: int
    requests: int
    errors: int
    error_rate: float | None
    latency_ms: float | None  # at LATENCY_PERCENTILE

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "weight": self.weight,
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": self.error_rate,
            f"latency_p{LATENCY_PERCENTILE * 100:g}_ms": self.latency_ms,
        }

    def __str__(self) -> str:
        rate = "n/a" if self.error_rate is None else f"{100 * self.error_rate:.2f}%"
        latency = "n/a" if self.latency_ms is None else f"{self.latency_ms:.1f} ms"
        return (
            f"{self.version} {self.weight}%: {self.requests} req, {self.errors} errors ({rate}), "
            f"p{LATENCY_PERCENTILE * 100:g} {latency}"
        )


def arm_numbers(line: Line, counts: Mapping[str, Snapshot]) -> list[ArmNumbers]:
    """Each arm (a version with a share) of `line` from the routers' merged counts."""
    arms = []
    for split in line.splits:
        if not split.weight:
            continue
        snap = counts.get(backend_name(line.job, split.version), Snapshot())
        arms.append(_arm(split.version, split.weight, snap))
    return arms


def _arm(name: str, weight: int, snap: Snapshot) -> ArmNumbers:
    latency = quantile(snap.buckets, LATENCY_PERCENTILE)
    return ArmNumbers(
        name,
        weight,
        int(snap.requests),
        int(snap.errors),
        snap.errors / snap.requests if snap.requests else None,
        None if latency is None else latency * 1000.0,
    )
