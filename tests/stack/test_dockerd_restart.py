"""dockerd restarted under a running model line. The engine runs with
--live-restore, so its containers outlive it and the serving tasks keep answering.
Nomad's docker driver takes the lost container stream for an exit ("unexpected EOF")
and restarts each task after the spec's `[restart] delay`: when the engine is back by
then, the same allocations run again (asserted here, with a 20 s delay); when it is
not, the restart finds no engine and Nomad replaces the allocations (seen with the
example's 3 s delay against a 3.9 s outage). Either way no request fails, and the
next deploy goes through. Runs on a dockerd and a Nomad agent of its own (images
come from the shared loopback registry by digest), so the shared stack is untouched."""

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


def _until(what: str, ready: Callable[[], bool], limit_s: float = 60) -> None:
    deadline = time.monotonic() + limit_s
    while not ready():
        assert time.monotonic() < deadline, f"{what} not within {limit_s:.0f} s"
        time.sleep(0.2)


def _settled(api: NomadAPI, job_id: str, count: int) -> bool:
    """`count` allocations run, each serving task running since its last start."""
    running = [a for a in api.job_allocations(job_id) if a["ClientStatus"] == "running"]
    if len(running) != count:
        return False
    for alloc in running:
        full = api.get(f"allocation/{alloc['ID']}").body
        serve = (full.get("TaskStates") or {}).get("serve") or {}
        events = [e["Type"] for e in serve.get("Events", [])]
        if serve.get("State") != "running" or not events or events[-1] != "Started":
            return False
    return True


def _running(api: NomadAPI, job_id: str) -> list[str]:
    return sorted(a["ID"] for a in api.job_allocations(job_id) if a["ClientStatus"] == "running")


def _why_replaced(api: NomadAPI, job_id: str, before: list[str]) -> str:
    """The task events of the allocations that no longer run: what a failure shows."""
    lines = []
    for alloc in api.job_allocations(job_id):
        if alloc["ID"] in before and alloc["ClientStatus"] != "running":
            for task, state in (alloc.get("TaskStates") or {}).items():
                events = [f"{e['Type']}: {e.get('DisplayMessage', '')}" for e in state["Events"]]
                lines.append(f"{alloc['ID'][:8]} {task}: {events[-4:]}")
    return "; ".join(lines)


def test_dockerd_restarted_under_a_running_line(
    roll: Callable[..., RolloutResult],
    engine: Engine,
    engine_agent: Agent,
    model_name: str,
    make_spec: Callable[..., Path],
    ship: Callable[..., str],
) -> None:
    api = NomadAPI(NomadSettings.from_env({"NOMAD_ADDR": engine_agent.address}))
    restart_delay_s = 20
    delay = 'interval = "5m"\ndelay = "3s"'
    spec = make_spec({delay: delay.replace("3s", f"{restart_delay_s}s")}, gates="health")
    job_id = f"{model_name}-v1"
    assert roll(spec, "1.0.0", ship("1.0.0"), api=api).action is Action.SUCCEEDED
    before = _running(api, job_id)

    with Traffic(api, job_id, rate_per_s=15, max_seconds=240) as traffic:
        _until("traffic flowing", lambda: traffic.report.ok >= 20)
        engine.stop()
        down_at = time.monotonic()
        time.sleep(3)  # the fault itself: the engine stays away this long, its containers do not
        engine.start()
        back_in = time.monotonic() - down_at
        assert back_in < restart_delay_s, f"engine away {back_in:.1f} s: the premise fails"
        # Nomad restarts the tasks after the delay; traffic goes on until they run again.
        _until("the line settled again", lambda: _settled(api, job_id, len(before)), 120)
        served = traffic.report.ok
        _until("traffic after", lambda: traffic.report.ok >= served + 50)
    report = traffic.report
    print(f"dockerd restart ({back_in:.1f} s away): {report.summary()}")
    assert report.failed == 0 and report.by_version["1.0.0"] > 0, report
    after = _running(api, job_id)
    assert after == before, f"allocations replaced: {_why_replaced(api, job_id, before)}"

    # With the engine back, the line can move on.
    assert roll(spec, "1.1.0", ship("1.1.0"), api=api).action is Action.SUCCEEDED
