"""The guard's bookkeeping against the shared fake Nomad (variables with Nomad's
check-and-set): a regression is claimed once however many guards see it, a decided
bake is reported and never acted on again, a claim left half-done is finished only
after it went stale, and a line with nothing to bake is one line, exit 2."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from click.testing import CliRunner
from support.fake_nomad import FakeNomad

from nomadml.adapters import rollout_records as history
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.cli.main import main
from nomadml.core.guard import GuardConfig
from nomadml.core.spec import Lifecycle
from nomadml.engine import guard, guard_record
from nomadml.engine.majors import retire_old_majors
from nomadml.errors import BadInput
from nomadml.events import discard
from nomadml.settings import NomadSettings

LINE = "churn-v1"


@pytest.fixture()
def api(fake_nomad: FakeNomad) -> NomadAPI:
    fake_nomad.put_job(
        {
            "ID": LINE,
            "Version": 1,
            "Status": "running",
            "Meta": {"nomadml.managed": "true", "nomadml.model": "churn"},
        }
    )
    return NomadAPI(NomadSettings.from_env({"NOMAD_ADDR": fake_nomad.address}))


def _guard_record(api: NomadAPI, **fields: Any) -> None:
    data = {
        "status": "baking",
        "model": "churn",
        "version": "1.1.0",
        "promoted_at": time.time(),
        "config": GuardConfig(bake_s=60, interval_s=2).as_dict(),
        "baseline": {"requests": 100, "errors": 0},
        **fields,
    }
    history.record(api, LINE, _version(api), {"guard": data})


def _version(api: NomadAPI) -> int:
    return int((api.job(LINE) or {})["Version"])


def test_a_regression_is_claimed_once(api: NomadAPI) -> None:
    _guard_record(api)
    version = _version(api)
    first = guard_record.claim(api, LINE, version, "rolling-back", {"reason": "regression: errors"})
    second = guard_record.claim(
        api, LINE, version, "rolling-back", {"reason": "regression: errors"}
    )
    assert first is not None and first["status"] == "rolling-back"
    assert second is None
    record, _ = history.read(api, LINE, version)
    assert record["guard"]["reason"] == "regression: errors"


def test_a_decided_bake_is_reported_not_acted_on(api: NomadAPI, fake_nomad: FakeNomad) -> None:
    _guard_record(api, status="rolled-back", reason="regression: errors 50%")
    result = guard.bake(api, LINE)
    assert (result.outcome, result.reason) == ("rolled-back", "regression: errors 50%")
    assert int(result.exit_code) == 6
    writes = [
        fake_nomad.requests_to(method, path)
        for method in ("POST", "PUT")
        for path in ("/v1/jobs", f"/v1/job/{LINE}")
    ]
    assert writes == [[], [], [], []]  # nothing registered


def test_a_fresh_claim_is_left_to_the_guard_that_made_it(api: NomadAPI) -> None:
    _guard_record(api, status="rolling-back", detected_at=time.time(), reason="regression")
    result = guard.bake(api, LINE)  # another guard is acting: this one says so, does nothing
    assert result.outcome == "regressed" and result.reason == "regression"


def test_a_line_with_nothing_to_bake_is_one_line(api: NomadAPI) -> None:
    with pytest.raises(BadInput, match=rf"^{LINE}: job version \d+ \(\?\) has nothing to bake"):
        guard.bake(api, LINE)
    run = CliRunner().invoke(main, ["--address", api.settings.address, "guard", LINE])
    assert run.exit_code == 2, run.output
    assert run.output.count("\n") == 1 and "nothing to bake" in run.output


def test_guard_state_is_json_in_the_record(api: NomadAPI) -> None:
    _guard_record(api)
    raw = api.get_variable(f"{history.PREFIX}/{LINE}/{_version(api)}") or {}
    assert json.loads(raw["Items"]["guard"])["status"] == "baking"


def test_a_manual_promotion_starts_the_bake(api: NomadAPI) -> None:
    _guard_record(api, status="awaiting-promotion", promoted_at=None)
    with pytest.raises(BadInput, match=rf"^{LINE}: 1.1.0 awaits its promotion \(nomadml promote"):
        guard.bake(api, LINE)
    assert guard_record.started_by_promotion(api, LINE, _version(api), discard)
    assert not guard_record.started_by_promotion(api, LINE, _version(api), discard)  # once
    record, _ = history.read(api, LINE, _version(api))
    assert record["guard"]["status"] == "baking"
    assert time.time() - record["guard"]["promoted_at"] < 60


def test_a_models_guard_and_router_are_never_retired_as_lines(
    api: NomadAPI, fake_nomad: FakeNomad
) -> None:
    """Keeping two majors, a model with lines v1 and v2 keeps both, and its guard and
    router jobs (same model, no major) are no lines to retire."""
    jobs = [
        {
            "ID": job_id,
            "Status": "running",
            "Meta": {"nomadml.managed": "true", "nomadml.model": "churn", **meta},
        }
        for job_id, meta in [
            ("churn-v1", {"nomadml.major": "1"}),
            ("churn-v2", {"nomadml.major": "2"}),
            ("churn-guard", {"nomadml.role": "guard"}),
            ("churn-router", {"nomadml.role": "router"}),
        ]
    ]
    fake_nomad.script("GET", "/v1/jobs", 200, jobs)  # the fake does not model the list
    retired = retire_old_majors(api, "churn", "churn-v2", Lifecycle(2, False, ""), discard)
    assert retired == []


@pytest.mark.parametrize("args", [[], [LINE, "--all"], ["--all", "--up"]])
def test_guard_takes_one_of_a_line_all_or_up(args: list[str]) -> None:
    run = CliRunner().invoke(main, ["--address", "http://127.0.0.1:9", "guard", *args])
    assert run.exit_code == 2, run.output
    assert run.output.strip() == "nomadml: error: guard: give one of LINE, --all or --up"


def test_the_guard_job_reaches_nomad_through_its_task_api_when_asked() -> None:
    """--task-api: the workload identity's token in NOMAD_TOKEN, the agent's socket as
    NOMAD_ADDR, nothing of the cluster's (address, token, certificate) in the job."""
    from nomadml.core.jobs import TASK_API, render_guard

    hcl = render_guard("m-guard", "m", "raw_exec", "", TASK_API)
    assert "identity {\n        env = true\n      }" in hcl
    assert 'NOMAD_ADDR = "unix://$${NOMAD_SECRETS_DIR}/api.sock"' in hcl
    plain = render_guard("m-guard", "m", "raw_exec", "", "https://127.0.0.1:4646")
    assert "identity" not in plain and 'NOMAD_ADDR = "https://127.0.0.1:4646"' in plain


@pytest.mark.parametrize(
    ("args", "option"),
    [
        ([LINE, "--task-api"], "--task-api"),
        (["--all", "--image", "x"], "--image"),
        ([LINE, "--driver", "docker"], "--driver"),
    ],
)
def test_the_guard_job_s_options_are_refused_without_up(args: list[str], option: str) -> None:
    run = CliRunner().invoke(main, ["--address", "http://127.0.0.1:9", "guard", *args])
    assert run.exit_code == 2, run.output
    assert run.output.strip() == f"nomadml: error: guard: {option} applies only with --up"


def test_model_is_refused_with_a_line() -> None:
    args = ["--address", "http://127.0.0.1:9", "guard", LINE, "--model", "iris"]
    run = CliRunner().invoke(main, args)
    assert run.exit_code == 2, run.output
    assert run.output.strip() == "nomadml: error: guard: --model applies only with --all or --up"
