"""Load -> resolve images -> render -> Nomad parse/validate -> ownership -> plan.

The stages every command shares before anything is submitted. Each returns data;
nothing here registers, deletes or writes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nomadml.adapters.image_registry import resolve_digest
from nomadml.adapters.model_store import ModelRegistry
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.jobs import Release, model_repository, reference_serving_tag, render_service
from nomadml.core.lifecycle import deploy_refusal
from nomadml.core.model_version import ModelVersion
from nomadml.core.plan import PlanSummary, check_owner, summarize
from nomadml.core.spec import ModelSpec, parse_version
from nomadml.core.spec_schema import REFERENCE_SERVER
from nomadml.errors import BadInput


@dataclass(frozen=True)
class Prepared:
    spec: ModelSpec
    release: Release
    hcl: str
    record: ModelVersion | None = None  # the model registry's version, when it has one

    @property
    def job_id(self) -> str:
        return self.spec.job_id(self.release.version)


def resolve_release(
    spec: ModelSpec,
    version: str,
    model_image: str | None = None,
    serving_image: str | None = None,
    pin_serving: bool = False,
) -> Release:
    """Pin the model image by digest: as given, or looked up in the image registry.
    With `pin_serving`, the serving image is pinned too: the spec's own, or nomadml's
    reference server (built and pushed first if the registry does not have it yet)."""
    parse_version(version, "--version")
    image = model_image or f"{model_repository(spec)}:{version}"
    release = Release(version, resolve_digest(image))
    if serving_image:
        return Release(version, release.model_image, resolve_digest(serving_image))
    if pin_serving and spec.serving.driver == "docker":
        # The spec's own serving image is pinned like the model's: a job never runs a
        # mutable tag (the reference server is pushed first if the registry lacks it).
        return Release(version, release.model_image, serving_image_for(spec))
    return release


def serving_image_for(spec: ModelSpec, override: str | None = None) -> str:
    """The serving image a job of `spec` runs, pinned by digest: `override`, the spec's
    own image, or nomadml's reference server (pushed first if the registry lacks it)."""
    if override:
        return resolve_digest(override)
    if spec.serving.image == REFERENCE_SERVER:
        return reference_server(spec)
    return resolve_digest(spec.serving.image)


def reference_server(spec: ModelSpec) -> str:
    """nomadml's reference serving image, pinned; pushed to the spec's registry if missing."""
    registry = spec.model.registry
    try:
        return resolve_digest(f"{registry}/nomadml/serve:{reference_serving_tag()}")
    except BadInput:
        from nomadml.adapters.images import build_serving_image

        return build_serving_image(registry=registry).pinned


def prepare(
    spec: ModelSpec,
    version: str,
    *,
    model_image: str | None = None,
    serving_image: str | None = None,
    templates: Sequence[Path] = (),
    pin_serving: bool = False,
) -> Prepared:
    release = resolve_release(spec, version, model_image, serving_image, pin_serving)
    return Prepared(spec, release, render_service(spec, release, templates))


@dataclass(frozen=True)
class ReleasePolicy:
    """How a deploy treats the model registry. By default the registry decides: only
    a registered version in a deployable stage (approved, where the model's policy
    says so) goes out. `force` (with a reason, audited) overrides the stage and the
    approval; `unregistered` allows a bare image the registry does not know."""

    force: bool = False
    reason: str = ""
    unregistered: bool = False

    def __post_init__(self) -> None:
        if self.force and not self.reason.strip():
            raise BadInput("--force needs --reason: say why the registry is overridden")


def prepare_release(
    spec: ModelSpec,
    version: str,
    *,
    nomad: Callable[[], NomadAPI],
    model_image: str | None = None,
    serving_image: str | None = None,
    templates: Sequence[Path] = (),
    pin_serving: bool = True,
    policy: ReleasePolicy | None = None,
) -> Prepared:
    """`prepare`, with the model image taken from the model registry when none is
    given (it knows each version's pinned image). With a `policy` (deploy), the
    registry decides whether the version may go out at all. `nomad` is called only
    when the registry must be asked: an offline render never is."""
    record = None
    # The registry is asked when it must be: for a deploy (it decides), or for the
    # image of a version given without one. A plan of a given image needs no variable.
    if pin_serving and (policy is not None or model_image is None):
        parse_version(version, "--version")
        from nomadml.adapters.model_store import ModelRegistry

        registry = ModelRegistry(nomad())
        record = registry.get(spec.name, version)
        if policy is not None:
            check_release(registry, spec, version, record, model_image, policy)
        elif record is not None and record.stage == "rejected":
            raise BadInput(
                f"{spec.name} {version} is rejected in the model registry: it can never be deployed"
            )
        if model_image is None and record is not None:
            model_image = record.image
    prepared = prepare(
        spec,
        version,
        model_image=model_image,
        serving_image=serving_image,
        templates=templates,
        pin_serving=pin_serving,
    )
    if record is None:
        return prepared
    return Prepared(prepared.spec, prepared.release, prepared.hcl, record)


def check_release(
    registry: ModelRegistry,
    spec: ModelSpec,
    version: str,
    record: ModelVersion | None,
    model_image: str | None,
    policy: ReleasePolicy,
) -> None:
    """Refuse what the registry does not allow (nothing is submitted), or audit the
    override. An --image other than the registered one is a bare image."""
    registry.record_policy(spec.name, spec.validation.require_approval)
    if record is not None and model_image and resolve_digest(model_image) != record.image:
        raise BadInput(
            f"--image {model_image} is not the image the model registry holds for "
            f"{spec.name} {version} ({record.image}): drop --image, or register the new image"
        )
    if record is None:
        if policy.unregistered:
            return
        refusal = deploy_refusal(spec.name, version, None, False)
    else:
        refusal = deploy_refusal(spec.name, version, record, registry.requires_approval(spec.name))
    if refusal is None:
        return
    if not policy.force or record is None:
        raise BadInput(refusal + ("" if record is None else "; or --force --reason …"))
    registry.audit(
        spec.name, "force-deploy", version, {"reason": policy.reason, "overrides": refusal}
    )


def render_checked(spec: ModelSpec, templates: Sequence[Path] = ()) -> dict[str, str]:
    """Every job the spec makes, rendered offline with a stand-in release (validation
    is about the spec and templates, not a version): {what: HCL}."""
    from nomadml.core.jobs import render_retraining

    sample = Release("0.0.0", f"127.0.0.1:5000/nomadml/models/{spec.name}@sha256:{'0' * 64}")
    rendered = {"service job": render_service(spec, sample, templates)}
    if spec.retraining.enabled:
        rendered["retraining job"] = render_retraining(spec, templates)
    return rendered


def parse_and_validate(api: NomadAPI, hcl: str, where: str) -> dict[str, Any]:
    """Nomad's own parse and validate; its complaints become one BadInput line."""
    from nomadml.errors import NomadAPIError

    try:
        job = api.parse_hcl(hcl)
    except NomadAPIError as err:
        if err.status == 400:
            raise BadInput(
                f"{where}: Nomad cannot parse the rendered job: {err.message.strip()}"
            ) from None
        raise
    problems = api.validate(job)
    if problems:
        raise BadInput(f"{where}: Nomad rejects the rendered job: {'; '.join(problems)}")
    return dict(job)


def plan(api: NomadAPI, prepared: Prepared) -> tuple[dict[str, Any], PlanSummary]:
    """The parsed job and Nomad's plan for it against what runs now."""
    job = parse_and_validate(api, prepared.hcl, prepared.spec.source)
    api = api.scoped(job.get("Namespace"))
    check_owner(job["ID"], api.job(job["ID"]), prepared.spec.name)
    return job, summarize(job["ID"], api.plan(job), job)
