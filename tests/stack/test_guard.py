"""The post-promotion guard on the real stack: a version that is good for its first
requests passes its canary (the judge), is promoted, then starts failing half its
predictions; `nomadml guard LINE` (the real CLI) finds the regression against stable's
numbers from the rollout, rolls the line back at once, alerts by webhook and records the
outcome in the rollout record and the registry's audit. Clients counted every request:
none that the stable version answered failed.

Every figure is printed so the run log records it (pytest -s, or on failure)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nomadml.adapters import rollout_records as history
from nomadml.adapters.model_store import ModelRegistry
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.decide import Action
from nomadml.engine.result import RolloutResult
from nomadml.engine.traffic import Traffic
from nomadml.errors import ExitCode

RATE = 20  # requests per second
# Each allocation of the bad version answers this many predictions well before it
# fails every second one: well above what its canary gets before the judge passes it.
GOOD_FOR = 450


def _guarded(bake: str = "4m") -> dict[str, str]:
    """The iris spec with the judge on (fast looks, errors only) and a guard."""
    return {
        'window = "20s"': 'window = "4s"',
        'interval = "5s"': 'interval = "2s"',
        "[validation]": (
            "[gates.judge]\nenabled = true\nalpha = 0.01\nerror_increase = 0.2\n"
            'latency = false\ndeadline = "3m"\n\n'
            f'[guard]\nbake = "{bake}"\ncompare = "judge"\non_regression = "rollback"\n\n'
            "[validation]"
        ),
    }


def _guard(line: str, env: dict[str, str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    """`nomadml guard LINE`, as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "nomadml", "guard", line],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=env,
    )


def test_a_late_regression_is_rolled_back_by_the_guard(
    roll: Callable[..., RolloutResult],
    nomad: NomadAPI,
    make_spec: Callable[..., Path],
    ship: Callable[..., str],
    model_name: str,
    receiver: Any,
) -> None:
    spec, line = make_spec(_guarded()), f"{model_name}-v1"
    assert roll(spec, "1.0.0", ship("1.0.0")).action is Action.SUCCEEDED
    late = ship("1.1.0", serving={"error_rate": 0.5, "error_after": GOOD_FOR})

    env = {**os.environ, "NOMADML_WEBHOOK_URL": receiver.url, "NOMADML_WEBHOOK_SECRET": "s3"}
    with Traffic(nomad, line, rate_per_s=RATE, max_seconds=420) as traffic:
        promoted = roll(spec, "1.1.0", late)
        assert promoted.action is Action.SUCCEEDED, promoted.reason
        assert promoted.gates[-1]["verdict"] == "pass"
        promoted_errors = traffic.report.failed_by_version["1.1.0"]
        started = time.monotonic()
        guarded = _guard(line, env, timeout_s=400)
        took = time.monotonic() - started
    report = traffic.report
    print(f"guard: {took:.1f} s; traffic: {report.summary()}")
    print(guarded.stdout[-3000:])
    assert promoted_errors == 0, "the bad version failed before its promotion"
    assert guarded.returncode == int(ExitCode.ROLLED_BACK), guarded.stdout + guarded.stderr
    assert "guard rolled-back — regression: errors " in guarded.stdout

    # The line runs the stable version again; the clients saw no failure from it.
    job = nomad.job(line) or {}
    assert job["Meta"]["nomadml.version"] == "1.0.0"
    assert report.failed_by_version["1.0.0"] == 0, report.summary()
    assert report.by_version["1.0.0"] > 0 and report.failed_by_version["1.1.0"] > 0

    # The outcome is in the promoted version's rollout record, with the evidence.
    record = history.records(nomad, line)[int(promoted.job_version or 0)]["guard"]
    assert record["status"] == "rolled-back", record
    assert record["baseline"]["requests"] > 0 and record["baseline"]["errors"] == 0
    errors = record["evidence"]["signals"]["errors"]
    assert errors["log_statistic"] >= errors["log_threshold"]
    assert record["rollback"]["outcome"] == "succeeded"

    # The registry's audit names the regression; the webhook said so.
    audit = [e for e in ModelRegistry(nomad).audit_log(model_name) if e["version"] == "1.1.0"]
    assert [e["action"] for e in audit if e["action"] == "regression"] == ["regression"]
    events = [json.loads(body)["event"] for _, body in receiver.received]
    assert "regression-detected" in events and "guard-rolled-back" in events, events
    assert "rollback-succeeded" in events, events

    # Asked again, the guard says what happened and does nothing twice.
    again = _guard(line, env, timeout_s=60)
    assert again.returncode == int(ExitCode.ROLLED_BACK), again.stdout + again.stderr
    assert int((nomad.job(line) or {})["Version"]) == int(job["Version"])


def test_deploy_goes_on_into_the_bake_and_a_good_version_clears_it(
    nomad: NomadAPI,
    make_spec: Callable[..., Path],
    ship: Callable[..., str],
    serving_image: str,
    model_name: str,
) -> None:
    """`nomadml deploy` as an operator runs it, threshold gates and a thresholds guard:
    after the promotion the command watches the bake and exits 0 when it clears."""
    guard = '[guard]\nbake = "20s"\ncompare = "thresholds"\n\n[validation]'
    spec, line = make_spec({"[validation]": guard}, gates="fast"), f"{model_name}-v1"

    def deploy(version: str, image: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "nomadml", "deploy", str(spec), "--version", version,
             "--image", image, "--serving-image", serving_image, "--unregistered"],
            capture_output=True, text=True, timeout=400,
        )  # fmt: skip

    first = deploy("1.0.0", ship("1.0.0"))
    assert first.returncode == 0, first.stdout + first.stderr
    with Traffic(nomad, line, rate_per_s=RATE, max_seconds=300) as traffic:
        second = deploy("1.1.0", ship("1.1.0", c=0.5))
    print(f"traffic: {traffic.report.summary()}\n{second.stdout[-2000:]}")
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"{line}: guard cleared — no regression within the 20 s bake" in second.stdout
    assert traffic.report.failed == 0, traffic.report.summary()
    job = nomad.job(line) or {}
    record = history.records(nomad, line)[int(job["Version"])]["guard"]
    assert record["status"] == "cleared" and record["version"] == "1.1.0"
    assert record["evidence"]["compare"] == "thresholds"
    assert record["baseline"]["requests"] > 0  # stable's last gate window
    assert record["state"]["looks"] >= 5


def test_a_manual_promotion_starts_the_bake(
    roll: Callable[..., RolloutResult],
    nomad: NomadAPI,
    make_spec: Callable[..., Path],
    ship: Callable[..., str],
    model_name: str,
) -> None:
    """deploy --no-promote leaves the canaries waiting; the bake starts with
    `nomadml promote`, not before (guard says so), and then runs to its end."""
    from nomadml.engine.guard import bake
    from nomadml.engine.promote import promote
    from nomadml.errors import BadInput

    guard = '[guard]\nbake = "6s"\ncompare = "thresholds"\n\n[validation]'
    spec, line = make_spec({"[validation]": guard}, gates="health"), f"{model_name}-v1"
    assert roll(spec, "1.0.0", ship("1.0.0")).action is Action.SUCCEEDED
    waiting = roll(spec, "1.1.0", ship("1.1.0", c=0.5), no_promote=True)
    assert waiting.action is Action.AWAIT_PROMOTION, waiting.reason
    record = history.records(nomad, line)[int(waiting.job_version or 0)]["guard"]
    assert record["status"] == "awaiting-promotion"
    with pytest.raises(BadInput, match="awaits its promotion"):
        bake(nomad, line)
    assert promote(nomad, line, timeout_s=240).action is Action.SUCCEEDED
    record = history.records(nomad, line)[int(waiting.job_version or 0)]["guard"]
    assert record["status"] == "baking" and record["promoted_at"] > 0
    assert bake(nomad, line).outcome == "cleared"


SLOW_AFTER = 700  # predictions per allocation before 1.1.0 turns slow (well into the bake)


def test_a_version_that_turns_slow_after_its_promotion_is_rolled_back_on_latency(
    roll: Callable[..., RolloutResult],
    nomad: NomadAPI,
    make_spec: Callable[..., Path],
    ship: Callable[..., str],
    model_name: str,
) -> None:
    """Judge mode with the latency signal: 1.1.0 answers as fast as 1.0.0 for its first
    predictions (its canary passes on errors and latency), then takes 200 ms more per
    prediction and never fails one. The deploy's deciding look kept stable's merged
    histogram; the guard counts requests slower than the judge's bound against it and
    rolls the line back on latency alone."""
    judged = _guarded()
    judged["[validation]"] = judged["[validation]"].replace(
        "latency = false", "latency = true\nslow_increase = 0.3"
    )
    spec, line = make_spec(judged), f"{model_name}-v1"
    assert roll(spec, "1.0.0", ship("1.0.0")).action is Action.SUCCEEDED
    slow = ship("1.1.0", serving={"extra_latency_ms": 200, "slow_after": SLOW_AFTER})
    with Traffic(nomad, line, rate_per_s=RATE, max_seconds=420) as traffic:
        promoted = roll(spec, "1.1.0", slow)
        assert promoted.action is Action.SUCCEEDED, promoted.reason
        started = time.monotonic()
        guarded = _guard(line, dict(os.environ), timeout_s=400)
        took = time.monotonic() - started
    report = traffic.report
    deciding = promoted.gates[-1]
    print(f"guard: {took:.1f} s; traffic: {report.summary()}")
    print(f"deciding look: {json.dumps(deciding['judge']['tests'])[:600]}")
    print(f"stable histogram kept: {deciding.get('stable_histogram')}")
    print(guarded.stdout[-3000:])
    assert deciding["verdict"] == "pass" and deciding["stable_histogram"]
    assert [t["signal"] for t in deciding["judge"]["tests"]] == ["errors", "latency"]
    assert guarded.returncode == int(ExitCode.ROLLED_BACK), guarded.stdout + guarded.stderr
    assert "guard rolled-back — regression: latency " in guarded.stdout

    assert (nomad.job(line) or {})["Meta"]["nomadml.version"] == "1.0.0"
    assert report.failed == 0, report.summary()  # slow, never failing: no request failed
    record = history.records(nomad, line)[int(promoted.job_version or 0)]["guard"]
    assert record["status"] == "rolled-back", record
    assert record["baseline"]["buckets"][-1] == ["+Inf", record["baseline"]["requests"]]
    assert record["baseline"]["slow_above_s"] == deciding["judge"]["slow_above_s"]
    latency = record["evidence"]["signals"]["latency"]
    assert latency["log_statistic"] >= latency["log_threshold"], latency
    print(f"latency evidence: {latency}; looks {record['state']['looks']}")
    assert record["state"]["looks"] >= 3  # good looks first: it turned slow during the bake
