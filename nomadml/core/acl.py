"""What an ACL token needs for each Nomad API call nomadml makes: turns a 403 into
the one capability to add (a policy line an operator can paste), and names the
least-privilege policies nomadml ships (`nomadml policy NAME`). Pure."""

from __future__ import annotations

import re
from typing import Any

# (method, path pattern) -> the capability, in Nomad's policy words. First match wins.
_NEEDS: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (method, re.compile(pattern), need)
    for method, pattern, need in (
        ("GET", r"vars$", 'variables "list" on {prefix}'),
        ("GET", r"var/(?P<path>.+)", 'variables "read" on {path}'),
        ("PUT", r"var/(?P<path>.+)", 'variables "write" on {path}'),
        ("DELETE", r"var/(?P<path>.+)", 'variables "destroy" on {path}'),
        ("PUT", r"jobs/parse$", 'namespace capability "parse-job"'),
        ("PUT", r"validate/job$", 'namespace capability "read-job"'),
        ("PUT", r"job/[^/]+/plan$", 'namespace capability "submit-job"'),
        ("PUT", r"job/[^/]+/periodic/force$", 'namespace capability "submit-job"'),
        ("PUT", r"job/[^/]+/versions/[^/]+/tag$", 'namespace capability "submit-job"'),
        ("DELETE", r"job/[^/]+/versions/[^/]+/tag$", 'namespace capability "submit-job"'),
        (
            "PUT",
            r"job/[^/]+$",
            'namespace capability "submit-job" (and host_volume capability "mount-readwrite" '
            "on the job's volume)",
        ),
        ("DELETE", r"job/[^/]+$", 'namespace capability "submit-job"'),
        ("PUT", r"deployment/(promote|fail)/", 'namespace capability "submit-job"'),
        ("GET", r"jobs$", 'namespace capability "list-jobs"'),
        ("GET", r"client/fs/logs/", 'namespace capability "read-logs"'),
        ("GET", r"event/stream$", 'namespace capability "read-job"'),
        ("GET", r"(job|deployment|allocation|evaluation)s?/", 'namespace capability "read-job"'),
        ("GET", r"service/", 'namespace capability "read-job"'),
        ("GET", r"node/", 'node policy "read"'),
        ("GET", r"agent/self$", 'agent policy "read"'),
    )
)

# The policies nomadml ships, by name: what each is for.
POLICIES = {
    "operator": "everything nomadml does: deploy, roll back, retire, the model registry",
    "ci-deployer": "deploy and roll back model lines; read and settle registry records",
    "retraining": "the retraining job's workload identity: register, validate, canary",
    "viewer": "read-only: status, history, endpoints, the model registry",
    "router": "a model router's workload identity: read the routing tables",
}


def needed(method: str, path: str, prefix: str = "") -> str | None:
    """The capability a 403 on `method path` (path without /v1/) is missing."""
    bare = path.removeprefix("/v1/").split("?")[0]
    for want, pattern, need in _NEEDS:
        found = pattern.match(bare)
        if want == method.upper() and found:
            return need.format(path=found.groupdict().get("path", ""), prefix=prefix or "*")
    return None


def bind_command(kind: str, namespace: str, job_id: str, name: str) -> str:
    """The shell line that binds the shipped policy `kind` to a job's workload identity."""
    apply = f"nomad acl policy apply -namespace {namespace} -job {job_id} {name} -"
    return f"nomadml policy {kind} | {apply}"


def bound_to(policies: list[dict[str, Any]], namespace: str, job_id: str) -> list[str]:
    """The names of the policies (as /v1/acl/policies lists them) bound to the job's
    workload identity: the whole job, or one of its groups or tasks."""
    return [
        str(policy.get("Name"))
        for policy in policies
        if (acl := policy.get("JobACL") or {})
        and acl.get("JobID") == job_id
        and (acl.get("Namespace") or "default") == namespace
    ]
