"""A client partitioned from the servers (and from every other host) while its canary
is being judged: the canary's evidence stops, Nomad marks the node down and its
allocation lost, and nomadml does not promote on what it no longer sees. After the
partition heals, the node is back, and the cluster converges: the lost canary stops
on the node that ran it, and the line runs only the version the rollout settled on."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import docker
import pytest
from support.cluster import Node, allocations
from support.partition import available, partitioned

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.decide import Action
from nomadml.engine.result import RolloutResult
from nomadml.engine.traffic import Traffic
from nomadml.events import Event


def test_a_partitioned_client_gives_no_promotion_and_converges_after_healing(
    nomad: NomadAPI,
    nodes: dict[str, Node],
    stable_line: Callable[..., tuple[Path, str]],
    roll: Callable[..., RolloutResult],
    ship: Callable[..., str],
) -> None:
    why = available()
    if why:
        pytest.fail(f"a partition cannot be made on this machine: {why}", pytrace=False)
    spec, job_id = stable_line(gates="fast")
    cut: list[tuple[float, Node, str]] = []  # (when, node, canary alloc)
    events: list[tuple[float, Event]] = []
    cut_at: list[float] = []  # wall clock, to compare with Nomad's node events

    with contextlib.ExitStack() as partition:

        def watch(event: Event) -> None:
            events.append((time.monotonic(), event))
            if event.kind == "gate" and not cut:
                canary = next(
                    a
                    for a in allocations(nomad, job_id)
                    if (a.get("DeploymentStatus") or {}).get("Canary")
                )
                node = nodes[canary["NodeID"]]
                partition.enter_context(partitioned(node.name.removeprefix("nomadml-")))
                cut.append((time.monotonic(), node, canary["ID"]))
                cut_at.append(time.time())

        with Traffic(nomad, job_id, rate_per_s=15, max_seconds=300):
            result = roll(spec, "1.1.0", ship("1.1.0"), emit=watch)
        assert cut, "the canary was never judged"
        at, node, first_canary = cut[0]
        ended = events[-1][0] - at
        # Still cut off: Nomad gives the node up (missed heartbeats) and its canary too.
        deadline, index = time.monotonic() + 90, 0
        while (answer := nomad.get(f"node/{node.id}", index, wait=5)).body["Status"] != "down":
            assert time.monotonic() < deadline, "Nomad never marked the partitioned node down"
            index = answer.index
        missed = [
            datetime.fromisoformat(e["Timestamp"]).timestamp()
            for e in answer.body["Events"]
            if e["Message"] == "Node heartbeat missed"
        ]
        marked_down = max(missed) - cut_at[0]
        lost = nomad.request("GET", f"allocation/{first_canary}").body["ClientStatus"]
    healed = time.monotonic()

    # While cut off: no promotion on the partitioned canary's evidence.
    assert result.action in (Action.SUCCEEDED, Action.ROLLED_BACK), (result.action, result.reason)
    if result.action is Action.SUCCEEDED:
        placed = (nomad.latest_deployment(job_id) or {})["TaskGroups"]["model"]["PlacedCanaries"]
        assert any(c != first_canary for c in placed), placed
    assert lost == "lost", lost

    # Healed: the node comes back, and the canary Nomad gave up on stops there.
    settled = "1.1.0" if result.action is Action.SUCCEEDED else "1.0.0"
    engine = docker.from_env()
    deadline = time.monotonic() + 90
    index = 0
    while True:
        status = nomad.request("GET", f"node/{node.id}").body["Status"]
        left = engine.containers.list(
            filters={"label": f"com.hashicorp.nomad.alloc_id={first_canary}"}
        )
        running = allocations(nomad, job_id)
        versions = {a["JobVersion"] for a in running}
        job = nomad.job(job_id) or {}
        if status == "ready" and not left and len(running) == 2 and versions == {job["Version"]}:
            break
        assert time.monotonic() < deadline, (status, left, running)
        index = nomad.get(f"job/{job_id}/allocations", index, wait=2).index
    assert job["Meta"]["nomadml.version"] == settled, job["Meta"]
    print(
        f"client {node.name} partitioned mid-canary: {result.action.value} {ended:.1f} s "
        f"later ({result.reason}); heartbeat missed {marked_down:.1f} s after the cut, canary "
        f"{lost}; converged "
        f"{time.monotonic() - healed:.1f} s after healing"
    )
