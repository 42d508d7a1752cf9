#!/usr/bin/env python3
"""Model server for ONNX models, run by the wine example's serving image
(examples/wine/images.py builds it with onnxruntime and numpy).

It follows the serving contract of nomadml's reference server
(nomadml/bundled/serve.py), so nomadml's jobs, health checks and canary gates work
with it unchanged:

    GET  /health    200 {"status": "ok", ...}; 503 {"status": "draining", ...} after SIGTERM
    POST /predict   {"instances": [[...], {...}]} -> {"predictions": [...], "version": ...}
    GET  /metrics   Prometheus text: nomadml_requests_total{path,code},
                    nomadml_request_duration_seconds (histogram of POST /predict)

Configuration comes from the environment: NOMADML_MODEL_DIR, NOMADML_MODEL_NAME,
NOMADML_MODEL_VERSION (required), NOMADML_PORT or NOMAD_PORT_http, NOMADML_BIND or
NOMAD_IP_http, NOMADML_SHUTDOWN_GRACE. Before loading anything it checks every file
of the model directory against manifest.json. It serves model.onnx, with input and
class names from metadata.json's signature. Bad input is a 400, never a 5xx.
Startup problems print one `serve_onnx: <message>` line on stderr and exit 2.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from types import FrameType
from typing import Any, cast
from urllib.parse import urlsplit

# Newer onnxruntime builds upload telemetry from Linux too, unless this is set
# before the runtime initialises; a model server talks to its clients only.
os.environ["ORT_DISABLE_TELEMETRY"] = "1"

import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped]

ort.disable_telemetry_events()

MODEL_FILE = "model.onnx"
METADATA_FILE = "metadata.json"
MAX_BODY_BYTES = 1024 * 1024
MAX_DISCARD_BYTES = 8 * MAX_BODY_BYTES  # unread input would turn our close() into a reset
MAX_INSTANCES = 1000
FLOAT32_MAX = float(np.finfo(np.float32).max)
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
POLL_SECONDS = 0.05


class StartupError(Exception):
    """The server must not start; str() is the one line shown to the operator."""


class BadRequest(Exception):
    """The client sent something unusable; str() is the 400's error message."""


def log(message: str) -> None:
    print(f"serve_onnx: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class Config:
    model_dir: Path
    model_name: str
    model_version: str
    bind: str = "127.0.0.1"
    port: int = 8080
    shutdown_grace: float = 5.0


def load_config(env: Mapping[str, str]) -> Config:
    """NOMADML_* wins over what Nomad injects for the `http` port."""

    def first(*names: str) -> tuple[str, str] | None:
        return next(((n, env[n].strip()) for n in names if env.get(n, "").strip()), None)

    def required(name: str) -> str:
        found = first(name)
        if found is None:
            raise StartupError(f"{name} is not set")
        return found[1]

    def port(found: tuple[str, str] | None) -> int:
        if found is None:
            return 8080
        if not found[1].isdigit() or int(found[1]) > 65535:
            raise StartupError(f"{found[0]}={found[1]!r} is not a port number (0-65535)")
        return int(found[1])

    def grace(found: tuple[str, str] | None) -> float:
        if found is None:
            return 5.0
        try:
            seconds = float(found[1])
        except ValueError:
            seconds = -1.0
        if not (math.isfinite(seconds) and seconds >= 0):
            raise StartupError(f"{found[0]}={found[1]!r} is not a non-negative number of seconds")
        return seconds

    bind = first("NOMADML_BIND", "NOMAD_IP_http")
    return Config(
        model_dir=Path(required("NOMADML_MODEL_DIR")),
        model_name=required("NOMADML_MODEL_NAME"),
        model_version=required("NOMADML_MODEL_VERSION"),
        bind=bind[1] if bind else "127.0.0.1",
        port=port(first("NOMADML_PORT", "NOMAD_PORT_http")),
        shutdown_grace=grace(first("NOMADML_SHUTDOWN_GRACE")),
    )


# --------------------------------------------------------------------------- model files


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a valid JSON number")  # json would accept NaN/Infinity


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes(), parse_constant=_reject_constant)
    except OSError as exc:
        raise StartupError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (ValueError, RecursionError) as exc:
        raise StartupError(f"{path.name}: not valid JSON: {exc}") from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def verify_manifest(config: Config) -> None:
    """Refuse a model directory that is not exactly the version we were told to
    serve: manifest.json names it, and every file it lists has its size and sha256."""
    manifest = _read_json(config.model_dir / "manifest.json")
    if not isinstance(manifest, dict) or manifest.get("format") != 1:
        raise StartupError("manifest.json: not a format 1 manifest")
    for key, expected, env in (
        ("model", config.model_name, "NOMADML_MODEL_NAME"),
        ("version", config.model_version, "NOMADML_MODEL_VERSION"),
    ):
        if manifest.get(key) != expected:
            raise StartupError(
                f"manifest.json: {key} is {json.dumps(manifest.get(key))}, "
                f"but {env} is {json.dumps(expected)}"
            )
    files = manifest.get("files")
    if not isinstance(files, list) or not all(isinstance(f, dict) for f in files):
        raise StartupError("manifest.json: files must be a list of objects")
    listed = {f.get("path") for f in files}
    for needed in (MODEL_FILE, METADATA_FILE):
        if needed not in listed:  # an unlisted file would be served unchecked
            raise StartupError(f"manifest.json: files does not list {needed}")
    for entry in files:
        rel, digest, size = entry.get("path"), entry.get("sha256"), entry.get("size")
        pure = PurePosixPath(rel) if isinstance(rel, str) and rel else None
        if pure is None or pure.is_absolute() or ".." in pure.parts:
            raise StartupError(f"manifest.json: bad path {json.dumps(rel)}")
        path = config.model_dir / pure
        try:
            if (found := path.stat().st_size) != size:
                raise StartupError(f"{rel}: size is {found} bytes, manifest.json says {size}")
            if _sha256(path) != str(digest).lower():
                raise StartupError(f"{rel}: sha256 does not match manifest.json (modified?)")
        except OSError as exc:
            raise StartupError(f"{rel}: cannot read: {exc.strerror or exc}") from None


@dataclass(frozen=True)
class Model:
    session: Any  # onnxruntime.InferenceSession: run() is safe from many threads
    input_name: str
    features: tuple[str, ...]
    classes: tuple[str, ...]


def _names(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise StartupError(f"{METADATA_FILE}: {what} must be a non-empty list")
    names = [item.get("name") if isinstance(item, dict) else item for item in value]
    if not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
        raise StartupError(f"{METADATA_FILE}: {what} must be distinct non-empty names")
    return tuple(cast(list[str], names))


def load_model(model_dir: Path) -> Model:
    """model.onnx, checked against metadata.json's signature: one float input as
    wide as the feature list, a `label` and a `probabilities` output per class."""
    signature = _read_json(model_dir / METADATA_FILE)
    signature = signature.get("signature") if isinstance(signature, dict) else None
    if not isinstance(signature, dict):
        raise StartupError(f"{METADATA_FILE}: no signature object")
    features = _names(signature.get("inputs"), "signature.inputs")
    outputs = signature.get("outputs") or [{}]
    classes = _names(outputs[0].get("values") if isinstance(outputs[0], dict) else None, "labels")
    options = ort.SessionOptions()
    # Small trees answer in microseconds: one thread each, no spinning on idle cores.
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(
            str(model_dir / MODEL_FILE), options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own classes for unreadable graphs
        raise StartupError(f"{MODEL_FILE}: onnxruntime cannot load it: {exc}") from None
    inputs = session.get_inputs()
    got = {o.name: o for o in session.get_outputs()}
    if len(inputs) != 1 or inputs[0].type != "tensor(float)":
        raise StartupError(f"{MODEL_FILE}: expected one float tensor input")
    if inputs[0].shape[-1] != len(features):
        raise StartupError(
            f"{MODEL_FILE}: takes {inputs[0].shape[-1]} values, signature lists {len(features)}"
        )
    if "label" not in got or "probabilities" not in got:
        raise StartupError(f"{MODEL_FILE}: expected outputs label and probabilities")
    if got["probabilities"].shape[-1] != len(classes):
        raise StartupError(f"{MODEL_FILE}: probabilities width differs from the label count")
    return Model(session, inputs[0].name, features, classes)


# --------------------------------------------------------------------------- predictions


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    names = {bool: "boolean", str: "string", list: "list", dict: "object"}
    return next((n for t, n in names.items() if isinstance(value, t)), "number")


def _number(index: int, name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"instance {index}: {name} must be a number, got {_json_type(value)}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not (math.isfinite(number) and abs(number) <= FLOAT32_MAX):
        raise BadRequest(f"instance {index}: {name} must be a finite 32-bit float")
    return number


def parse_instances(body: bytes, features: tuple[str, ...]) -> list[list[float]]:
    try:
        payload = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("instances"), list):
        raise BadRequest('request body must be a JSON object with an "instances" list')
    instances = payload["instances"]
    if not 1 <= len(instances) <= MAX_INSTANCES:
        raise BadRequest(f'"instances" must hold 1 to {MAX_INSTANCES} items')
    rows = []
    for i, raw in enumerate(instances):
        if isinstance(raw, list):
            if len(raw) != len(features):
                raise BadRequest(
                    f"instance {i}: expected {len(features)} values "
                    f"({', '.join(features)}), got {len(raw)}"
                )
            values = list(raw)
        elif isinstance(raw, dict):
            missing = [f for f in features if f not in raw]
            unknown = sorted(k for k in raw if k not in features)
            if missing or unknown:
                shown = json.dumps((missing or unknown)[:5])
                raise BadRequest(
                    f"instance {i}: {'missing' if missing else 'unknown'} feature(s) {shown}"
                )
            values = [raw[f] for f in features]
        else:
            raise BadRequest(
                f"instance {i}: must be a list of {len(features)} numbers or an object "
                f"keyed by feature name, got {_json_type(raw)}"
            )
        rows.append([_number(i, f, v) for f, v in zip(features, values, strict=True)])
    return rows


def predict(model: Model, rows: list[list[float]]) -> list[dict[str, object]]:
    batch = np.asarray(rows, dtype=np.float32)
    labels, probabilities = model.session.run(["label", "probabilities"], {model.input_name: batch})
    answers: list[dict[str, object]] = []
    for i, (label, probs) in enumerate(zip(labels.tolist(), probabilities.tolist(), strict=True)):
        if not all(math.isfinite(p) for p in probs):
            raise BadRequest(f"instance {i}: values cannot be scored")
        answers.append(
            {"label": str(label), "probabilities": dict(zip(model.classes, probs, strict=True))}
        )
    return answers


# --------------------------------------------------------------------------- metrics


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """The reference server's metric names and labels, so the canary gates read ours."""

    def __init__(self, config: Config) -> None:
        self._info = f'model="{_label(config.model_name)}",version="{_label(config.model_version)}"'
        self._lock = threading.Lock()
        # Present from the first scrape, so a canary's error ratio is 0, not "no data".
        self._requests: dict[tuple[str, int], int] = {("/predict", 200): 0, ("/predict", 500): 0}
        self._buckets = [0] * len(DURATION_BUCKETS)  # cumulative, as exposed
        self._sum, self._count = 0.0, 0

    def record(self, path: str, code: int, duration: float | None) -> None:
        with self._lock:
            self._requests[(path, code)] = self._requests.get((path, code), 0) + 1
            if duration is not None:
                self._sum += duration
                self._count += 1
                for i, bound in enumerate(DURATION_BUCKETS):
                    self._buckets[i] += duration <= bound

    def render(self) -> str:
        with self._lock:
            requests, buckets = sorted(self._requests.items()), list(self._buckets)
            total, count = self._sum, self._count
        name = "nomadml_request_duration_seconds"
        return "\n".join(
            [
                "# HELP nomadml_requests_total HTTP requests answered, by path and status code.",
                "# TYPE nomadml_requests_total counter",
                *(
                    f'nomadml_requests_total{{path="{_label(p)}",code="{c}"}} {n}'
                    for (p, c), n in requests
                ),
                f"# HELP {name} Time taken to answer POST /predict.",
                f"# TYPE {name} histogram",
                *(
                    f'{name}_bucket{{le="{b:g}"}} {n}'
                    for b, n in zip(DURATION_BUCKETS, buckets, strict=True)
                ),
                f'{name}_bucket{{le="+Inf"}} {count}',
                f"{name}_sum {total!r}",
                f"{name}_count {count}",
                "# HELP nomadml_model_info The model version this server answers for.",
                "# TYPE nomadml_model_info gauge",
                f"nomadml_model_info{{{self._info}}} 1",
                "",
            ]
        )


# --------------------------------------------------------------------------- HTTP


@dataclass
class State:
    config: Config
    model: Model
    metrics: Metrics
    draining: threading.Event = field(default_factory=threading.Event)


class Handler(BaseHTTPRequestHandler):
    server_version = "nomadml-wine-onnx"
    sys_version = ""
    protocol_version = "HTTP/1.0"  # close after each answer: idle connections cannot stall a drain
    timeout = 30.0  # a stalled client must not pin a handler thread (shutdown waits for them)
    _started = 0.0
    _body_read = False

    @property
    def state(self) -> State:
        return cast(Server, self.server).state

    def log_message(self, format: str, *args: Any) -> None:
        return  # a line per health check would bury the real events

    def do_GET(self) -> None:
        self._dispatch()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    def _dispatch(self) -> None:
        self._started, self._body_read = time.perf_counter(), False
        path = urlsplit(self.path).path
        routes = {"/health": ("GET", "HEAD"), "/metrics": ("GET", "HEAD"), "/predict": ("POST",)}
        try:
            if path not in routes:
                self._json(404, {"error": f"no such endpoint: {json.dumps(path)}"})
            elif self.command not in routes[path]:
                allowed = ", ".join(routes[path])
                error = f"method {self.command} not allowed on {path} (allowed: {allowed})"
                self._json(405, {"error": error}, {"Allow": allowed})
            elif path == "/health":
                draining = self.state.draining.is_set()
                config = self.state.config
                status = {"status": "draining" if draining else "ok"}
                info = {"model": config.model_name, "version": config.model_version}
                self._json(503 if draining else 200, {**status, **info})
            elif path == "/metrics":
                body = self.state.metrics.render().encode()
                self._send(200, body, "text/plain; version=0.0.4; charset=utf-8")
            else:
                self._predict()
        except (ConnectionError, TimeoutError):
            self.close_connection = True  # the client went away
        finally:
            self._discard_body()

    def _predict(self) -> None:
        try:
            rows = parse_instances(self._read_body(), self.state.model.features)
            predictions = predict(self.state.model, rows)
        except BadRequest as exc:
            self._json(400, {"error": str(exc)})
            return
        except Exception as exc:
            log(f"internal error answering /predict: {exc!r}")
            self._json(500, {"error": "internal server error"})
            return
        config = self.state.config
        answer = {"model": config.model_name, "version": config.model_version}
        self._json(200, {**answer, "predictions": predictions})

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise BadRequest("chunked request bodies are not supported; send Content-Length")
        raw = self.headers.get("Content-Length")
        if raw is None or not raw.strip().isdigit():
            raise BadRequest(f"missing or invalid Content-Length: {raw!r}")
        if int(raw) > MAX_BODY_BYTES:
            raise BadRequest(f"request body is {raw} bytes, at most {MAX_BODY_BYTES} are allowed")
        data = self.rfile.read(int(raw))
        self._body_read = True
        if len(data) != int(raw):
            raise BadRequest("request body is shorter than its Content-Length")
        return data

    def _discard_body(self) -> None:
        raw = self.headers.get("Content-Length", "") if self.headers else ""
        if self._body_read or not raw.strip().isdigit():
            return
        left = int(raw)
        if left > MAX_DISCARD_BYTES:
            return
        try:
            while left > 0 and (chunk := self.rfile.read(min(left, 65536))):
                left -= len(chunk)
        except OSError:
            self.close_connection = True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # The base class answers protocol errors (bad request line, ...) with HTML.
        self.close_connection = True
        self._json(code, {"error": message or "bad request"})

    def _json(self, code: int, payload: object, headers: Mapping[str, str] | None = None) -> None:
        self._send(code, json.dumps(payload).encode(), "application/json", headers)

    def _send(
        self, code: int, body: bytes, content_type: str, headers: Mapping[str, str] | None = None
    ) -> None:
        # Counted before the answer leaves: a client holding its answer finds it counted.
        path = urlsplit(self.path).path if getattr(self, "path", None) else ""
        timed = path == "/predict" and self.command == "POST"
        known = path if path in ("/health", "/metrics", "/predict") else "other"
        self.state.metrics.record(
            known, code, time.perf_counter() - self._started if timed else None
        )
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class Server(ThreadingHTTPServer):
    request_queue_size = 128  # many clients at once after a deploy
    daemon_threads = False  # server_close() then waits for in-flight answers

    def __init__(self, state: State) -> None:
        self.state = state
        if ":" in state.config.bind:
            self.address_family = socket.AF_INET6
        super().__init__((state.config.bind, state.config.port), Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup, which can stall a container
        # without a resolver; we never use the name.
        socketserver.TCPServer.server_bind(self)
        host, port = self.socket.getsockname()[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if not isinstance(exc, ConnectionError | TimeoutError):
            log(f"error answering {client_address[0]}: {exc!r}")


def make_server(config: Config) -> Server:
    """Verify, load, bind; raises StartupError."""
    verify_manifest(config)
    state = State(config, load_model(config.model_dir), Metrics(config))
    try:
        return Server(state)
    except OSError as exc:
        raise StartupError(f"cannot listen on {config.bind}:{config.port}: {exc}") from None


def serve_until_signalled(server: Server) -> int:
    """Serve; on SIGTERM/SIGINT answer 503 on /health for the grace period while still
    answering predictions, then finish in-flight requests and return 0."""
    received: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        server.state.draining.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    loop = threading.Thread(target=server.serve_forever, args=(POLL_SECONDS,), name="serve")
    loop.start()
    config = server.state.config
    host = f"[{server.server_name}]" if ":" in server.server_name else server.server_name
    log(f"serving {config.model_name} {config.model_version} on http://{host}:{server.server_port}")
    try:
        while not received:
            time.sleep(POLL_SECONDS)
        log(f"{signal.Signals(received[0]).name} received; draining for {config.shutdown_grace:g}s")
        deadline = time.monotonic() + config.shutdown_grace
        while len(received) < 2 and time.monotonic() < deadline:  # a 2nd signal: stop now
            time.sleep(POLL_SECONDS)
    finally:
        server.shutdown()
        loop.join()
        server.server_close()
    log("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    if sys.argv[1:] if argv is None else argv:
        log("takes no arguments; configure it with NOMADML_* environment variables")
        return 2
    if os.geteuid() == 0:
        log("warning: running as root; the serving image runs as 10001:10001")
    try:
        server = make_server(load_config(os.environ))
    except StartupError as exc:
        log(str(exc))
        return 2
    return serve_until_signalled(server)


if __name__ == "__main__":
    sys.exit(main())
