"""Tests for the bundled model server (nomadml/bundled/serve.py).

The server runs in the serving image as a plain script, so it is loaded here from its file
(and run as a subprocess for startup and signal behaviour), never through the nomadml package.
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.util
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SERVE_PY = Path(__file__).resolve().parents[2] / "nomadml" / "bundled" / "serve.py"


def _load_serve() -> ModuleType:
    spec = importlib.util.spec_from_file_location("nomadml_bundled_serve", SERVE_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses resolves annotations through sys.modules while the module executes.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


serve = _load_serve()

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
CLASSES = ["setosa", "versicolor", "virginica"]
# Each class listens to exactly one feature, so the right label is obvious by construction.
COEF = [[10.0, 0.0, 0.0, 0.0], [0.0, 10.0, 0.0, 0.0], [0.0, 0.0, 10.0, 0.0]]
NAME, VERSION = "iris", "1.0.0"

# An HTTP client that ignores any proxy configured in the environment: we only talk to 127.0.0.1.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# --------------------------------------------------------------------------- helpers


def model_doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "kind": "linear-softmax",
        "features": FEATURES,
        "classes": CLASSES,
        "coef": COEF,
        "intercept": [0.0, 0.0, 0.0],
    }
    doc.update(overrides)
    return doc


def write_model_dir(
    path: Path, doc: Mapping[str, Any] | None = None, name: str = NAME, version: str = VERSION
) -> Path:
    path.mkdir(parents=True)
    data = json.dumps(model_doc() if doc is None else doc).encode()
    (path / "model.json").write_bytes(data)
    manifest = {
        "format": 1,
        "model": name,
        "version": version,
        "files": [
            {"path": "model.json", "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        ],
    }
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path


@dataclass
class Reply:
    status: int
    headers: Message
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    url: str,
    method: str = "GET",
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> Reply:
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    try:
        with OPENER.open(request, timeout=timeout) as response:
            return Reply(response.status, response.headers, response.read())
    except urllib.error.HTTPError as err:
        with err:  # an unclosed HTTPError leaks its socket (ResourceWarning)
            return Reply(err.code, err.headers, err.read())


def post_predict(base: str, payload: object) -> Reply:
    body = json.dumps(payload).encode()
    return call(f"{base}/predict", "POST", body, {"Content-Type": "application/json"})


def parse_metrics(text: str) -> dict[str, float]:
    """Samples keyed by series exactly as written, e.g. 'x_total{path="/a",code="200"}'."""
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            samples[series] = float(value)
    return samples


def scrape(base: str) -> dict[str, float]:
    reply = call(f"{base}/metrics")
    assert reply.status == 200
    return parse_metrics(reply.body.decode())


def requests_total(samples: Mapping[str, float], path: str, code: int) -> float:
    return samples.get(f'nomadml_requests_total{{path="{path}",code="{code}"}}', 0.0)


def buckets(samples: Mapping[str, float]) -> list[float]:
    prefix = 'nomadml_request_duration_seconds_bucket{le="'
    bounds = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf"]
    return [samples[f'{prefix}{bound}"}}'] for bound in bounds]


@contextmanager
def running(model_dir: Path) -> Iterator[str]:
    """An in-process server on an ephemeral port; yields its base URL."""
    config = serve.Config(model_dir=model_dir, model_name=NAME, model_version=VERSION, port=0)
    server = serve.make_server(config)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


StartServer = Callable[..., str]


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    """Start a server for a model document (default: the obvious iris model)."""
    with ExitStack() as stack:
        counter = iter(range(1000))

        def start(doc: Mapping[str, Any] | None = None) -> str:
            model_dir = write_model_dir(tmp_path / f"model{next(counter)}", doc)
            context: AbstractContextManager[str] = running(model_dir)
            return stack.enter_context(context)

        yield start


@pytest.fixture
def base(start_server: StartServer) -> str:
    return start_server()


# --------------------------------------------------------------------------- health / routing


def test_health_reports_model_and_version(base: str) -> None:
    reply = call(f"{base}/health")
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.json() == {"status": "ok", "model": NAME, "version": VERSION}


@pytest.mark.parametrize(
    ("method", "path", "status", "allow"),
    [
        ("GET", "/nope", 404, None),
        ("POST", "/", 404, None),
        ("POST", "/health", 405, "GET, HEAD"),
        ("GET", "/predict", 405, "POST"),
        ("DELETE", "/metrics", 405, "GET, HEAD"),
        ("PUT", "/predict", 405, "POST"),
    ],
)
def test_unknown_paths_and_wrong_methods(
    base: str, method: str, path: str, status: int, allow: str | None
) -> None:
    body = b"{}" if method in {"POST", "PUT"} else None
    reply = call(f"{base}{path}", method, body)
    assert reply.status == status
    assert reply.headers["Content-Type"] == "application/json"
    assert isinstance(reply.json()["error"], str)
    assert reply.headers.get("Allow") == allow


def test_head_health_has_headers_but_no_body(base: str) -> None:
    reply = call(f"{base}/health", "HEAD")
    assert reply.status == 200
    assert int(reply.headers["Content-Length"]) > 0
    assert reply.body == b""


# --------------------------------------------------------------------------- predict


def test_predict_list_and_object_instances(base: str) -> None:
    instances = [
        [1.0, 0.0, 0.0, 0.0],
        {"sepal_length": 0, "sepal_width": 0, "petal_length": 1.5, "petal_width": 0},
        [0, 2, 0, 0],
    ]
    reply = post_predict(base, {"instances": instances})
    assert reply.status == 200
    doc = reply.json()
    assert (doc["model"], doc["version"]) == (NAME, VERSION)
    assert [p["label"] for p in doc["predictions"]] == ["setosa", "virginica", "versicolor"]
    for prediction in doc["predictions"]:
        probabilities = prediction["probabilities"]
        assert list(probabilities) == CLASSES
        assert math.isclose(sum(probabilities.values()), 1.0, abs_tol=1e-9)
        assert probabilities[prediction["label"]] > 0.99


def test_predict_probabilities_are_the_softmax(start_server: StartServer) -> None:
    # With zero weights the logits are the intercepts: softmax(0, ln 2, 0) = (1/4, 1/2, 1/4).
    zero = [[0.0] * 4 for _ in CLASSES]
    base = start_server(model_doc(coef=zero, intercept=[0.0, math.log(2.0), 0.0]))
    reply = post_predict(base, {"instances": [[5.1, 3.5, 1.4, 0.2]]})
    assert reply.status == 200
    prediction = reply.json()["predictions"][0]
    assert prediction["label"] == "versicolor"
    got = [prediction["probabilities"][c] for c in CLASSES]
    assert got == pytest.approx([0.25, 0.5, 0.25], abs=1e-12)


OK_ROW = [5.1, 3.5, 1.4, 0.2]
OK_OBJECT = dict(zip(FEATURES, OK_ROW, strict=True))


def _json(payload: object) -> bytes:
    return json.dumps(payload).encode()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(b"{not json", "not valid JSON", id="bad-json"),
        pytest.param(b"\xff\xfe\x00", "not valid JSON", id="bad-encoding"),
        pytest.param(b"[[1, 2, 3, 4]]", '"instances"', id="not-an-object"),
        pytest.param(_json({"rows": [OK_ROW]}), '"instances"', id="no-instances"),
        pytest.param(_json({"instances": OK_ROW[0]}), "must be a list", id="instances-number"),
        pytest.param(_json({"instances": []}), "empty", id="instances-empty"),
        pytest.param(
            _json({"instances": [OK_ROW, [1, 2, 3]]}), "instance 1: expected 4", id="short"
        ),
        pytest.param(_json({"instances": [[1, 2, 3, 4, 5]]}), "instance 0: expected 4", id="long"),
        pytest.param(
            _json({"instances": [OK_ROW, OK_ROW, [1, 2, "x", 4]]}),
            "instance 2: petal_length must be a number, got string",
            id="string-value",
        ),
        pytest.param(
            _json({"instances": [[1, True, 3, 4]]}),
            "instance 0: sepal_width must be a number, got boolean",
            id="bool-value",
        ),
        pytest.param(
            _json({"instances": [[1, None, 3, 4]]}), "instance 0: sepal_width", id="null-value"
        ),
        pytest.param(
            _json({"instances": [OK_OBJECT, {k: v for k, v in OK_OBJECT.items() if k[0] == "s"}]}),
            'instance 1: missing feature(s): "petal_length", "petal_width"',
            id="missing-features",
        ),
        pytest.param(
            _json({"instances": [{**OK_OBJECT, "colour": 1}]}),
            'instance 0: unknown feature(s): "colour"',
            id="unknown-feature",
        ),
        pytest.param(_json({"instances": [OK_ROW, 7]}), "instance 1: must be a list", id="scalar"),
        pytest.param(b'{"instances": [[NaN, 1, 2, 3]]}', "NaN", id="nan"),
        pytest.param(b'{"instances": [[1e400, 1, 2, 3]]}', "instance 0: sepal_length", id="inf"),
        pytest.param(
            b'{"instances": [[1.5e308, 1.5e308, 1.5e308, 1.5e308]]}',
            "too large",
            id="overflowing-logits",
        ),
        pytest.param(_json({"instances": [OK_ROW] * 1001}), "1001 items", id="too-many"),
        pytest.param(
            _json({"instances": [OK_ROW]}) + b" " * (1024 * 1024), "at most 1048576", id="too-big"
        ),
    ],
)
def test_bad_predict_requests_answer_400(base: str, body: bytes, expected: str) -> None:
    reply = call(f"{base}/predict", "POST", body, {"Content-Type": "application/json"})
    assert reply.status == 400
    error = reply.json()["error"]
    assert expected in error
    assert "\n" not in error


def test_a_thousand_instances_are_allowed(base: str) -> None:
    reply = post_predict(base, {"instances": [OK_ROW] * 1000})
    assert reply.status == 200
    assert len(reply.json()["predictions"]) == 1000


def test_chunked_body_is_refused_with_400(base: str) -> None:
    port = int(base.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        chunks = iter([_json({"instances": [OK_ROW]})])
        connection.request("POST", "/predict", body=chunks, encode_chunked=True)
        response = connection.getresponse()
        status, doc = response.status, json.loads(response.read())
    finally:
        connection.close()
    assert status == 400
    assert "Content-Length" in doc["error"]


# --------------------------------------------------------------------------- metrics


def test_metrics_count_requests_and_time_predictions(base: str) -> None:
    for _ in range(3):
        assert post_predict(base, {"instances": [OK_ROW]}).status == 200
    assert post_predict(base, {"instances": []}).status == 400
    for _ in range(2):
        assert call(f"{base}/health").status == 200
    assert call(f"{base}/nope").status == 404
    assert call(f"{base}/predict").status == 405  # a GET is not a prediction: not timed

    reply = call(f"{base}/metrics")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = reply.body.decode()
    for name, kind in [
        ("nomadml_requests_total", "counter"),
        ("nomadml_request_duration_seconds", "histogram"),
        ("nomadml_model_info", "gauge"),
        ("nomadml_predictions_total", "counter"),
    ]:
        assert f"# HELP {name} " in text
        assert f"# TYPE {name} {kind}\n" in text
    samples = parse_metrics(text)
    assert requests_total(samples, "/predict", 200) == 3
    assert requests_total(samples, "/predict", 400) == 1
    assert requests_total(samples, "/predict", 405) == 1
    assert requests_total(samples, "/predict", 500) == 0
    assert requests_total(samples, "/health", 200) == 2
    assert requests_total(samples, "other", 404) == 1
    assert samples["nomadml_request_duration_seconds_count"] == 4
    counts = buckets(samples)
    assert counts == sorted(counts)  # cumulative buckets never decrease
    assert counts[-1] == 4
    assert counts[4] == 4  # le="0.1": a linear model on one row answers well under 100 ms
    assert 0 < samples["nomadml_request_duration_seconds_sum"] < 0.4
    assert samples[f'nomadml_model_info{{model="{NAME}",version="{VERSION}"}}'] == 1
    assert samples["nomadml_predict_in_flight"] == 0
    # Three answered predictions of one row each, by predicted label; none for the 400.
    predicted = {k: v for k, v in samples.items() if k.startswith("nomadml_predictions_total{")}
    assert sum(predicted.values()) == 3 and len(predicted) == 1

    # The scrape itself is counted under its own path, and only once it has been answered.
    assert requests_total(samples, "/metrics", 200) == 0
    again = scrape(base)
    assert requests_total(again, "/metrics", 200) == 1
    assert again["nomadml_request_duration_seconds_count"] == 4


def test_the_answer_names_its_predicted_labels_in_a_header(base: str) -> None:
    """X-Nomadml-Predictions: label=count per predicted label (what a router counts)."""
    reply = post_predict(base, {"instances": [OK_ROW, OK_ROW, [6.7, 3.0, 5.2, 2.3]]})
    assert reply.status == 200
    labels = [p["label"] for p in reply.json()["predictions"]]
    said = dict(part.split("=") for part in reply.headers["X-Nomadml-Predictions"].split(","))
    assert {k: int(v) for k, v in said.items()} == {k: labels.count(k) for k in set(labels)}
    assert post_predict(base, {"instances": "nope"}).headers["X-Nomadml-Predictions"] is None


def test_the_predictions_header_encodes_awkward_labels() -> None:
    header = serve.predictions_header(["a,b", "a,b", "x=1", 'q"ü'])
    assert header == "a%2Cb=2,x%3D1=1,q%22%C3%BC=1"


def test_probes_are_counted_and_counted_apart(base: str) -> None:
    body = json.dumps({"instances": [OK_ROW]}).encode()
    probe = {"Content-Type": "application/json", "X-Nomadml-Probe": "1"}
    for _ in range(2):
        assert call(f"{base}/predict", "POST", body, probe).status == 200
    assert post_predict(base, {"instances": [OK_ROW]}).status == 200
    samples = scrape(base)
    assert requests_total(samples, "/predict", 200) == 3  # probes are requests too
    assert samples['nomadml_probe_requests_total{path="/predict",code="200"}'] == 2


def test_metrics_counters_survive_concurrent_requests(base: str) -> None:
    def work(i: int) -> int:
        if i % 2:
            return call(f"{base}/health").status
        return post_predict(base, {"instances": [OK_ROW]}).status

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(work, range(200)))
    assert statuses == [200] * 200
    samples = scrape(base)
    assert requests_total(samples, "/health", 200) == 100
    assert requests_total(samples, "/predict", 200) == 100
    assert samples["nomadml_request_duration_seconds_count"] == 100
    assert buckets(samples)[-1] == 100


def test_error_rate_fails_exactly_that_fraction(start_server: StartServer) -> None:
    base = start_server(model_doc(serving={"error_rate": 0.5, "extra_latency_ms": 0}))
    statuses = [post_predict(base, {"instances": [OK_ROW]}).status for _ in range(10)]
    assert sorted(statuses) == [200] * 5 + [500] * 5
    assert statuses == [200, 500] * 5  # deterministic: every second request
    samples = scrape(base)
    assert requests_total(samples, "/predict", 500) == 5
    assert requests_total(samples, "/predict", 200) == 5
    assert samples["nomadml_request_duration_seconds_count"] == 10


def test_errors_start_after_the_configured_requests(start_server: StartServer) -> None:
    """A late regression: the first `error_after` predictions succeed, then half fail."""
    base = start_server(model_doc(serving={"error_rate": 0.5, "error_after": 4}))
    statuses = [post_predict(base, {"instances": [OK_ROW]}).status for _ in range(8)]
    assert statuses == [200] * 4 + [200, 500] * 2


def test_extra_latency_starts_after_the_configured_requests(start_server: StartServer) -> None:
    """A late slowdown: the first `slow_after` predictions get no extra latency."""
    base = start_server(model_doc(serving={"extra_latency_ms": 300, "slow_after": 3}))
    took = []
    for _ in range(5):
        started = time.monotonic()
        assert post_predict(base, {"instances": [OK_ROW]}).status == 200
        took.append(time.monotonic() - started)
    assert all(t < 0.3 for t in took[:3]) and all(t >= 0.3 for t in took[3:]), took
    assert buckets(scrape(base))[5] == 3  # le="0.25": the three fast ones only


def test_predictions_get_stuck_on_the_first_class_after_the_configured_requests(
    start_server: StartServer,
) -> None:
    """Inputs that break later: after `stuck_after` predictions every row answers the
    first class (no error, no delay), and the label counters say so."""
    base = start_server(model_doc(serving={"stuck_after": 2}))
    virginica = [0.0, 0.0, 9.0, 0.0]  # petal length: the third class
    labels = [
        post_predict(base, {"instances": [virginica]}).json()["predictions"][0]["label"]
        for _ in range(4)
    ]
    assert labels == ["virginica", "virginica", "setosa", "setosa"]
    samples = scrape(base)
    assert samples['nomadml_predictions_total{label="setosa"}'] == 2
    assert samples['nomadml_predictions_total{label="virginica"}'] == 2


def test_extra_latency_is_added_and_measured(start_server: StartServer) -> None:
    base = start_server(model_doc(serving={"extra_latency_ms": 150}))
    for _ in range(3):
        started = time.monotonic()
        assert post_predict(base, {"instances": [OK_ROW]}).status == 200
        assert time.monotonic() - started >= 0.15
    samples = scrape(base)
    assert samples["nomadml_request_duration_seconds_count"] == 3
    assert samples["nomadml_request_duration_seconds_sum"] >= 0.45
    counts = buckets(samples)
    assert counts[4] == 0  # nothing answered within le="0.1"
    assert counts[-1] == 3


# --------------------------------------------------------------------------- configuration


BASE_ENV = {
    "NOMADML_MODEL_DIR": "/models/iris/1.0.0",
    "NOMADML_MODEL_NAME": NAME,
    "NOMADML_MODEL_VERSION": VERSION,
}


@pytest.mark.parametrize(
    ("extra", "bind", "port", "grace"),
    [
        ({}, "127.0.0.1", 8080, 5.0),
        ({"NOMAD_PORT_http": "23456", "NOMAD_IP_http": "10.0.0.7"}, "10.0.0.7", 23456, 5.0),
        (
            {"NOMADML_PORT": "9000", "NOMAD_PORT_http": "23456", "NOMADML_BIND": "0.0.0.0"},
            "0.0.0.0",
            9000,
            5.0,
        ),
        ({"NOMADML_SHUTDOWN_GRACE": "0.5", "NOMADML_PORT": ""}, "127.0.0.1", 8080, 0.5),
    ],
)
def test_config_precedence(extra: dict[str, str], bind: str, port: int, grace: float) -> None:
    config = serve.load_config({**BASE_ENV, **extra})
    assert config.model_dir == Path("/models/iris/1.0.0")
    assert (config.model_name, config.model_version) == (NAME, VERSION)
    assert (config.bind, config.port, config.shutdown_grace) == (bind, port, grace)


# --------------------------------------------------------------------------- subprocess


def server_env(model_dir: Path, **extra: str) -> dict[str, str]:
    # A clean environment: whatever Nomad variables the test runner has must not leak in.
    env = {"PATH": os.environ.get("PATH", ""), **BASE_ENV, "NOMADML_MODEL_DIR": str(model_dir)}
    env.update(extra)
    return env


def tamper(model_dir: Path) -> None:
    path = model_dir / "model.json"
    doc = json.loads(path.read_text())
    doc["intercept"] = [9.0, 0.0, 0.0]  # same length, different bytes: only the hash can tell
    path.write_text(json.dumps(doc))


def grow(model_dir: Path) -> None:
    with (model_dir / "model.json").open("a") as stream:
        stream.write(" ")


Setup = Callable[[Path], dict[str, str]]


def _refusal(doc: Mapping[str, Any] | None = None, **kwargs: Any) -> Setup:
    """A setup writing a model dir, optionally tampering with it, then changing the env."""
    env_changes: dict[str, str | None] = kwargs.pop("env", {})
    after: Callable[[Path], None] | None = kwargs.pop("after", None)

    def setup(tmp_path: Path) -> dict[str, str]:
        model_dir = write_model_dir(tmp_path / "model", doc, **kwargs)
        if after is not None:
            after(model_dir)
        env = server_env(model_dir)
        for name, value in env_changes.items():
            if value is None:
                env.pop(name)
            else:
                env[name] = value
        return env

    return setup


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        pytest.param(_refusal(env={"NOMADML_MODEL_DIR": None}), "NOMADML_MODEL_DIR", id="no-dir"),
        pytest.param(
            _refusal(env={"NOMADML_MODEL_NAME": None}), "NOMADML_MODEL_NAME", id="no-name"
        ),
        pytest.param(
            _refusal(env={"NOMADML_MODEL_VERSION": ""}), "NOMADML_MODEL_VERSION", id="no-version"
        ),
        pytest.param(
            _refusal(env={"NOMADML_MODEL_DIR": "/nonexistent/model"}),
            "manifest.json",
            id="dir-missing",
        ),
        pytest.param(_refusal(after=tamper), "model.json: sha256", id="tampered"),
        pytest.param(_refusal(after=grow), "model.json: size", id="resized"),
        pytest.param(_refusal(name="wine"), "NOMADML_MODEL_NAME", id="name-mismatch"),
        pytest.param(_refusal(version="2.0.0"), "NOMADML_MODEL_VERSION", id="version-mismatch"),
        pytest.param(
            _refusal(model_doc(coef=[[1.0, 2.0, 3.0]] * 3)), "coef[0] has 3 values", id="coef-cols"
        ),
        pytest.param(_refusal(model_doc(coef=COEF[:2])), "coef has 2 rows", id="coef-rows"),
        pytest.param(
            _refusal(model_doc(intercept=[0.0])), "intercept has 1 values", id="intercept"
        ),
        pytest.param(_refusal(model_doc(kind="tree")), "kind", id="kind"),
        pytest.param(
            _refusal(model_doc(serving={"error_rate": 2})), "error_rate", id="error-rate-range"
        ),
        pytest.param(
            _refusal(model_doc(serving={"error_after": -1})), "error_after", id="error-after"
        ),
        pytest.param(
            _refusal(model_doc(serving={"slow_after": 1.5})), "slow_after", id="slow-after"
        ),
        pytest.param(
            _refusal(model_doc(serving={"stuck_after": True})), "stuck_after", id="stuck-after"
        ),
        pytest.param(_refusal(env={"NOMADML_PORT": "http"}), "NOMADML_PORT", id="bad-port"),
    ],
)
def test_startup_refusals_exit_2_with_one_line(tmp_path: Path, setup: Setup, expected: str) -> None:
    result = subprocess.run(
        [sys.executable, str(SERVE_PY)],
        env=setup(tmp_path),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("serve: ")
    assert expected in lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def health_status(base: str) -> int | None:
    try:
        return call(f"{base}/health", timeout=2).status
    except (urllib.error.URLError, OSError):
        return None


def wait_for(condition: Callable[[], bool], timeout: float, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, "server exited early"
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_drains_finishes_in_flight_and_exits_0(
    tmp_path: Path, signum: signal.Signals
) -> None:
    # The prediction outlasts the grace period: shutdown must still wait for it.
    model_dir = write_model_dir(tmp_path / "model", model_doc(serving={"extra_latency_ms": 2000}))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = server_env(model_dir, NOMADML_PORT=str(port), NOMADML_SHUTDOWN_GRACE="1")
    with (
        subprocess.Popen(
            [sys.executable, str(SERVE_PY)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as proc,
        ThreadPoolExecutor(max_workers=1) as pool,
    ):
        try:
            wait_for(lambda: health_status(base) == 200, 15, proc)
            slow = pool.submit(post_predict, base, {"instances": [OK_ROW]})
            wait_for(lambda: scrape(base)["nomadml_predict_in_flight"] == 1, 5, proc)

            signalled = time.monotonic()
            proc.send_signal(signum)
            wait_for(lambda: health_status(base) == 503, 1, proc)
            draining = call(f"{base}/health")
            assert draining.json() == {"status": "draining", "model": NAME, "version": VERSION}
            assert call(f"{base}/metrics").status == 200  # still serving new connections
            assert proc.poll() is None

            returncode = proc.wait(timeout=15)
            elapsed = time.monotonic() - signalled
            assert slow.result(timeout=5).status == 200
        finally:
            if proc.poll() is None:
                proc.kill()
            _, stderr = proc.communicate(timeout=15)
    assert returncode == 0, stderr
    assert elapsed >= 1.0  # not before the grace period
    assert "Traceback" not in stderr
    assert signum.name in stderr
