"""A bounded load generator for demos and tests: sends /predict requests to a
Nomad service's live registrations (re-read as they change) and counts outcomes.
It only ever targets addresses Nomad registered; bounded in count and time."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.engine.endpoints import endpoints
from nomadml.errors import NomadMLError

SAMPLE = {"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}


@dataclass
class TrafficReport:
    sent: int = 0
    ok: int = 0
    failed: int = 0
    by_version: Counter[str] = field(default_factory=Counter)
    failed_by_version: Counter[str] = field(default_factory=Counter)  # from service tags
    errors: Counter[str] = field(default_factory=Counter)
    retried: int = 0  # refused connections sent again to another live address

    def summary(self) -> str:
        """One line for a test log or a report."""
        return (
            f"sent {self.sent}, ok {self.ok}, failed {self.failed} "
            f"(refused and sent again {self.retried}) {dict(self.errors)}; "
            f"served {dict(self.by_version)}"
        )


class Traffic:
    """Use as a context manager: requests flow while the block runs."""

    def __init__(
        self,
        api: NomadAPI,
        service: str,
        rate_per_s: float = 20.0,
        max_seconds: float = 600.0,
        max_requests: int = 100_000,
        retry_refused: bool = False,
        instances: list[Any] | None = None,
    ) -> None:
        """`retry_refused`: act like a load balancer (nginx's default
        proxy_next_upstream) that sends a request whose connection was refused or
        reset before any answer once more, to another live address. `instances`: what
        each request asks about (default: two iris-shaped rows)."""
        self.api, self.service = api, service
        self.body = json.dumps({"instances": instances} if instances else SAMPLE).encode()
        self.retry_refused = retry_refused
        self.interval = 1.0 / rate_per_s
        self.max_seconds, self.max_requests = max_seconds, max_requests
        self.report = TrafficReport()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"traffic-{service}")
        self._targets: list[tuple[str, str]] = []
        self._refreshed = 0.0

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _refresh(self) -> None:
        """Live targets: registrations whose Nomad checks pass (a client that also
        sent to unchecked ones would hit servers still starting or draining)."""
        try:
            live = [e for e in endpoints(self.api, self.service) if e.healthy]
        except NomadMLError:
            return
        # Loopback only: this generator never sends traffic off the machine.
        self._targets = [(e.url, e.version) for e in live if e.url.startswith("http://127.")]
        self._refreshed = time.monotonic()

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        body = self.body
        n = 0
        while not self._stop.is_set() and time.monotonic() < deadline and n < self.max_requests:
            if time.monotonic() - self._refreshed > 0.5:
                self._refresh()
            if not self._targets:
                self._stop.wait(self.interval)
                continue
            targets = list(self._targets)
            target, version = targets[n % len(targets)]
            n += 1
            self.report.sent += 1
            if not self._send(target, version, body, self.retry_refused and len(targets) > 1):
                self.report.retried += 1
                self._send(*targets[n % len(targets)], body, False)
            self._stop.wait(self.interval)

    def _send(self, target: str, version: str, body: bytes, may_retry: bool) -> bool:
        """One request, counted; False (and not counted) when the connection was
        refused or reset before an answer and `may_retry`: another address may serve it
        (a prediction is idempotent)."""
        r = self.report
        request = urllib.request.Request(
            f"{target}/predict",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                answer = json.load(response)
            r.ok += 1
            r.by_version[str(answer.get("version"))] += 1
        except urllib.error.HTTPError as err:
            r.failed += 1
            r.failed_by_version[version] += 1
            r.errors[f"HTTP {err.code}"] += 1
        except (OSError, ValueError) as err:
            cause = getattr(err, "reason", err)
            if may_retry and isinstance(cause, (ConnectionRefusedError, ConnectionResetError)):
                return False
            r.failed += 1
            r.failed_by_version[version] += 1
            r.errors[type(err).__name__] += 1
        return True
