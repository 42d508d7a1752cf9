"""A client host crashes while its canary is being judged: the canary's evidence
stops, Nomad loses the allocation, and nomadml does not promote on what it no longer
sees."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from support.cluster import Node, Servers, allocations, kill_client

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.decide import Action
from nomadml.engine.result import RolloutResult
from nomadml.engine.traffic import Traffic
from nomadml.events import Event


def test_a_client_lost_mid_canary_is_no_promotion_on_missing_evidence(
    nomad: NomadAPI,
    nodes: dict[str, Node],
    servers: Servers,
    stable_line: Callable[..., tuple[Path, str]],
    roll: Callable[..., RolloutResult],
    ship: Callable[..., str],
) -> None:
    spec, job_id = stable_line(gates="fast")
    events: list[tuple[float, Event]] = []
    killed: list[tuple[float, str]] = []

    def watch(event: Event) -> None:
        events.append((time.monotonic(), event))
        if event.kind == "gate" and not killed:
            canary = next(
                a
                for a in allocations(nomad, job_id)
                if (a.get("DeploymentStatus") or {}).get("Canary")
            )
            kill_client(nodes[canary["NodeID"]])
            killed.append((time.monotonic(), canary["ID"]))

    with Traffic(nomad, job_id, rate_per_s=15, max_seconds=300):
        result = roll(spec, "1.1.0", ship("1.1.0"), emit=watch)
    assert killed, "the canary was never judged"
    at, lost = killed[0]
    ended = events[-1][0] - at
    assert nomad.request("GET", f"allocation/{lost}").body["ClientStatus"] == "lost"
    if result.action is Action.SUCCEEDED:
        # Promoted only on a replacement canary Nomad placed elsewhere, judged afresh.
        dep = nomad.latest_deployment(job_id) or {}
        placed = dep["TaskGroups"]["model"]["PlacedCanaries"]
        assert any(c != lost for c in placed), placed
    else:
        # The canary's evidence stopped: no verdict in time, rolled back to stable.
        assert result.action is Action.ROLLED_BACK, (result.action, result.reason)
        # Nomad's revert registered the stable version again, as a new job version.
        job = nomad.job(job_id) or {}
        assert job["Meta"]["nomadml.version"] == "1.0.0", job["Meta"]
        running = allocations(nomad, job_id)
        assert {a["JobVersion"] for a in running} == {job["Version"]}, running
        assert len(running) == 2, running
    assert ended < 120, ended
    print(f"client killed mid-canary: {result.action.value} {ended:.1f} s later ({result.reason})")
