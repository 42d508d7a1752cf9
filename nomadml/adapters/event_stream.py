"""A deployment's changes from Nomad's event stream: one long-lived request per
watch instead of one request per change (the blocking-query way).

A thread reads `/v1/event/stream?topic=Deployment:<id>` and keeps the newest
deployment snapshot. When the stream breaks (agent restarted, connection lost) it
reconnects with backoff and reads the deployment once, so no change is missed;
while it cannot connect, `next()` raises NomadUnreachable so the watch can say so.
If Nomad refuses the stream itself (an old agent, a token without access), `next()`
raises that error and the caller falls back to blocking queries.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.errors import NomadAPIError, NomadMLError, NomadUnreachable

# Nomad sends a heartbeat `{}` every 10 s; a read silent for longer is a dead link.
READ_TIMEOUT_S = 30.0


class StreamRefused(NomadAPIError):
    """Nomad answered the event stream request with an error: use blocking queries."""


class DeploymentChanges:
    """The next state of one deployment: from the event stream, or by blocking
    queries where Nomad refuses the stream. Seeded with what the caller read (and its
    index), the first call returns that; without an index, it reads the deployment."""

    def __init__(
        self, api: NomadAPI, deployment: dict[str, Any], index: int = 0, stream: bool = True
    ) -> None:
        """`deployment` as read at `index` (0: not read yet, the first call reads it)."""
        self.api, self.deployment_id, self.stream = api, str(deployment["ID"]), stream
        self.index = index
        self.feed: DeploymentFeed | None = None
        self._seed: dict[str, Any] | None = deployment if index else None
        if index and stream:
            self.feed = DeploymentFeed(api, self.deployment_id, index)

    def next(self, wait: float) -> dict[str, Any] | None:
        """The deployment as it is now, or None if it did not change within `wait`."""
        if self._seed is not None:  # what the caller read: judge it before waiting
            seed, self._seed = self._seed, None
            return seed
        if not self.index:
            answer = self.api.deployment(self.deployment_id)
            self.index = max(answer.index, 1)
            if self.stream:
                self.feed = DeploymentFeed(self.api, self.deployment_id, self.index)
            return dict(answer.body)
        if self.feed is not None:
            try:
                return self.feed.next(wait)
            except StreamRefused:
                self.feed.close()
                self.feed, self.stream = None, False
        answer = self.api.deployment(self.deployment_id, self.index, wait)
        changed = answer.index != self.index
        self.index = answer.index
        return dict(answer.body) if changed else None

    def close(self) -> None:
        if self.feed is not None:
            self.feed.close()

    def __enter__(self) -> DeploymentChanges:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DeploymentFeed:
    def __init__(self, api: NomadAPI, deployment_id: str, index: int) -> None:
        self.api = api
        self.deployment_id = deployment_id
        self.index = index
        self._latest: dict[str, Any] | None = None
        self._fresh = threading.Condition()
        self._down: NomadMLError | None = None
        self._fatal: NomadAPIError | None = None
        self._closed = threading.Event()
        self._thread = threading.Thread(
            target=self._run, daemon=True, name=f"deployment-feed-{self.deployment_id[:8]}"
        )
        self._thread.start()

    # -- the watch's side --------------------------------------------------------------

    def next(self, timeout: float) -> dict[str, Any] | None:
        """The newest deployment snapshot not yet returned, or None after `timeout`."""
        deadline = time.monotonic() + timeout
        with self._fresh:
            while self._latest is None:
                if self._fatal is not None:
                    raise self._fatal
                if self._down is not None:
                    raise self._down
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._fresh.wait(left)
            latest, self._latest = self._latest, None
            return latest

    def close(self) -> None:
        """Stop reading. The daemon thread leaves at the stream's next line (Nomad
        sends a heartbeat every 10 s); closing the response from here would block
        until then, on the caller's time."""
        self._closed.set()

    # -- the reader thread --------------------------------------------------------------

    def _publish(self, deployment: dict[str, Any] | None = None, **state: Any) -> None:
        with self._fresh:
            if deployment is not None:
                self._latest = deployment
            for name, value in state.items():
                setattr(self, name, value)
            self._fresh.notify_all()

    def _run(self) -> None:
        backoff, resync = 0.5, False
        while not self._closed.is_set():
            try:
                if resync:  # what changed while the stream was down
                    answer = self.api.deployment(self.deployment_id)
                    self.index = max(self.index, answer.index)
                    self._publish(answer.body, _down=None)
                self._read()
                backoff, resync = 0.5, True  # the server closed it: reconnect
            except NomadUnreachable as err:
                self._publish(_down=err)
                resync = True
            except NomadAPIError as err:
                if err.status in (400, 403, 404, 405, 501):
                    self._publish(
                        _fatal=StreamRefused(err.method, err.path, err.status, err.message)
                    )
                    return
                self._publish(_down=err)
                resync = True
            except Exception as err:  # a broken read is a lost link
                if self._closed.is_set():
                    return
                self._publish(_down=NomadUnreachable(self.api.settings.address, _reason(err)))
                resync = True
            if self._closed.wait(backoff):
                return
            backoff = min(backoff * 2, 4.0)

    def _read(self) -> None:
        params = {"topic": f"Deployment:{self.deployment_id}", "index": self.index + 1}
        with self.api.open_stream("event/stream", params, READ_TIMEOUT_S) as response:
            self._publish(_down=None)
            for raw in response.iter_lines():
                if self._closed.is_set():
                    return
                if not raw:
                    continue
                message = json.loads(raw)
                for event in message.get("Events") or []:
                    deployment = (event.get("Payload") or {}).get("Deployment")
                    if deployment and deployment.get("ID") == self.deployment_id:
                        self.index = max(self.index, int(event.get("Index") or 0))
                        self._publish(deployment)


def _reason(err: BaseException) -> str:
    text = str(err) or type(err).__name__
    return text.splitlines()[0][:200]
