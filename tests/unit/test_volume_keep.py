"""Which versions a line keeps on its nodes' volumes, and the prune order (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from nomadml.core.render import render
from nomadml.core.volume_prune import TEMPLATE, kept_versions, prune_order, prune_values
from nomadml.errors import BadInput, NotOwned


def job(version: str, **meta: str) -> dict[str, Any]:
    return {
        "ID": "iris-v1",
        "Meta": {
            "nomadml.managed": "true",
            "nomadml.model": "iris",
            "nomadml.major": "1",
            "nomadml.version": version,
            **meta,
        },
        "Datacenters": ["dc1"],
        "Namespace": "default",
        "Region": "global",
        "TaskGroups": [
            {
                "Volumes": {"models": {"Source": "models"}},
                "Tasks": [
                    {"Name": "bootstrap", "Config": {"image": "r/iris@sha256:" + "a" * 64}},
                    {"Name": "serve", "Config": {}},
                ],
            }
        ],
    }


def alloc(status: str, version: str) -> dict[str, Any]:
    return {"ClientStatus": status, "Job": job(version)}


@pytest.mark.parametrize(
    ("versions", "allocs", "kept"),
    [
        (["1.2.0", "1.1.0", "1.1.0"], [], ("1.1.0", "1.2.0")),
        # a stable allocation of a job version Nomad no longer keeps still runs
        (["1.2.0"], [alloc("running", "1.0.0")], ("1.0.0", "1.2.0")),
        (["1.2.0"], [alloc("pending", "1.0.1")], ("1.0.1", "1.2.0")),
        # finished allocations need nothing
        (["1.2.0"], [alloc("complete", "1.0.0"), alloc("failed", "1.0.1")], ("1.2.0",)),
        ([], [], ()),
    ],
)
def test_kept_versions(
    versions: list[str], allocs: list[dict[str, Any]], kept: tuple[str, ...]
) -> None:
    assert kept_versions([job(v) for v in versions], allocs) == kept


def test_order_reads_the_line_job() -> None:
    order = prune_order("iris-v1", job("1.2.0"), [job("1.2.0"), job("1.1.0")], [])
    assert (order.model, order.major, order.keep) == ("iris", 1, ("1.1.0", "1.2.0"))
    assert order.image.startswith("r/iris@sha256:") and order.volume == "models"
    assert order.job_id == "iris-v1-volume-prune"


@pytest.mark.parametrize(
    ("found", "error", "message"),
    [
        (None, BadInput, "line 'iris-v1': no such job in Nomad"),
        ({**job("1.0.0"), "Meta": {}}, NotOwned, "not a model line nomadml manages"),
        (job("1.0.0", **{"nomadml.role": "router"}), NotOwned, "not a model line"),
        ({**job("1.0.0"), "TaskGroups": [{"Tasks": []}]}, BadInput, "no host volume or bootstrap"),
    ],
)
def test_order_refuses(found: dict[str, Any] | None, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        prune_order("iris-v1", found, [], [])


@pytest.mark.parametrize("dry_run", [True, False])
def test_the_shipped_template_runs_the_bootstrap_prune(dry_run: bool) -> None:
    order = prune_order("iris-v1", job("1.2.0"), [job("1.2.0"), job("1.1.0")], [])
    hcl = render(TEMPLATE, prune_values(order, dry_run, "9.9.9"))
    assert 'type        = "sysbatch"' in hcl
    assert '"--keep", "1.1.0,1.2.0"' in hcl and '"--major", "1"' in hcl
    assert ('"--dry-run"' in hcl) is dry_run
    assert '"nomadml.role" = "volume-prune"' in hcl
