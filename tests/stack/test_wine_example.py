"""The wine example on the real stack: a model of another framework and format than
iris (gradient-boosted trees exported to ONNX) served by its own server and image
(onnxruntime), through the commands an operator types: train -> model register ->
model validate -> deploy -> predict; a retrain canaried under load and promoted; a
clearly worse retrain rejected by the gates and refused by deploy.

The serving image is built once and then found in the registry by its content tag."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from nomadml.adapters.model_store import ModelRegistry
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.cli.main import main
from nomadml.errors import ExitCode

REPO = Path(__file__).resolve().parents[2]
# Three rows of the wine data (rows 0, 70 and 140: one of each cultivar).
WINE_ROWS = [
    [14.23, 1.71, 2.43, 15.6, 127.0, 2.8, 3.06, 0.28, 2.29, 5.64, 1.04, 3.92, 1065.0],
    [12.29, 1.61, 2.21, 20.4, 103.0, 1.1, 1.02, 0.37, 1.46, 3.05, 0.906, 1.82, 870.0],
    [12.93, 2.81, 2.7, 21.0, 96.0, 1.54, 0.5, 0.53, 0.75, 4.6, 0.77, 2.31, 600.0],
]
WINE_LABELS = ["class_0", "class_1", "class_2"]


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def train(out: Path, *options: str) -> Path:
    """The example's trainer, as the retraining job runs it: its own process."""
    done = subprocess.run(
        [sys.executable, "-m", "examples.wine.train", "--out", str(out), *options],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return out


def post(url: str, payload: object) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"{url}/predict",
        data=json.dumps(payload).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


@pytest.fixture(scope="session")
def wine_image(docker_client: object) -> str:
    """The example's serving image, pinned; built and pushed only if missing."""
    from examples.wine.images import check_image, serving_image

    image = serving_image()
    assert "onnxruntime" in check_image(image)
    return image


@pytest.fixture()
def wine_spec(tmp_path: Path, model_name: str) -> Path:
    """examples/wine/wine.toml under the test's model name."""
    text = (REPO / "examples" / "wine" / "wine.toml").read_text()
    assert 'name = "wine"' in text
    path = tmp_path / "wine.toml"
    path.write_text(text.replace('name = "wine"', f'name = "{model_name}"', 1))
    return path


def test_wine_register_validate_deploy_canary_reject(
    nomad: NomadAPI,
    model_name: str,
    wine_spec: Path,
    wine_image: str,
    tmp_path: Path,
) -> None:
    from nomadml.engine import traffic
    from nomadml.engine.endpoints import endpoints

    spec, job_id = str(wine_spec), f"{model_name}-v1"
    registry = ModelRegistry(nomad)

    # 1.0.0: train, register, validate, deploy; the registry makes it production.
    first = train(tmp_path / "m1")
    assert sorted(p.name for p in first.iterdir()) == ["metadata.json", "model.onnx"]
    code, out, err = cli(
        "model", "register", str(first), "--name", model_name, "--version", "1.0.0"
    )
    assert code == 0, err
    assert f"{model_name} 1.0.0 registered: stage candidate" in out
    code, out, err = cli("model", "validate", model_name, "1.0.0", "--spec", spec)
    assert code == 0, out + err
    assert "macro_f1 = " in out and f"{model_name} 1.0.0: validated" in out
    code, out, err = cli("deploy", spec, "--version", "1.0.0", "--serving-image", wine_image)
    assert code == 0, out + err
    assert f"{model_name} 1.0.0 -> production" in out
    record = registry.get(model_name, "1.0.0")
    assert record is not None and record.stage == "production"
    job = nomad.job(job_id)
    assert job is not None
    tasks = {t["Name"]: t for t in job["TaskGroups"][0]["Tasks"]}
    assert tasks["bootstrap"]["Config"]["image"] == record.image
    assert tasks["serve"]["Config"]["image"] == wine_image
    assert tasks["serve"]["Config"]["args"] == ["/opt/wine/serve_onnx.py"]

    # Predictions through the live endpoints the operator's command lists.
    code, out, err = cli("endpoints", model_name)
    assert code == 0, err
    urls = [line.split()[3] for line in out.splitlines()]
    assert len(urls) == 2 and all(line.split()[2] == "1.0.0" for line in out.splitlines())
    status, answer = post(urls[0], {"instances": WINE_ROWS})
    assert status == 200, answer
    assert answer["version"] == "1.0.0" and answer["model"] == model_name
    assert [p["label"] for p in answer["predictions"]] == WINE_LABELS
    assert set(answer["predictions"][0]["probabilities"]) == set(WINE_LABELS)
    status, answer = post(urls[1], {"instances": [WINE_ROWS[0][:4]]})  # iris-shaped input
    assert status == 400 and "expected 13 values" in answer["error"]
    status, text = get(f"{urls[1]}/metrics")
    assert status == 200
    assert 'nomadml_requests_total{path="/predict",code="400"} 1' in text
    assert "nomadml_request_duration_seconds_count 1" in text

    # 1.1.0: other hyper-parameters (same signature), canaried under load, promoted.
    second = train(tmp_path / "m2", "--n-estimators", "60", "--learning-rate", "0.2")
    code, out, err = cli("model", "register", str(second), "--name", model_name, "--bump", "minor")
    assert code == 0 and f"{model_name} 1.1.0 registered" in out, err
    code, out, err = cli("model", "validate", model_name, "1.1.0", "--spec", spec)
    assert code == 0 and f"{model_name} 1.1.0: validated" in out, out + err
    rows = WINE_ROWS[:2]
    with traffic.Traffic(nomad, job_id, rate_per_s=20, max_seconds=240, instances=rows) as load:
        code, out, err = cli("deploy", spec, "--version", "1.1.0", "--serving-image", wine_image)
    assert code == 0, out + err
    assert f"{model_name} 1.1.0 -> production" in out
    assert out.count("gate pass: canary") >= 2 and "promoted" in out, out  # metrics compared
    assert load.report.failed == 0, load.report.summary()
    assert load.report.by_version["1.1.0"] > 0 and load.report.by_version["1.0.0"] > 0
    code, out, _ = cli("model", "list", model_name)
    stages = {line.split()[1]: line.split()[2] for line in out.splitlines()}
    assert stages == {"1.0.0": "archived", "1.1.0": "production"}, out
    deadline = time.monotonic() + 15  # the replaced allocations deregister as they stop
    live = endpoints(nomad, job_id)
    while {e.version for e in live} != {"1.1.0"}:
        assert time.monotonic() < deadline, live
        time.sleep(0.5)
        live = endpoints(nomad, job_id)
    assert len(live) == 2 and all(e.healthy for e in live)
    status, answer = post(live[0].url, {"instances": WINE_ROWS})
    assert status == 200 and answer["version"] == "1.1.0", answer
    assert len(answer["predictions"]) == 3

    # A clearly worse retrain: the validation gates reject it, deploy refuses it.
    worse = train(tmp_path / "m3", "--n-estimators", "1", "--learning-rate", "0.01")
    code, out, err = cli("model", "register", str(worse), "--name", model_name, "--bump", "minor")
    assert code == 0 and f"{model_name} 1.2.0 registered" in out, err
    code, out, err = cli("model", "validate", model_name, "1.2.0", "--spec", spec)
    assert code == int(ExitCode.FAILED), out + err
    assert "failed: accuracy" in out and f"{model_name} 1.2.0: rejected" in out
    before = nomad.job(job_id)
    code, out, err = cli("deploy", spec, "--version", "1.2.0", "--serving-image", wine_image)
    assert code == int(ExitCode.BAD_INPUT), out + err
    assert "rejected in the model registry" in err
    after = nomad.job(job_id)
    assert before is not None and after is not None
    assert (after["Version"], after["JobModifyIndex"]) == (
        before["Version"],
        before["JobModifyIndex"],
    )
    assert after["Meta"]["nomadml.version"] == "1.1.0"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _model_dir(tmp_path: Path, version: str) -> Path:
    """A trained model with its manifest, readable by the image's user (10001)."""
    from nomadml.bundled.bootstrap import build_manifest, write_manifest

    model_dir = train(tmp_path / version)
    write_manifest(model_dir, build_manifest(model_dir, "wine", version))
    model_dir.chmod(0o755)
    for path in model_dir.iterdir():
        path.chmod(0o644)
    return model_dir


def test_wine_server_contract_in_its_image(
    docker_client: Any, wine_image: str, tmp_path: Path
) -> None:
    """The serving image on its own, as Nomad runs it: serves, answers bad input with
    400, drains on SIGTERM and exits 0; refuses a model file its manifest does not match."""
    model_dir, port = _model_dir(tmp_path, "1.0.0"), _free_port()
    env = {
        "NOMADML_MODEL_DIR": "/models/wine/1.0.0",
        "NOMADML_MODEL_NAME": "wine",
        "NOMADML_MODEL_VERSION": "1.0.0",
        "NOMADML_PORT": str(port),
        "NOMADML_SHUTDOWN_GRACE": "2",
    }
    mounts = {str(model_dir): {"bind": "/models/wine/1.0.0", "mode": "ro"}}
    container = docker_client.containers.run(
        wine_image, detach=True, network_mode="host", environment=env, volumes=mounts
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if get(f"{url}/health")[0] == 200:
                    break
            except OSError:  # not listening yet
                pass
            time.sleep(0.1)
        assert get(f"{url}/health")[0] == 200, container.logs().decode()
        named = dict(zip(_features(model_dir), WINE_ROWS[2], strict=True))
        status, answer = post(url, {"instances": [named]})
        assert status == 200 and answer["predictions"][0]["label"] == "class_2", answer
        bad_bodies: list[object] = [{"instances": [[1e39] * 13]}, {"instances": []}, [1], {}]
        for bad in bad_bodies:
            status, answer = post(url, bad)
            assert status == 400 and answer["error"], (bad, answer)
        assert get(f"{url}/predict")[0] == 405 and get(f"{url}/nope")[0] == 404
        metrics = get(f"{url}/metrics")[1]
        assert 'nomadml_requests_total{path="/predict",code="400"} 4' in metrics
        assert 'nomadml_request_duration_seconds_bucket{le="+Inf"} 5' in metrics
        assert 'nomadml_model_info{model="wine",version="1.0.0"} 1' in metrics

        container.kill(signal="SIGTERM")
        time.sleep(0.5)
        status, body = get(f"{url}/health")
        assert status == 503 and json.loads(body)["status"] == "draining"
        assert post(url, {"instances": WINE_ROWS})[0] == 200  # still answering while draining
        assert container.wait(timeout=30)["StatusCode"] == 0
        assert container.attrs["Config"]["User"] == "10001:10001"
    finally:
        container.remove(force=True)

    # A model file that is not what its manifest lists: the server refuses to start.
    with open(model_dir / "model.onnx", "ab") as f:
        f.write(b"\0")
    logs = _run_expecting_exit(docker_client, wine_image, env, mounts)
    assert "model.onnx: size is" in logs and "manifest.json says" in logs


def _features(model_dir: Path) -> list[str]:
    signature = json.loads((model_dir / "metadata.json").read_text())["signature"]
    return [item["name"] for item in signature["inputs"]]


def _run_expecting_exit(client: Any, image: str, env: dict[str, str], mounts: Any) -> str:
    container = client.containers.run(
        image, detach=True, network_mode="host", environment=env, volumes=mounts
    )
    try:
        assert container.wait(timeout=30)["StatusCode"] == 2
        return str(container.logs().decode())
    finally:
        container.remove(force=True)
