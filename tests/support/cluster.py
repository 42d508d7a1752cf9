"""The cluster profile as tests see it (scripts/cluster.sh starts it): where its
state lives, its servers by name, its clients, and the CLI run against it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nomadml.adapters.nomad_api import NomadAPI

ROOT = Path(__file__).resolve().parents[2]
STACK_DIR = Path(
    os.environ.get("NOMADML_STACK_DIR")
    or Path(os.environ.get("NOMADML_CACHE_DIR") or Path.home() / ".cache" / "nomadml") / "stack"
)
CLUSTER_DIR = STACK_DIR / "cluster"
RUN_DIR = STACK_DIR / "run"
SERVERS = {"s1": 4701, "s2": 4711, "s3": 4721}  # http ports; rpc is +1 (scripts/cluster.sh)


Cli = Callable[..., subprocess.CompletedProcess[str]]


@dataclass(frozen=True)
class Node:
    id: str
    name: str  # nomadml-c1 ...
    volume: Path  # its `models` host volume


class Servers:
    """The cluster's servers, as scripts/stack started them (pid files)."""

    def __init__(self, api: NomadAPI) -> None:
        self.api = api

    def leader(self) -> str:
        """The leader's name (s1, s2, s3)."""
        rpc = str(self.api.leader()).rsplit(":", 1)[-1]
        return next(name for name, port in SERVERS.items() if port + 1 == int(rpc))

    def kill(self, name: str) -> None:
        """SIGKILL: the leader disappears mid-answer, as a crashed host would."""
        pid = int((RUN_DIR / f"cluster-{name}.pid").read_text())
        os.kill(pid, 9)

    def restore(self) -> None:
        """Start what is missing and wait until the cluster is whole again."""
        subprocess.run(
            [str(ROOT / "scripts" / "stack"), "up", "--cluster"], check=True, capture_output=True
        )


def kill_client(node: Node) -> None:
    """A client host crashing: its Nomad client SIGKILLed and its task containers with
    it (they would die with the host). Only what the cluster profile started."""
    import docker

    pid = int((RUN_DIR / f"cluster-{node.name.removeprefix('nomadml-')}.pid").read_text())
    os.kill(pid, 9)
    client = docker.from_env()
    for container in client.containers.list(
        filters={"label": f"com.hashicorp.nomad.node_id={node.id}"}
    ):
        container.kill()


def allocations(api: NomadAPI, job_id: str) -> list[dict[str, Any]]:
    """The job's allocations that are running, with their node and version."""
    return [a for a in api.job_allocations(job_id) if a["ClientStatus"] == "running"]
