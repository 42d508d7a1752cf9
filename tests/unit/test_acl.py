"""A 403 names the capability the token lacks, in Nomad's policy words, for every
kind of call nomadml makes; the shipped policies are listed and readable."""

from __future__ import annotations

import importlib.resources

import pytest

from nomadml.core.acl import POLICIES, needed


@pytest.mark.parametrize(
    ("method", "path", "prefix", "need"),
    [
        ("GET", "vars", "nomadml/models/iris/", 'variables "list" on nomadml/models/iris/'),
        ("GET", "var/nomadml/models/iris/versions/1_0_0", "",
         'variables "read" on nomadml/models/iris/versions/1_0_0'),
        ("PUT", "/v1/var/nomadml/locks/iris-v1", "", 'variables "write" on nomadml/locks/iris-v1'),
        ("DELETE", "var/nomadml/x/1", "", 'variables "destroy" on nomadml/x/1'),
        ("PUT", "jobs/parse", "", 'namespace capability "parse-job"'),
        ("PUT", "job/iris-v1/plan", "", 'namespace capability "submit-job"'),
        (
            "PUT",
            "job/iris-v1",
            "",
            'namespace capability "submit-job" (and host_volume capability "mount-readwrite" '
            "on the job's volume)",
        ),
        ("PUT", "deployment/promote/abc", "", 'namespace capability "submit-job"'),
        ("GET", "job/iris-v1/versions", "", 'namespace capability "read-job"'),
        ("GET", "jobs", "", 'namespace capability "list-jobs"'),
        ("GET", "client/fs/logs/abc", "", 'namespace capability "read-logs"'),
        ("GET", "event/stream", "", 'namespace capability "read-job"'),
        ("GET", "status/leader", "", None),
    ],
)  # fmt: skip
def test_the_missing_capability_is_named(
    method: str, path: str, prefix: str, need: str | None
) -> None:
    assert needed(method, path, prefix) == need


def test_every_listed_policy_ships() -> None:
    folder = importlib.resources.files("nomadml") / "policies"
    shipped = {p.name.removesuffix(".hcl") for p in folder.iterdir() if p.name.endswith(".hcl")}
    assert shipped == set(POLICIES)
