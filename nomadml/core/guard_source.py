"""Where the guard reads the promoted version's numbers: where the rollout was judged.

Part of the pure core: no I/O. A rollout judged at the router (gates.source = "router")
compared the versions on what the router counted (its buckets, network time included);
the guard then reads the promoted version's numbers from the router too, so errors and
latency after the promotion are judged against stable's router-measured baseline, one
measurement on both sides. Any other rollout was judged on the servers' own /metrics,
and the guard reads those.

Either way a look's block is the sum, over every place counting (an allocation, or a
router allocation and the promoted version's backend), of its change since the previous
look. A place's first reading is its zero; a counter that went down (a server restarted,
a router reloaded its configuration and started counting again) is a reset, and
everything counted since is the change (core.metrics.delta, as the gates do): a reload
mid-bake is neither a burst nor negative traffic."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Literal

from nomadml.core.metrics import Snapshot, delta, merge
from nomadml.core.prediction_guard import decoded_label

__all__ = ["Source", "block_since", "from_router", "source_of"]

Source = Literal["servers", "router"]


def source_of(record: Mapping[str, Any]) -> Source:
    """Where the rollout whose gate record this is was judged."""
    return "router" if record.get("source") == "router" else "servers"


def block_since(
    last: Mapping[str, Snapshot], now: Mapping[str, Snapshot]
) -> tuple[Snapshot, dict[str, Snapshot]]:
    """(the traffic since the previous look, the readings to compare the next look with).
    A place that does not answer this look keeps its last reading."""
    parts = [delta(last[key], snap) for key, snap in now.items() if key in last]
    return (merge(parts) if parts else Snapshot()), {**last, **now}


def from_router(snap: Snapshot) -> Snapshot:
    """A router's reading with the servers' labels: the router counted them from the
    percent-encoded X-Nomadml-Predictions header (its own "other" is the guard's)."""
    if not snap.predictions:
        return snap
    labels: dict[str, float] = {}
    for label, n in snap.predictions:
        name = decoded_label(label)
        labels[name] = labels.get(name, 0.0) + n
    return replace(snap, predictions=tuple(sorted(labels.items())))
