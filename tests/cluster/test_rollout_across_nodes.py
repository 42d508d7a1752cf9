"""A rollout on three clients: stable and canary on different nodes, each node
installing the model into its own `models` volume, and status, history and endpoints
right throughout — each command run with a token holding exactly its shipped policy,
over mutual TLS, through the list of all three servers."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from support.cluster import Cli, Node, allocations

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.errors import ExitCode


def test_canary_and_stable_on_different_nodes_each_installing_its_own_copy(
    nomad: NomadAPI,
    nodes: dict[str, Node],
    model_name: str,
    make_spec: Callable[..., Path],
    ship: Callable[..., str],
    serving_image: str,
    policy_token: Callable[[str], str],
    cli: Cli,
) -> None:
    deployer, viewer = policy_token("ci-deployer"), policy_token("viewer")
    spec = str(make_spec(gates="health"))
    job_id = f"{model_name}-v1"

    def deploy(version: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return cli(
            "deploy", spec, "--version", version, "--image", ship(version),
            "--serving-image", serving_image, "--unregistered", *extra, token=deployer,
        )  # fmt: skip

    first = deploy("1.0.0")
    assert first.returncode == 0, first.stderr + first.stdout
    stable = allocations(nomad, job_id)
    stable_nodes = {a["NodeID"] for a in stable}
    assert len(stable) == 2 and len(stable_nodes) == 2, stable  # count 2, two nodes

    # The canary waits for promotion (exit 8): look at the cluster while both run.
    second = deploy("1.1.0", "--no-promote")
    assert second.returncode == int(ExitCode.AWAITING_PROMOTION), second.stderr
    running = allocations(nomad, job_id)
    canaries = [a for a in running if (a.get("DeploymentStatus") or {}).get("Canary")]
    assert len(canaries) == 1, running
    canary_node = canaries[0]["NodeID"]
    assert canary_node not in stable_nodes, (canary_node, stable_nodes)

    # Each node installed what its own allocations serve, in its own volume, and no more.
    for node in nodes.values():
        installed = {p.name for p in (node.volume / model_name).glob("*") if p.is_dir()}
        expected = {"1.0.0"} if node.id in stable_nodes else {"1.1.0"}
        assert installed == expected, (node.name, installed)

    # The viewer sees it all: the line, the canary awaiting promotion, three endpoints on
    # three nodes (each client has its own dynamic port range: 14xxx, 15xxx, 16xxx).
    status = cli("status", token=viewer)
    assert status.returncode == 0, status.stderr
    line = next(row for row in status.stdout.splitlines() if row.startswith(job_id))
    assert "requires manual promotion" in line and "[v0 x2, v1 x1]" in line, line
    shown = cli("endpoints", model_name, "--json", token=viewer)
    assert shown.returncode == 0, shown.stderr
    endpoints = json.loads(shown.stdout)
    assert sorted(e["version"] for e in endpoints) == ["1.0.0", "1.0.0", "1.1.0"]
    assert len({e["url"].rsplit(":", 1)[1][:2] for e in endpoints}) == 3, endpoints
    assert [e["version"] for e in endpoints if e["canary"]] == ["1.1.0"]

    # Promotion by the deployer replaces the stable allocations; the new ones spread too.
    promoted = cli("promote", job_id, token=deployer)
    assert promoted.returncode == 0, promoted.stderr + promoted.stdout
    final = allocations(nomad, job_id)
    assert len(final) == 2 and len({a["NodeID"] for a in final}) == 2, final
    for alloc in final:
        assert (nodes[alloc["NodeID"]].volume / model_name / "1.1.0").is_dir()
    history = cli("history", job_id, "--json", token=viewer)
    assert history.returncode == 0, history.stderr
    rows = json.loads(history.stdout)[job_id]
    assert [(r["model_version"], r["deployment_status"]) for r in rows] == [
        ("1.1.0", "successful"),
        ("1.0.0", "successful"),
    ], rows
    # The viewer may not deploy: one line naming what it lacks, nothing submitted.
    refused = cli("deploy", spec, "--version", "1.2.0", "--image", ship("1.2.0"),
                  "--serving-image", serving_image, "--unregistered", token=viewer)  # fmt: skip
    assert refused.returncode == int(ExitCode.NOMAD_ERROR), refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "it needs namespace capability" in refused.stderr
    assert max(int(v["Version"]) for v in nomad.job_versions(job_id)) == 1  # nothing new
