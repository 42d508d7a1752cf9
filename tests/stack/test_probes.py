"""Quiet hours with probes on the real stack: with no real traffic at all, deploy's
probes (the spec's sample instances, X-Nomadml-Probe) give the gates their evidence —
a good canary is promoted, a bad one rolled back — and the gates say how much of the
evidence was probes. A probe file that cannot be used is one line, nothing submitted."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.decide import Action
from nomadml.engine.result import RolloutResult
from nomadml.errors import BadInput

PROBES = {"[gates]\n": '[gates.probe]\nenabled = true\ninstances = "probe.json"\n\n[gates]\n'}
ROWS = {"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}


def test_without_traffic_probes_decide_both_ways(
    nomad: NomadAPI,
    roll: Callable[..., RolloutResult],
    ship: Callable[..., str],
    stable_line: Callable[..., tuple[Path, str]],
    tmp_path: Path,
) -> None:
    (tmp_path / "probe.json").write_text(json.dumps(ROWS))  # beside the spec
    spec, job_id = stable_line(PROBES, gates="fast")

    result = roll(spec, "1.1.0", ship("1.1.0", c=0.5))  # nobody sends a request
    assert result.action is Action.SUCCEEDED, result.reason
    last = result.gates[-1]["values"]
    assert last["canary_requests"] >= 10
    assert last["canary_probe_requests"] == last["canary_requests"]  # all of it was probes
    assert last["stable_probe_requests"] == last["stable_requests"] > 0

    result = roll(spec, "1.2.0", ship("1.2.0", serving={"error_rate": 0.5}))
    assert result.action is Action.ROLLED_BACK, result.reason
    assert "gate failed: error rate" in result.reason
    failing = result.gates[-1]["values"]
    assert failing["canary_errors"] > 0 and failing["canary_probe_requests"] > 0
    assert nomad.job(job_id)["Meta"]["nomadml.version"] == "1.1.0"  # type: ignore[index]


def test_a_probe_file_that_cannot_be_used_is_one_line_and_nothing_is_submitted(
    nomad: NomadAPI,
    roll: Callable[..., RolloutResult],
    ship: Callable[..., str],
    stable_line: Callable[..., tuple[Path, str]],
    tmp_path: Path,
) -> None:
    (tmp_path / "probe.json").write_text(json.dumps(ROWS))
    spec, job_id = stable_line(PROBES, gates="fast")
    before = nomad.job(job_id)["Version"]  # type: ignore[index]
    (spec.parent / "probe.json").write_text('{"instances": []}')
    with pytest.raises(BadInput, match=r"gates\.probe\.instances: .* non-empty list"):
        roll(spec, "1.1.0", ship("1.1.0"))
    assert nomad.job(job_id)["Version"] == before  # type: ignore[index]
