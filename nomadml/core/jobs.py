"""From a model spec and one model release to Nomad job text. Pure: rendering
needs no cluster, registry or Docker engine."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nomadml import __version__
from nomadml.bundled import bundled_program
from nomadml.bundled.bootstrap import validate_name
from nomadml.core.render import render
from nomadml.core.spec import ModelSpec, parse_version
from nomadml.core.spec_schema import REFERENCE_SERVER
from nomadml.errors import BadInput

DIGEST = "sha256:"


@dataclass(frozen=True)
class Release:
    """One model version as it will run: the images are pinned references."""

    version: str
    model_image: str  # repository@sha256:...
    serving_image: str = ""  # "" = the reference server for this spec

    @property
    def image_digest(self) -> str:
        return self.model_image.rpartition("@")[2]


def reference_serving_tag() -> str:
    """The reference server's image tag: nomadml version + content of serve.py."""
    content = (bundled_program("serve.py")).read_bytes()
    return f"{__version__}-{hashlib.sha256(content).hexdigest()[:12]}"


def model_repository(spec: ModelSpec) -> str:
    return f"{spec.model.registry}/nomadml/models/{spec.name}"


def serving_image(spec: ModelSpec, release: Release) -> str:
    if release.serving_image:
        return release.serving_image
    image = str(spec.serving.image)
    if image == REFERENCE_SERVER:
        return f"{spec.model.registry}/nomadml/serve:{reference_serving_tag()}"
    return image


def job_header(spec: ModelSpec, job_id: str, meta: dict[str, str]) -> dict[str, Any]:
    """Id, placement and the ownership meta every job nomadml writes carries."""
    return {
        "id": job_id,
        "datacenters": list(spec.placement.datacenters),
        "namespace": spec.placement.namespace,
        "region": spec.placement.region,
        "meta": {
            "nomadml.managed": "true",
            "nomadml.model": spec.name,
            "nomadml.spec_hash": spec.spec_hash,
            "nomadml.tool_version": __version__,
            **meta,
        },
    }


def service_values(spec: ModelSpec, release: Release) -> dict[str, Any]:
    """Everything the model-service template may use, already checked."""
    major, _, _ = parse_version(release.version, "--version")
    validate_name("version", release.version)
    repo, at, digest = release.model_image.rpartition("@")
    if not at or not repo or not digest.startswith(DIGEST) or len(digest) != len(DIGEST) + 64:
        raise BadInput(f"model image {release.model_image!r}: expected repository@sha256:<64 hex>")
    d = spec.table  # the templates read the checked table itself
    job_id = spec.job_id(release.version)
    tags = ["nomadml", f"model={spec.name}", f"major={major}", f"version={release.version}"]
    return {
        "job": job_header(
            spec,
            job_id,
            {
                "nomadml.major": str(major),
                "nomadml.version": release.version,
                "nomadml.image": release.model_image,
                "nomadml.image_digest": release.image_digest,
            },
        ),
        "model": {
            "name": spec.name,
            "version": release.version,
            "major": major,
            "image": release.model_image,
            "path": f"/models/{spec.name}/{release.version}",
        },
        "serving": {**d["serving"], "image": serving_image(spec, release)},
        "bootstrap": d["bootstrap"],
        "update": d["update"],
        "restart": d["restart"],
        "volume": {"name": d["volume"]["name"], "source": d["volume"]["name"]},
        "service": {
            "name": job_id,
            "tags": tags,
            "canary_tags": [*tags, "canary"],
            "meta": {"model": spec.name, "major": str(major), "version": release.version},
            "check_interval": "2s",
            "check_timeout": "1s",
        },
        "spec": d,
    }


def template_path(spec: ModelSpec, extra: Sequence[Path] = ()) -> list[Path]:
    """Operator folders first (flags, then the spec's own, relative to it)."""
    own = [spec.directory / p for p in spec.templates.path]
    return [*extra, *own]


def render_service(spec: ModelSpec, release: Release, extra_templates: Sequence[Path] = ()) -> str:
    return render(
        spec.templates.service,
        service_values(spec, release),
        template_path(spec, extra_templates),
    )


DATA_MOUNT = "/data"  # retraining.data_volume, in the trainer's and nomadml's tasks


def retraining_values(
    spec: ModelSpec, dispatch: bool = False, nomadml_image: str = ""
) -> dict[str, Any]:
    """Values for the periodic retraining job of a model line (`dispatch`: its
    parameterized twin, `<model>-retrain-dispatch`, that the guard dispatches).
    `nomadml_image` is what the engine resolved (pinned) for a spec with
    retraining.nomadml_image: the trainer's task, then nomadml's in that image."""
    d = spec.table  # the templates read the checked table itself
    training = dict(d["retraining"])
    if spec.retraining.image == REFERENCE_SERVER:
        training["image"] = f"{spec.model.registry}/nomadml/trainer:{reference_serving_tag()}"
    training["nomadml_image"] = nomadml_image or spec.retraining.nomadml_image
    # With a data volume the [data] files are at /data in both tasks (relative paths).
    data_dir = DATA_MOUNT if spec.retraining.data_volume else ""
    training["data_env"] = {
        name: f"{DATA_MOUNT}/{value}"
        for name, value in (
            ("NOMADML_TRAIN_DATA", spec.data.train),
            ("NOMADML_EVAL_DATA", spec.data.evaluation),
        )
        if data_dir and value
    }
    return {
        "job": job_header(
            spec,
            f"{spec.name}-retrain-dispatch" if dispatch else f"{spec.name}-retrain",
            {"nomadml.role": "retraining"},
        ),
        "dispatch": dispatch,
        "model": {
            "name": spec.name,
            "spec_text": spec.text,
            "spec_dir": data_dir or str(spec.directory),
        },
        "retraining": training,
        "spec": d,
    }


def render_retraining(
    spec: ModelSpec,
    extra_templates: Sequence[Path] = (),
    dispatch: bool = False,
    nomadml_image: str = "",
) -> str:
    return render(
        spec.templates.retraining,
        retraining_values(spec, dispatch, nomadml_image),
        template_path(spec, extra_templates),
    )


def routes_variable(model: str) -> str:
    """The Nomad Variable holding a model's routing table."""
    return f"nomadml/routes/{model}"


def router_values(spec: ModelSpec, image: str, count: int = 2) -> dict[str, Any]:
    """Values for a model's router job (one router per model: see README)."""
    job_id = f"{spec.name}-router"
    return {
        "job": job_header(spec, job_id, {"nomadml.role": "router"}),
        "router": {
            "count": count,
            "port": 0,
            "service": job_id,
            "tags": ["nomadml", "router", f"model={spec.name}"],
            "image": image,
            "variable": routes_variable(spec.name),
            "resources": {"cpu": 100, "memory": 64},
        },
    }


def render_router(spec: ModelSpec, image: str, count: int = 2) -> str:
    return render("router.nomad.hcl", router_values(spec, image, count), template_path(spec))


TASK_API = "unix://${NOMAD_SECRETS_DIR}/api.sock"  # a task's own agent, with its identity


def guard_values(
    job_id: str, model: str, driver: str, image: str, nomad_addr: str
) -> dict[str, Any]:
    """Values for the always-on guard's service job (`nomadml guard --up`): every
    managed line, or one model's (`model`). With `nomad_addr` = TASK_API the guard
    reaches Nomad through its own client agent with its workload identity (no token,
    address or certificate of the cluster's in the job; the job needs a policy bound)."""
    command = ["nomadml", "guard", "--all"] + (["--model", model] if model else [])
    return {
        "job": {
            "id": job_id,
            "datacenters": ["*"],
            "namespace": "default",
            "region": "global",
            "meta": {
                "nomadml.managed": "true",
                "nomadml.model": model,
                "nomadml.role": "guard",
                "nomadml.tool_version": __version__,
            },
        },
        "guard": {
            "driver": driver,
            "image": image,
            "command": command,
            "nomad_addr": nomad_addr,
            "task_api": nomad_addr == TASK_API,
        },
    }


def render_guard(job_id: str, model: str, driver: str, image: str, nomad_addr: str) -> str:
    return render("guard.nomad.hcl", guard_values(job_id, model, driver, image, nomad_addr))
