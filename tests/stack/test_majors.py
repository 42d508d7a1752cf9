"""Major versions side by side: v1 and v2 run together, v0 retires when
keep_majors = 2, a failed v2 rollout leaves v1 untouched, and `endpoints` lists
the live addresses of both majors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from examples.iris import quickstart
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.cli.main import main
from nomadml.core.decide import Action
from nomadml.engine.result import RolloutResult


def test_majors_side_by_side_retirement_and_isolation(
    roll: Callable[..., RolloutResult],
    nomad: NomadAPI,
    model_name: str,
    make_spec: Callable[..., Path],
    ship: Callable[..., str],
) -> None:
    spec = make_spec(gates="health")  # keep_majors = 2, as shipped
    for version in ("0.1.0", "1.0.0"):
        assert roll(spec, version, ship(version)).action is Action.SUCCEEDED
    assert (nomad.job(f"{model_name}-v0") or {}).get("Status") == "running"

    v2 = roll(spec, "2.0.0", ship("2.0.0", c=0.2))
    assert v2.action is Action.SUCCEEDED, v2.reason
    assert (nomad.job(f"{model_name}-v0") or {}).get("Stop") is True  # retired
    v1 = nomad.job(f"{model_name}-v1")
    assert v1 is not None and v1["Status"] == "running" and not v1["Stop"]

    # Both majors answer, each with its own version, at the addresses `endpoints` lists.
    result = CliRunner().invoke(main, ["endpoints", model_name])
    assert result.exit_code == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()]
    assert {(r[0], r[2]) for r in rows} == {
        (f"{model_name}-v1", "1.0.0"),
        (f"{model_name}-v2", "2.0.0"),
    }
    for line, _, version, url in rows:
        answer = quickstart.predict(url, quickstart.SAMPLES)
        assert answer["version"] == version, line

    # A failed v2 rollout leaves v1 exactly as it was.
    v1_allocs = sorted(
        a["ID"] for a in nomad.job_allocations(f"{model_name}-v1") if a["ClientStatus"] == "running"
    )
    bad = roll(spec, "2.1.0", ship("2.1.0", corrupt=True))
    assert bad.action is Action.ROLLED_BACK, bad.reason
    after = nomad.job(f"{model_name}-v1")
    assert after is not None and after["Version"] == v1["Version"]
    assert (
        sorted(
            a["ID"]
            for a in nomad.job_allocations(f"{model_name}-v1")
            if a["ClientStatus"] == "running"
        )
        == v1_allocs
    )
    assert (nomad.job(f"{model_name}-v2") or {})["Meta"]["nomadml.version"] == "2.0.0"
