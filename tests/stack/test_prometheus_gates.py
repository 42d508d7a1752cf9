"""Gates from Prometheus on the real stack: the stack's Prometheus finds the model's
allocations through Nomad (nomad_sd_configs) and the spec's PromQL (the defaults) is
what the gates judge — a bad canary is failed on Prometheus's numbers and rolled back,
a good one promoted; a query Prometheus refuses is one line before anything is sent."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.decide import Action
from nomadml.engine.result import RolloutResult
from nomadml.engine.traffic import Traffic
from nomadml.errors import BadInput

PROMETHEUS = os.environ.get("NOMADML_PROMETHEUS", "http://127.0.0.1:9090")
FROM_PROMETHEUS = {"[gates]\n": '[gates]\nsource = "prometheus"\n'}


@pytest.fixture(scope="module")
def prometheus() -> str:
    try:
        ready = requests.get(f"{PROMETHEUS}/-/ready", timeout=2).status_code == 200
    except requests.RequestException:
        ready = False
    if not ready:
        if os.environ.get("NOMADML_REQUIRE_STACK") == "1":
            pytest.fail(f"the stack's Prometheus is not answering at {PROMETHEUS}", pytrace=False)
        pytest.skip("no Prometheus; run scripts/stack up")
    return PROMETHEUS


def test_a_bad_canary_fails_on_prometheus_numbers_and_a_good_one_passes(
    prometheus: str,
    nomad: NomadAPI,
    roll: Callable[..., RolloutResult],
    ship: Callable[..., str],
    stable_line: Callable[..., tuple[Path, str]],
) -> None:
    spec, job_id = stable_line(FROM_PROMETHEUS, gates="fast")
    with Traffic(nomad, job_id, rate_per_s=15, max_seconds=240) as traffic:
        bad = roll(spec, "1.1.0", ship("1.1.0", serving={"error_rate": 0.5}))
        good = roll(spec, "1.2.0", ship("1.2.0", c=0.5))
    assert bad.action is Action.ROLLED_BACK, bad.reason
    assert "gate failed: error rate" in bad.reason
    assert {g["source"] for g in bad.gates} == {"prometheus"}
    assert bad.gates[-1]["values"]["canary_errors"] > 0
    assert good.action is Action.SUCCEEDED, good.reason
    assert {g["source"] for g in good.gates} == {"prometheus"}
    assert traffic.report.failed_by_version["1.0.0"] == 0


def test_a_query_prometheus_refuses_is_one_line_and_nothing_is_submitted(
    prometheus: str,
    nomad: NomadAPI,
    roll: Callable[..., RolloutResult],
    ship: Callable[..., str],
    stable_line: Callable[..., tuple[Path, str]],
) -> None:
    spec, job_id = stable_line(FROM_PROMETHEUS, gates="fast")
    before = nomad.job(job_id)["Version"]  # type: ignore[index]
    broken = spec.read_text() + '\n[gates.prometheus]\nerrors = "sum(rate(oops["\n'
    spec.write_text(broken)
    with pytest.raises(BadInput, match=r"gates\.prometheus\.errors: Prometheus answered: bad_data"):
        roll(spec, "1.1.0", ship("1.1.0"))
    assert nomad.job(job_id)["Version"] == before  # type: ignore[index]
