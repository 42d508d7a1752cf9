"""Faults with a defined outcome and nothing lost:

- the image registry is down when the bootstrap task needs the model: the canary
  fails in its bootstrap with Docker's pull error, Nomad reverts, the stable version
  serves throughout, nothing of the new version reaches the volume; with the
  registry back, the same deploy command succeeds;
- a serving task crashes after promotion: Nomad restarts it in place, the line
  keeps its version, the other allocation serves meanwhile (a client that sends a
  refused connection once more to another address sees no failure).
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.decide import Action
from nomadml.engine.result import RolloutResult
from nomadml.engine.traffic import Traffic

SPARE_REGISTRY = "127.0.0.1:5055"


class SpareRegistry:
    """A docker-registry of the test's own on loopback, stopped and started at will."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.config = root / "registry.yml"
        self.config.write_text(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
            f"    rootdirectory: {root / 'data'}\nhttp:\n  addr: {SPARE_REGISTRY}\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        import requests

        self.proc = subprocess.Popen(
            ["docker-registry", "serve", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://{SPARE_REGISTRY}/v2/", timeout=1).ok:
                    return
            except requests.RequestException:
                time.sleep(0.2)
        raise AssertionError("spare registry did not answer")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


@pytest.fixture()
def spare_registry() -> Iterator[SpareRegistry]:
    with tempfile.TemporaryDirectory() as tmp:
        registry = SpareRegistry(Path(tmp))
        registry.start()
        try:
            yield registry
        finally:
            registry.stop()


def test_registry_down_when_the_bootstrap_needs_the_model(
    roll: Callable[..., RolloutResult],
    nomad: NomadAPI,
    docker_client: Any,
    model_name: str,
    models_volume: Path,
    spare_registry: SpareRegistry,
    stable_line: Callable[..., tuple[Path, str]],
    ship: Callable[..., str],
) -> None:
    spec, job_id = stable_line(gates="health")
    image = ship("1.1.0", c=0.5, registry=SPARE_REGISTRY)
    # The node must fetch it: drop the engine's copy, then the registry.
    docker_client.images.remove(image.split("@")[0] + ":1.1.0", force=True)
    spare_registry.stop()

    with Traffic(nomad, job_id, rate_per_s=15, max_seconds=240) as traffic:
        result = roll(spec, "1.1.0", image)
    print(f"registry down: {result.action.value}: {result.reason}")
    assert result.action is Action.ROLLED_BACK, result.reason
    assert "task bootstrap" in result.reason and "pull" in result.reason.lower(), result.reason
    assert traffic.report.failed == 0, traffic.report.summary()
    assert traffic.report.by_version["1.0.0"] > 0, traffic.report.summary()
    assert not (models_volume / model_name / "1.1.0").exists()
    assert (nomad.job(job_id) or {})["Meta"]["nomadml.version"] == "1.0.0"

    # The registry is back: the same deploy goes through, nothing to clean up by hand.
    spare_registry.start()
    again = roll(spec, "1.1.0", image)
    assert again.action is Action.SUCCEEDED, again.reason
    assert (models_volume / model_name / "1.1.0").is_dir()


def test_serving_task_crash_after_promotion(
    roll: Callable[..., RolloutResult],
    nomad: NomadAPI,
    docker_client: Any,
    ship: Callable[..., str],
    stable_line: Callable[..., tuple[Path, str]],
) -> None:
    spec, job_id = stable_line(gates="health")
    assert roll(spec, "1.1.0", ship("1.1.0")).action is Action.SUCCEEDED
    job_version = (nomad.job(job_id) or {})["Version"]
    running = [a for a in nomad.job_allocations(job_id) if a["ClientStatus"] == "running"]
    assert len(running) == 2
    victim = running[0]["ID"]

    # The client behaves like a load balancer: a refused connection (nothing was
    # processed) goes once more to another live address.
    with Traffic(nomad, job_id, rate_per_s=15, max_seconds=120, retry_refused=True) as traffic:
        time.sleep(2)
        docker_client.containers.get(f"serve-{victim}").kill()
        deadline = time.monotonic() + 90
        restarted = False
        while time.monotonic() < deadline and not restarted:
            alloc = nomad.request("GET", f"allocation/{victim}").body
            serve = alloc["TaskStates"]["serve"]
            checks = nomad.request("GET", f"client/allocation/{victim}/checks").body or {}
            restarted = (
                serve["Restarts"] >= 1
                and serve["State"] == "running"
                and bool(checks)
                and all(c.get("Status") == "success" for c in checks.values())
            )
            time.sleep(0.5)
        time.sleep(2)  # traffic reaches the restarted task again
    report = traffic.report
    print(f"crash after promotion: {report.summary()}")
    assert restarted, "Nomad did not restart the crashed serving task in place"
    job = nomad.job(job_id) or {}
    assert job["Version"] == job_version and job["Meta"]["nomadml.version"] == "1.1.0"
    assert report.by_version["1.1.0"] > 0
    # Until its check fails the dead address is still listed; the sibling allocation
    # answered every request it refused, so no client request failed.
    assert report.retried > 0 and report.failed == 0, report
