"""Where the canary gates read their numbers: a metric source turns one look into
readings, each a window-able Snapshot of one arm (canary or stable) of one place.

- DirectScrape: each serving allocation's metrics endpoint (Prometheus text), from
  the machine running nomadml, which must reach the allocations (the fallback).
- RouterMetrics: the model router's own per-version counters, from each router
  allocation; works from anywhere the router is reachable.

One HTTP session per rollout; an endpoint that does not answer, or answers something
unreadable, gives nothing for that round."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.metrics import (
    MetricNames,
    MetricsFormatError,
    Sample,
    Snapshot,
    merge,
    parse,
    snapshot,
)
from nomadml.core.router_metrics import (
    ROUTER_METRICS_PATH,
    counting_since,
    per_backend,
    router_names,
    unserved,
)
from nomadml.core.routing import backend_name
from nomadml.core.shadow import ShadowCounts, shadow_counts

SCRAPE_TIMEOUT_S = 2.0
ROUTER_PROBES = "nomadml_router_probe_requests_total"


@dataclass(frozen=True)
class Reading:
    """One place's counters now: `key` names it across looks (an allocation, or a
    router allocation and backend), `canary` says which arm it belongs to."""

    key: str
    canary: bool
    snapshot: Snapshot


class MetricSource(Protocol):
    name: str  # "router" or "direct", in the gate records

    def read(self, job_id: str, canary_ids: set[str]) -> list[Reading]: ...


class MetricScraper:
    def __init__(self, names: MetricNames) -> None:
        self.names = names
        self._session: Any = None

    def samples(self, url: str) -> list[Sample] | None:
        """The endpoint's samples now, or None when it cannot be read this round."""
        import requests

        if self._session is None:
            self._session = requests.Session()
        try:
            return parse(self._session.get(url, timeout=SCRAPE_TIMEOUT_S).text)
        except (requests.RequestException, MetricsFormatError):
            return None

    def scrape(self, url: str) -> Snapshot | None:
        """The endpoint's counters now, or None when it cannot be read this round."""
        found = self.samples(url)
        try:
            return None if found is None else snapshot(found, self.names)
        except MetricsFormatError:
            return None


class DirectScrape:
    """Every allocation of the line, scraped where it runs."""

    name = "direct"

    def __init__(self, api: NomadAPI, names: MetricNames, metrics_path: str) -> None:
        self.api, self.metrics_path = api, metrics_path
        self.scraper = MetricScraper(names)

    def read(self, job_id: str, canary_ids: set[str]) -> list[Reading]:
        readings = []
        for reg in self.api.job_services(job_id):
            url = f"http://{reg['Address']}:{reg['Port']}{self.metrics_path}"
            snap = self.scraper.scrape(url)
            if snap is not None:
                alloc = str(reg["AllocID"])
                readings.append(Reading(alloc, alloc in canary_ids, snap))
        return readings


class RouterMetrics:
    """The model's router allocations, each counting what every version answered."""

    name = "router"

    def __init__(
        self, api: NomadAPI, model: str, gated_path: str, line: str, stable: str, canary: str
    ) -> None:
        self.api, self.model = api, model
        self.stable, self.canary = stable, canary  # probes name them at the router
        # nomadml's probes through the router (X-Nomadml-Probe), counted apart by it.
        names = replace(router_names(gated_path), probe_requests_total=ROUTER_PROBES)
        self.scraper = MetricScraper(names)
        self.arms = {backend_name(line, stable): False, backend_name(line, canary): True}

    def read(self, job_id: str, canary_ids: set[str]) -> list[Reading]:
        """The line's two versions at every router; the allocation ids are not needed:
        the router knows each request's version by the backend that answered it."""
        readings = []
        for reg in self.api.service(f"{self.model}-router"):
            address = f"{reg['Address']}:{reg['Port']}"
            found = self.scraper.samples(f"http://{address}{ROUTER_METRICS_PATH}")
            if found is None:
                continue
            try:
                backends = per_backend(found, self.scraper.names)
            except MetricsFormatError:
                continue
            for backend, canary in self.arms.items():
                # A version that has had no request yet has no series: zero, not unknown.
                snap = backends.get(backend, Snapshot())
                readings.append(Reading(f"{reg.get('AllocID', address)}/{backend}", canary, snap))
        return readings


@dataclass(frozen=True)
class RouterCounts:
    """What the model's routers counted, summed over them: per backend (version)."""

    backends: dict[str, Snapshot]
    routers: int  # router allocations that answered
    since: float | None  # the latest (re)load among them: all counted at least since then
    unserved: dict[str, int] = field(default_factory=dict)  # per backend: the router's 503s


def router_counts(api: NomadAPI, model: str, path: str) -> RouterCounts:
    scraper = MetricScraper(router_names(path))
    found: dict[str, list[Snapshot]] = {}
    routers, starts, nosrv = 0, [], Counter[str]()
    for reg in api.service(f"{model}-router"):
        samples = scraper.samples(f"http://{reg['Address']}:{reg['Port']}{ROUTER_METRICS_PATH}")
        if samples is None:
            continue  # a router that does not answer now adds nothing
        try:
            backends = per_backend(samples, scraper.names)
        except MetricsFormatError:
            continue
        routers += 1
        nosrv.update(unserved(samples))
        start = counting_since(samples)
        if start is not None:
            starts.append(start)
        for backend, snap in backends.items():
            found.setdefault(backend, []).append(snap)
    merged = {backend: merge(snaps) for backend, snaps in found.items()}
    return RouterCounts(merged, routers, max(starts) if starts else None, dict(nosrv))


def shadow_readings(api: NomadAPI, model: str, backend: str) -> dict[str, ShadowCounts]:
    """What each answering router counted for the shadow `backend`, by router allocation."""
    scraper = MetricScraper(router_names("/"))
    found = {}
    for reg in api.service(f"{model}-router"):
        address = f"{reg['Address']}:{reg['Port']}"
        samples = scraper.samples(f"http://{address}{ROUTER_METRICS_PATH}")
        if samples is not None:
            found[str(reg.get("AllocID", address))] = shadow_counts(samples, backend)
    return found
