"""`nomadml conformance` on the real Docker engine: nomadml's reference server keeps
every clause of the serving contract; a server that breaks clauses gets one line
per broken clause, naming it, and exit 7; nothing is left running."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from examples.iris.train import train_iris
from nomadml.adapters.images import DEFAULT_BASE_IMAGE, build_and_push
from nomadml.cli.main import main

# Answers health and predict, but: runs as root, a 5xx on bad input, no metrics, the
# wrong version, and it ignores SIGTERM.
CARELESS_SERVER = b"""
import json, os, signal
from http.server import BaseHTTPRequestHandler, HTTPServer
signal.signal(signal.SIGTERM, signal.SIG_IGN)
class H(BaseHTTPRequestHandler):
    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code); self.send_header("Content-Length", str(len(data)))
        self.end_headers(); self.wfile.write(data)
    def do_GET(self):
        self._send(200, {"status": "ok"} if self.path == "/health" else {})
    def do_POST(self):
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        try:
            rows = json.loads(raw)["instances"]
        except ValueError:
            return self._send(500, {"error": "boom"})
        self._send(200, {"predictions": [0 for _ in rows], "version": "dev"})
HTTPServer((os.environ["NOMAD_IP_http"], int(os.environ["NOMAD_PORT_http"])), H).serve_forever()
"""


def _careless_image() -> str:
    tag = hashlib.sha256(CARELESS_SERVER).hexdigest()[:12]
    dockerfile = f"FROM {DEFAULT_BASE_IMAGE}\nCOPY serve.py /opt/nomadml/serve.py\n".encode()
    context = iter([("Dockerfile", dockerfile), ("serve.py", CARELESS_SERVER)])
    return build_and_push(context, "127.0.0.1:5000/tests/careless", tag, {}).pinned


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout + result.stderr


def test_the_reference_server_keeps_the_contract_and_a_careless_one_is_named(
    docker_client: object, make_spec: Callable[..., Path], tmp_path: Path
) -> None:
    model_dir = tmp_path / "model"
    train_iris(model_dir)
    spec = make_spec()  # kill_timeout 10s: the reference server drains for 5s
    code, out = _run("conformance", str(spec), str(model_dir))
    assert code == 0, out
    assert out.count("  ok    ") == 6 and "FAIL" not in out

    impatient = make_spec({'kill_timeout = "10s"': 'kill_timeout = "3s"'}, file="short.toml")
    image = _careless_image()
    code, out = _run("conformance", str(impatient), str(model_dir), "--serving-image", image)
    assert code == 7, out
    failed = [line.strip() for line in out.splitlines() if line.strip().startswith("FAIL")]
    assert [f.split(":")[0] for f in failed] == [
        "FAIL  runs as a non-root user",
        "FAIL  POST /predict answers with predictions and the model version",
        "FAIL  POST /predict refuses bad input with 4xx",
        "FAIL  GET /metrics counts requests in nomadml_requests_total and "
        "nomadml_request_duration_seconds",
        "FAIL  on SIGTERM drains and exits 0 within kill_timeout (3s)",
    ], out
    assert "runs as root (uid 0)" in out
    assert "HTTP 500 (want 4xx, never 5xx)" in out
    assert "\"version\" is 'dev', want '1.0.0'" in out
    assert "still running 3 s after SIGTERM" in out
    import docker

    leftovers = docker.from_env().containers.list(
        all=True, filters={"ancestor": "127.0.0.1:5000/tests/careless"}
    )
    assert leftovers == []
