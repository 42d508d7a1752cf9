"""Retraining after a regression, on the real agent. The Nomad fact the design rests on:
a job that is both periodic and parameterized registers, but its schedule is never
tracked (a forced launch is refused), so the retraining job cannot simply be made
dispatchable. `nomadml schedule-retraining` with `[guard] retrain = true` registers the
periodic job and its parameterized twin; the guard's dispatch starts a child of the twin
carrying why (reason, line, regressed version)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.cli.main import main
from nomadml.engine.guard_actions import dispatch_job_id, dispatch_retraining
from nomadml.errors import NomadAPIError
from nomadml.events import Event

BOTH = """
job "{id}" {{
  type        = "batch"
  datacenters = ["*"]
  meta = {{ "nomadml.managed" = "true" }}
  periodic {{
    crons = ["0 3 * * *"]
  }}
  parameterized {{
    meta_optional = ["reason"]
  }}
  group "g" {{
    task "t" {{
      driver = "raw_exec"
      config {{
        command = "/bin/true"
      }}
    }}
  }}
}}
"""


def test_nomad_never_runs_the_schedule_of_a_parameterized_periodic_job(
    nomad: NomadAPI, model_name: str
) -> None:
    job_id = f"{model_name}-both"
    job = nomad.parse_hcl(BOTH.format(id=job_id))
    nomad.register(job, enforce_index=0)  # accepted...
    assert (nomad.job(job_id) or {}).get("Periodic") is not None
    with pytest.raises(NomadAPIError, match="non-tracked job"):
        nomad.request("PUT", f"job/{job_id}/periodic/force")  # ...but never scheduled


def test_the_guard_dispatches_the_parameterized_twin(
    nomad: NomadAPI, model_name: str, make_spec: Callable[..., Path]
) -> None:
    spec = make_spec({"[validation]": '[guard]\nbake = "10m"\nretrain = true\n\n[validation]'})
    scheduled = CliRunner().invoke(main, ["schedule-retraining", str(spec)])
    assert scheduled.exit_code == 0, scheduled.output
    periodic = nomad.job(f"{model_name}-retrain") or {}
    twin = nomad.job(dispatch_job_id(model_name)) or {}
    assert periodic["Periodic"]["Specs"] == ["0 3 * * *"] and not periodic["ParameterizedJob"]
    assert twin["ParameterizedJob"]["MetaOptional"] == ["reason", "line", "regressed_version"]
    assert not twin.get("Periodic")

    events: list[Event] = []
    child = dispatch_retraining(nomad, model_name, f"{model_name}-v1", "1.1.0", events.append)
    assert child is not None and child.startswith(f"{dispatch_job_id(model_name)}/dispatch-")
    dispatched = nomad.job(child) or {}
    nomad.stop_job(child, purge=True)  # the run itself is test_retraining's business
    assert dispatched["ParentID"] == dispatch_job_id(model_name)
    assert dispatched["Meta"]["reason"] == "regression"
    assert dispatched["Meta"]["regressed_version"] == "1.1.0"
    assert [(e.kind, e.data["outcome"]) for e in events] == [("retrain", "dispatched")]
