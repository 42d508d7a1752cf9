"""The first end-to-end slice: train a model, ship it as an image, run it on Nomad
(bootstrap task -> host volume -> serving task), and ask it for a prediction.

It drives the product's own rollout engine: spec -> release pinned by digest ->
render -> Nomad parse/validate -> ownership check -> plan -> check-and-set register
with the HCL as the job submission -> watch with blocking queries."""

from __future__ import annotations

import json
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from examples.iris.train import train_iris
from nomadml.adapters.images import build_model_image, build_serving_image
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.bundled.bootstrap import build_manifest, write_manifest
from nomadml.core.decide import Action
from nomadml.core.spec import ModelSpec, load_spec
from nomadml.engine.deploy import deploy
from nomadml.engine.prepare import prepare
from nomadml.errors import NomadMLError
from nomadml.settings import NomadSettings

SPEC = Path(__file__).resolve().parent / "iris.toml"
VERSION = "1.0.0"
SAMPLES = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
EXPECTED = ["setosa", "virginica"]


@dataclass(frozen=True)
class SliceResult:
    job_id: str
    url: str
    prediction: dict[str, Any]


def step(text: str) -> None:
    print(f"==> {text}", flush=True)


def predict(url: str, instances: list[list[float]]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{url}/predict",
        method="POST",
        headers={"Content-Type": "application/json"},
        data=json.dumps({"instances": instances}).encode(),
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, Any] = json.load(response)
    return answer


def run(api: NomadAPI, spec: ModelSpec, version: str = VERSION) -> SliceResult:
    """Train, ship, deploy and query the model; raise NomadMLError on failure."""
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        step(f"train {spec.name} {version} (scikit-learn, iris data set)")
        metrics = train_iris(model_dir)["metrics"]
        print(f"    held-out accuracy {metrics['accuracy']:.3f} on {metrics['test_samples']} rows")
        write_manifest(model_dir, build_manifest(model_dir, spec.name, version))
        step("build + push the model image and the serving image (docker SDK)")
        labels = {"io.nomadml.model": spec.name, "io.nomadml.version": version}
        model_image = build_model_image(
            model_dir, spec.name, version, labels=labels, registry=spec.model.registry
        )
        serving_image = build_serving_image(registry=spec.model.registry)
        print(f"    model   {model_image.pinned}\n    serving {serving_image.pinned}")
    prepared = prepare(
        spec, version, model_image=model_image.pinned, serving_image=serving_image.pinned
    )
    step(f"deploy {prepared.job_id}: plan, check-and-set register, watch with blocking queries")
    result = deploy(api, prepared, emit=lambda e: print(f"    {e.message}", flush=True))
    if result.action is not Action.SUCCEEDED:
        raise NomadMLError(f"{result.job_id}: {result.action.value}: {result.reason}")
    job = {"ID": result.job_id}
    services = api.scoped(spec.placement.namespace).service(job["ID"])
    if not services:
        raise NomadMLError(f"no service registration for {job['ID']}")
    url = f"http://{services[0]['Address']}:{services[0]['Port']}"
    step(f"serving at {url}")
    answer = predict(url, SAMPLES)
    print(f"    POST {url}/predict -> {json.dumps(answer)}")
    return SliceResult(job["ID"], url, answer)


def main() -> int:
    """Run the slice against NOMAD_ADDR; exit 0 only if the prediction is right."""
    try:
        result = run(NomadAPI(NomadSettings.from_env()), load_spec(SPEC))
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
    print(f"demo: ok — {result.job_id} serves model version {VERSION} at {result.url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
