"""Security against real agents of our own (on their own loopback ports): TLS to
Nomad is verified by default, and with ACLs on, a token without the right policy
gets a clear 403 line while a scoped token works; tokens never reach the output."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.cli.main import main
from nomadml.errors import ExitCode, NomadUnreachable
from nomadml.settings import NomadSettings

NOMAD = Path.home() / ".cache" / "nomadml" / "nomad-1.10.5" / "nomad"
PORTS = {"http": 5646, "rpc": 5647, "serf": 5648}
SPEC = Path(__file__).resolve().parents[2] / "examples" / "iris" / "iris.toml"
PINNED = "127.0.0.1:5000/nomadml/models/iris@sha256:" + "a" * 64


def _agent(tmp: Path, extra_hcl: str, scheme: str, ca: Path | None = None) -> Iterator[str]:
    """A second Nomad agent, server only (no client: it must not touch the main
    agent's tasks or cgroups), with its own config and ports; yields its address."""
    config = tmp / "agent.hcl"
    config.write_text(
        f'data_dir = "{tmp / "data"}"\nbind_addr = "127.0.0.1"\ndisable_update_check = true\n'
        f"ports {{ http = {PORTS['http']}\n rpc = {PORTS['rpc']}\n serf = {PORTS['serf']} }}\n"
        'advertise {\n http = "127.0.0.1"\n rpc = "127.0.0.1"\n serf = "127.0.0.1"\n}\n'
        "server {\n enabled = true\n bootstrap_expect = 1\n}\n" + extra_hcl
    )
    log = open(tmp / "agent.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [str(NOMAD), "agent", f"-config={config}"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "CHECKPOINT_DISABLE": "1"},
    )
    address = f"{scheme}://127.0.0.1:{PORTS['http']}"
    try:
        deadline = time.monotonic() + 60
        ready = False
        while time.monotonic() < deadline and proc.poll() is None and not ready:
            try:
                ctx = None
                if ca is not None:
                    import ssl

                    ctx = ssl.create_default_context(cafile=str(ca))
                with urllib.request.urlopen(
                    f"{address}/v1/status/leader", timeout=2, context=ctx
                ) as r:
                    ready = r.read().strip() not in (b"", b'""')
            except (OSError, ValueError):
                time.sleep(0.2)
        assert ready, (tmp / "agent.log").read_text()[-2000:]
        yield address
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture()
def tls_agent(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    ca_key, ca, key, csr, cert = (
        tmp_path / n for n in ("ca.key", "ca.pem", "agent.key", "agent.csr", "agent.pem")
    )
    ext = tmp_path / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:server.global.nomad\n")
    for cmd in (
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            ca_key,
            "-out",
            ca,
            "-days",
            "2",
            "-subj",
            "/CN=nomadml test CA",
        ],
        [
            "openssl",
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            key,
            "-out",
            csr,
            "-subj",
            "/CN=server.global.nomad",
        ],
        [
            "openssl",
            "x509",
            "-req",
            "-in",
            csr,
            "-CA",
            ca,
            "-CAkey",
            ca_key,
            "-CAcreateserial",
            "-out",
            cert,
            "-days",
            "2",
            "-extfile",
            ext,
        ],
    ):
        subprocess.run([str(c) for c in cmd], check=True, capture_output=True)
    tls = (
        f'tls {{\n http = true\n rpc = true\n ca_file = "{ca}"\n cert_file = "{cert}"\n'
        f' key_file = "{key}"\n verify_server_hostname = false\n verify_https_client = false\n}}\n'
    )
    yield from ((address, ca) for address in _agent(tmp_path, tls, "https", ca))


def test_tls_is_verified_by_default(tls_agent: tuple[str, Path]) -> None:
    address, ca = tls_agent
    with pytest.raises(NomadUnreachable, match="TLS certificate not trusted"):
        NomadAPI(NomadSettings.from_env({"NOMAD_ADDR": address})).leader()
    api = NomadAPI(NomadSettings.from_env({"NOMAD_ADDR": address, "NOMAD_CACERT": str(ca)}))
    assert api.leader()
    # The CLI reads the same variables as the nomad CLI.
    env = {"NOMAD_ADDR": address, "NOMAD_CACERT": str(ca)}
    result = CliRunner(env=env).invoke(main, ["status"])
    assert result.exit_code == 0, result.stderr
    result = CliRunner(env={"NOMAD_ADDR": address, "NOMAD_CACERT": ""}).invoke(main, ["status"])
    assert result.exit_code == int(ExitCode.NOMAD_UNREACHABLE)
    assert "TLS certificate not trusted (set NOMAD_CACERT" in result.stderr


@pytest.fixture()
def acl_agent() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        yield from _agent(Path(tmp), "acl {\n enabled = true\n}\n", "http")


def _call(address: str, method: str, path: str, token: str, body: object = None) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{address}/v1/{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"X-Nomad-Token": token} if token else {},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"{}")  # type: ignore[no-any-return]


def test_acl_403_is_one_clear_line_and_a_scoped_token_works(acl_agent: str) -> None:
    boot = _call(acl_agent, "POST", "acl/bootstrap", "")["SecretID"]
    policy = 'namespace "default" { policy = "write" }\nnode { policy = "read" }\n'
    _call(acl_agent, "POST", "acl/policy/deployer", boot, {"Name": "deployer", "Rules": policy})
    scoped = _call(
        acl_agent,
        "POST",
        "acl/token",
        boot,
        {"Name": "ci-deployer", "Type": "client", "Policies": ["deployer"]},
    )
    read_only = 'namespace "default" { policy = "read" }\n'
    _call(acl_agent, "POST", "acl/policy/reader", boot, {"Name": "reader", "Rules": read_only})
    reader = _call(
        acl_agent,
        "POST",
        "acl/token",
        boot,
        {"Name": "ro", "Type": "client", "Policies": ["reader"]},
    )
    args = [
        "plan",
        str(SPEC),
        "--version",
        "1.0.0",
        "--image",
        PINNED,
        "--serving-image",
        PINNED.replace("models/iris", "serve"),
    ]

    denied = CliRunner(env={"NOMAD_ADDR": acl_agent, "NOMAD_TOKEN": reader["SecretID"]}).invoke(
        main, args
    )
    assert denied.exit_code == int(ExitCode.NOMAD_ERROR)
    lines = denied.stderr.strip().splitlines()
    assert len(lines) == 1 and "HTTP 403" in lines[0] and "check NOMAD_TOKEN" in lines[0]
    assert reader["SecretID"] not in denied.stderr + denied.stdout

    allowed = CliRunner(env={"NOMAD_ADDR": acl_agent, "NOMAD_TOKEN": scoped["SecretID"]}).invoke(
        main, args
    )
    assert allowed.exit_code == int(ExitCode.CHANGES), allowed.stderr
    assert "job iris-v1: added" in allowed.stdout
    assert scoped["SecretID"] not in allowed.stdout + allowed.stderr
    assert "token=set" in repr(NomadSettings.from_env({"NOMAD_TOKEN": scoped["SecretID"]}))


def _as(address: str, token: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner(env={"NOMAD_ADDR": address, "NOMAD_TOKEN": token}).invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_the_shipped_policies_give_each_role_exactly_what_it_needs(acl_agent: str) -> None:
    """Each shipped policy applied as `nomadml policy NAME` prints it; a token with only
    that policy runs its role's commands; a missing capability is one line naming it,
    and the refused command changed nothing."""
    boot = _call(acl_agent, "POST", "acl/bootstrap", "")["SecretID"]
    tokens = {}
    for name in ("operator", "ci-deployer", "retraining", "viewer"):
        code, rules, _ = _as(acl_agent, boot, "policy", name)
        assert code == 0 and 'namespace "default"' in rules
        body = {"Name": f"nomadml-{name}", "Rules": rules}
        _call(acl_agent, "POST", f"acl/policy/nomadml-{name}", boot, body)
        token = {"Name": name, "Type": "client", "Policies": [f"nomadml-{name}"]}
        tokens[name] = _call(acl_agent, "POST", "acl/token", boot, token)["SecretID"]
    plan = [
        "plan", str(SPEC), "--version", "1.0.0", "--image", PINNED,
        "--serving-image", PINNED.replace("models/iris", "serve"),
    ]  # fmt: skip

    # Everyone may look.
    for name, token in tokens.items():
        assert _as(acl_agent, token, "status")[0] == 0, name
        assert _as(acl_agent, token, "model", "list", "iris")[0] == 0, name
    # Those who deploy may plan; the viewer is told what it lacks.
    for name in ("operator", "ci-deployer", "retraining"):
        code, _, err = _as(acl_agent, tokens[name], *plan)
        assert code == int(ExitCode.CHANGES), (name, err)
    code, _, err = _as(acl_agent, tokens["viewer"], *plan)
    lines = err.strip().splitlines()
    assert code == int(ExitCode.NOMAD_ERROR) and len(lines) == 1, err
    assert 'it needs namespace capability "parse-job"' in lines[0]

    # The registry: a record the operator wrote; the viewer may read it, not change it.
    # (Variables need the server's root key, which a fresh agent makes shortly after
    # it elects itself: wait for it to be active.)
    deadline = time.monotonic() + 30
    keys: Any = []
    while not any(key.get("State") == "active" for key in keys):
        keys = _call(acl_agent, "GET", "operator/keyring/keys", boot) or []
        assert time.monotonic() < deadline, "the agent never made an active root key"
        if not any(key.get("State") == "active" for key in keys):
            time.sleep(0.2)
    record = {"model": "iris", "version": "1.0.0", "stage": "validated"}
    items = {k: str(v) for k, v in record.items()}
    payload = {"Path": "nomadml/models/iris/versions/1_0_0", "Items": items}
    while True:  # the encrypter can lag the key's state by a moment: a 500 says so
        try:
            path = "var/nomadml/models/iris/versions/1_0_0"
            _call(acl_agent, "PUT", path, tokens["operator"], payload)
            break
        except urllib.error.HTTPError as refused:
            said = refused.read().decode()
            assert refused.code == 500 and time.monotonic() < deadline, (refused.code, said)
            time.sleep(0.2)
    code, out, _ = _as(acl_agent, tokens["viewer"], "model", "show", "iris", "1.0.0")
    assert code == 0 and '"stage": "validated"' in out
    code, _, err = _as(acl_agent, tokens["viewer"], "model", "approve", "iris", "1.0.0",
                       "--reason", "looks fine")  # fmt: skip
    lines = err.strip().splitlines()
    assert code == int(ExitCode.NOMAD_ERROR) and len(lines) == 1, err
    assert 'it needs variables "write" on nomadml/models/iris/versions/1_0_0' in lines[0]
    code, out, _ = _as(acl_agent, tokens["operator"], "model", "show", "iris", "1.0.0")
    assert "approved_by" not in out  # the refused approval wrote nothing
    code, out, err = _as(acl_agent, tokens["ci-deployer"], "model", "approve", "iris", "1.0.0",
                         "--reason", "release train 42")  # fmt: skip
    assert code == 0 and "approved by token:" in out, err
    for token in tokens.values():
        assert token not in err + out
