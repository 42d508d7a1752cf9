"""Gates from Prometheus: the operator's PromQL (the spec's `[gates.prometheus]`) read
per allocation, so canary analysis works wherever Prometheus is, as Argo Rollouts and
Flagger users expect.

Each query returns cumulative counters by `alloc_id` (and `le` for the latency
histogram), `{service}` standing for the line's service (its job id); nomadml then does
the window arithmetic itself, as for a direct scrape. The stack's Prometheus finds the
allocations through Nomad's catalog (nomad_sd_configs) and labels them `alloc_id`,
`nomad_service` and `version`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from nomadml.adapters.metric_scrape import Reading
from nomadml.core.metrics import Snapshot
from nomadml.errors import BadInput

QUERIES = ("requests", "errors", "latency")


@dataclass(frozen=True)
class PromQueries:
    url: str
    requests: str
    errors: str
    latency: str


class PrometheusError(Exception):
    """Prometheus refused or could not answer a query (`str()` is one line)."""


class PrometheusSource:
    name = "prometheus"

    def __init__(self, queries: PromQueries, where: str = "gates.prometheus") -> None:
        self.q, self.where = queries, where
        self._session: Any = None

    def _query(self, promql: str) -> list[dict[str, Any]]:
        import requests

        if self._session is None:
            self._session = requests.Session()
        try:
            answer = self._session.get(
                f"{self.q.url.rstrip('/')}/api/v1/query", params={"query": promql}, timeout=5
            )
            body = answer.json()
        except (requests.RequestException, ValueError) as err:
            raise PrometheusError(f"{self.q.url} unreachable ({type(err).__name__})") from None
        if body.get("status") != "success":
            raise PrometheusError(f"{body.get('errorType', 'error')}: {body.get('error', '')}")
        data = body.get("data") or {}
        if data.get("resultType") != "vector":
            raise PrometheusError(f"expected an instant vector, got {data.get('resultType')}")
        return list(data.get("result") or [])

    def _filled(self, which: str, service: str) -> str:
        text: str = getattr(self.q, which)
        return text.replace("{service}", service)

    def check(self, service: str) -> None:
        """Run each query once: a refused one is one line naming it (before a deploy)."""
        for which in QUERIES:
            try:
                self._query(self._filled(which, service))
            except PrometheusError as err:
                raise BadInput(f"{self.where}.{which}: Prometheus answered: {err}") from None

    def read(self, job_id: str, canary_ids: set[str]) -> list[Reading]:
        """Each allocation's counters now; nothing this round when Prometheus fails."""
        try:
            requests = self._by_alloc(self._query(self._filled("requests", job_id)))
            errors = self._by_alloc(self._query(self._filled("errors", job_id)))
            latency = self._query(self._filled("latency", job_id))
        except PrometheusError:
            return []
        buckets: dict[str, dict[float, float]] = {}
        for series in latency:
            labels = series.get("metric") or {}
            alloc, le = labels.get("alloc_id"), labels.get("le")
            if alloc and le is not None:
                buckets.setdefault(alloc, {})[_number(le)] = _value(series)
        readings = []
        for alloc, total in sorted(requests.items()):
            histogram = tuple(sorted(buckets.get(alloc, {}).items()))
            count = dict(histogram).get(math.inf, 0.0)
            snap = Snapshot(
                requests=total, errors=errors.get(alloc, 0.0), buckets=histogram, count=count
            )
            readings.append(Reading(f"prometheus/{alloc}", alloc in canary_ids, snap))
        return readings

    @staticmethod
    def _by_alloc(result: list[dict[str, Any]]) -> dict[str, float]:
        out: dict[str, float] = {}
        for series in result:
            alloc = (series.get("metric") or {}).get("alloc_id")
            if alloc:
                out[alloc] = out.get(alloc, 0.0) + _value(series)
        return out


def _number(text: str) -> float:
    return math.inf if text in ("+Inf", "Inf", "inf") else float(text)


def _value(series: dict[str, Any]) -> float:
    value = (series.get("value") or [0, "0"])[1]
    number = _number(str(value))
    return 0.0 if math.isnan(number) else number
