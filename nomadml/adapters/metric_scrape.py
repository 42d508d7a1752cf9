"""Scraping a serving allocation's metrics endpoint (Prometheus text) into the
numbers the gates read. One HTTP session per rollout; an endpoint that does not
answer, or answers something unreadable, gives nothing for that round."""

from __future__ import annotations

from typing import Any

from nomadml.core.metrics import MetricNames, MetricsFormatError, Snapshot, parse, snapshot

SCRAPE_TIMEOUT_S = 2.0


class MetricScraper:
    def __init__(self, names: MetricNames) -> None:
        self.names = names
        self._session: Any = None

    def scrape(self, url: str) -> Snapshot | None:
        """The endpoint's counters now, or None when it cannot be read this round."""
        import requests

        if self._session is None:
            self._session = requests.Session()
        try:
            text = self._session.get(url, timeout=SCRAPE_TIMEOUT_S).text
            return snapshot(parse(text), self.names)
        except (requests.RequestException, MetricsFormatError):
            return None
