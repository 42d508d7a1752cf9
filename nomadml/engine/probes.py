"""Quiet hours: probe requests that give the gates evidence when real traffic is short.

While the gates judge a canary, a background thread sends the spec's sample instances
(`[gates.probe]`) to the canary's and to the stable version's allocations, the same
number to each side, marked with the X-Nomadml-Probe header so servers that count it
can tell probes from real traffic (the reference server does, in
nomadml_probe_requests_total). With a router on the line, the probes go through the
router instead (X-Model-Version names each side's exact version), which counts them
apart (nomadml_router_probe_requests_total) as the gates read its numbers. Answers
are not read: the counters are what the gates judge, as for real traffic. The probes
stop with the gates' decision, or when the gates stop being asked (the watch ended)."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.spec import ModelSpec
from nomadml.engine.endpoints import endpoints
from nomadml.errors import BadInput, NomadMLError
from nomadml.events import Emit, Event

PROBE_HEADER = "X-Nomadml-Probe"
Target = tuple[str, str | None]  # where a probe goes, and the version it names there
IDLE_STOP_S = 60.0  # no gate step for this long: the watch is over


def load_instances(spec: ModelSpec) -> bytes:
    """The probe request body, from the spec's instances file; one line if unusable."""
    where = f"{spec.source}: gates.probe.instances"
    path = spec.directory / spec.gates.probe.instances
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise BadInput(f"{where}: cannot read {path}: {err.strerror or err}") from None
    except ValueError as err:
        raise BadInput(f"{where}: {path} is not JSON: {err}") from None
    instances = doc.get("instances") if isinstance(doc, dict) else doc
    if not isinstance(instances, list) or not instances:
        raise BadInput(f"{where}: {path} must hold a non-empty list of instances")
    return json.dumps({"instances": instances}).encode()


@dataclass
class ProbeCounts:
    canary: int = 0
    stable: int = 0
    unanswered: int = 0


class Prober:
    """Sends probes to a line's canary and stable allocations at `rate_per_s` each."""

    def __init__(
        self,
        api: NomadAPI,
        job_id: str,
        body: bytes,
        rate_per_s: float,
        router: tuple[str, str, str] | None = None,
    ) -> None:
        self.api, self.job_id, self.body = api, job_id, body
        self.router = router  # (model, stable version, canary version): through its router
        self.interval = 1.0 / rate_per_s
        self.counts = ProbeCounts()
        self.last_step = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"probe-{job_id}")
        # Each side's (URL, version to name): None sends to an allocation directly.
        self._targets: tuple[list[Target], list[Target]] = ([], [])
        self._refreshed = 0.0

    @property
    def started(self) -> bool:
        return self._thread.ident is not None

    def start(self) -> None:
        if not self.started and not self._stop.is_set():
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _refresh(self) -> None:
        try:
            if self.router is not None:
                model, stable, canary = self.router
                regs = self.api.service(f"{model}-router")
                routers = [f"http://{r['Address']}:{r['Port']}" for r in regs]
                self._targets = ([(u, canary) for u in routers], [(u, stable) for u in routers])
            else:
                live = [e for e in endpoints(self.api, self.job_id) if e.healthy]
                canaries: list[Target] = [(e.url, None) for e in live if e.canary]
                self._targets = (canaries, [(e.url, None) for e in live if not e.canary])
        except NomadMLError:
            return
        self._refreshed = time.monotonic()

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            if time.monotonic() - self.last_step > IDLE_STOP_S:
                return
            if time.monotonic() - self._refreshed > 2.0:
                self._refresh()
            canaries, stables = self._targets
            if canaries:
                self.counts.canary += self._send(canaries[n % len(canaries)])
            if stables:
                self.counts.stable += self._send(stables[n % len(stables)])
            n += 1
            self._stop.wait(self.interval)

    def _send(self, target: Target) -> int:
        url, version = target
        headers = {"Content-Type": "application/json", PROBE_HEADER: "1"}
        if version is not None:
            headers["X-Model-Version"] = version
        request = urllib.request.Request(
            f"{url}/predict", data=self.body, method="POST", headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                answer.read()
        except urllib.error.HTTPError:
            pass  # answered (an error the gates will see in the server's counters)
        except (OSError, ValueError):
            self.counts.unanswered += 1
            return 0
        return 1


class ProbingGates:
    """A gate runner whose judging gets probe traffic: the inner runner decides; the
    prober runs from the first look to the decision."""

    def __init__(self, inner: Any, prober: Prober) -> None:
        self.inner, self.prober = inner, prober

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def step(self, job_id: str, canary_ids: list[str], emit: Emit) -> tuple[str, str]:
        first = not self.prober.started
        self.prober.last_step = time.monotonic()
        self.prober.start()
        if first:
            rate = 1.0 / self.prober.interval
            emit(Event("note", job_id, f"probing canary and stable at {rate:g} req/s each "
                       "([gates.probe]) while the gates judge"))  # fmt: skip
        state, reason = self.inner.step(job_id, canary_ids, emit)
        if state != "pending":
            self.prober.stop()
            c = self.prober.counts
            emit(Event("note", job_id, f"probes sent: {c.canary} to the canary, "
                       f"{c.stable} to stable ({c.unanswered} unanswered)"))  # fmt: skip
        return state, reason
