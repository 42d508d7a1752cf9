"""Before the guard job is registered to call Nomad with its workload identity (--up
--task-api): a policy bound to it is required where ACLs are on. Nomad's answers are
scripted as measured on Nomad 1.10.5: /acl/token/self answers AccessorID "acls-disabled"
with ACLs off, and /acl/policies lists every policy (with its JobACL) to a management
token, only the token's own to any other."""

from __future__ import annotations

from typing import Any

import pytest
from support.fake_nomad import FakeNomad

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.acl import bind_command, bound_to
from nomadml.engine.workload_policy import require_bound_policy
from nomadml.errors import ExitCode, OperationFailed
from nomadml.settings import NomadSettings

BIND = (
    "nomadml policy operator | nomad acl policy apply -namespace default -job iris-guard "
    "nomadml-guard-iris -"
)
OPERATOR: dict[str, Any] = {"Name": "nomadml-operator", "JobACL": None}
GUARD: dict[str, Any] = {
    "Name": "nomadml-guard-iris",
    "JobACL": {"Namespace": "default", "JobID": "iris-guard", "Group": "", "Task": ""},
}


def _api(fake: FakeNomad, token: dict[str, Any], policies: list[dict[str, Any]]) -> NomadAPI:
    fake.script("GET", "/v1/acl/token/self", 200, token)
    fake.script("GET", "/v1/acl/policies", 200, policies)
    return NomadAPI(NomadSettings.from_env({"NOMAD_ADDR": fake.address, "NOMAD_TOKEN": "t"}))


def test_a_policy_bound_to_the_job_lets_it_through(fake_nomad: FakeNomad) -> None:
    api = _api(fake_nomad, {"AccessorID": "a", "Type": "management"}, [OPERATOR, GUARD])
    assert require_bound_policy(api, "iris-guard", "operator", "nomadml-guard-iris") == ""


def test_none_bound_is_one_line_naming_the_bind_command(fake_nomad: FakeNomad) -> None:
    api = _api(fake_nomad, {"AccessorID": "a", "Type": "management"}, [OPERATOR])
    with pytest.raises(OperationFailed) as caught:
        require_bound_policy(api, "iris-guard", "operator", "nomadml-guard-iris")
    said = str(caught.value)
    assert "\n" not in said and said.endswith(f"bind one first: {BIND}")
    assert said.startswith("iris-guard would call Nomad with its workload identity")
    assert caught.value.exit_code == ExitCode.FAILED


def test_with_acls_off_nothing_is_asked_about_policies(fake_nomad: FakeNomad) -> None:
    api = _api(fake_nomad, {"AccessorID": "acls-disabled", "Type": "client"}, [])
    assert require_bound_policy(api, "iris-guard", "operator", "nomadml-guard-iris") == ""
    assert fake_nomad.requests_to("GET", "/v1/acl/policies") == []


def test_a_token_that_sees_only_its_own_policies_says_it_could_not_check(
    fake_nomad: FakeNomad,
) -> None:
    """Not a refusal: the binding may well be there, this token cannot see it."""
    api = _api(fake_nomad, {"AccessorID": "a", "Type": "client"}, [OPERATOR])
    note = require_bound_policy(api, "iris-guard", "operator", "nomadml-guard-iris")
    assert "was not checked" in note and BIND in note


def test_a_binding_counts_only_for_that_job_in_that_namespace() -> None:
    other_job = {"Name": "r", "JobACL": {"Namespace": "default", "JobID": "iris-router"}}
    other_ns = {"Name": "n", "JobACL": {"Namespace": "prod", "JobID": "iris-guard"}}
    task = {"Name": "t", "JobACL": {"Namespace": "default", "JobID": "iris-guard", "Task": "x"}}
    policies = [OPERATOR, other_job, other_ns, task]
    assert bound_to(policies, "default", "iris-guard") == ["t"]
    assert bound_to(policies, "prod", "iris-guard") == ["n"]
    assert bound_to([OPERATOR], "default", "iris-guard") == []
    assert bind_command("operator", "default", "iris-guard", "nomadml-guard-iris") == BIND
