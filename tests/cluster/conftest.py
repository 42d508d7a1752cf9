"""Fixtures for the cluster set: 3 servers and 3 clients with ACLs and mutual TLS
(scripts/stack up --cluster). `nomad` here is the cluster, reached through all three
servers with the management token, so the shared fixtures (model_name, make_spec,
ship, roll, stable_line) work unchanged; the tests themselves act with tokens made
from the shipped policies. NOMADML_REQUIRE_CLUSTER=1 (set by scripts/test) turns a
missing cluster into a failure instead of a skip."""

from __future__ import annotations

import dataclasses
import os
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.cluster import CLUSTER_DIR, ROOT, Cli, Node, Servers

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.errors import NomadMLError, NomadUnreachable
from nomadml.settings import NomadSettings


def _unavailable(what: str) -> None:
    if os.environ.get("NOMADML_REQUIRE_CLUSTER") == "1":
        pytest.fail(f"the cluster profile is required but {what}", pytrace=False)
    pytest.skip(f"cluster profile not running ({what}); run scripts/stack up --cluster")


@pytest.fixture(scope="session")
def cluster_env() -> dict[str, str]:
    """NOMAD_ADDR (all three servers), the CLI certificate and the management token,
    as `scripts/stack env --cluster` prints them."""
    path = CLUSTER_DIR / "env"
    if not path.exists():
        _unavailable(f"{path} is missing")
    env = {}
    for line in path.read_text().splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        if name.startswith("NOMAD"):
            env[name] = shlex.split(value)[0] if value else ""
    return env


@pytest.fixture(scope="session")
def nomad(cluster_env: dict[str, str]) -> NomadAPI:
    api = NomadAPI(NomadSettings.from_env(cluster_env))
    try:
        if not api.leader():
            _unavailable("the cluster has no leader")
        # Variables (the model registry, locks) need the leader's root key.
        deadline = time.monotonic() + 30
        while not any(
            k.get("State") == "active"
            for k in api.request("GET", "operator/keyring/keys").body or []
        ):
            assert time.monotonic() < deadline, "the cluster never made an active root key"
            time.sleep(0.2)
    except NomadMLError as err:
        _unavailable(str(err))
    return api


@pytest.fixture(scope="session")
def nodes(nomad: NomadAPI) -> dict[str, Node]:
    """The three clients by node id."""
    found = {}
    for stub in nomad.request("GET", "nodes").body or []:
        node = nomad.request("GET", f"node/{stub['ID']}").body
        found[node["ID"]] = Node(
            node["ID"], node["Name"], Path(node["HostVolumes"]["models"]["Path"])
        )
    assert len(found) == 3, found
    return found


@pytest.fixture(scope="session")
def policy_token(nomad: NomadAPI) -> Iterator[Callable[[str], str]]:
    """A client token holding exactly one shipped policy (`nomadml policy NAME`)."""
    made: list[str] = []

    def token(name: str) -> str:
        nomad.request(
            "PUT",
            f"acl/policy/nomadml-{name}",
            body={"Name": f"nomadml-{name}", "Rules": _shipped_policy(name)},
        )
        body = {
            "Name": f"{name}-{uuid.uuid4().hex[:6]}",
            "Type": "client",
            "Policies": [f"nomadml-{name}"],
        }
        answer = nomad.request("PUT", "acl/token", body=body).body
        made.append(answer["AccessorID"])
        secret = str(answer["SecretID"])
        # Each server resolves tokens from its own copy of the state: a server that
        # restarted moments ago may not have applied this one yet. Use it once all have.
        for address in nomad.settings.addresses:
            one = dataclasses.replace(nomad.settings, address=address, fallbacks=(), token=secret)
            deadline = time.monotonic() + 30
            while True:
                try:
                    # stale: answered from that server's own state, not the leader's
                    NomadAPI(one).request("GET", "acl/token/self", params={"stale": "true"})
                    break
                except NomadUnreachable:
                    break  # a server that is down serves nothing, this token included
                except NomadMLError:
                    assert time.monotonic() < deadline, f"{address} never knew the new token"
                    time.sleep(0.1)
        return secret

    yield token
    for accessor in made:
        nomad.request("DELETE", f"acl/token/{accessor}")


def _shipped_policy(name: str) -> str:
    import importlib.resources

    return (importlib.resources.files("nomadml") / "policies" / f"{name}.hcl").read_text()


@pytest.fixture()
def cli(cluster_env: dict[str, str]) -> Cli:
    """Run `nomadml ARGS` against the cluster with `token` (no token: the management one)."""

    def run(
        *args: str, token: str | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **cluster_env, "PYTHONUNBUFFERED": "1"}
        if token is not None:
            env["NOMAD_TOKEN"] = token
        return subprocess.run(
            [sys.executable, "-m", "nomadml", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=ROOT,
        )

    return run


@pytest.fixture()
def servers(nomad: NomadAPI) -> Iterator[Servers]:
    """Servers a test may kill; brought back (and waited for) after the test."""
    yield (s := Servers(nomad))
    s.restore()
