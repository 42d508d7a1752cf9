"""NOMAD_ADDR=unix:///…/api.sock: nomadml reaches Nomad's Task API (a task's own agent
on a unix socket) with the same client, token header and all; a relative socket path
is refused before anything is sent."""

from __future__ import annotations

import json
import socket
import socketserver
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.errors import BadInput, NomadUnreachable
from nomadml.settings import NomadSettings, parse_addresses

SEEN: list[tuple[str, str | None]] = []  # (path, token) of each request the agent got


class _Agent(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        SEEN.append((self.path, self.headers.get("X-Nomad-Token")))
        body = json.dumps({"ID": "alloc-1"}).encode()
        self.send_response(200)
        self.send_header("X-Nomad-Index", "42")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        request, _ = super().get_request()
        return request, ("local", 0)  # http.server wants a (host, port) client address


@pytest.fixture()
def task_api() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="secrets-") as secrets:  # short: socket paths
        path = Path(secrets) / "api.sock"
        server = _UnixHTTPServer(str(path), _Agent)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield path
        finally:
            server.shutdown()
            server.server_close()


def test_requests_go_to_the_socket_with_the_workload_identity(task_api: Path) -> None:
    SEEN.clear()
    settings = NomadSettings.from_env({"NOMAD_ADDR": f"unix://{task_api}", "NOMAD_TOKEN": "jwt"})
    answer = NomadAPI(settings).request("GET", "allocation/alloc-1")
    assert (answer.status, answer.body, answer.index) == (200, {"ID": "alloc-1"}, 42)
    assert SEEN == [("/v1/allocation/alloc-1", "jwt")]


def test_a_socket_address_must_be_absolute() -> None:
    assert parse_addresses("unix:///secrets/api.sock") == ("unix:///secrets/api.sock",)
    with pytest.raises(BadInput, match="names no absolute socket path"):
        parse_addresses("unix://secrets/api.sock")


def test_a_missing_socket_is_one_line_naming_it(tmp_path: Path) -> None:
    gone = tmp_path / "api.sock"
    api = NomadAPI(NomadSettings.from_env({"NOMAD_ADDR": f"unix://{gone}"}))
    with pytest.raises(NomadUnreachable) as err:
        api.request("GET", "allocation/alloc-1")
    assert str(err.value) == (
        f"cannot reach Nomad at unix://{gone}: "
        f"cannot connect to unix socket {gone}: [Errno 2] No such file or directory"
    )
