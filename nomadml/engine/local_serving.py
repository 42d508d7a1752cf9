"""Serving a model version on the local Docker engine as a Nomad allocation would: the
model installed by the real bootstrap into a scratch volume mounted read-only, the
serving image with the spec's command and environment, host networking on a free
loopback port. Used by `nomadml conformance` and by the same-data evaluation."""

from __future__ import annotations

import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nomadml.adapters.containers import Container
from nomadml.adapters.serving_http import call
from nomadml.bundled.bootstrap import build_manifest, install, write_manifest
from nomadml.core.spec import ModelSpec
from nomadml.errors import NomadMLError, as_operator_error

READY_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def install_locally(
    scratch: Path, model_dir: Path, model: str, version: str, *, has_manifest: bool = False
) -> Path:
    """The model as the bootstrap task installs it (checksums, read-only) into a volume
    under `scratch`; returns the volume. Without `has_manifest` one is made first."""
    source = scratch / "source"
    shutil.copytree(model_dir, source, symlinks=True)
    try:
        if not has_manifest:
            (source / "manifest.json").unlink(missing_ok=True)
            write_manifest(source, build_manifest(source, model, version))
        install(source, scratch / "volume", model, version)
    except ValueError as err:  # the installer's own errors
        raise as_operator_error(err) from None
    return scratch / "volume"


def start(spec: ModelSpec, image: str, volume: Path, version: str) -> tuple[Container, str]:
    """The serving container for `version` in `volume`, and its base URL."""
    port = free_port()
    inside = f"/models/{spec.name}/{version}"
    env = {
        **spec.serving.env,
        "NOMADML_MODEL_DIR": inside,
        "NOMADML_MODEL_NAME": spec.name,
        "NOMADML_MODEL_VERSION": version,
        "NOMAD_PORT_http": str(port),
        "NOMAD_IP_http": "127.0.0.1",
    }
    command = [spec.serving.command, *spec.serving.args]
    container = Container(image, command, env, (volume / spec.name / version, inside))
    return container, f"http://127.0.0.1:{port}"


def wait_healthy(container: Container, health_url: str) -> tuple[int | None, float]:
    """Poll health until 200, the container stops, or READY_TIMEOUT_S; (last status,
    seconds waited)."""
    started = time.monotonic()
    status: int | None = None
    while time.monotonic() - started < READY_TIMEOUT_S and container.running():
        status, _ = call(health_url, timeout_s=2)
        if status == 200:
            break
        time.sleep(0.2)
    return status, time.monotonic() - started


@contextmanager
def served(
    spec: ModelSpec, image: str, model_dir: Path, version: str, *, has_manifest: bool = False
) -> Iterator[str]:
    """A healthy local server of the model (its base URL); removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="nomadml-serve-") as scratch:
        volume = install_locally(
            Path(scratch), model_dir, spec.name, version, has_manifest=has_manifest
        )
        container, base = start(spec, image, volume, version)
        try:
            status, waited = wait_healthy(container, base + spec.serving.health_path)
            if status != 200:
                said = container.logs().splitlines()
                last = f": {said[-1][:300]}" if said else ""
                raise NomadMLError(
                    f"{spec.name} {version} did not become healthy in {image} "
                    f"within {waited:.0f} s{last}"
                )
            yield base
        finally:
            container.remove()
