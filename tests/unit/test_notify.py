"""Webhook notifications against a real receiver on loopback: signatures, order,
retries, and a dead receiver never blocking the rollout for long."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
from support.webhook_receiver import WebhookReceiver

from nomadml.adapters.webhooks import Webhook, payload
from nomadml.events import Event

SECRET = "s3cret"  # what the sender signs with; _verify checks with the same


EVENTS = [
    Event("registered", "iris-v1", "registered iris-v1 version 3"),
    Event("progress", "iris-v1", "canaries placed"),  # not sent
    Event("canary-healthy", "iris-v1", "canaries healthy"),
    Event("gate", "iris-v1", "gate pass", {"verdict": "pass"}),
    Event("promote", "iris-v1", "promoted"),
    Event("result", "iris-v1", "succeeded", {"outcome": "succeeded"}),
]


def _verify(headers: dict[str, str], body: bytes) -> bool:
    stamp = headers["X-Nomadml-Timestamp"]
    mac = hmac.new(SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers["X-Nomadml-Signature"], f"sha256={mac}")


@pytest.mark.parametrize("receiver", [0, 2], indirect=True, ids=["up", "two-503s-first"])
def test_events_arrive_signed_and_in_order(receiver: WebhookReceiver) -> None:
    hook = Webhook(receiver.url, SECRET)
    for event in EVENTS:
        hook(event)
    hook.close(wait_s=30)
    names = [json.loads(body)["event"] for _, body in receiver.received]
    assert names == ["deploy-started", "canary-healthy", "gate-result", "promoted", "succeeded"]
    assert all(_verify(h, b) for h, b in receiver.received)
    assert hook.delivered == 5 and hook.dropped == 0
    assert receiver.calls == 5 + receiver.fail_first  # each 503 was retried
    # A tampered body does not verify.
    headers, body = receiver.received[0]
    assert not _verify(headers, body.replace(b"iris-v1", b"evil-v1"))


def test_dead_receiver_does_not_block_for_long() -> None:
    hook = Webhook("http://127.0.0.1:9/hook", SECRET, attempts=2)  # port 9: nothing listens
    hook(EVENTS[0])
    started = time.monotonic()
    hook.close(wait_s=3)
    assert time.monotonic() - started < 4


@pytest.mark.parametrize(
    ("outcome", "name"),
    [
        ("succeeded", "succeeded"),
        ("rolled-back", "rolled-back"),
        ("failed", "failed"),
        ("timeout", "failed"),
    ],
)
def test_final_event_names(outcome: str, name: str) -> None:
    body = payload(Event("result", "j", "m", {"outcome": outcome}))
    assert body is not None and body["event"] == name
