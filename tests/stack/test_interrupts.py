"""SIGINT and SIGTERM to `nomadml deploy` at each stage: before register, while
watching the deployment, while the gates measure. Each ends the same defined way:
exit 130, one line saying what was left, a job version that is either absent or
complete (tagged and recorded), a deployment still in Nomad's hands (neither failed
nor promoted by the interrupted run), no request dropped, and the printed command
resumes to success."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from nomadml.adapters import rollout_records as history
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.engine.traffic import Traffic
from nomadml.errors import ExitCode


def _interrupt_at(args: list[str], kind: str, signum: int) -> tuple[int, str, list[str]]:
    """Run `nomadml deploy ... --json`; send `signum` once an event of `kind` is out."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "nomadml", *args, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    kinds: list[str] = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        kinds.append(json.loads(line)["kind"])
        if kinds[-1] == kind:
            proc.send_signal(signum)
            break
    out, err = proc.communicate(timeout=60)
    # Whatever it printed after the signal counts too (say, a promotion it still made).
    kinds += [json.loads(line)["kind"] for line in out.splitlines() if line.strip()]
    assert kind in kinds, (kinds, err)
    print(f"signal {signum} at {kind}: exit {proc.returncode}, events {kinds}: {err.strip()}")
    return proc.returncode, err, kinds


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_at_each_stage_leaves_a_defined_state(
    signum: int,
    nomad: NomadAPI,
    stable_line: Callable[..., tuple[Path, str]],
    ship: Callable[..., str],
    serving_image: str,
) -> None:
    spec, job_id = stable_line({"consecutive_passes = 2": "consecutive_passes = 3"})
    args = ["deploy", str(spec), "--version", "1.1.0", "--image", ship("1.1.0", c=0.5)]
    args += ["--serving-image", serving_image, "--unregistered"]
    resume = f"Resume with: nomadml deploy {spec} --version 1.1.0"

    def new_versions() -> list[int]:
        return [
            int(v["Version"])
            for v in nomad.job_versions(job_id)
            if v["Meta"]["nomadml.version"] == "1.1.0"
        ]

    def assert_complete(version: int) -> None:
        tags = {
            (v.get("VersionTag") or {}).get("Name")
            for v in nomad.job_versions(job_id)
            if v["Version"] == version
        }
        assert tags == {"v1.1.0"}, tags
        assert history.records(nomad, job_id)[version]["model_version"] == "1.1.0"

    def assert_left_to_nomad() -> None:
        dep = nomad.latest_deployment(job_id) or {}
        assert dep.get("JobVersion") == new_versions()[0], dep
        assert dep["Status"] in ("running", "successful"), dep["StatusDescription"]
        assert not dep["TaskGroups"]["model"].get("Promoted"), "promoted by an interrupted run"

    with Traffic(nomad, job_id, rate_per_s=15, max_seconds=400) as traffic:
        # 1. Before register: the signal lands as the plan is printed.
        code, err, _ = _interrupt_at(args, "plan", signum)
        assert code == int(ExitCode.INTERRUPTED)
        said = _one_line(err)
        if "nothing was submitted" in said:
            assert new_versions() == []
        else:  # it arrived during the register step, which completes as a whole
            assert resume in said
            assert len(new_versions()) == 1
            assert_complete(new_versions()[0])

        # 2. While watching the deployment.
        code, err, _ = _interrupt_at(args, "deployment", signum)
        assert code == int(ExitCode.INTERRUPTED)
        assert resume in _one_line(err)
        assert len(new_versions()) == 1
        assert_complete(new_versions()[0])
        assert_left_to_nomad()

        # 3. While the gates measure the canary against the stable version.
        code, err, kinds = _interrupt_at(args, "gate", signum)
        assert code == int(ExitCode.INTERRUPTED)
        assert resume in _one_line(err)
        assert "promote" not in kinds and "fail" not in kinds
        assert len(new_versions()) == 1
        assert_left_to_nomad()

        # The printed command resumes to success.
        resumed = subprocess.run(
            [sys.executable, "-m", "nomadml", *args], capture_output=True, text=True, timeout=300
        )
        assert resumed.returncode == 0, resumed.stderr + resumed.stdout
        assert "already runs 1.1.0; following its deployment" in resumed.stdout
    assert (nomad.latest_deployment(job_id) or {})["Status"] == "successful"
    assert len(new_versions()) == 1
    assert traffic.report.failed == 0, traffic.report.summary()
    assert traffic.report.by_version["1.0.0"] > 0, traffic.report.summary()
