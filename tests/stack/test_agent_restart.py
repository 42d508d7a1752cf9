"""Nomad goes away in the middle of a watch and comes back with its state: the
deploy resumes (or exits with the "cannot reach Nomad" code and a resume hint) and
nothing is left half-done. Runs on an agent of its own (server + client with a
persistent data dir, its own ports and cgroup parent) so the shared stack is untouched."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from private_agent import Agent

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.errors import ExitCode
from nomadml.settings import NomadSettings


@pytest.fixture()
def agent(tmp_path: Path) -> Iterator[Agent]:
    a = Agent(tmp_path)
    a.start()
    try:
        yield a
    finally:
        a.shut_down()


def test_agent_stopped_and_restarted_mid_watch(
    agent: Agent,
    model_name: str,
    make_spec: Callable[..., Path],
    ship: Callable[..., str],
    serving_image: str,
) -> None:
    spec = make_spec({'min_healthy_time = "3s"': 'min_healthy_time = "15s"'}, gates="health")
    env = {**os.environ, "NOMAD_ADDR": agent.address, "PYTHONUNBUFFERED": "1"}
    cmd = [
        sys.executable,
        "-m",
        "nomadml",
        "deploy",
        str(spec),
        "--version",
        "1.0.0",
        "--image",
        ship("1.0.0"),
        "--serving-image",
        serving_image,
        "--unregistered",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    seen = ""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and "deployment" not in seen:
        seen += proc.stdout.readline()
    assert "deployment" in seen, seen

    agent.stop()  # mid-watch: Nomad is gone
    time.sleep(3)
    agent.start()  # back, with its state
    out, err = proc.communicate(timeout=300)
    outcomes = {
        int(ExitCode.OK): "successful",
        int(ExitCode.FAILED): "failed",
        int(ExitCode.ROLLED_BACK): "failed",
        int(ExitCode.NOMAD_UNREACHABLE): None,
    }
    assert proc.returncode in outcomes, out + err
    api = NomadAPI(NomadSettings.from_env({"NOMAD_ADDR": agent.address}))
    if proc.returncode == int(ExitCode.NOMAD_UNREACHABLE):
        assert "resume with the same deploy command" in err
    else:
        # It noticed, kept watching across the restart, and reports what Nomad says:
        # nomadml's outcome and Nomad's deployment status agree.
        assert "lost Nomad" in out and "retrying" in out
        dep = api.latest_deployment(f"{model_name}-v1") or {}
        assert dep.get("Status") == outcomes[proc.returncode], (out, dep)
    # Nothing half-done: exactly the one job version the deploy registered.
    job = api.job(f"{model_name}-v1")
    assert job is not None and job["Version"] == 0
    assert [v["Version"] for v in api.job_versions(f"{model_name}-v1")] == [0]
