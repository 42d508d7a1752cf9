"""The always-on guard across a Nomad leader change, on the 3-server cluster (ACLs,
mutual TLS): `nomadml guard --up --task-api` runs the guard as a service job that
reaches Nomad through its own client agent with its workload identity (the operator
policy bound to the job; no token or certificate in the job). A version that degrades
after its promotion is baking; the leader server is killed mid-bake; the guard goes on
through the new leader, finds the regression and rolls the line back exactly once, with
no failed request for the stable version."""

from __future__ import annotations

import importlib.resources
import time
from collections.abc import Callable
from pathlib import Path

from support.cluster import Cli, Servers
from support.guard import guard_record, promoted_and_baking, rolled_back_once, running_alloc

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.decide import Action
from nomadml.engine.guard_record import FINAL
from nomadml.engine.result import RolloutResult
from nomadml.engine.traffic import Traffic

RATE = 20
GOOD_FOR = 350  # predictions per allocation before 1.1.0 fails every second one
GUARDED = {
    'window = "20s"': 'window = "4s"',
    'interval = "5s"': 'interval = "2s"',
    "[validation]": (
        "[gates.judge]\nenabled = true\nalpha = 0.01\nerror_increase = 0.2\n"
        'latency = false\ndeadline = "3m"\n\n[guard]\nbake = "4m"\n\n[validation]'
    ),
}


def _bind_operator_policy(nomad: NomadAPI, job_id: str) -> str:
    """The shipped operator policy, bound to the guard job's workload identity."""
    rules = (importlib.resources.files("nomadml") / "policies" / "operator.hcl").read_text()
    name = f"nomadml-guard-{job_id}"
    body = {"Name": name, "Rules": rules, "JobACL": {"Namespace": "default", "JobID": job_id}}
    nomad.request("PUT", f"acl/policy/{name}", body=body)
    return name


def test_the_guard_rolls_back_once_across_a_leader_change(
    nomad: NomadAPI,
    servers: Servers,
    cli: Cli,
    roll: Callable[..., RolloutResult],
    make_spec: Callable[..., Path],
    ship: Callable[..., str],
    model_name: str,
) -> None:
    spec, line = make_spec(GUARDED), f"{model_name}-v1"
    assert roll(spec, "1.0.0", ship("1.0.0")).action is Action.SUCCEEDED
    guard_job = f"{model_name}-guard"
    policy = _bind_operator_policy(nomad, guard_job)
    try:
        up = cli("guard", "--up", "--model", model_name, "--task-api")
        assert up.returncode == 0, up.stdout + up.stderr
        alloc = running_alloc(nomad, guard_job)
        late = ship("1.1.0", serving={"error_rate": 0.5, "error_after": GOOD_FOR})

        with Traffic(nomad, line, rate_per_s=RATE, max_seconds=300) as traffic:
            promoted, path, before = promoted_and_baking(nomad, roll, spec, line, late)
            victim = servers.leader()
            servers.kill(victim)
            killed = time.monotonic()
            final = guard_record(nomad, path, lambda g: g["status"] in FINAL, 200)
            took = time.monotonic() - killed
        report = traffic.report
        logs = nomad.task_log_tail(alloc["ID"], "guard", kind="stdout", size=20000)
        print(
            f"leader {victim} killed after {before['state']['looks']} looks; the guard "
            f"ended {final['status']} {took:.1f} s later at look {final['state']['looks']}: "
            f"{final.get('reason')}; traffic: {report.summary()}\n{logs[-2500:]}"
        )
        assert servers.leader() != victim
        # Through the election the guard's calls waited and went on (the Task API's
        # "Server error authenticating request" is a refusal, not an error): no bake
        # stopped and resumed, no claim left for a takeover.
        assert "bake of" not in logs and "stopped" not in logs, logs[-2500:]
        rolled_back_once(
            nomad, model_name, line, int(promoted.job_version or 0), before, final, report
        )
    finally:
        nomad.request("DELETE", f"acl/policy/{policy}")
