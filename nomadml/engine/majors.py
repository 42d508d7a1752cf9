"""Major versions side by side: a new major is a new job (`iris-v2` beside
`iris-v1`); once it is healthy, lines beyond the spec's `keep_majors` retire."""

from __future__ import annotations

import time

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.retirement import to_retire
from nomadml.core.spec import Lifecycle
from nomadml.engine.lines import managed_jobs
from nomadml.events import Emit, Event


def retire_old_majors(
    api: NomadAPI, model: str, deployed: str, policy: Lifecycle, emit: Emit
) -> list[str]:
    """Stop (or purge, per spec) the model's lines beyond keep_majors; returns once
    their service registrations are gone (clients no longer find them), or after
    RETIRE_WAIT_S."""
    lines = {
        j["ID"]: int(j["Meta"].get("nomadml.major", 0))
        for j in managed_jobs(api, model)
        if j["Meta"].get("nomadml.model") == model
        and j.get("Status") != "dead"
        # A model's router and guard carry its name but are no line: never retired.
        and j["Meta"].get("nomadml.role", "model") == "model"
    }
    retired = to_retire(lines, deployed, policy.keep_majors)
    if retired:
        from nomadml.engine.router import unroute_lines

        unroute_lines(api, model, retired, emit)  # before their servers go
    for job_id in retired:
        api.stop_job(job_id, purge=policy.purge_retired)
    _wait_unregistered(api, retired)
    for job_id in retired:
        what = "purged" if policy.purge_retired else "stopped"
        emit(
            Event(
                "retire",
                deployed,
                f"retired {job_id} ({what}): keep_majors = {policy.keep_majors}",
                {"retired": job_id},
            )
        )
    return retired


RETIRE_WAIT_S = 30.0


def _wait_unregistered(api: NomadAPI, lines: list[str]) -> None:
    """Nomad removes a stopped allocation's registrations as its client stops it;
    a blocking query on each line's service returns when that happens."""
    deadline = time.monotonic() + RETIRE_WAIT_S
    for line in lines:
        index = 0
        while time.monotonic() < deadline:
            answer = api.get(f"service/{line}", index, wait=5)
            if not answer.body:
                break
            index = max(answer.index, 1)
