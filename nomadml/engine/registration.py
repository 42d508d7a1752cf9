"""`nomadml model register`: a model directory becomes a versioned, checksummed
model image in the image registry and a candidate record in the model registry.
Everything is checked before anything is built, pushed or recorded."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

from nomadml.adapters.model_store import ModelRegistry, now
from nomadml.bundled.bootstrap import BootstrapError, build_manifest
from nomadml.core.lifecycle import bump, check_signature, signature_hash
from nomadml.core.model_version import ModelVersion
from nomadml.core.spec import check_name, parse_version
from nomadml.errors import BadInput, as_operator_error
from nomadml.events import Emit, Event, discard

METADATA = "metadata.json"


def read_metadata(model_dir: Path) -> dict[str, Any]:
    """metadata.json: metrics (numbers), signature (inputs/outputs), training_data, notes."""
    where = model_dir / METADATA
    try:
        data = json.loads(where.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInput(f"{where}: missing (metrics, signature, training data, notes)") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise BadInput(f"{where}: not valid JSON: {err}") from None
    except RecursionError:
        raise BadInput(f"{where}: not valid JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise BadInput(f"{where}: expected a JSON object")
    metrics = data.get("metrics")
    if not isinstance(metrics, dict) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        for v in metrics.values()
    ):
        raise BadInput(f"{where}: metrics: expected an object of numbers (not NaN or Infinity)")
    signature = data.get("signature")
    if (
        not isinstance(signature, dict)
        or not isinstance(signature.get("inputs"), list)
        or not isinstance(signature.get("outputs"), list)
    ):
        raise BadInput(f'{where}: signature: expected {{"inputs": [...], "outputs": [...]}}')
    notes = data.get("notes", "")
    if not isinstance(notes, str):
        raise BadInput(f"{where}: notes: expected a string")
    return data


def content_digest(manifest: dict[str, Any]) -> str:
    """What the artifact is, independent of the version it is registered as."""
    files = sorted((f["path"], f["sha256"]) for f in manifest["files"])
    return "sha256:" + hashlib.sha256(json.dumps(files).encode()).hexdigest()


def register_model(
    registry: ModelRegistry,
    model_dir: Path,
    name: str,
    *,
    version: str | None = None,
    bump_part: str | None = None,
    image_registry: str = "127.0.0.1:5000",
    emit: Emit = discard,
) -> tuple[ModelVersion, bool]:
    """Register `model_dir` as a candidate; returns (record, created). The same
    artifact registered again returns the existing record and creates nothing."""
    check_name(name, "--name")
    if (version is None) == (bump_part is None):
        raise BadInput("give exactly one of --version and --bump")
    if version is not None:
        parse_version(version, "--version")  # offline, before Nomad is asked anything
    if not model_dir.is_dir():
        raise BadInput(f"{model_dir}: not a directory")
    metadata = read_metadata(model_dir)
    existing = registry.versions(name)
    if version is None:
        version = bump(existing[-1].version if existing else None, str(bump_part))
    parse_version(version, "--version")
    try:
        manifest = build_manifest(model_dir, name, version)
    except BootstrapError as err:
        raise as_operator_error(err) from None
    digest = content_digest(manifest)
    same = next((r for r in existing if r.content_digest == digest), None)
    if same is not None:
        emit(Event("note", name, f"{model_dir} is already registered as {name} {same.version}"))
        return same, False
    if any(r.version == version for r in existing):
        raise BadInput(f"{name} {version} is already registered")
    major = parse_version(version)[0]
    same_major = [r for r in existing if r.major == major]
    check_signature(version, metadata["signature"], same_major[-1] if same_major else None)

    from nomadml.adapters.images import build_model_image

    size = sum(int(f["size"]) for f in manifest["files"])
    labels = {
        "io.nomadml.model": name,
        "io.nomadml.version": version,
        "io.nomadml.content-digest": digest,
        "io.nomadml.signature": signature_hash(metadata["signature"]),
    }
    image = build_model_image(
        model_dir, name, version, labels=labels, registry=image_registry, manifest=manifest
    )
    record = {
        "model": name,
        "version": version,
        "stage": "candidate",
        "image": image.pinned,
        "digest": image.digest,
        "content_digest": digest,
        "size_bytes": size,
        "files": len(manifest["files"]),
        "metrics": metadata["metrics"],
        "signature": metadata["signature"],
        "signature_hash": signature_hash(metadata["signature"]),
        "training_data": metadata.get("training_data", {}),
        "notes": metadata.get("notes", ""),
        "created_at": now(),
        "created_by": registry.actor(),
    }
    created = registry.create(record)
    emit(Event("register", name, f"registered {name} {version} as candidate ({image.pinned})"))
    return created, True
