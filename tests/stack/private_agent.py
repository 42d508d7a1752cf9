"""A Nomad agent of a test's own (server + client, its own ports, data dir and
cgroup parent), for tests that stop or break pieces the shared stack must keep."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import IO

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.settings import NomadSettings

NOMAD = Path.home() / ".cache" / "nomadml" / "nomad-1.10.5" / "nomad"


class Agent:
    """A Nomad server + client of a test's own; `docker_endpoint` picks a dockerd,
    `docker_auth_config` the docker config.json its driver pulls with."""

    def __init__(
        self,
        tmp: Path,
        port_base: int = 5746,
        name: str = "restart-test",
        docker_endpoint: str | None = None,
        docker_auth_config: Path | None = None,
        docker_volumes: bool = False,
        acl: bool = False,
        host_volumes: tuple[tuple[str, Path], ...] = (),
    ) -> None:
        self.tmp = tmp
        self.address = f"http://127.0.0.1:{port_base}"
        (tmp / "models").mkdir()
        self.config = tmp / "agent.hcl"
        endpoint = f'endpoint = "{docker_endpoint}"' if docker_endpoint else ""
        if docker_auth_config is not None:
            endpoint += f'\n    auth {{ config = "{docker_auth_config}" }}'
        if docker_volumes:  # host paths in task configs (the engine's socket, scratch)
            endpoint += "\n    volumes { enabled = true }"
        acl_block = "acl {\n  enabled = true\n}" if acl else ""
        volumes = "".join(
            f'  host_volume "{name}" {{\n    path = "{path}"\n  }}\n' for name, path in host_volumes
        )
        self.config.write_text(f"""
{acl_block}
data_dir  = "{tmp / "data"}"
bind_addr = "127.0.0.1"
name      = "{name}"
disable_update_check = true
ports {{
  http = {port_base}
  rpc  = {port_base + 1}
  serf = {port_base + 2}
}}
advertise {{
  http = "127.0.0.1"
  rpc  = "127.0.0.1"
  serf = "127.0.0.1"
}}
server {{
  enabled          = true
  bootstrap_expect = 1
}}
client {{
  enabled           = true
  network_interface = "lo"
  cgroup_parent     = "nomadml-{name}"
  alloc_dir         = "{tmp / "allocs"}"
  servers           = ["127.0.0.1:{port_base + 1}"]
  options = {{
    "fingerprint.denylist" = "env_aws,env_gce,env_azure,env_digitalocean"
  }}
  host_volume "models" {{
    path      = "{tmp / "models"}"
    read_only = false
  }}
{volumes}}}
plugin "docker" {{
  config {{
    {endpoint}
    gc {{
      image = false
      dangling_containers {{ enabled = false }}
    }}
  }}
}}
""")
        self.proc: subprocess.Popen[bytes] | None = None
        self.log: IO[bytes] | None = None
        self.acl = acl
        self.token = ""  # with `acl`: the bootstrap (management) token

    def api(self) -> NomadAPI:
        """A client of this agent (with the management token when ACLs are on)."""
        env = {"NOMAD_ADDR": self.address, "NOMAD_TOKEN": self.token}
        return NomadAPI(NomadSettings.from_env(env))

    def start(self) -> None:
        self.log = open(self.tmp / "agent.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [str(NOMAD), "agent", f"-config={self.config}"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "CHECKPOINT_DISABLE": "1"},
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.tmp / "agent.log").read_text()[-2000:]
            try:
                if self.acl and not self.token:  # once there is a leader
                    self.token = self.api().request("PUT", "acl/bootstrap").body["SecretID"]
                nodes = self.api().request("GET", "nodes").body or []
                if any(
                    n["Status"] == "ready" and n["Drivers"].get("docker", {}).get("Healthy")
                    for n in nodes
                ):
                    return
            except Exception:
                pass
            time.sleep(0.3)
        raise AssertionError("agent not ready: " + (self.tmp / "agent.log").read_text()[-2000:])

    def shut_down(self) -> None:
        """Purge every job (so the client stops its containers), stop, unmount."""
        if self.proc and self.proc.poll() is None:
            api = self.api()
            for job in api.request("GET", "jobs").body or []:
                api.stop_job(job["ID"], purge=True)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and any(
                a["ClientStatus"] == "running" for a in api.request("GET", "allocations").body or []
            ):
                time.sleep(0.5)
        self.stop()
        unmount_under(self.tmp)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log is not None:
            self.log.close()
            self.log = None


def unmount_under(root: Path) -> None:
    """The client mounts tmpfs secrets dirs in alloc dirs; a stopped agent leaves
    them behind, and pytest could not remove the test's directory later."""
    with open("/proc/self/mounts") as f:
        points = [line.split()[1] for line in f]
    for point in sorted(points, key=len, reverse=True):
        if point.startswith(f"{root}/"):
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)
