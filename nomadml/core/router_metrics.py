"""The router's own metrics: what each model version answered, counted at the router.

The router (HAProxy, see templates/router.nomad.hcl and router_metrics.lua) counts, per
backend, i.e. per version of a line, the requests by path and status code and a latency
histogram from the moment a request is routed to the moment its answer leaves, and
serves them as Prometheus text at ROUTER_METRICS_PATH. This module reads one such
scrape into a Snapshot per backend, in the same shape the gates read from a serving
allocation. Pure: no I/O."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from nomadml.core.metrics import MetricNames, Sample, Snapshot, snapshot

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
    )


def per_backend(samples: Iterable[Sample], names: MetricNames) -> dict[str, Snapshot]:
    """One Snapshot per backend the scrape names (a backend with no traffic yet is absent)."""
    grouped: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        backend = sample.label(BACKEND_LABEL)
        if backend is not None:
            grouped[backend].append(sample)
    return {backend: snapshot(group, names) for backend, group in grouped.items()}
