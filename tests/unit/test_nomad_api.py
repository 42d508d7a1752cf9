"""The Nomad adapter against a scripted HTTP server on loopback: reads retried on
transient failures, writes never retried, Nomad's refusals mapped to one line."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.errors import Conflict, NomadAPIError
from nomadml.settings import NomadSettings


class Scripted(ThreadingHTTPServer):
    def __init__(self) -> None:
        self.script: list[tuple[int, bytes]] = []
        self.seen: list[str] = []
        super().__init__(("127.0.0.1", 0), Handler)


class Handler(BaseHTTPRequestHandler):
    server: Scripted

    def _answer(self) -> None:
        self.server.seen.append(f"{self.command} {self.path}")
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        status, body = self.server.script.pop(0)
        self.send_response(status)
        self.send_header("X-Nomad-Index", "42")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def server() -> Iterator[Scripted]:
    s = Scripted()
    t = threading.Thread(target=s.serve_forever, daemon=True)
    t.start()
    yield s
    s.shutdown()
    s.server_close()


def api(server: Scripted) -> NomadAPI:
    return NomadAPI(
        NomadSettings.from_env({"NOMAD_ADDR": f"http://127.0.0.1:{server.server_address[1]}"})
    )


def test_reads_are_retried_on_transient_errors(server: Scripted) -> None:
    server.script = [(503, b"busy"), (500, b"rpc error: no leader"), (200, b'"127.0.0.1:4647"')]
    assert api(server).leader() == "127.0.0.1:4647"
    assert len(server.seen) == 3


def test_reads_give_up_after_three_tries(server: Scripted) -> None:
    server.script = [(503, b"busy")] * 3
    with pytest.raises(NomadAPIError, match="HTTP 503"):
        api(server).leader()
    assert len(server.seen) == 3


def test_writes_are_not_retried(server: Scripted) -> None:
    server.script = [(503, b"busy")]
    with pytest.raises(NomadAPIError):
        api(server).register({"ID": "x"}, enforce_index=0)
    assert server.seen == ["PUT /v1/job/x"]


def test_lost_race_is_a_conflict_and_not_retried(server: Scripted) -> None:
    server.script = [
        (500, b"Enforcing job modify index 3: job exists with conflicting job modify index: 4")
    ]
    with pytest.raises(Conflict):
        api(server).register({"ID": "x"}, enforce_index=3)
    assert len(server.seen) == 1


def test_not_found_is_not_retried(server: Scripted) -> None:
    server.script = [(404, b"job not found")]
    assert api(server).job("nope") is None
    assert len(server.seen) == 1
