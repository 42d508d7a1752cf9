"""Follow a job's deployment with blocking queries until it reaches an end state."""

from __future__ import annotations

import time
from typing import Any

from nomadml.errors import NomadMLError
from nomadml.nomad_api import BLOCKING_WAIT_S, NomadAPI

END_STATES = {"successful", "failed", "cancelled"}


class DeploymentFailed(NomadMLError):
    """The deployment ended in a state other than successful."""


def wait_for_deployment(
    api: NomadAPI, job_id: str, job_version: int, timeout_s: float = 300.0
) -> dict[str, Any]:
    """Block until the deployment of `job_version` ends; return it.

    Uses `?index=` blocking queries on the job's latest deployment, so the number
    of requests grows with state changes, not with elapsed time."""
    deadline = time.monotonic() + timeout_s
    index = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise NomadMLError(
                f"{job_id}: deployment of version {job_version} not finished "
                f"after {timeout_s:.0f} s"
            )
        answer = api.request(
            "GET",
            f"job/{job_id}/deployment",
            params={"index": index, "wait": f"{min(BLOCKING_WAIT_S, max(1, int(left)))}s"}
            if index
            else None,
            timeout=BLOCKING_WAIT_S * 1.25 + 5,
        )
        deployment = answer.body
        index = max(answer.index, 1)
        if not deployment or deployment.get("JobVersion") != job_version:
            continue
        if deployment["Status"] in END_STATES:
            if deployment["Status"] != "successful":
                raise DeploymentFailed(
                    f"{job_id}: deployment {deployment['ID'][:8]} {deployment['Status']}: "
                    f"{deployment.get('StatusDescription', '')}"
                )
            return dict(deployment)
