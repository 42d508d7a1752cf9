"""Webhook notifications: rollout events as JSON, HMAC-SHA256 signed with a shared
secret, delivered in order by one background thread with retries. Delivery never
blocks or fails a rollout: at the end the command waits a bounded time, then gives up.

Receivers verify `X-Nomadml-Signature: sha256=<hex>` = HMAC(secret, timestamp + "." + body)
with the `X-Nomadml-Timestamp` header, and may reject stale timestamps."""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from nomadml.events import Event

# Rollout events that go out, by the name receivers see.
NOTIFIED = {
    "registered": "deploy-started",
    "canary-healthy": "canary-healthy",
    "gate": "gate-result",
    "promote": "promoted",
    "fail": "failing",
    "result": "finished",
    "register": "model-registered",
    "stage": "stage-changed",
    "retrain": "retraining",
    "data-check": "data-check-failed",
    "expire": "expired",
    "regression": "regression-detected",
    "guard": "guard",
}


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    return (
        "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    )


def payload(event: Event) -> dict[str, Any] | None:
    """The JSON a receiver gets for an event, or None for events not sent. Pure."""
    name = NOTIFIED.get(event.kind)
    if name is None:
        return None
    if name == "finished":
        name = {"succeeded": "succeeded", "rolled-back": "rolled-back"}.get(
            str(event.data.get("outcome")), "failed"
        )
        operation = str(event.data.get("operation") or "deploy")
        if operation != "deploy":  # rollback-succeeded, promote-failed, ...
            name = f"{operation}-{name}"
    elif name == "retraining":  # retraining-validated, retraining-unchanged, ...
        name = f"retraining-{event.data.get('outcome', 'failed')}"
    elif name == "guard":  # guard-cleared, guard-rolled-back, ...
        name = f"guard-{event.data.get('outcome', 'regressed')}"
    return {
        "event": name,
        "job": event.job_id,
        "at": round(event.at, 3),
        "message": event.message,
        "data": event.data,
    }


class Webhook:
    """An event sink (call it with events); `close()` at the end of the command."""

    def __init__(self, url: str, secret: str, attempts: int = 5, timeout_s: float = 5.0) -> None:
        self.url, self.secret = url, secret.encode()
        self.attempts, self.timeout_s = attempts, timeout_s
        self.delivered = 0
        self.dropped = 0
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._worker = threading.Thread(target=self._run, daemon=True, name="nomadml-webhook")
        self._worker.start()

    def __call__(self, event: Event) -> None:
        body = payload(event)
        if body is not None:
            self._queue.put(body)

    def close(self, wait_s: float = 10.0) -> None:
        """Let queued events go out for at most `wait_s`; never raises."""
        self._queue.put(None)
        self._worker.join(timeout=wait_s)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._deliver(json.dumps(item, sort_keys=True).encode()):
                self.delivered += 1
            else:
                self.dropped += 1

    def _deliver(self, body: bytes) -> bool:
        delay = 0.2
        for _ in range(self.attempts):
            stamp = str(int(time.time()))
            request = urllib.request.Request(
                self.url,
                data=body,
                method="POST",
                headers={
                    "Content-Type": "application/json",
                    "X-Nomadml-Timestamp": stamp,
                    "X-Nomadml-Signature": sign(self.secret, stamp, body),
                },
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    if response.status < 300:
                        return True
            except urllib.error.HTTPError as err:
                if 400 <= err.code < 500 and err.code not in (408, 429):
                    return False  # the receiver refuses this event; retrying will not help
            except OSError:
                pass
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        return False
