"""The one step that creates a job version: register (check-and-set, under the
job's lock), record it in the rollout history and tag it after the model version,
all three together (a signal waits until they are done). Deploy and rollback both
go through it."""

from __future__ import annotations

from typing import Any

from nomadml.adapters import rollout_records as history
from nomadml.adapters.job_lock import register_exclusively
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.engine.interrupts import deferred
from nomadml.errors import NomadAPIError, NomadMLError
from nomadml.events import Emit, Event


def register_version(
    api: NomadAPI,
    job: dict[str, Any],
    *,
    enforce_index: int,
    source: str | None,
    model_version: str,
    record: dict[str, Any],
    why: str,
    emit: Emit,
) -> tuple[dict[str, Any], int]:
    """Register `job` (check-and-set, under the job's lock), then record it in the
    rollout history and tag it v<model_version>; returns Nomad's answer and the new
    job version. A signal waits until all three are done: they go in together."""
    job_id = str(job["ID"])
    with deferred():
        # The tag moves to the new version: free it first (on every version that
        # carries it), so that once the register succeeds, tagging cannot fail.
        clear_tag(api, job_id, f"v{model_version}")
        answer = register_exclusively(api, job, enforce_index=enforce_index, source=source)
        registered = api.job(job_id) or {}
        job_version = int(registered.get("Version", 0))
        if (registered.get("Meta") or {}).get("nomadml.version") != model_version:
            raise NomadMLError(
                f"{job_id}: changed by someone else right after registering; "
                "check `nomadml history`"
            )
        emit(
            Event(
                "registered",
                job_id,
                f"registered {job_id} version {job_version} "
                f"(model {model_version}, evaluation {answer.get('EvalID', '')[:8]})",
                {"job_version": job_version, "eval": answer.get("EvalID")},
            )
        )
        history.record(api, job_id, job_version, {"model_version": model_version, **record})
        tag_version(api, job_id, model_version, job_version, why)
    return answer, job_version


def tag_version(api: NomadAPI, job_id: str, model_version: str, job_version: int, why: str) -> None:
    """Name the job version after the model version; the tag moves to the newest."""
    tag = f"v{model_version}"
    clear_tag(api, job_id, tag)
    try:
        api.tag_version(job_id, tag, job_version, why)
    except NomadAPIError as err:
        if "already exists" not in err.message:
            raise
        clear_tag(api, job_id, tag)  # someone tagged meanwhile: the newest version wins
        api.tag_version(job_id, tag, job_version, why)


# Nomad removes one version's tag per call; a job keeps only a few versions.
MAX_TAGGED_COPIES = 20


def clear_tag(api: NomadAPI, job_id: str, tag: str) -> None:
    """Remove `tag` from every version of the job. A tag can sit on more than one
    version: Nomad's revert of a failed deployment copies the reverted-to version,
    tag included, and removing a tag by name frees one version at a time."""
    for _ in range(MAX_TAGGED_COPIES):
        try:
            api.untag_version(job_id, tag)
        except NomadAPIError as err:
            if "not found" in err.message:
                return
            raise
