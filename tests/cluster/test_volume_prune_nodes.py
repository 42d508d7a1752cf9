"""`nomadml volume prune` on three clients: the one-shot job runs on every node with
the `models` volume, each node removes its own copies of versions Nomad can no longer
run, and the version the line serves stays where it runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from support.cluster import Cli, Node, allocations

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.bundled import bootstrap
from nomadml.core.decide import Action
from nomadml.engine.result import RolloutResult


def test_every_node_prunes_its_own_volume(
    nomad: NomadAPI,
    nodes: dict[str, Node],
    model_name: str,
    make_spec: Callable[..., Path],
    roll: Callable[..., RolloutResult],
    ship: Callable[..., str],
    cli: Cli,
    tmp_path: Path,
) -> None:
    line = f"{model_name}-v1"
    assert roll(make_spec(gates="health"), "1.0.0", ship("1.0.0")).action is Action.SUCCEEDED
    serving = {a["NodeID"] for a in allocations(nomad, line)}
    # A version of an earlier life of the line on every node's volume (no job version
    # Nomad keeps names it), and the other major's, which this line must not touch.
    for node in nodes.values():
        for version in ("1.0.5", "2.0.0"):
            source = tmp_path / node.name / version
            source.mkdir(parents=True)
            (source / "model.json").write_text(f'{{"version": "{version}"}}')
            bootstrap.write_manifest(source, bootstrap.build_manifest(source, model_name, version))
            bootstrap.install(source, node.volume, model_name, version)

    done = cli("volume", "prune", line)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"keeping 1.0.0 of {model_name} major 1 on 3 node(s)" in done.stdout, done.stdout
    for node in nodes.values():
        assert f"{node.name}: removed {model_name} 1.0.5" in done.stdout, done.stdout
        kept = sorted(p.name for p in (node.volume / model_name).iterdir() if p.name[0] != ".")
        assert kept == (["1.0.0", "2.0.0"] if node.id in serving else ["2.0.0"]), (node, kept)
    assert nomad.job(f"{line}-volume-prune") is None
