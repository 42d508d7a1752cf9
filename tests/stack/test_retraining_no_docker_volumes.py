"""The retraining job in its nomadml-image form mounts the Docker engine's socket by host
path; on an agent of the test's own whose docker driver does not allow host-path
volumes (the default), `nomadml schedule-retraining` refuses in one line naming the
setting and the client config block, exit 7, and registers nothing (before, the job was
registered and every run failed with the reason only in Nomad's task events)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from private_agent import Agent
from support.trainer_image import SPEC, TRAINER_COMMAND

from nomadml.adapters.images import DEFAULT_REGISTRY
from nomadml.cli.main import main
from nomadml.errors import ExitCode

PORT_BASE = 6546


@pytest.fixture()
def agent(tmp_path: Path, docker_client: object) -> Iterator[Agent]:
    a = Agent(tmp_path, PORT_BASE, "no-docker-volumes")  # docker_volumes off
    try:
        a.start()
        yield a
    finally:
        a.shut_down()


def test_no_client_allows_docker_volumes_is_one_line_and_nothing_is_registered(
    agent: Agent, model_name: str, tmp_path: Path
) -> None:
    api = agent.api()
    (node,) = api.request("GET", "nodes").body
    attributes = api.request("GET", f"node/{node['ID']}").body["Attributes"]
    assert attributes.get("driver.docker") == "1"  # docker is there, healthy
    assert attributes.get("driver.docker.volumes.enabled") != "true"  # without volumes

    image = f"{DEFAULT_REGISTRY}/tests/trainer:never-pulled"
    values = {"name": model_name, "registry": DEFAULT_REGISTRY, "image": image}
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.format(**values, trainer=json.dumps(TRAINER_COMMAND)))
    started = time.monotonic()
    result = CliRunner().invoke(
        main, ["schedule-retraining", str(spec)], env={"NOMAD_ADDR": agent.address}
    )
    took = time.monotonic() - started
    print(f"refused in {took:.2f} s: {result.stderr.strip()}")

    assert result.exit_code == ExitCode.FAILED, (result.output, result.stderr)
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"nomadml: error: {model_name}-retrain cannot be placed: train: "), line
    assert "${attr.driver.docker.volumes.enabled} = true (1)" in line
    assert "no eligible node's docker driver allows the host-path volumes" in line
    assert 'add volumes { enabled = true } to the clients\' plugin "docker"' in line
    assert line.endswith("; nothing registered"), line
    assert "Traceback" not in result.output + result.stderr
    assert api.request("GET", "jobs").body == []  # nothing registered
