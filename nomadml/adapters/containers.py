"""Running a serving image on the local Docker engine (host networking, the model
volume mounted read-only), for the serving contract's conformance check."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nomadml.adapters.images import docker_client
from nomadml.errors import BadInput


class Container:
    """One running container; `remove()` always cleans it up."""

    def __init__(
        self,
        image: str,
        command: Sequence[str],
        env: Mapping[str, str],
        volume: tuple[Path, str],
    ) -> None:
        import docker.errors

        client = docker_client()
        host, inside = volume
        try:
            self._container: Any = client.containers.run(
                image,
                list(command),
                detach=True,
                network_mode="host",
                environment=dict(env),
                volumes={str(host): {"bind": inside, "mode": "ro"}},
            )
        except docker.errors.ImageNotFound:
            raise BadInput(
                f"image {image} is not on this Docker engine (pull or build it)"
            ) from None
        except docker.errors.APIError as err:
            raise BadInput(f"image {image} does not start: {err.explanation or err}") from None

    def uid(self) -> int | None:
        """The uid of the container's main process, from the host's /proc."""
        self._container.reload()
        pid = int(self._container.attrs["State"].get("Pid") or 0)
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("Uid:"):
                return int(line.split()[1])
        return None

    def running(self) -> bool:
        self._container.reload()
        return bool(self._container.attrs["State"].get("Running"))

    def terminate(self) -> None:
        self._container.kill(signal="SIGTERM")

    def wait(self, timeout_s: float) -> int | None:
        """The exit code, or None if it is still running after `timeout_s`."""
        import requests

        try:
            return int(self._container.wait(timeout=timeout_s)["StatusCode"])
        except requests.exceptions.ConnectionError:
            return None

    def logs(self, lines: int = 5) -> str:
        data: bytes = self._container.logs(tail=lines)
        return data.decode(errors="replace").strip()

    def remove(self) -> None:
        import docker.errors

        with contextlib.suppress(docker.errors.DockerException):
            self._container.remove(force=True)
