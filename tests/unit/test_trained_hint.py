"""A retraining run whose job has no policy bound (Nomad refuses the allocation read)
is one line that names the shipped policy and the exact command that binds it, in the
same words as the router's and the guard's hints, and nothing is registered."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nomadml.core.acl import bind_command
from nomadml.engine.trained import Trained, check_trained
from nomadml.errors import BadInput, NomadAPIError


class RefusingNomad:
    """The allocation read answers as Nomad does without the policy: 403."""

    class settings:  # the attribute the engine reads
        namespace = "models"

    def get(self, path: str, index: int = 0, wait: int = 0) -> Any:
        raise NomadAPIError("GET", f"/v1/{path}", 403, "Permission denied")


def test_an_unbound_retraining_job_is_told_the_command_that_binds_its_policy(
    tmp_path: Path,
) -> None:
    trained = Trained(tmp_path, alloc_id="a" * 36, task="train", job="iris-retrain")
    with pytest.raises(BadInput) as err:
        check_trained(RefusingNomad(), trained, print)  # type: ignore[arg-type]
    line = str(err.value)
    assert "\n" not in line and line.endswith("nothing registered"), line
    command = bind_command("retraining", "models", "iris-retrain", "nomadml-iris-retrain")
    assert "is the retraining policy bound to job iris-retrain?" in line and command in line
