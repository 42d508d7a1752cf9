"""What a Nomad 1.10 dynamic host volume per model version per node would cost
(issue 16 item 5): create one with the built-in `mkdir` plugin on each client, wait
until it is ready (schedulable: the scheduler places an allocation only on a node that
has it), delete it. Through the API, one volume at a time, against whatever
NOMAD_ADDR names (the cluster profile: `eval "$(scripts/stack env --cluster)"`; the
dev agent has one node). The decision and the numbers: benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/host_volumes.py --per-node 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nomadml.adapters.nomad_api import NomadAPI  # noqa: E402
from nomadml.settings import NomadSettings  # noqa: E402

READY_S = 120.0


def one(api: NomadAPI, node: str, name: str) -> tuple[float, float, float]:
    """(create call, create to ready, delete call) seconds for one volume on `node`."""
    body = {
        "Volume": {
            "Name": name,
            "Namespace": "default",
            "PluginID": "mkdir",
            "NodeID": node,
            "RequestedCapabilities": [
                {"AccessMode": "single-node-multi-writer", "AttachmentMode": "file-system"}
            ],
        }
    }
    started = time.perf_counter()
    volume = api.request("PUT", "volume/host/create", body=body).body["Volume"]
    created = time.perf_counter()
    index, deadline = 0, time.monotonic() + READY_S
    while (answer := api.get(f"volume/host/{volume['ID']}", index, wait=5)).body[
        "State"
    ] != "ready":
        if time.monotonic() > deadline:
            raise SystemExit(f"volume {name} on {node} not ready after {READY_S:.0f} s")
        index = answer.index
    ready = time.perf_counter()
    api.request("DELETE", f"volume/host/{volume['ID']}")
    return created - started, ready - started, time.perf_counter() - ready


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-node", type=int, default=5)
    args = parser.parse_args()
    api = NomadAPI(NomadSettings.from_env())
    nodes = [str(n["ID"]) for n in api.request("GET", "nodes").body or []]
    runs = [
        one(api, node, f"bench-volume-{uuid.uuid4().hex[:8]}")
        for _ in range(args.per_node)
        for node in nodes
    ]
    for k, what in enumerate(("create call", "create to ready", "delete call")):
        values = [run[k] for run in runs]
        print(
            f"dynamic host volume, {what}: median {statistics.median(values):.3f} s "
            f"[{min(values):.3f}..{max(values):.3f}] over {len(values)} volumes on "
            f"{len(nodes)} node(s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
