"""The first end-to-end slice: train a model, ship it as an image, run it on Nomad
(bootstrap task -> host volume -> serving task), and ask it for a prediction.

The job values are put together by hand here; model specs (jobspecs/) replace
that with operator-owned files."""

from __future__ import annotations

import json
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nomadml.bundled.bootstrap import build_manifest, write_manifest
from nomadml.errors import NomadMLError
from nomadml.images import build_model_image, build_serving_image
from nomadml.nomad_api import NomadAPI
from nomadml.render import render
from nomadml.settings import NomadSettings
from nomadml.training import train_iris
from nomadml.watch import wait_for_deployment

MODEL, VERSION = "iris", "1.0.0"
SAMPLES = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
EXPECTED = ["setosa", "virginica"]


@dataclass(frozen=True)
class SliceResult:
    job_id: str
    url: str
    prediction: dict[str, Any]


def step(text: str) -> None:
    print(f"==> {text}", flush=True)


def job_values(job_id: str, model_image: str, serving_image: str) -> dict[str, object]:
    return {
        "job": {
            "id": job_id,
            "datacenters": ["*"],
            "namespace": None,
            "region": None,
            "meta": {
                "nomadml.managed": "true",
                "nomadml.model": MODEL,
                "nomadml.version": VERSION,
                "nomadml.image": model_image,
            },
        },
        "update": {
            "max_parallel": 1,
            "canary": 1,
            "min_healthy_time": "3s",
            "healthy_deadline": "60s",
            "progress_deadline": "120s",
            "auto_promote": False,
            "auto_revert": True,
        },
        "serving": {
            "count": 1,
            "health_path": "/health",
            "image": serving_image,
            "command": "python3",
            "args": ["/opt/nomadml/serve.py"],
            "env": {},
            "shutdown_delay": "3s",
            "kill_timeout": "10s",
            "cpu": 100,
            "memory": 128,
        },
        "volume": {"name": "models", "source": "models"},
        "restart": {"attempts": 1, "interval": "5m", "delay": "3s"},
        "service": {
            "name": job_id,
            "tags": [f"model={MODEL}", f"version={VERSION}"],
            "meta": {"model": MODEL, "version": VERSION},
            "check_interval": "2s",
            "check_timeout": "1s",
        },
        "model": {"name": MODEL, "version": VERSION, "image": model_image},
        "bootstrap": {"cpu": 100, "memory": 64},
    }


def run(api: NomadAPI, job_id: str = f"{MODEL}-v1") -> SliceResult:
    """Train, ship, deploy and query the model; raise NomadMLError on failure."""
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        step(f"train {MODEL} {VERSION} (scikit-learn, iris data set)")
        metrics = train_iris(model_dir)["metrics"]
        print(f"    held-out accuracy {metrics['accuracy']:.3f} on {metrics['test_samples']} rows")
        write_manifest(model_dir, build_manifest(model_dir, MODEL, VERSION))
        step("build + push the model image and the serving image (docker SDK)")
        model_image = build_model_image(
            model_dir,
            MODEL,
            VERSION,
            labels={"io.nomadml.model": MODEL, "io.nomadml.version": VERSION},
        )
        serving_image = build_serving_image()
        print(f"    model   {model_image.pinned}\n    serving {serving_image.pinned}")
    hcl = render(
        "model-service.nomad.hcl", job_values(job_id, model_image.pinned, serving_image.pinned)
    )
    job = api.parse_hcl(hcl)
    step(f"register job {job['ID']} on Nomad ({api.settings.address})")
    existing = api.job(job["ID"])
    result = api.register(
        job, enforce_index=existing["JobModifyIndex"] if existing else 0, source=hcl
    )
    version = (api.job(job["ID"]) or {}).get("Version", 0)
    print(f"    evaluation {result['EvalID'][:8]}, job version {version}")
    step("wait for the deployment (bootstrap installs the model, serving task passes /health)")
    started = time.monotonic()
    deployment = wait_for_deployment(api, job["ID"], version, timeout_s=180)
    print(
        f"    deployment {deployment['ID'][:8]} {deployment['Status']} "
        f"in {time.monotonic() - started:.1f} s"
    )
    services = api.service(job["ID"])
    if not services:
        raise NomadMLError(f"no service registration for {job['ID']}")
    url = f"http://{services[0]['Address']}:{services[0]['Port']}"
    step(f"serving at {url}")
    request = urllib.request.Request(
        f"{url}/predict",
        method="POST",
        headers={"Content-Type": "application/json"},
        data=json.dumps({"instances": SAMPLES}).encode(),
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = json.load(response)
    print(f"    POST {url}/predict -> {json.dumps(answer)}")
    return SliceResult(job["ID"], url, answer)


def main() -> int:
    """Run the slice against NOMAD_ADDR; exit 0 only if the prediction is right."""
    try:
        result = run(NomadAPI(NomadSettings.from_env()))
    except NomadMLError as err:
        print(f"demo: {err}", file=sys.stderr)
        return 1
    labels = [p["label"] for p in result.prediction["predictions"]]
    version = result.prediction.get("version")
    if version != VERSION or labels != EXPECTED:
        print(
            f"demo: expected {EXPECTED} from {VERSION}, got {labels} from {version}",
            file=sys.stderr,
        )
        return 1
    print(f"demo: ok — {MODEL} {VERSION} serves on Nomad at {result.url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
