"""Shared fixtures. Tests under tests/stack/ run against the real local stack
(scripts/stack up); with NOMADML_REQUIRE_STACK=1 (set by scripts/test) a missing
stack fails those tests instead of skipping them."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.fake_nomad import FakeNomad
from support.webhook_receiver import WebhookReceiver

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.engine.result import RolloutResult
from nomadml.errors import NomadMLError
from nomadml.settings import NomadSettings

# The ONNX example's onnxruntime must not phone home (scripts/lib.sh says the same).
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    cluster = []
    for item in items:
        where = str(item.path).replace(os.sep, "/")
        if "tests/stack/" in where:
            item.add_marker(pytest.mark.stack)
        if "tests/cluster/" in where:
            item.add_marker(pytest.mark.cluster)
            cluster.append(item)
    # The cluster set (tests/cluster/, scripts/stack up --cluster) runs only when asked
    # for by marker (`-m cluster`, as scripts/test does); the dev-agent run never has it.
    if cluster and "cluster" not in (config.getoption("markexpr", "") or ""):
        config.hook.pytest_deselected(items=cluster)
        items[:] = [item for item in items if item not in cluster]


def _unavailable(what: str) -> None:
    if os.environ.get("NOMADML_REQUIRE_STACK") == "1":
        pytest.fail(f"the local stack is required but {what}", pytrace=False)
    pytest.skip(f"local stack not running ({what}); run scripts/stack up")


@pytest.fixture(scope="session")
def nomad() -> NomadAPI:
    api = NomadAPI(NomadSettings.from_env())
    try:
        if not api.leader():
            _unavailable("Nomad has no leader")
    except NomadMLError as err:
        _unavailable(str(err))
    return api


@pytest.fixture(scope="session")
def docker_client() -> object:
    import docker
    import docker.errors

    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as err:
        _unavailable(f"Docker engine: {err}")
    return client


@pytest.fixture(scope="session")
def models_volume(nomad: NomadAPI) -> Path:
    """The host path behind the agent's `models` host volume."""
    node_id = nomad.agent_self()["stats"]["client"]["node_id"]
    node = nomad.request("GET", f"node/{node_id}").body
    return Path(node["HostVolumes"]["models"]["Path"])


@pytest.fixture()
def model_name(nomad: NomadAPI) -> Iterator[str]:
    """A unique model name; after the test, every job of that model is purged and its
    variables (registry records, rollout history, register locks, routing table) deleted."""
    name = f"t{uuid.uuid4().hex[:8]}"
    yield name
    for job in nomad.request("GET", "jobs", params={"prefix": name}).body or []:
        with contextlib.suppress(NomadMLError):
            nomad.stop_job(job["ID"], purge=True)
    for prefix in (
        f"nomadml/models/{name}/",
        f"nomadml/rollouts/{name}",
        f"nomadml/locks/{name}",
        f"nomadml/routes/{name}",
    ):
        for var in nomad.list_variables(prefix):
            with contextlib.suppress(NomadMLError):
                nomad.request("DELETE", f"var/{var['Path']}")


GATE_PRESETS: dict[str, dict[str, str]] = {
    "shipped": {},
    "fast": {
        'window = "20s"': 'window = "6s"',
        'interval = "5s"': 'interval = "2s"',
        "consecutive_passes = 3": "consecutive_passes = 2",
        "min_requests = 20": "min_requests = 10",
    },
    "health": {"[gates]\n": "[gates]\nanalysis = false\n"},
}


@pytest.fixture()
def make_spec(tmp_path: Path, model_name: str) -> Callable[..., Path]:
    """Write the shipped iris spec under the test's model name; `gates` picks a preset
    ("fast": short analysis windows; "health": Nomad health only), then `replace` edits.
    The example's data files are copied beside it (its [data] paths are relative)."""
    example = Path(__file__).resolve().parent.parent / "examples" / "iris"

    def write(
        replace: dict[str, str] | None = None, file: str = "spec.toml", gates: str = "shipped"
    ) -> Path:
        shutil.copytree(example / "data", tmp_path / "data", dirs_exist_ok=True)
        text = (example / "iris.toml").read_text()
        text = text.replace('name = "iris"', f'name = "{model_name}"', 1)
        for old, new in [*GATE_PRESETS[gates].items(), *(replace or {}).items()]:
            assert old in text, f"spec has no {old!r} to replace"
            text = text.replace(old, new, 1)
        path = tmp_path / file
        path.write_text(text)
        return path

    return write


@pytest.fixture(scope="session")
def serving_image(docker_client: object) -> str:
    """The reference serving image, built and pushed once per run, pinned."""
    from nomadml.adapters.images import build_serving_image

    return build_serving_image().pinned


@pytest.fixture()
def roll(nomad: NomadAPI, serving_image: str) -> Callable[..., RolloutResult]:
    """Deploy a model version of a spec (as `nomadml deploy` would) and wait for the end."""
    from nomadml.core.spec import load_spec
    from nomadml.engine.deploy import deploy
    from nomadml.engine.prepare import prepare

    def run(
        spec: Path, version: str, image: str, api: NomadAPI | None = None, **kwargs: Any
    ) -> RolloutResult:
        prepared = prepare(load_spec(spec), version, model_image=image, serving_image=serving_image)
        return deploy(api or nomad, prepared, timeout_s=kwargs.pop("timeout_s", 240), **kwargs)

    return run


@pytest.fixture()
def stable_line(
    make_spec: Callable[..., Path],
    roll: Callable[..., RolloutResult],
    ship: Callable[..., str],
    model_name: str,
) -> Callable[..., tuple[Path, str]]:
    """A model line already serving 1.0.0: writes the spec (`replace`, `gates` as in
    make_spec), deploys 1.0.0 to success; returns the spec and the job (<model>-v1)."""
    from nomadml.core.decide import Action

    def up(replace: dict[str, str] | None = None, gates: str = "fast") -> tuple[Path, str]:
        spec = make_spec(replace, gates=gates)
        result = roll(spec, "1.0.0", ship("1.0.0"))
        assert result.action is Action.SUCCEEDED, result.reason
        return spec, f"{model_name}-v1"

    return up


@pytest.fixture()
def ship(docker_client: object, model_name: str) -> Callable[..., str]:
    """Train, build and push a model version of the test's model; returns it pinned.

    `serving` goes into model.json's fault-injection knobs (error_rate,
    extra_latency_ms); `corrupt=True` changes a file after its manifest was made;
    `registry` pushes to another registry than the stack's."""
    import json
    import tempfile

    from examples.iris.train import train_iris
    from nomadml.adapters.images import DEFAULT_REGISTRY, build_model_image
    from nomadml.bundled.bootstrap import build_manifest, write_manifest

    def push(
        version: str,
        c: float = 1.0,
        serving: dict[str, float] | None = None,
        corrupt: bool = False,
        registry: str | None = None,
    ) -> str:
        with tempfile.TemporaryDirectory() as tmp:
            model_dir = Path(tmp)
            train_iris(model_dir, c=c)
            if serving:
                model = json.loads((model_dir / "model.json").read_text())
                model["serving"] = serving
                (model_dir / "model.json").write_text(json.dumps(model))
            write_manifest(model_dir, build_manifest(model_dir, model_name, version))
            if corrupt:
                with open(model_dir / "model.json", "a") as f:
                    f.write(" ")
            return build_model_image(
                model_dir, model_name, version, labels={}, registry=registry or DEFAULT_REGISTRY
            ).pinned

    return push


@pytest.fixture()
def receiver(request: pytest.FixtureRequest) -> Iterator[WebhookReceiver]:
    """A webhook receiver on loopback (tests/support/webhook_receiver.py); parametrize
    it indirectly with how many deliveries to answer 503 first."""
    with WebhookReceiver(fail_first=getattr(request, "param", 0)) as server:
        yield server


@pytest.fixture()
def fake_nomad() -> Iterator[FakeNomad]:
    """A fake Nomad agent on loopback (tests/support/fake_nomad.py): an in-memory
    model behind Nomad's HTTP API, scriptable per request; stopped after the test."""
    with FakeNomad() as fake:
        yield fake
