"""A node without the host volume the spec names (a client set up without `models`):
the deploy is one line naming the volume, exit 7, and nothing reaches Nomad."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.decide import Action
from nomadml.engine.result import RolloutResult
from nomadml.errors import ExitCode


def test_no_node_with_the_volume_is_one_line_and_nothing_is_submitted(
    nomad: NomadAPI,
    roll: Callable[..., RolloutResult],
    make_spec: Callable[..., Path],
    ship: Callable[..., str],
    model_name: str,
) -> None:
    spec = make_spec({'name = "models"': 'name = "models-nowhere"'}, gates="health")
    result = roll(spec, "1.0.0", ship("1.0.0"))
    assert result.action is Action.FAILED and result.exit_code is ExitCode.FAILED
    assert result.reason.startswith("cannot be placed: model: "), result.reason
    assert "no eligible node has the host volume 'models-nowhere'" in result.reason
    assert "\n" not in result.reason
    assert nomad.job(f"{model_name}-v1") is None  # nothing was submitted
