"""Shared fixtures. Tests under tests/stack/ run against the real local stack
(scripts/stack up); with NOMADML_REQUIRE_STACK=1 (set by scripts/test) a missing
stack fails those tests instead of skipping them."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from nomadml.errors import NomadMLError
from nomadml.nomad_api import NomadAPI
from nomadml.settings import NomadSettings


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/stack/" in str(item.path).replace(os.sep, "/"):
            item.add_marker(pytest.mark.stack)


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
def job_id(nomad: NomadAPI) -> Iterator[str]:
    """A unique job id, purged after the test."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    yield name
    with contextlib.suppress(NomadMLError):
        nomad.stop_job(name, purge=True)
