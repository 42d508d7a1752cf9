"""`nomadml deploy` as an operator runs it: Ctrl-C detaches without harming the
deployment and prints the command that resumes it; resuming finishes the rollout."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.errors import ExitCode


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "nomadml", *args]


def test_ctrl_c_detaches_and_the_printed_command_resumes(
    nomad: NomadAPI,
    model_name: str,
    make_spec: Callable[..., Path],
    ship: Callable[..., str],
    serving_image: str,
    receiver: Any,
) -> None:
    spec = str(make_spec(gates="health"))
    job_id = f"{model_name}-v1"
    first = subprocess.run(
        _cli(
            "deploy",
            spec,
            "--version",
            "1.0.0",
            "--image",
            ship("1.0.0"),
            "--serving-image",
            serving_image,
            "--unregistered",
        ),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert first.returncode == 0, first.stderr + first.stdout

    image = ship("1.1.0")
    args = [
        "deploy",
        spec,
        "--version",
        "1.1.0",
        "--image",
        image,
        "--serving-image",
        serving_image,
        "--unregistered",
    ]
    proc = subprocess.Popen(
        _cli(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    seen = ""
    while time.monotonic() < deadline and "registered" not in seen:
        seen += proc.stdout.readline()
    assert "registered" in seen
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == int(ExitCode.INTERRUPTED)
    assert f"Resume with: nomadml deploy {spec} --version 1.1.0" in err
    assert "Traceback" not in err

    # Detaching did not touch the deployment: it is still in Nomad's hands.
    dep = nomad.latest_deployment(job_id)
    assert dep is not None and dep["JobVersion"] == 1
    assert dep["Status"] in ("running", "successful")

    # Resume, with rollout events going to a webhook receiver on loopback.
    hook_env = {
        **os.environ,
        "NOMADML_WEBHOOK_URL": receiver.url,
        "NOMADML_WEBHOOK_SECRET": "hook-secret",
    }
    resumed = subprocess.run(_cli(*args), capture_output=True, text=True, timeout=300, env=hook_env)
    assert resumed.returncode == 0, resumed.stderr + resumed.stdout
    assert "already runs 1.1.0; following its deployment" in resumed.stdout
    assert (nomad.latest_deployment(job_id) or {}).get("Status") == "successful"
    events = []
    for headers, body in receiver.received:
        stamp = headers["X-Nomadml-Timestamp"]
        mac = hmac.new(b"hook-secret", stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        assert headers["X-Nomadml-Signature"] == f"sha256={mac}"
        events.append(json.loads(body)["event"])
    assert events[-1] == "succeeded"
    assert "hook-secret" not in resumed.stdout + resumed.stderr
