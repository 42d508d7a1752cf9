"""Reaching a cluster with mutual TLS and ACLs: TLS is verified, a missing piece of the
operator's settings is one line naming it, and a list of servers survives a dead one."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

from support.cluster import Cli

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.errors import ExitCode

SERVERS = "https://127.0.0.1:4701, https://127.0.0.1:4711, https://127.0.0.1:4721"


def test_settings_the_cluster_refuses_are_one_line_each(
    nomad: NomadAPI,
    cluster_env: dict[str, str],
    policy_token: Callable[[str], str],
    cli: Cli,
) -> None:
    viewer = policy_token("viewer")
    assert cli("status", token=viewer).returncode == 0

    def refused(env: dict[str, str], token: str = viewer) -> list[str]:
        run = subprocess.run(
            [sys.executable, "-m", "nomadml", "status"],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, **cluster_env, "NOMAD_TOKEN": token, **env},
        )
        assert "Traceback" not in run.stderr
        return [str(run.returncode), *run.stderr.strip().splitlines()]

    unreachable = str(int(ExitCode.NOMAD_UNREACHABLE))
    # Without the CA, the servers' certificates are not trusted (verify is never off).
    assert refused({"NOMAD_CACERT": ""}) == [
        unreachable,
        f"nomadml: error: cannot reach Nomad at {SERVERS}: no server answered (last: TLS "
        "certificate not trusted (set NOMAD_CACERT to the CA that signed it))",
    ]
    # Without the CLI certificate, the servers refuse the handshake (verify_https_client).
    code, *lines = refused({"NOMAD_CLIENT_CERT": "", "NOMAD_CLIENT_KEY": ""})
    assert code == unreachable and len(lines) == 1
    assert "the server refused nomadml's client certificate" in lines[0]
    # A malformed entry: nothing is sent at all.
    assert refused({"NOMAD_ADDR": "https://127.0.0.1:4701,https//127.0.0.1:4711"}) == [
        str(int(ExitCode.BAD_INPUT)),
        "nomadml: error: NOMAD_ADDR entry 2 of 2: 'https//127.0.0.1:4711' has no http:// or "
        "https:// scheme (want http[s]://host[:port])",
    ]
    # A revoked token: one line saying so (Nomad says only "Permission denied"; nomadml
    # asks Nomad for the token itself, which any valid token may read).
    made = nomad.request(
        "PUT",
        "acl/token",
        body={"Name": "revoked", "Type": "client", "Policies": ["nomadml-viewer"]},
    ).body
    nomad.request("DELETE", f"acl/token/{made['AccessorID']}")
    code, *lines = refused({}, token=made["SecretID"])
    assert code == str(int(ExitCode.NOMAD_ERROR)) and len(lines) == 1, lines
    assert "NOMAD_TOKEN is not a token Nomad knows (expired or revoked?)" in lines[0], lines

    # A dead server first in the list: the next one answers.
    alive = refused({"NOMAD_ADDR": "https://127.0.0.1:4799," + cluster_env["NOMAD_ADDR"]})
    assert alive == ["0"], alive
