"""dockerd restarted under a running model line. The engine runs with
--live-restore, so its containers outlive it: the serving tasks keep answering,
Nomad keeps the same allocations, and the next deploy goes through once the engine
is back. Runs on a dockerd and a Nomad agent of its own (images come from the
shared loopback registry by digest), so the shared stack is untouched."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest
from private_agent import Agent, unmount_under

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.decide import Action
from nomadml.engine.result import RolloutResult
from nomadml.engine.traffic import Traffic
from nomadml.settings import NomadSettings

PORT_BASE = 5846


class Engine:
    """A dockerd of the test's own. Short paths: containerd's sockets live under
    the exec root, and unix socket paths are limited to 108 bytes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.socket = f"unix://{root}/d.sock"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log: IO[bytes] | None = None

    def start(self) -> None:
        self.log = open(self.root / "dockerd.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                "dockerd",
                "--bridge=none",
                "--iptables=false",
                "--ip6tables=false",
                "--live-restore",
                f"--data-root={self.root}/data",
                f"--exec-root={self.root}/x",
                f"--pidfile={self.root}/d.pid",
                f"--host={self.socket}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.root / "dockerd.log").read_text()[-2000:]
            if self._pings():
                return
            time.sleep(0.3)
        raise AssertionError("private dockerd did not answer")

    def _pings(self) -> bool:
        with socket.socket(socket.AF_UNIX) as sock:
            try:
                sock.connect(self.socket.removeprefix("unix://"))
                sock.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
                return sock.recv(4096).endswith(b"OK")
            except OSError:
                return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        if self.log is not None:
            self.log.close()
            self.log = None

    def containers(self) -> set[str]:
        """Ids of the running containers."""
        import docker

        client = docker.DockerClient(base_url=self.socket)
        try:
            return {c.id for c in client.containers.list()}
        finally:
            client.close()

    def remove_all(self) -> None:
        import docker

        client = docker.DockerClient(base_url=self.socket)
        try:
            for c in client.containers.list(all=True):
                c.remove(force=True)
        finally:
            client.close()


@pytest.fixture()
def engine() -> Iterator[Engine]:
    root = Path(tempfile.mkdtemp(prefix="nmd-", dir="/tmp"))
    e = Engine(root)
    e.start()
    try:
        yield e
    finally:
        e.remove_all()
        e.stop()
        unmount_under(root)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture()
def engine_agent(engine: Engine, tmp_path: Path) -> Iterator[Agent]:
    a = Agent(tmp_path, PORT_BASE, "dockerd-test", docker_endpoint=engine.socket)
    a.start()
    try:
        yield a
    finally:
        a.shut_down()


def _running(api: NomadAPI, job_id: str, count: int, limit_s: float = 60) -> list[str]:
    """The job's running allocations once `count` of them run again (the client
    re-attaches its tasks after the engine comes back), or as they are at the limit."""
    deadline = time.monotonic() + limit_s
    while True:
        ids = sorted(a["ID"] for a in api.job_allocations(job_id) if a["ClientStatus"] == "running")
        if len(ids) >= count or time.monotonic() > deadline:
            return ids
        time.sleep(0.5)


def test_dockerd_restarted_under_a_running_line(
    roll: Callable[..., RolloutResult],
    engine: Engine,
    engine_agent: Agent,
    model_name: str,
    make_spec: Callable[..., Path],
    ship: Callable[..., str],
) -> None:
    api = NomadAPI(NomadSettings.from_env({"NOMAD_ADDR": engine_agent.address}))
    spec, job_id = make_spec(gates="health"), f"{model_name}-v1"
    assert roll(spec, "1.0.0", ship("1.0.0"), api=api).action is Action.SUCCEEDED
    before = sorted(a["ID"] for a in api.job_allocations(job_id) if a["ClientStatus"] == "running")
    containers = engine.containers()

    with Traffic(api, job_id, rate_per_s=15, max_seconds=120) as traffic:
        time.sleep(2)
        engine.stop()
        down_at = time.monotonic()
        time.sleep(3)  # the engine is away; its containers are not
        engine.start()
        back_in = time.monotonic() - down_at
        time.sleep(8)  # traffic goes on while Nomad's driver finds the engine again
    report = traffic.report
    print(f"dockerd restart ({back_in:.1f} s away): {report.summary()}")
    assert report.failed == 0 and report.by_version["1.0.0"] > 0, report
    after = _running(api, job_id, len(before))
    assert after == before  # the same allocations, never rescheduled
    assert containers <= engine.containers()  # the same containers

    # With the engine back, the line can move on.
    assert roll(spec, "1.1.0", ship("1.1.0"), api=api).action is Action.SUCCEEDED
