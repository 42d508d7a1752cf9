"""An image registry like the operators' own: the stack's second registry speaks only
TLS (a CA of the stack's) and wants credentials (htpasswd). Registration pushes to it
with `docker login`'s credentials, digests resolve over TLS with auth, Nomad's docker
driver pulls from it with its auth.config, and expiry deletes from it; without
credentials each step is one line and changes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner, Result
from private_agent import Agent

from examples.iris.train import train_iris
from nomadml.adapters import image_registry
from nomadml.adapters.images import build_serving_image
from nomadml.adapters.model_store import ModelRegistry
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.cli.main import main
from nomadml.errors import ExitCode, StackError
from nomadml.settings import NomadSettings

SECURE = os.environ.get("NOMADML_SECURE_REGISTRY", "127.0.0.1:5443")
PORT_BASE = 5946


def _ca() -> Path:
    return image_registry.certs_dir() / SECURE / "ca.crt"


@pytest.fixture(scope="module")
def secure(docker_client: object) -> str:
    """The stack's secure registry (scripts/stack up starts it)."""
    if not _ca().is_file() or image_registry.credentials(SECURE) is None:
        if os.environ.get("NOMADML_REQUIRE_STACK") == "1":
            pytest.fail(f"the stack's secure registry {SECURE} is not set up", pytrace=False)
        pytest.skip(f"no secure registry at {SECURE}; run scripts/stack up")
    return SECURE


@pytest.fixture()
def agent(tmp_path: Path) -> Iterator[Agent]:
    """A Nomad agent whose docker driver pulls with `docker login`'s credentials."""
    where = tmp_path / "agent"
    where.mkdir()
    auth = image_registry.docker_config()
    a = Agent(where, PORT_BASE, "secure-registry", docker_auth_config=auth)
    a.start()
    try:
        yield a
    finally:
        a.shut_down()


def _cli(agent: Agent, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env={"NOMAD_ADDR": agent.address, **(env or {})})


def _present(pinned: str) -> bool:
    host, _, rest = pinned.partition("/")
    repository, _, digest = rest.partition("@")
    path = f"/v2/{repository}/manifests/{digest}"
    headers = {"Accept": image_registry.MANIFEST_TYPES}
    response = image_registry.request("HEAD", host, path, 5.0, headers=headers)
    return bool(response.status_code == 200)


def test_it_speaks_only_tls_and_wants_credentials(secure: str) -> None:
    answer = requests.get(f"https://{secure}/v2/", verify=str(_ca()), timeout=5)
    assert answer.status_code == 401  # auth is on
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"https://{secure}/v2/", timeout=5)  # not trusted without the CA
    plain = requests.get(f"http://{secure}/v2/", timeout=5)
    assert plain.status_code == 400  # plain HTTP is refused


def test_register_deploy_expire_through_tls_and_auth(
    secure: str,
    agent: Agent,
    model_name: str,
    make_spec: Callable[..., Path],
    tmp_path: Path,
) -> None:
    spec = str(make_spec({'registry = "127.0.0.1:5000"': f'registry = "{secure}"'}, gates="health"))
    serving = build_serving_image(registry=secure).pinned  # pushed with the login's credentials
    assert serving.startswith(f"{secure}/nomadml/serve@sha256:")
    for version, c in (("1.0.0", 1.0), ("1.1.0", 0.001)):
        train_iris(tmp_path / version, c=c)
        args = ["model", "register", str(tmp_path / version), "--name", model_name]
        result = _cli(agent, *args, "--version", version, "--spec", spec)
        assert result.exit_code == 0, result.stderr
    registry = ModelRegistry(NomadAPI(NomadSettings.from_env({"NOMAD_ADDR": agent.address})))
    record = registry.get(model_name, "1.0.0")
    assert record is not None and record.image.startswith(f"{secure}/nomadml/models/{model_name}@")
    tagged = f"{secure}/nomadml/models/{model_name}:1.0.0"
    assert image_registry.resolve_digest(tagged) == record.image

    result = _cli(agent, "model", "validate", model_name, "1.0.0", "--spec", spec)
    assert result.exit_code == 0, result.stdout + result.stderr
    # Nomad's docker driver pulls the model image (and the server) from the secure registry.
    result = _cli(agent, "deploy", spec, "--version", "1.0.0", "--serving-image", serving)
    assert result.exit_code == 0, result.stdout + result.stderr
    api = NomadAPI(NomadSettings.from_env({"NOMAD_ADDR": agent.address}))
    running = [a for a in api.job_allocations(f"{model_name}-v1") if a["ClientStatus"] == "running"]
    assert running, "no allocation runs the version pulled from the secure registry"

    result = _cli(agent, "model", "validate", model_name, "1.1.0", "--spec", spec)
    assert result.exit_code == int(ExitCode.FAILED) and "rejected" in result.stdout
    rejected = registry.get(model_name, "1.1.0")
    assert rejected is not None and _present(rejected.image)
    result = _cli(agent, "model", "expire", model_name, "--after", "0s", "--keep-volumes")
    assert result.exit_code == 0, result.stderr
    assert not _present(rejected.image)  # deleted over TLS with the credentials
    assert _present(record.image)


def test_without_credentials_each_step_is_one_line_and_changes_nothing(
    secure: str,
    agent: Agent,
    model_name: str,
    make_spec: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = str(make_spec({'registry = "127.0.0.1:5000"': f'registry = "{secure}"'}))
    train_iris(tmp_path / "m")
    empty = tmp_path / "no-login"  # a docker config without a login for the registry
    empty.mkdir()
    (empty / "config.json").write_text('{"auths": {}}')
    # A process of its own, as an operator runs it: its docker client reads this config.
    register = [sys.executable, "-m", "nomadml", "model", "register", str(tmp_path / "m")]
    proc = subprocess.run(
        [*register, "--name", model_name, "--version", "1.0.0", "--spec", spec],
        env={**os.environ, "NOMAD_ADDR": agent.address, "DOCKER_CONFIG": str(empty)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == int(ExitCode.STACK), proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, lines
    assert f"no basic auth credentials (run `docker login {secure}`)" in lines[0], lines
    api = NomadAPI(NomadSettings.from_env({"NOMAD_ADDR": agent.address}))
    assert ModelRegistry(api).get(model_name, "1.0.0") is None  # nothing registered

    monkeypatch.setenv("DOCKER_CONFIG", str(empty))
    wants = rf"registry {secure} wants credentials: run `docker login {secure}`"
    with pytest.raises(StackError, match=wants):
        image_registry.resolve_digest(f"{secure}/nomadml/serve:anything")
