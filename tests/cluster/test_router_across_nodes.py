"""The router on the cluster, brought up as an operator would (ACLs, mutual TLS, the
shipped policies): without the router policy bound to the router job, `router up` says
so at once; with it, the routers start and route a canary step across nodes — the
canary on one client, stable on the two others, every request through the router."""

from __future__ import annotations

import dataclasses
import re
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from support.cluster import Cli, Node, allocations
from support.router import RouterLoad, ask, router_image

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.decide import Action
from nomadml.engine.result import RolloutResult
from nomadml.errors import ExitCode
from nomadml.events import Event

STEP = 20  # the canary's first weight at the router (%)


def _predictions_answered(registration: dict[str, Any]) -> int:
    """Predictions one allocation answered, from its own /metrics (which node served)."""
    url = f"http://{registration['Address']}:{registration['Port']}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    found = re.search(r'nomadml_requests_total\{path="/predict",code="200"\} (\d+)', text)
    return int(found.group(1)) if found else 0


def test_a_canary_step_through_the_router_across_nodes(
    nomad: NomadAPI,
    nodes: dict[str, Node],
    model_name: str,
    stable_line: Callable[..., tuple[Path, str]],
    roll: Callable[..., RolloutResult],
    ship: Callable[..., str],
    policy_token: Callable[[str], str],
    cli: Cli,
) -> None:
    spec, line = stable_line(
        {
            "auto_revert = true": f"auto_revert = true\nsteps = [{STEP}, 100]",
            # At the router a latency includes the trip to the server (see test_router),
            # on a machine shared with other runs: this test is about where requests go;
            # errors gate, latency only past 2 s.
            "max_latency_ms = 250.0": "max_latency_ms = 2000.0",
            "max_latency_ratio = 1.5": "max_latency_ratio = 100.0",
        }
    )
    operator, deployer = policy_token("operator"), policy_token("ci-deployer")

    # Without the router policy bound to the router job, its template may not read the
    # routing table: one line naming the command that binds it, not a 90 s timeout.
    started = time.monotonic()
    refused = cli("router", "up", str(spec), "--image", router_image(), token=operator)
    took = time.monotonic() - started
    assert refused.returncode == int(ExitCode.FAILED), refused.stderr + refused.stdout
    assert refused.stderr.strip().splitlines() == [
        f"nomadml: error: {model_name}-router cannot read its routing table "
        f"nomadml/routes/{model_name}: its workload identity needs the router policy "
        "(nomadml policy router | nomad acl policy apply -namespace default "
        f"-job {model_name}-router nomadml-router-{model_name} -)"
    ], refused.stderr
    assert took < 30, took

    # The operator binds it as told (`nomad acl policy apply -job` with a management
    # token); the router starts as it is, and `router up` again finds both answering.
    rules = cli("policy", "router")
    assert rules.returncode == 0, rules.stderr
    policy = f"nomadml-router-{model_name}"
    nomad.request(
        "PUT",
        f"acl/policy/{policy}",
        body={
            "Name": policy,
            "Rules": rules.stdout,
            "JobACL": {"Namespace": "default", "JobID": f"{model_name}-router"},
        },
    )
    try:
        started = time.monotonic()
        up = cli("router", "up", str(spec), "--image", router_image(), token=operator)
        assert up.returncode == 0, up.stderr + up.stdout
        bound_took = time.monotonic() - started
        routers = [w for w in up.stdout.split() if w.startswith("http://")]
        assert len(routers) == 2, up.stdout
        router_nodes = {a["NodeName"] for a in allocations(nomad, f"{model_name}-router")}

        # The weighted canary step, deployed with the ci-deployer's token: load goes
        # through the first router; at the step, 100 requests through the second (which
        # nothing else sends to) split exactly as the table says, across the nodes.
        as_deployer = NomadAPI(dataclasses.replace(nomad.settings, token=deployer))
        at_step: Counter[tuple[int, str]] = Counter()
        served: dict[str, int] = {}
        placement: dict[str, set[str]] = {}

        def at_the_step(event: Event) -> None:
            if event.message.startswith(f"router: 1.1.0 takes {STEP}% of {line}"):
                running = allocations(nomad, line)
                for a in running:
                    canary = bool((a.get("DeploymentStatus") or {}).get("Canary"))
                    placement.setdefault("canary" if canary else "stable", set()).add(a["NodeName"])
                node_of = {a["ID"]: a["NodeName"] for a in running}
                regs = [r for r in nomad.job_services(line) if r["AllocID"] in node_of]
                before = {r["AllocID"]: _predictions_answered(r) for r in regs}
                at_step.update(ask(routers[1]) for _ in range(100))
                for r in regs:
                    now = _predictions_answered(r)
                    served[node_of[r["AllocID"]]] = now - before[r["AllocID"]]
            events.append(event)

        events: list[Event] = []
        with RouterLoad(routers[0]) as load:
            result = roll(spec, "1.1.0", ship("1.1.0"), api=as_deployer, emit=at_the_step)
        messages = [e.message for e in events]
        assert result.action is Action.SUCCEEDED, (result.reason, messages)
        assert f"router: 1.1.0 takes all of {line}" in messages, messages

        # Canary and stable on different nodes; the step's weights held exactly at the
        # second router, and each of the three allocations (three nodes) answered at
        # least its share of those 100 (the load through the first router came too):
        # the canary 20, each stable one 40 (HAProxy's round robin over two servers).
        assert len(placement["stable"]) == 2 and len(placement["canary"]) == 1, placement
        assert not placement["stable"] & placement["canary"], placement
        assert at_step == {(200, "1.1.0"): STEP, (200, "1.0.0"): 100 - STEP}, at_step
        (canary_node,) = placement["canary"]
        assert served[canary_node] >= STEP, served
        assert all(served[n] >= (100 - STEP) // 2 for n in placement["stable"]), served
        gates = [e.data for e in events if e.kind == "gate"]
        assert gates and {g["source"] for g in gates} == {"router"}, gates
        assert sum(n for (status, _), n in load.answers.items() if status != 200) == 0, load.answers
        print(
            f"router across nodes: refused in {took:.1f} s without the router policy, up "
            f"{bound_took:.1f} s after binding it; "
            f"routers on {sorted(router_nodes)}; canary on {canary_node}, stable on "
            f"{sorted(placement['stable'])}; at the {STEP}% step 100 requests through the "
            f"second router: {dict(at_step)}, by node {served}; load through the first: "
            f"{dict(load.answers)}"
        )
    finally:
        nomad.request("DELETE", f"acl/policy/{policy}")
