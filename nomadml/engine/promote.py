"""`promote`: an operator promotes a line's waiting canaries by hand (a deploy run
with --no-promote, or one that was interrupted), then follows the deployment."""

from __future__ import annotations

import time

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.decide import Action
from nomadml.engine.result import RolloutResult
from nomadml.engine.revert import promote_deployment
from nomadml.engine.watch import WatchOptions, watch
from nomadml.errors import BadInput
from nomadml.events import Emit, discard


def promote(
    api: NomadAPI, line: str, *, timeout_s: float = 600.0, emit: Emit = discard
) -> RolloutResult:
    """Promote LINE's running deployment and follow it to its end."""
    job = api.job(line)
    dep = api.latest_deployment(line) if job else None
    if not job or not dep or dep.get("Status") != "running":
        raise BadInput(f"{line}: no running deployment to promote")
    started = time.monotonic()
    meta = job.get("Meta") or {}
    model_version = str(meta.get("nomadml.version"))
    if meta.get("nomadml.model"):
        from nomadml.engine.router import route_all

        # Before Nomad stops stable: a router still sending the line to stable (canary
        # steps end there while a canary waits) would answer 503 once it is gone.
        route_all(api, str(meta["nomadml.model"]), line, model_version, emit)
    promote_deployment(api, line, dep["ID"], emit)
    options = WatchOptions(timeout_s=timeout_s, operation="promote")
    result = watch(
        api, line, int(dep["JobVersion"]), model_version, options, None, emit, started=started
    )
    if result.action is Action.SUCCEEDED:
        from nomadml.engine.guard_record import started_by_promotion

        started_by_promotion(api, line, int(dep["JobVersion"]), emit)
    return result
