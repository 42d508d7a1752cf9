"""The sequential judge deciding real rollouts (`[gates.judge] enabled = true`):
a canary that fails half its requests is failed on the evidence, with the judge's
statistic in the result, while stable serves on; a good canary passes; and with no
traffic at all (a quiet hour) the deadline ends in "await the operator" (exit 8),
neither a promotion nor a rollback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.decide import Action
from nomadml.engine.result import RolloutResult
from nomadml.engine.traffic import Traffic
from nomadml.errors import ExitCode


def _judged(deadline: str = "3m", error_increase: float = 0.2) -> dict[str, str]:
    """The iris spec with the judge on: fast looks, errors only, a wide effect bound so
    that a good canary can pass within a test's time."""
    return {
        'window = "20s"': 'window = "4s"',
        'interval = "5s"': 'interval = "2s"',
        "[validation]": (
            f"[gates.judge]\nenabled = true\nalpha = 0.01\nerror_increase = {error_increase}\n"
            f'latency = false\ndeadline = "{deadline}"\n\n[validation]'
        ),
    }


def test_the_judge_fails_a_bad_canary_on_the_evidence_and_passes_a_good_one(
    roll: Callable[..., RolloutResult],
    nomad: NomadAPI,
    make_spec: Callable[..., Path],
    ship: Callable[..., str],
    model_name: str,
) -> None:
    spec, job_id = make_spec(_judged()), f"{model_name}-v1"
    assert roll(spec, "1.0.0", ship("1.0.0")).action is Action.SUCCEEDED

    with Traffic(nomad, job_id, rate_per_s=20, max_seconds=240) as traffic:
        bad = roll(spec, "1.1.0", ship("1.1.0", serving={"error_rate": 0.5}))
    assert bad.action is Action.ROLLED_BACK, bad.reason
    assert bad.reason.startswith("gate failed: judge fail: errors e="), bad.reason
    last = bad.gates[-1]
    assert last["verdict"] == "fail" and last["judge"]["alpha"] == 0.01
    assert last["values"]["canary_errors"] > 0
    assert traffic.report.failed_by_version["1.0.0"] == 0

    with Traffic(nomad, job_id, rate_per_s=20, max_seconds=240) as traffic:
        good = roll(spec, "1.2.0", ship("1.2.0", c=0.5))
    assert good.action is Action.SUCCEEDED, good.reason
    assert good.gates[-1]["verdict"] == "pass"
    assert traffic.report.failed == 0


def test_no_traffic_at_the_deadline_awaits_the_operator(
    roll: Callable[..., RolloutResult],
    nomad: NomadAPI,
    make_spec: Callable[..., Path],
    ship: Callable[..., str],
    model_name: str,
) -> None:
    spec, job_id = make_spec(_judged(deadline="12s")), f"{model_name}-v1"
    assert roll(spec, "1.0.0", ship("1.0.0")).action is Action.SUCCEEDED
    quiet = roll(spec, "1.1.0", ship("1.1.0", c=0.5))  # nobody sends a request
    assert quiet.action is Action.AWAIT_PROMOTION, quiet.reason
    assert quiet.exit_code is ExitCode.AWAITING_PROMOTION
    assert "no verdict by the deadline" in quiet.reason
    job = nomad.job(job_id)
    assert job is not None and job["Meta"]["nomadml.version"] == "1.1.0"  # canary kept
    deployment = nomad.latest_deployment(job_id)
    assert deployment is not None and deployment["Status"] == "running"  # nothing reverted
