#!/usr/bin/env python3
"""Reference model server shipped in nomadml's serving image.

A Nomad job runs this file as its serving task. It reads one installed model version from a
read-only directory, refuses to start unless every file matches the manifest, and answers:

    GET  /health    200 {"status": "ok", ...}; 503 {"status": "draining", ...} after SIGTERM
    POST /predict   {"instances": [[...], {...}]} -> labels and class probabilities
    GET  /metrics   Prometheus text format, scraped by nomadml's canary gates

Configuration comes from the environment (see ``load_config``). Startup problems print one
``serve: <message>`` line on stderr and exit 2.

Standard library only: the serving image contains nothing but python3.
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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from types import FrameType
from typing import Any, cast
from urllib.parse import quote, urlsplit

DEFAULT_PORT = 8080
DEFAULT_BIND = "127.0.0.1"
DEFAULT_SHUTDOWN_GRACE = 5.0

MANIFEST_FORMAT = 1
# nomadml's probe requests (sample requests sent when real traffic is short) carry it.
PROBE_HEADER = "X-Nomadml-Probe"
MODEL_KIND = "linear-softmax"
MAX_EXTRA_LATENCY_MS = 60_000.0

MAX_BODY_BYTES = 1024 * 1024
MAX_INSTANCES = 1000
# Unread input makes the kernel answer close() with RST, which can destroy the response before
# the client reads it; so refused bodies are read and thrown away, up to this much.
MAX_DISCARD_BYTES = 8 * MAX_BODY_BYTES
LINGER_SECONDS = 1.0
# A stalled client must not pin a handler thread forever: shutdown waits for every handler.
SOCKET_TIMEOUT_SECONDS = 30.0
POLL_SECONDS = 0.05
HASH_CHUNK_BYTES = 1024 * 1024

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
GET_METHODS = frozenset({"GET", "HEAD"})
POST_METHODS = frozenset({"POST"})


class StartupError(Exception):
    """The server must not start; ``str()`` is the one line shown to the operator."""


class BadRequest(Exception):
    """The client sent something unusable; ``str()`` is the one-line 400 message."""


def log(message: str) -> None:
    # Nomad captures stderr as the task log; flush so lines survive an abrupt kill.
    print(f"serve: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class Config:
    model_dir: Path
    model_name: str
    model_version: str
    bind: str = DEFAULT_BIND
    port: int = DEFAULT_PORT
    shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE


def _first_set(environ: Mapping[str, str], *names: str) -> tuple[str, str] | None:
    """The first variable that is set to something non-blank, as (name, value)."""
    for name in names:
        value = environ.get(name, "").strip()
        if value:
            return name, value
    return None


def _required(environ: Mapping[str, str], name: str) -> str:
    found = _first_set(environ, name)
    if found is None:
        raise StartupError(f"{name} is not set")
    return found[1]


def _port(name: str, text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise StartupError(f"{name}={text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise StartupError(f"{name}={text!r} is not a port number (0-65535)")
    return port


def _grace(name: str, text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise StartupError(f"{name}={text!r} is not a number of seconds") from None
    if not (math.isfinite(seconds) and seconds >= 0):
        raise StartupError(f"{name}={text!r} must be a non-negative number of seconds")
    return seconds


def load_config(environ: Mapping[str, str]) -> Config:
    """Read the configuration; NOMADML_* wins over what Nomad injects for the `http` port."""
    model_dir = Path(_required(environ, "NOMADML_MODEL_DIR"))
    name = _required(environ, "NOMADML_MODEL_NAME")
    version = _required(environ, "NOMADML_MODEL_VERSION")
    port_var = _first_set(environ, "NOMADML_PORT", "NOMAD_PORT_http")
    bind_var = _first_set(environ, "NOMADML_BIND", "NOMAD_IP_http")
    grace_var = _first_set(environ, "NOMADML_SHUTDOWN_GRACE")
    return Config(
        model_dir=model_dir,
        model_name=name,
        model_version=version,
        bind=bind_var[1] if bind_var else DEFAULT_BIND,
        port=_port(*port_var) if port_var else DEFAULT_PORT,
        shutdown_grace=_grace(*grace_var) if grace_var else DEFAULT_SHUTDOWN_GRACE,
    )


# --------------------------------------------------------------------------- manifest


def _reject_constant(name: str) -> float:
    # Python's json accepts NaN/Infinity, which are not JSON and poison every computation.
    raise ValueError(f"{name} is not a valid JSON number")


def _read_json(path: Path) -> object:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise StartupError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return json.loads(data, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise StartupError(f"{path.name}: not valid JSON: {exc}") from None


def _is_int(value: object) -> bool:
    # bool is an int subclass; `true` must not pass for a size or a format number.
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class ManifestEntry:
    path: str
    sha256: str
    size: int


def _safe_relative(path: str) -> bool:
    """Manifest paths must stay inside the model directory."""
    pure = PurePosixPath(path)
    return bool(path) and not pure.is_absolute() and ".." not in pure.parts and "\\" not in path


def _manifest_entry(index: int, raw: object) -> ManifestEntry:
    where = f"manifest.json: files[{index}]"
    if not isinstance(raw, dict):
        raise StartupError(f"{where} must be an object")
    path, digest, size = raw.get("path"), raw.get("sha256"), raw.get("size")
    if not isinstance(path, str) or not _safe_relative(path):
        raise StartupError(f"{where}.path must be a relative path inside the model directory")
    if not isinstance(digest, str) or len(digest) != 64 or not _is_hex(digest):
        raise StartupError(f"{where}.sha256 must be 64 hex digits")
    if not _is_int(size) or cast(int, size) < 0:
        raise StartupError(f"{where}.size must be a non-negative integer")
    return ManifestEntry(path=path, sha256=digest.lower(), size=cast(int, size))


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


def _expect_same(field_name: str, found: object, expected: str, env_name: str) -> None:
    if found != expected:
        raise StartupError(
            f"manifest.json: {field_name} is {json.dumps(found)}, "
            f"but {env_name} is {json.dumps(expected)}"
        )


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _verify_file(model_dir: Path, entry: ManifestEntry) -> None:
    path = model_dir / entry.path
    try:
        size = path.stat().st_size
        # Size first: it is free and catches truncated copies without reading gigabytes.
        if size != entry.size:
            raise StartupError(f"{entry.path}: size is {size} bytes, manifest says {entry.size}")
        if _sha256_of(path) != entry.sha256:
            raise StartupError(
                f"{entry.path}: sha256 does not match manifest.json (file corrupted or modified)"
            )
    except OSError as exc:
        raise StartupError(f"{entry.path}: cannot read: {exc.strerror or exc}") from None


def verify_manifest(model_dir: Path, model_name: str, model_version: str) -> None:
    """Refuse a model directory that is not exactly the version we were told to serve."""
    manifest = _read_json(model_dir / "manifest.json")
    if not isinstance(manifest, dict):
        raise StartupError("manifest.json: must be a JSON object")
    if not _is_int(manifest.get("format")) or manifest["format"] != MANIFEST_FORMAT:
        raise StartupError(
            f"manifest.json: unsupported format {json.dumps(manifest.get('format'))} "
            f"(this server reads format {MANIFEST_FORMAT})"
        )
    _expect_same("model", manifest.get("model"), model_name, "NOMADML_MODEL_NAME")
    _expect_same("version", manifest.get("version"), model_version, "NOMADML_MODEL_VERSION")
    files = manifest.get("files")
    if not isinstance(files, list) or not files:
        raise StartupError("manifest.json: files must be a non-empty list")
    entries = [_manifest_entry(i, raw) for i, raw in enumerate(files)]
    # An unlisted model.json would be served unchecked, which is what the manifest prevents.
    if "model.json" not in {entry.path for entry in entries}:
        raise StartupError("manifest.json: files does not list model.json")
    for entry in entries:
        _verify_file(model_dir, entry)


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Model:
    features: tuple[str, ...]
    classes: tuple[str, ...]
    coef: tuple[tuple[float, ...], ...]
    intercept: tuple[float, ...]
    error_rate: float = 0.0
    extra_latency_ms: float = 0.0
    error_after: int = 0  # the first this many predictions never fail (a late regression)
    slow_after: int = 0  # the first this many predictions get no extra latency (a late slowdown)
    # After this many predictions every row gets the first class (inputs that break later:
    # the predicted labels shift, no error, no delay); 0: never.
    stuck_after: int = 0

    def probabilities(self, x: Sequence[float]) -> list[float]:
        """softmax(coef . x + intercept); OverflowError if the inputs are too large to score."""
        logits = [
            bias + sum(w * v for w, v in zip(row, x, strict=True))
            for row, bias in zip(self.coef, self.intercept, strict=True)
        ]
        if not all(math.isfinite(z) for z in logits):
            raise OverflowError("logits are not finite")
        top = max(logits)  # shifting by the max keeps exp() from overflowing
        exps = [math.exp(z - top) for z in logits]
        total = math.fsum(exps)
        return [e / total for e in exps]


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _names(doc: Mapping[str, object], key: str, minimum: int) -> tuple[str, ...]:
    raw = doc.get(key)
    if not isinstance(raw, list) or len(raw) < minimum:
        raise StartupError(f"model.json: {key} must be a list of at least {minimum} names")
    if not all(isinstance(name, str) and name for name in raw):
        raise StartupError(f"model.json: {key} must contain only non-empty strings")
    if len(set(raw)) != len(raw):
        raise StartupError(f"model.json: {key} contains duplicates")
    return tuple(cast(list[str], raw))


def _vector(raw: object, length: int, where: str, per: str) -> tuple[float, ...]:
    if not isinstance(raw, list):
        raise StartupError(f"model.json: {where} must be a list of {length} numbers ({per})")
    if len(raw) != length:
        raise StartupError(f"model.json: {where} has {len(raw)} values, expected {length} ({per})")
    numbers = [_finite(value) for value in raw]
    for index, number in enumerate(numbers):
        if number is None:
            raise StartupError(f"model.json: {where}[{index}] must be a finite number")
    return tuple(cast(list[float], numbers))


def _matrix(raw: object, rows: int, cols: int) -> tuple[tuple[float, ...], ...]:
    if not isinstance(raw, list):
        raise StartupError(f"model.json: coef must be a list of {rows} rows (one per class)")
    if len(raw) != rows:
        raise StartupError(f"model.json: coef has {len(raw)} rows, expected {rows} (one per class)")
    return tuple(_vector(row, cols, f"coef[{i}]", "one per feature") for i, row in enumerate(raw))


def _serving(raw: object) -> tuple[float, float, int, int, int]:
    """The fault-injection knobs: (error_rate, extra_latency_ms, error_after, slow_after,
    stuck_after)."""
    if raw is None:
        return 0.0, 0.0, 0, 0, 0
    if not isinstance(raw, dict):
        raise StartupError("model.json: serving must be an object")
    # Strict keys: a typo would silently turn a deliberately bad version into a good one.
    knobs = {"error_rate", "extra_latency_ms", "error_after", "slow_after", "stuck_after"}
    unknown = sorted(set(raw) - knobs)
    if unknown:
        raise StartupError(f"model.json: serving has unknown key(s): {', '.join(unknown)}")
    rate = _finite(raw.get("error_rate", 0.0))
    if rate is None or not 0.0 <= rate <= 1.0:
        raise StartupError("model.json: serving.error_rate must be a number from 0 to 1")
    latency = _finite(raw.get("extra_latency_ms", 0.0))
    if latency is None or not 0.0 <= latency <= MAX_EXTRA_LATENCY_MS:
        raise StartupError(
            f"model.json: serving.extra_latency_ms must be from 0 to {MAX_EXTRA_LATENCY_MS:g}"
        )
    counts = [raw.get(key, 0) for key in ("error_after", "slow_after", "stuck_after")]
    for key, value in zip(("error_after", "slow_after", "stuck_after"), counts, strict=True):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise StartupError(f"model.json: serving.{key} must be a whole number >= 0")
    return rate, latency, counts[0], counts[1], counts[2]


def load_model(path: Path) -> Model:
    doc = _read_json(path)
    if not isinstance(doc, dict):
        raise StartupError("model.json: must be a JSON object")
    if doc.get("kind") != MODEL_KIND:
        raise StartupError(
            f"model.json: kind is {json.dumps(doc.get('kind'))}, this server runs {MODEL_KIND!r}"
        )
    features = _names(doc, "features", 1)
    classes = _names(doc, "classes", 2)
    coef = _matrix(doc.get("coef"), len(classes), len(features))
    intercept = _vector(doc.get("intercept"), len(classes), "intercept", "one per class")
    knobs = _serving(doc.get("serving"))
    return Model(features, classes, coef, intercept, *knobs)


# --------------------------------------------------------------------------- requests


def _json_type(value: object) -> str:
    """JSON's name for a value's type, for error messages aimed at non-Python clients."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return "number"


def _name_list(names: Sequence[str], limit: int = 5) -> str:
    # json.dumps keeps client-chosen names on one line, whatever characters they contain.
    shown = ", ".join(json.dumps(name) for name in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _feature_value(index: int, name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"instance {index}: {name} must be a number, got {_json_type(value)}")
    number = _finite(value)
    if number is None:
        raise BadRequest(f"instance {index}: {name} must be a finite number")
    return number


def parse_instance(index: int, raw: object, features: Sequence[str]) -> list[float]:
    """One instance, as a list in feature order or an object keyed by feature name."""
    if isinstance(raw, list):
        if len(raw) != len(features):
            raise BadRequest(
                f"instance {index}: expected {len(features)} values "
                f"({', '.join(features)}), got {len(raw)}"
            )
        values: list[object] = list(raw)
    elif isinstance(raw, dict):
        missing = [name for name in features if name not in raw]
        if missing:
            raise BadRequest(f"instance {index}: missing feature(s): {_name_list(missing)}")
        unknown = sorted(key for key in raw if key not in features)
        if unknown:
            raise BadRequest(f"instance {index}: unknown feature(s): {_name_list(unknown)}")
        values = [raw[name] for name in features]
    else:
        raise BadRequest(
            f"instance {index}: must be a list of {len(features)} numbers or an object "
            f"keyed by feature name, got {_json_type(raw)}"
        )
    return [_feature_value(index, n, v) for n, v in zip(features, values, strict=True)]


def parse_instances(body: bytes, features: Sequence[str]) -> list[list[float]]:
    try:
        payload = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict) or "instances" not in payload:
        raise BadRequest('request body must be a JSON object with an "instances" list')
    instances = payload["instances"]
    if not isinstance(instances, list):
        raise BadRequest(f'"instances" must be a list, got {_json_type(instances)}')
    if not instances:
        raise BadRequest('"instances" is empty')
    if len(instances) > MAX_INSTANCES:
        raise BadRequest(
            f'"instances" has {len(instances)} items, at most {MAX_INSTANCES} are allowed'
        )
    return [parse_instance(i, raw, features) for i, raw in enumerate(instances)]


def predict(model: Model, rows: Sequence[Sequence[float]]) -> list[dict[str, object]]:
    predictions: list[dict[str, object]] = []
    for index, row in enumerate(rows):
        try:
            probs = model.probabilities(row)
        except OverflowError:
            raise BadRequest(f"instance {index}: values are too large to score") from None
        best = max(range(len(probs)), key=probs.__getitem__)
        by_class = dict(zip(model.classes, probs, strict=True))
        predictions.append({"label": model.classes[best], "probabilities": by_class})
    return predictions


def stuck(model: Model, predictions: list[dict[str, object]]) -> list[dict[str, object]]:
    """Every row answered with the first class, all of its probability there."""
    first = {c: float(c == model.classes[0]) for c in model.classes}
    return [{**p, "label": model.classes[0], "probabilities": first} for p in predictions]


class FaultInjector:
    """Fails a fixed fraction of calls, spread evenly and deterministically.

    Call n fails when floor(n * rate) steps up, so a rate of 0.5 fails every second call and
    tests see exactly the configured fraction instead of a random sample of it. With `after`,
    the first `after` calls all succeed and the count starts there: a version that passes
    its canary and degrades later. `slow_after` does the same for the extra latency:
    the first `slow_after` calls get none (a version that turns slow after its canary).
    `stuck_after` (0: never): calls after that many answer the first class for every row.
    """

    def __init__(
        self, rate: float, after: int = 0, slow_after: int = 0, stuck_after: int = 0
    ) -> None:
        self._rate = rate
        self._after = after
        self._slow_after = slow_after
        self._stuck_after = stuck_after
        self._calls = 0
        self._slow_calls = 0
        self._stuck_calls = 0
        self._lock = threading.Lock()

    def stuck_now(self) -> bool:
        """Whether this call's rows all get the first class."""
        with self._lock:
            self._stuck_calls += 1
            return 0 < self._stuck_after < self._stuck_calls

    def slow_now(self) -> bool:
        """Whether this call gets the configured extra latency."""
        with self._lock:
            self._slow_calls += 1
            return self._slow_calls > self._slow_after

    def should_fail(self) -> bool:
        with self._lock:
            self._calls += 1
            n = self._calls - self._after
        return n > 0 and math.floor(n * self._rate) > math.floor((n - 1) * self._rate)


# The answer's predicted labels, counted: a router in front (nomadml's counts them per
# version and label) sees the prediction distribution without reading bodies.
PREDICTIONS_HEADER = "X-Nomadml-Predictions"


def predictions_header(labels: Sequence[str]) -> str:
    """The header's value: label=count for each label, in order of first appearance,
    comma-separated; each label percent-encoded (so commas, equals signs, quotes and
    non-ASCII never reach the header or the router's metrics)."""
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    return ",".join(f"{quote(label, safe='')}={n}" for label, n in counts.items())


# --------------------------------------------------------------------------- metrics


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Request counters and the /predict latency histogram, safe to update from any thread."""

    def __init__(self, model_name: str, model_version: str) -> None:
        self._model_name = model_name
        self._model_version = model_version
        self._lock = threading.Lock()
        # Present from the first scrape, so a canary's error ratio is 0, not "no data".
        self._requests: dict[tuple[str, int], int] = {("/predict", 200): 0, ("/predict", 500): 0}
        self._buckets = [0] * len(DURATION_BUCKETS)  # cumulative, as exposed
        self._sum = 0.0
        self._count = 0
        self._in_flight = 0
        self._predicted: dict[str, int] = {}
        self._probes: dict[tuple[str, int], int] = {}

    def predict_started(self) -> None:
        with self._lock:
            self._in_flight += 1

    def predict_finished(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def predicted(self, labels: list[str]) -> None:
        """Count answered predictions by predicted label (the prediction gate's input)."""
        with self._lock:
            for label in labels:
                self._predicted[label] = self._predicted.get(label, 0) + 1

    def record(self, path: str, code: int, duration: float | None, probe: bool = False) -> None:
        """Count one answered request; ``duration`` only for /predict calls. A probe
        (nomadml's own sample request, header X-Nomadml-Probe) is counted as any request
        and, apart, in nomadml_probe_requests_total."""
        with self._lock:
            key = (path, code)
            self._requests[key] = self._requests.get(key, 0) + 1
            if probe:
                self._probes[key] = self._probes.get(key, 0) + 1
            if duration is None:
                return
            self._sum += duration
            self._count += 1
            for i, bound in enumerate(DURATION_BUCKETS):
                if duration <= bound:
                    self._buckets[i] += 1

    def render(self) -> str:
        with self._lock:
            requests = sorted(self._requests.items())
            buckets, total, count = list(self._buckets), self._sum, self._count
            in_flight = self._in_flight
            predicted = sorted(self._predicted.items())
            probes = sorted(self._probes.items())
        lines = [
            "# HELP nomadml_requests_total HTTP requests answered, by path and status code.",
            "# TYPE nomadml_requests_total counter",
        ]
        lines += [
            f'nomadml_requests_total{{path="{_label(path)}",code="{code}"}} {n}'
            for (path, code), n in requests
        ]
        lines += [
            "# HELP nomadml_request_duration_seconds Time taken to answer POST /predict.",
            "# TYPE nomadml_request_duration_seconds histogram",
        ]
        lines += [
            f'nomadml_request_duration_seconds_bucket{{le="{bound:g}"}} {n}'
            for bound, n in zip(DURATION_BUCKETS, buckets, strict=True)
        ]
        lines += [
            f'nomadml_request_duration_seconds_bucket{{le="+Inf"}} {count}',
            f"nomadml_request_duration_seconds_sum {total!r}",
            f"nomadml_request_duration_seconds_count {count}",
            "# HELP nomadml_probe_requests_total Requests that were nomadml's probes, by path and "
            "status code (also counted in nomadml_requests_total).",
            "# TYPE nomadml_probe_requests_total counter",
            *(
                f'nomadml_probe_requests_total{{path="{_label(p)}",code="{c}"}} {n}'
                for (p, c), n in probes
            ),
            "# HELP nomadml_predictions_total Predictions answered, by predicted label.",
            "# TYPE nomadml_predictions_total counter",
            *(f'nomadml_predictions_total{{label="{_label(k)}"}} {n}' for k, n in predicted),
            "# HELP nomadml_predict_in_flight POST /predict requests being answered right now.",
            "# TYPE nomadml_predict_in_flight gauge",
            f"nomadml_predict_in_flight {in_flight}",
            "# HELP nomadml_model_info The model version this server answers for.",
            "# TYPE nomadml_model_info gauge",
            f'nomadml_model_info{{model="{_label(self._model_name)}",'
            f'version="{_label(self._model_version)}"}} 1',
        ]
        return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- HTTP


@dataclass
class ServerState:
    config: Config
    model: Model
    metrics: Metrics
    faults: FaultInjector
    # Set from the signal handler; handler threads only read it (is_set takes no lock).
    draining: threading.Event = field(default_factory=threading.Event)


Route = tuple[frozenset[str], Callable[[], None]]


class Handler(BaseHTTPRequestHandler):
    server_version = "nomadml-serve"
    sys_version = ""
    # HTTP/1.0 closes after each answer, so idle keep-alive connections cannot hold up a drain.
    protocol_version = "HTTP/1.0"
    timeout = SOCKET_TIMEOUT_SECONDS
    _status = 0
    _body_consumed = False
    _started = 0.0
    _recorded = True
    _route_known = False

    @property
    def state(self) -> ServerState:
        return cast(ModelServer, self.server).state

    def log_message(self, format: str, *args: Any) -> None:
        # Nomad health checks arrive every few seconds; a line each would bury real events.
        return

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_OPTIONS(self) -> None:
        self._dispatch()

    def _routes(self) -> dict[str, Route]:
        return {
            "/health": (GET_METHODS, self._health),
            "/metrics": (GET_METHODS, self._metrics),
            "/predict": (POST_METHODS, self._predict),
        }

    def _dispatch(self) -> None:
        self._started = time.perf_counter()
        self._status, self._body_consumed, self._recorded = 0, False, False
        path = urlsplit(self.path).path
        route = self._routes().get(path)
        self._route_known = route is not None
        try:
            self._answer(path, route)
        except (ConnectionError, TimeoutError):
            self.close_connection = True  # the client went away; nothing left to tell it
        finally:
            self._discard_unread_body()
            self._record()

    def _record(self) -> None:
        """Count this request once, before its answer leaves: a client that has its
        answer must find it counted when it scrapes /metrics next."""
        if self._recorded:
            return
        self._recorded = True
        path = urlsplit(self.path).path
        timed = path == "/predict" and self.command == "POST"
        # Unknown paths share one label: clients must not be able to grow the series set.
        self.state.metrics.record(
            path if self._route_known else "other",
            self._status,
            time.perf_counter() - self._started if timed else None,
            probe=bool(self.headers.get(PROBE_HEADER)),
        )

    def _answer(self, path: str, route: Route | None) -> None:
        if route is None:
            self._send_json(404, {"error": f"no such endpoint: {json.dumps(path)}"})
            return
        methods, handle = route
        if self.command not in methods:
            allow = ", ".join(sorted(methods))
            self._send_json(
                405,
                {"error": f"method {self.command} not allowed on {path} (allowed: {allow})"},
                {"Allow": allow},
            )
            return
        try:
            handle()
        except (ConnectionError, TimeoutError):
            raise
        except Exception as exc:
            log(f"internal error answering {self.command} {path}: {exc!r}")
            if not self._status:
                self._send_json(500, {"error": "internal server error"})

    def _health(self) -> None:
        state = self.state
        draining = state.draining.is_set()
        self._send_json(
            503 if draining else 200,
            {
                "status": "draining" if draining else "ok",
                "model": state.config.model_name,
                "version": state.config.model_version,
            },
        )

    def _metrics(self) -> None:
        body = self.state.metrics.render().encode()
        self._send(200, body, "text/plain; version=0.0.4; charset=utf-8")

    def _predict(self) -> None:
        state = self.state
        state.metrics.predict_started()
        try:
            body = self._read_body()
            if state.model.extra_latency_ms and state.faults.slow_now():
                time.sleep(state.model.extra_latency_ms / 1000.0)
            if state.faults.should_fail():
                self._send_json(500, {"error": "injected fault (model.json serving.error_rate)"})
                return
            rows = parse_instances(body, state.model.features)
            predictions = predict(state.model, rows)
            if state.model.stuck_after and state.faults.stuck_now():
                predictions = stuck(state.model, predictions)
            labels = [str(p["label"]) for p in predictions]
            state.metrics.predicted(labels)
        except BadRequest as exc:
            self._send_json(400, {"error": str(exc)})
            return
        finally:
            state.metrics.predict_finished()
        self._send_json(
            200,
            {
                "model": state.config.model_name,
                "version": state.config.model_version,
                "predictions": predictions,
            },
            {PREDICTIONS_HEADER: predictions_header(labels)},
        )

    def _declared_length(self) -> int | None:
        raw = self.headers.get("Content-Length")
        try:
            return int(raw) if raw is not None else None
        except ValueError:
            return None

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise BadRequest("chunked request bodies are not supported; send Content-Length")
        if self.headers.get("Content-Length") is None:
            raise BadRequest("missing Content-Length header")
        length = self._declared_length()
        if length is None or length < 0:
            raise BadRequest(f"invalid Content-Length: {self.headers.get('Content-Length')!r}")
        if length > MAX_BODY_BYTES:
            raise BadRequest(
                f"request body is {length} bytes, at most {MAX_BODY_BYTES} are allowed"
            )
        data = self.rfile.read(length)
        self._body_consumed = True
        if len(data) != length:
            raise BadRequest("request body is shorter than its Content-Length")
        return data

    def _discard_unread_body(self) -> None:
        """Swallow a body we did not read, so closing does not reset the connection."""
        if self._body_consumed:
            return
        self._body_consumed = True
        length = self._declared_length()
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        try:
            if length is not None and 0 < length <= MAX_DISCARD_BYTES:
                self._discard(length)
            elif chunked:
                self._linger()
        except OSError:
            self.close_connection = True

    def _discard(self, length: int) -> None:
        while length > 0:
            chunk = self.rfile.read(min(length, 64 * 1024))
            if not chunk:
                return
            length -= len(chunk)

    def _linger(self) -> None:
        # Body length unknown: tell the client we are done, then read until it hangs up.
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_WR)
        self.connection.settimeout(LINGER_SECONDS)
        deadline = time.monotonic() + LINGER_SECONDS
        received = 0
        while time.monotonic() < deadline and received < MAX_DISCARD_BYTES:
            chunk = self.rfile.read1(64 * 1024)
            if not chunk:
                return
            received += len(chunk)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # The base class answers protocol errors (bad request line, 501, ...) with HTML.
        self.close_connection = True
        self._send_json(code, {"error": message or HTTPStatus(code).phrase})

    def _send_json(
        self, code: int, payload: object, headers: Mapping[str, str] | None = None
    ) -> None:
        self._send(code, json.dumps(payload).encode(), "application/json", headers)

    def _send(
        self,
        code: int,
        body: bytes,
        content_type: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._status = code
        if not path_is_metrics(self.path):
            self._record()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def path_is_metrics(raw_path: str) -> bool:
    # A scrape is counted after it is rendered, so it does not count itself mid-render.
    return urlsplit(raw_path).path == "/metrics"


class ModelServer(ThreadingHTTPServer):
    # Nomad may start many clients at once after a deploy; the default backlog of 5 drops them.
    request_queue_size = 128
    # ThreadingHTTPServer makes handler threads daemons, and server_close() only waits for
    # non-daemon ones; in-flight requests must be answered before we exit.
    daemon_threads = False

    def __init__(self, state: ServerState) -> None:
        self.state = state
        if ":" in state.config.bind:
            self.address_family = socket.AF_INET6
        super().__init__((state.config.bind, state.config.port), Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup, which can stall for seconds in a
        # container without a resolver; we never use the name.
        socketserver.TCPServer.server_bind(self)
        host, port = self.socket.getsockname()[:2]
        self.server_name, self.server_port = str(host), int(port)

    @property
    def url(self) -> str:
        host = f"[{self.server_name}]" if ":" in self.server_name else self.server_name
        return f"http://{host}:{self.server_port}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        # Clients hanging up mid-answer is routine, not worth a traceback in the task log.
        if not isinstance(exc, ConnectionError | TimeoutError):
            log(f"error answering {client_address[0]}: {exc!r}")


def make_server(config: Config) -> ModelServer:
    """Verify and load the model, then bind; raises StartupError. Does not touch signals."""
    verify_manifest(config.model_dir, config.model_name, config.model_version)
    model = load_model(config.model_dir / "model.json")
    state = ServerState(
        config=config,
        model=model,
        metrics=Metrics(config.model_name, config.model_version),
        faults=FaultInjector(
            model.error_rate, model.error_after, model.slow_after, model.stuck_after
        ),
    )
    try:
        return ModelServer(state)
    except OSError as exc:
        raise StartupError(
            f"cannot listen on {config.bind}:{config.port}: {exc.strerror or exc}"
        ) from None


# --------------------------------------------------------------------------- process


def serve_until_signalled(server: ModelServer) -> int:
    """Serve; on SIGTERM/SIGINT drain for the grace period, finish in-flight work, return 0."""
    received: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # Flip /health at once so Nomad deregisters us while we keep answering.
        received.append(signum)
        server.state.draining.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    # The loop runs in a thread so the main thread stays free to run signal handlers;
    # server.shutdown() would deadlock if called from inside serve_forever's own thread.
    loop = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": POLL_SECONDS}, name="serve"
    )
    config = server.state.config
    loop.start()
    log(f"serving {config.model_name} {config.model_version} on {server.url}")
    try:
        # Polling a list rather than waiting on a lock: locks are unsafe in signal handlers.
        while not received:
            time.sleep(POLL_SECONDS)
        grace = config.shutdown_grace
        log(f"{signal.Signals(received[0]).name} received; draining for {grace:g}s")
        deadline = time.monotonic() + grace
        # A second signal means whoever is stopping us has run out of patience.
        while len(received) < 2 and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
    finally:
        server.shutdown()
        loop.join()
        server.server_close()  # waits for in-flight requests to be answered
    log("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args:
        log("takes no arguments; configure it with NOMADML_* environment variables")
        return 2
    try:
        server = make_server(load_config(os.environ))
    except StartupError as exc:
        log(str(exc))
        return 2
    return serve_until_signalled(server)


if __name__ == "__main__":
    sys.exit(main())
