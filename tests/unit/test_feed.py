"""Deployment changes from the event stream, against a fake Nomad on loopback:
snapshots arrive from one long-lived request; heartbeats and other deployments are
ignored; a refused stream falls back to blocking queries; a broken stream
reconnects and re-reads the deployment so no change is lost."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from support.fake_nomad import FakeNomad, Request

from nomadml.adapters.event_stream import DeploymentChanges
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.settings import NomadSettings

DEP = "d0000000-0000-0000-0000-000000000001"


def _deployment(status: str, healthy: int = 0, dep_id: str = DEP) -> dict[str, Any]:
    return {
        "ID": dep_id,
        "JobID": "iris-v1",
        "Status": status,
        "TaskGroups": {"model": {"HealthyAllocs": healthy}},
    }


def _event(index: int, deployment: dict[str, Any]) -> bytes:
    body = {"Index": index, "Events": [{"Index": index, "Payload": {"Deployment": deployment}}]}
    return json.dumps(body).encode()


def _api(fake: FakeNomad) -> NomadAPI:
    return NomadAPI(NomadSettings.from_env({"NOMAD_ADDR": fake.address}))


def _streams(fake: FakeNomad) -> list[Request]:
    return fake.requests_to("GET", "/v1/event/stream")


def _reads(fake: FakeNomad) -> list[Request]:
    return fake.requests_to("GET", f"/v1/deployment/{DEP}")


def _collect(changes: DeploymentChanges, statuses: int, timeout: float = 5) -> list[Any]:
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(got) < statuses and time.monotonic() < deadline:
        dep = changes.next(0.5)
        if dep is not None:
            got.append((dep["Status"], dep["TaskGroups"]["model"]["HealthyAllocs"]))
    return got


def test_changes_come_from_one_stream(fake_nomad: FakeNomad) -> None:
    first = fake_nomad.put_deployment(_deployment("running"))["ModifyIndex"]
    api = _api(fake_nomad)
    changes = DeploymentChanges(api, {"ID": DEP})
    try:
        assert _collect(changes, 1) == [("running", 0)]  # the first read is a plain GET
        assert fake_nomad.stream_raw(b"{}") == 1  # a heartbeat, once the stream is open
        fake_nomad.put_deployment(_deployment("running", 1))
        assert _collect(changes, 1) == [("running", 1)]
        # An event for another deployment, which Nomad's topic filter would have stopped.
        other = _deployment("running", 9, dep_id="someone-else")
        fake_nomad.stream_raw(_event(fake_nomad.index + 1, other))
        assert changes.next(0.5) is None
        fake_nomad.put_deployment(_deployment("successful", 2))
        assert _collect(changes, 1) == [("successful", 2)]
    finally:
        changes.close()
    streams = _streams(fake_nomad)
    assert len(streams) == 1 and streams[0].query["topic"] == f"Deployment:{DEP}"
    assert streams[0].query["index"] == str(first + 1)  # from just after the plain read's
    assert api.calls == 2


@pytest.mark.parametrize("refusal", [404, 403])
def test_a_refused_stream_falls_back_to_blocking_queries(
    fake_nomad: FakeNomad, refusal: int
) -> None:
    first = fake_nomad.put_deployment(_deployment("running"))["ModifyIndex"]
    fake_nomad.script("GET", "/v1/event/stream", refusal, b"no such endpoint")
    changes = DeploymentChanges(_api(fake_nomad), {"ID": DEP})
    try:
        assert _collect(changes, 1) == [("running", 0)]
        assert changes.next(0.5) is None  # the blocking read waited: nothing changed
        assert any(r.query.get("index") == str(first) for r in _reads(fake_nomad))
        # Nomad's index moves: the blocking read brings the change.
        second = fake_nomad.put_deployment(_deployment("successful", 2))["ModifyIndex"]
        assert _collect(changes, 1) == [("successful", 2)]
        assert changes.next(0.5) is None  # and the next read blocks from there
        assert any(r.query.get("index") == str(second) for r in _reads(fake_nomad))
    finally:
        changes.close()
    assert len(_streams(fake_nomad)) == 1  # refused once, never asked again


def test_a_broken_stream_reconnects_and_rereads(fake_nomad: FakeNomad) -> None:
    fake_nomad.put_deployment(_deployment("running"))
    changes = DeploymentChanges(_api(fake_nomad), {"ID": DEP})
    try:
        assert _collect(changes, 1) == [("running", 0)]
        fake_nomad.put_deployment(_deployment("running", 1))
        assert _collect(changes, 1) == [("running", 1)]
        # The deployment finishes with no event reaching the stream (the agent
        # restarts and loses its buffer), then the stream closes.
        fake_nomad.put_deployment(_deployment("successful", 2), event=False)
        fake_nomad.end_streams()
        assert _collect(changes, 1) == [("successful", 2)]
        deadline = time.monotonic() + 5  # the re-read comes first, then the new stream
        while time.monotonic() < deadline and len(_streams(fake_nomad)) < 2:
            time.sleep(0.05)
    finally:
        changes.close()
    assert len(_streams(fake_nomad)) == 2
