"""A client drained while its canary is being judged: Nomad migrates the node's
allocations to the other clients, stable keeps answering, and nomadml never promotes
on the drained canary's evidence alone — it promotes a replacement judged afresh, or
rolls back."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.cluster import Node, allocations

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.decide import Action
from nomadml.engine.result import RolloutResult
from nomadml.engine.traffic import Traffic
from nomadml.events import Event

DEADLINE_NS = 60 * 1_000_000_000


@pytest.fixture()
def drain(nomad: NomadAPI) -> Iterator[Callable[[str], None]]:
    """Drain a node (as `nomad node drain -enable -deadline 60s`); undrained after."""
    drained: list[str] = []

    def start(node_id: str) -> None:
        body = {"DrainSpec": {"Deadline": DEADLINE_NS, "IgnoreSystemJobs": True}}
        nomad.request("PUT", f"node/{node_id}/drain", body=body)
        drained.append(node_id)

    yield start
    for node_id in drained:
        nomad.request(
            "PUT", f"node/{node_id}/drain", body={"DrainSpec": None, "MarkEligible": True}
        )


def test_a_client_drained_mid_canary_never_promotes_the_drained_canary(
    nomad: NomadAPI,
    nodes: dict[str, Node],
    stable_line: Callable[..., tuple[Path, str]],
    roll: Callable[..., RolloutResult],
    ship: Callable[..., str],
    drain: Callable[[str], None],
) -> None:
    spec, job_id = stable_line(gates="fast")
    drained: list[tuple[float, str, str]] = []  # (when, node, canary alloc)

    def watch(event: Event) -> None:
        if event.kind == "gate" and not drained:
            canary = next(
                a
                for a in allocations(nomad, job_id)
                if (a.get("DeploymentStatus") or {}).get("Canary")
            )
            drain(canary["NodeID"])
            drained.append((time.monotonic(), canary["NodeID"], canary["ID"]))

    with Traffic(nomad, job_id, rate_per_s=15, max_seconds=300, retry_refused=True) as traffic:
        result = roll(spec, "1.1.0", ship("1.1.0"), emit=watch)
    assert drained, "the canary was never judged"
    _, node_id, first_canary = drained[0]
    assert result.action in (Action.SUCCEEDED, Action.ROLLED_BACK), (result.action, result.reason)
    if result.action is Action.SUCCEEDED:
        # Promoted only on a canary Nomad placed elsewhere, judged afresh.
        placed = (nomad.latest_deployment(job_id) or {})["TaskGroups"]["model"]["PlacedCanaries"]
        assert any(c != first_canary for c in placed), placed
    running = allocations(nomad, job_id)
    assert running and all(a["NodeID"] != node_id for a in running), running
    # Stable answered throughout (a client retrying a refused connection once elsewhere).
    assert traffic.report.failed_by_version["1.0.0"] == 0, traffic.report.summary()
    print(
        f"client {nodes[node_id].name} drained mid-canary: {result.action.value} "
        f"({result.reason}); {traffic.report.summary()}"
    )
