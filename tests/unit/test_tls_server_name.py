"""A Nomad address whose server presents a certificate for another name: one line
naming the mismatch, nothing sent. The server here is a TLS listener on loopback with
a certificate (from a CA of the test's own) for `server.other.nomad` only."""

from __future__ import annotations

import http.server
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from nomadml.cli.main import main
from nomadml.errors import ExitCode


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture()
def wrong_name_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=CA",
             "-keyout", "ca.key", "-out", "ca.crt", cwd=tmp_path)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=server.other.nomad",
             "-keyout", "s.key", "-out", "s.csr", cwd=tmp_path)  # fmt: skip
    (tmp_path / "san").write_text("subjectAltName=DNS:server.other.nomad\n")
    _openssl("x509", "-req", "-in", "s.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "1", "-extfile", "san", "-out", "s.crt",
             cwd=tmp_path)  # fmt: skip
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "s.crt", tmp_path / "s.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", tmp_path / "ca.crt"
    finally:
        server.shutdown()
        server.server_close()


def test_a_certificate_for_another_server_name_is_one_line(
    wrong_name_server: tuple[str, Path],
) -> None:
    address, ca = wrong_name_server
    result = CliRunner().invoke(
        main, ["status"], env={"NOMAD_ADDR": address, "NOMAD_CACERT": str(ca), "NOMAD_TOKEN": ""}
    )
    assert result.exit_code == int(ExitCode.NOMAD_UNREACHABLE), result.output
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"nomadml: error: cannot reach Nomad at {address}: the server's TLS certificate is "
        "not for this address (hostname mismatch)"
    ], lines
