"""Deployment changes from the event stream, against a scripted server on loopback:
snapshots arrive from one long-lived request; heartbeats and other deployments are
ignored; a refused stream falls back to blocking queries; a broken stream
reconnects and re-reads the deployment so no change is lost."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from nomadml.adapters.event_stream import DeploymentChanges
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.settings import NomadSettings

DEP = "d0000000-0000-0000-0000-000000000001"


def _deployment(status: str, healthy: int = 0, dep_id: str = DEP) -> dict[str, Any]:
    return {"ID": dep_id, "Status": status, "TaskGroups": {"model": {"HealthyAllocs": healthy}}}


def _event(index: int, deployment: dict[str, Any]) -> bytes:
    body = {"Index": index, "Events": [{"Index": index, "Payload": {"Deployment": deployment}}]}
    return json.dumps(body).encode() + b"\n"


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.stream_status = 200
        self.streams: list[list[bytes]] = []  # what each stream connection sends, then closes
        self.deployment = _deployment("running")
        self.index = 7  # X-Nomad-Index of the deployment reads
        self.hold = threading.Event()  # keeps the last stream open until set
        super().__init__(("127.0.0.1", 0), Handler)


class Handler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.server.seen.append(self.path)
        if self.path.startswith("/v1/event/stream"):
            if self.server.stream_status != 200:
                self._send(self.server.stream_status, b"no such endpoint")
                return
            chunks = self.server.streams.pop(0) if self.server.streams else []
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")  # as Nomad streams it
            self.send_header("Connection", "close")
            self.end_headers()
            for chunk in chunks:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
                time.sleep(0.05)
            if not self.server.streams:
                self.server.hold.wait(10)
            self.wfile.write(b"0\r\n\r\n")
            return
        self._send(200, json.dumps(self.server.deployment).encode(), index=str(self.server.index))

    def _send(self, status: int, body: bytes, index: str = "7") -> None:
        self.send_response(status)
        self.send_header("X-Nomad-Index", index)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def server() -> Iterator[Server]:
    s = Server()
    t = threading.Thread(target=s.serve_forever, daemon=True)
    t.start()
    yield s
    s.hold.set()
    s.shutdown()
    s.server_close()


def _api(server: Server) -> NomadAPI:
    address = f"http://127.0.0.1:{server.server_address[1]}"
    return NomadAPI(NomadSettings.from_env({"NOMAD_ADDR": address}))


def _streams(server: Server) -> list[str]:
    return [p for p in server.seen if p.startswith("/v1/event/stream")]


def _collect(changes: DeploymentChanges, statuses: int, timeout: float = 5) -> list[Any]:
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(got) < statuses and time.monotonic() < deadline:
        dep = changes.next(0.5)
        if dep is not None:
            got.append((dep["Status"], dep["TaskGroups"]["model"]["HealthyAllocs"]))
    return got


def test_changes_come_from_one_stream(server: Server) -> None:
    server.streams = [
        [
            b"{}\n",  # a heartbeat
            _event(8, _deployment("running", 1)),
            _event(9, _deployment("running", 9, dep_id="someone-else")),
            _event(10, _deployment("successful", 2)),
        ]
    ]
    api = _api(server)
    changes = DeploymentChanges(api, {"ID": DEP})
    try:
        assert _collect(changes, 1) == [("running", 0)]  # the first read is a plain GET
        later = _collect(changes, 1)
        if later == [("running", 1)]:  # the feed may coalesce to the newest
            later = _collect(changes, 1)
        assert later == [("successful", 2)]
    finally:
        changes.close()
    streams = _streams(server)
    assert len(streams) == 1 and f"topic=Deployment%3A{DEP}" in streams[0]
    assert "index=8" in streams[0]  # from just after the plain read's index
    assert api.calls == 2


def test_a_refused_stream_falls_back_to_blocking_queries(server: Server) -> None:
    server.stream_status = 404
    changes = DeploymentChanges(_api(server), {"ID": DEP})
    try:
        assert _collect(changes, 1) == [("running", 0)]
        server.deployment = _deployment("successful", 2)
        assert changes.next(0.5) is None  # same index: nothing changed
        assert any("index=7" in p for p in server.seen if p.startswith("/v1/deployment/"))
        server.index = 8  # Nomad's index moved: the blocking read brings the change
        assert _collect(changes, 1) == [("successful", 2)]
        assert changes.next(0.5) is None  # and the next read blocks from there
        assert any("index=8" in p for p in server.seen if p.startswith("/v1/deployment/"))
    finally:
        changes.close()


def test_a_broken_stream_reconnects_and_rereads(server: Server) -> None:
    server.streams = [[_event(8, _deployment("running", 1))], []]
    changes = DeploymentChanges(_api(server), {"ID": DEP})
    try:
        assert _collect(changes, 1) == [("running", 0)]
        assert _collect(changes, 1) == [("running", 1)]
        # The first stream closed; meanwhile the deployment finished.
        server.deployment = _deployment("successful", 2)
        assert _collect(changes, 1) == [("successful", 2)]
        deadline = time.monotonic() + 5  # the re-read comes first, then the new stream
        while time.monotonic() < deadline and len(_streams(server)) < 2:
            time.sleep(0.05)
    finally:
        changes.close()
    assert len(_streams(server)) == 2
