"""Same-data evaluation: a model version is measured, not taken at its trainer's
word. Its model image is served locally through the spec's serving image (as a
Nomad allocation would serve it), the spec's evaluation set is sent through
`/predict`, and the answers are scored against the label column. The candidate
and the production version of its major are measured on the same rows."""

from __future__ import annotations

import csv
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nomadml.adapters.images import export_model
from nomadml.adapters.serving_http import call
from nomadml.core.evaluation import score
from nomadml.core.model_version import ModelVersion
from nomadml.core.spec import ModelSpec
from nomadml.engine.local_serving import served
from nomadml.engine.prepare import serving_image_for
from nomadml.errors import BadInput, NomadMLError

BATCH = 500  # instances per request (the reference server takes 1,000 at most)

Measure = Callable[[ModelVersion], dict[str, float]]


def evaluation_set(path: Path, label: str, features: list[str]) -> tuple[list[Any], list[str]]:
    """(instances, labels) from the evaluation CSV: feature columns in the order the
    model's signature declares them (numbers where they parse), and the label."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as err:
        raise BadInput(f"evaluation data {path}: {err.strerror or err}") from None
    if not rows:
        raise BadInput(f"evaluation data {path}: no rows")
    missing = [c for c in [*features, label] if c not in rows[0]]
    if missing:
        raise BadInput(f"evaluation data {path}: no column(s) {', '.join(missing)}")

    def value(text: str) -> Any:
        try:
            return float(text)
        except ValueError:
            return text

    instances = [[value(row[name]) for name in features] for row in rows]
    return instances, [row[label] for row in rows]


def measurer(spec: ModelSpec, base: Path) -> Measure | None:
    """A function that measures a version on the spec's evaluation set, or None when
    the spec names no evaluation data and label."""
    path = spec.data.path("evaluation", base)
    if path is None or not spec.data.label:
        return None
    image = serving_image_for(spec)

    def measure(version: ModelVersion) -> dict[str, float]:
        inputs = (version.signature or {}).get("inputs") or []
        features = [str(i["name"]) for i in inputs]
        instances, labels = evaluation_set(path, spec.data.label, features)
        with tempfile.TemporaryDirectory(prefix="nomadml-eval-") as scratch:
            model_dir = Path(scratch) / "model"
            export_model(version.image, model_dir)
            with served(spec, image, model_dir, version.version, has_manifest=True) as url:
                predictions = _predict_all(url + spec.gates.metrics.path, instances)
        return score(labels, predictions)

    return measure


def _predict_all(url: str, instances: list[Any]) -> list[Any]:
    out: list[Any] = []
    for start in range(0, len(instances), BATCH):
        chunk = instances[start : start + BATCH]
        status, body = call(url, json.dumps({"instances": chunk}).encode(), timeout_s=60)
        if status != 200:
            raise NomadMLError(f"evaluation: POST {url} answered HTTP {status}: {body[:200]!r}")
        predictions = json.loads(body).get("predictions")
        if not isinstance(predictions, list) or len(predictions) != len(chunk):
            raise NomadMLError(f"evaluation: {url} did not answer one prediction per instance")
        out += predictions
    return out
