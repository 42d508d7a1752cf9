"""`nomadml guard --up --task-api` on a Nomad agent with ACLs on (a private agent: the
shared one has ACLs off): the guard job calls Nomad with its workload identity, so
without a policy bound to it every call would be refused, seen only in its log. Asked
with a management token, the CLI refuses up front - one line naming the bind command,
exit 7, nothing registered - and that very command, run as printed with the real nomad
CLI, is what lets the next `guard --up` register the job."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from private_agent import NOMAD, Agent

from nomadml.cli.main import main
from nomadml.errors import ExitCode

PORT_BASE = 6446
MODEL = "policyguard"


@pytest.fixture()
def acl_agent(docker_client: object) -> Iterator[Agent]:
    where = Path(tempfile.mkdtemp(prefix="gp-"))
    agent = Agent(where, PORT_BASE, "guard-policy", acl=True)
    try:
        agent.start()
        yield agent
    finally:
        agent.shut_down()
        shutil.rmtree(where, ignore_errors=True)


def test_guard_up_with_task_api_needs_a_policy_bound_to_its_job(acl_agent: Agent) -> None:
    env = {"NOMAD_ADDR": acl_agent.address, "NOMAD_TOKEN": acl_agent.token}
    up = ["guard", "--up", "--model", MODEL, "--task-api"]
    refused = CliRunner().invoke(main, up, env=env)
    assert refused.exit_code == ExitCode.FAILED, (refused.output, refused.stderr)
    said = refused.stderr.strip()
    print(f"refused: {said}")
    assert "\n" not in said and "Traceback" not in said
    bind = (
        f"nomadml policy operator | nomad acl policy apply -namespace default "
        f"-job {MODEL}-guard nomadml-guard-{MODEL} -"
    )
    assert said.endswith(f"bind one first: {bind}"), said
    assert acl_agent.api().job(f"{MODEL}-guard") is None  # nothing registered

    # The printed command, as an operator would paste it (nomad CLI and nomadml on PATH).
    path = f"{NOMAD.parent}:{Path(sys.executable).parent}:{os.environ['PATH']}"
    subprocess.run(["bash", "-c", bind], env={**os.environ, **env, "PATH": path}, check=True)

    allowed = CliRunner().invoke(main, up, env=env)
    assert allowed.exit_code == 0, (allowed.output, allowed.stderr)
    assert allowed.output.startswith(f"{MODEL}-guard: version 0"), allowed.output
    job = acl_agent.api().job(f"{MODEL}-guard")
    assert job is not None and job["Meta"]["nomadml.role"] == "guard"

    # A token that is not a management token lists only its own policies: it cannot see
    # the binding, so it is not refused - the note says what was not checked.
    api = acl_agent.api()
    rules = subprocess.run(
        [sys.executable, "-m", "nomadml", "policy", "operator"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    api.request("PUT", "acl/policy/gp-operator", body={"Name": "gp-operator", "Rules": rules})
    token = {"Name": "gp", "Type": "client", "Policies": ["gp-operator"]}
    secret = api.request("PUT", "acl/token", body=token).body["SecretID"]
    noted = CliRunner().invoke(main, up, env={**env, "NOMAD_TOKEN": secret})
    assert noted.exit_code == 0, (noted.output, noted.stderr)
    assert f"whether one is bound to {MODEL}-guard was not checked ({bind})" in noted.stderr
