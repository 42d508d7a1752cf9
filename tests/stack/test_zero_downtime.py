"""Zero downtime, counted: a loopback load generator (bounded in count and time)
sends /predict requests to the line's live Nomad registrations, re-read twice a
second, for the whole of each rollout. With the shipped spec's defaults
(shutdown_delay, checks, count = 2) no request may fail in any scenario.

Every figure is printed so the run log records it (pytest -s, or on failure).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.decide import Action
from nomadml.engine.result import RolloutResult
from nomadml.engine.rollback import rollback
from nomadml.engine.traffic import Traffic, TrafficReport

RATE = 15  # requests per second, within the generator's bounds below
MAX_SECONDS = 240


def _counted(scenario: str, report: TrafficReport) -> str:
    line = f"{scenario}: {report.summary()}"
    print(line)
    return line


def test_canary_rollout_with_promotion_drops_nothing(
    roll: Callable[..., RolloutResult],
    nomad: NomadAPI,
    ship: Callable[..., str],
    stable_line: Callable[..., tuple[Path, str]],
) -> None:
    spec, job_id = stable_line()
    image = ship("1.1.0", c=0.5)
    with Traffic(nomad, job_id, rate_per_s=RATE, max_seconds=MAX_SECONDS) as traffic:
        result = roll(spec, "1.1.0", image)
    report = traffic.report
    line = _counted("canary promoted", report)
    assert result.action is Action.SUCCEEDED, result.reason
    assert report.failed == 0, line
    assert report.by_version["1.0.0"] > 0 and report.by_version["1.1.0"] > 0, line


def test_failed_canary_rolled_back_drops_nothing(
    roll: Callable[..., RolloutResult],
    nomad: NomadAPI,
    ship: Callable[..., str],
    stable_line: Callable[..., tuple[Path, str]],
) -> None:
    # The canary answers correctly but slowly: its latency gate fails, and the
    # rollback must not cost a single request.
    spec, job_id = stable_line()
    image = ship("1.1.0", serving={"extra_latency_ms": 400})
    with Traffic(nomad, job_id, rate_per_s=RATE, max_seconds=MAX_SECONDS) as traffic:
        result = roll(spec, "1.1.0", image)
    report = traffic.report
    line = _counted("canary failed and rolled back", report)
    assert result.action is Action.ROLLED_BACK, result.reason
    assert "latency" in result.reason, result.reason
    assert report.failed == 0, line
    assert report.by_version["1.1.0"] > 0, line  # the slow canary really took traffic
    assert (nomad.job(job_id) or {})["Meta"]["nomadml.version"] == "1.0.0"


def test_post_promotion_rollback_drops_nothing(
    roll: Callable[..., RolloutResult],
    nomad: NomadAPI,
    ship: Callable[..., str],
    stable_line: Callable[..., tuple[Path, str]],
) -> None:
    spec, job_id = stable_line()
    image = ship("1.1.0", c=0.5)
    with Traffic(nomad, job_id, rate_per_s=RATE, max_seconds=MAX_SECONDS) as warmup:
        assert roll(spec, "1.1.0", image).action is Action.SUCCEEDED
    assert warmup.report.failed == 0, _counted("canary promoted", warmup.report)
    with Traffic(nomad, job_id, rate_per_s=RATE, max_seconds=MAX_SECONDS) as traffic:
        result = rollback(nomad, job_id, timeout_s=240)
    report = traffic.report
    line = _counted("rolled back after promotion", report)
    assert result.action is Action.SUCCEEDED, result.reason
    assert report.failed == 0, line
    assert report.by_version["1.0.0"] > 0, line
    assert (nomad.job(job_id) or {})["Meta"]["nomadml.version"] == "1.0.0"


def test_new_major_beside_the_old_drops_nothing(
    roll: Callable[..., RolloutResult],
    nomad: NomadAPI,
    model_name: str,
    ship: Callable[..., str],
    stable_line: Callable[..., tuple[Path, str]],
) -> None:
    spec, v1 = stable_line()
    v2 = f"{model_name}-v2"
    image = ship("2.0.0", c=0.2)
    with (
        Traffic(nomad, v1, rate_per_s=RATE, max_seconds=MAX_SECONDS) as old,
        Traffic(nomad, v2, rate_per_s=RATE, max_seconds=MAX_SECONDS) as new,
    ):
        result = roll(spec, "2.0.0", image)
        # Both majors side by side: keep both flows going until v2 has answered a while.
        settle = time.monotonic() + 30
        while time.monotonic() < settle and new.report.by_version["2.0.0"] < 30:
            time.sleep(0.5)
    line = _counted("old major during and after new major's rollout", old.report)
    new_line = _counted("new major as it came up", new.report)
    assert result.action is Action.SUCCEEDED, result.reason
    assert old.report.failed == 0 and old.report.by_version["1.0.0"] > 0, line
    assert new.report.failed == 0 and new.report.by_version["2.0.0"] > 0, new_line
    assert (nomad.job(v1) or {})["Status"] == "running"
