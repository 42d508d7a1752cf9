"""Before nomadml registers a job that calls Nomad with its own workload identity (the
always-on guard through its agent's Task API): is a policy bound to that job? Without
one, every call it makes is refused with a 403 that shows only in its log."""

from __future__ import annotations

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.acl import bind_command, bound_to
from nomadml.errors import NomadAPIError, OperationFailed

ACLS_OFF = "acls-disabled"  # the accessor Nomad answers /acl/token/self with, ACLs off


def require_bound_policy(api: NomadAPI, job_id: str, kind: str, name: str) -> str:
    """'' when ACLs are off or a policy is bound to `job_id`; raises OperationFailed
    (one line naming the bind command) when none is. A token that is not a management
    token sees only its own policies, so there it cannot tell: the note says so."""
    try:
        token = api.request("GET", "acl/token/self").body or {}
    except NomadAPIError as err:
        if err.status == 400:  # older Nomad: "ACL support disabled"
            return ""
        raise
    if token.get("AccessorID") == ACLS_OFF:
        return ""
    namespace = api.settings.namespace or "default"
    command = bind_command(kind, namespace, job_id, name)
    if bound_to(api.request("GET", "acl/policies").body or [], namespace, job_id):
        return ""
    if token.get("Type") != "management":
        return (
            f"{job_id} calls Nomad with its workload identity; this token sees only its own "
            f"policies, so whether one is bound to {job_id} was not checked ({command})"
        )
    raise OperationFailed(
        f"{job_id} would call Nomad with its workload identity, and no policy is bound to "
        f"it (every call refused, 403): bind one first: {command}"
    )
