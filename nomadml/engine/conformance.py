"""`nomadml conformance`: run a serving image against a model directory on the local
Docker engine, the way a Nomad allocation would (the model installed by the real
bootstrap into a volume mounted read-only, host networking, the spec's command and
environment), and check each clause of the serving contract."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from nomadml.adapters.containers import Container
from nomadml.adapters.serving_http import call
from nomadml.core import conformance as contract
from nomadml.core.conformance import Clause
from nomadml.core.schema import seconds
from nomadml.core.spec import ModelSpec, parse_version
from nomadml.engine.local_serving import install_locally, start, wait_healthy
from nomadml.engine.registration import read_metadata


@dataclass
class ConformanceReport:
    image: str
    clauses: list[Clause] = field(default_factory=list)
    log_tail: str = ""

    @property
    def passed(self) -> bool:
        return all(c.kept for c in self.clauses)


def check_serving_image(
    spec: ModelSpec, image: str, model_dir: Path, version: str = "1.0.0"
) -> ConformanceReport:
    """Every clause of the serving contract, checked against `image` serving the model
    in `model_dir`; the container and the scratch volume are removed afterwards."""
    parse_version(version, "--version")
    metadata = read_metadata(model_dir)
    report = ConformanceReport(image)
    with tempfile.TemporaryDirectory(prefix="nomadml-conformance-") as scratch:
        volume = install_locally(Path(scratch), model_dir, spec.name, version)
        container, base = start(spec, image, volume, version)
        try:
            _check(report, container, spec, base, metadata, version)
        finally:
            report.log_tail = container.logs()
            container.remove()
    return report


def _check(
    report: ConformanceReport,
    container: Container,
    spec: ModelSpec,
    base: str,
    metadata: dict[str, object],
    version: str,
) -> None:
    health = base + spec.serving.health_path
    status, waited = wait_healthy(container, health)
    ready = Clause(
        f"starts and answers GET {spec.serving.health_path} 200",
        contract.check_health(status, waited),
    )
    report.clauses.append(ready)
    if not ready.kept:
        return
    report.clauses.append(Clause("runs as a non-root user", contract.check_user(container.uid())))
    names = spec.gates.metrics
    instances = contract.sample_instances(dict(metadata))
    body = json.dumps({"instances": instances}).encode()
    got, answer = call(base + names.path, body)
    report.clauses.append(
        Clause(
            f"POST {names.path} answers with predictions and the model version",
            contract.check_predict(got or 0, answer, instances, version),
        )
    )
    bad, _ = call(base + names.path, b"{not json")
    report.clauses.append(
        Clause(f"POST {names.path} refuses bad input with 4xx", contract.check_bad_input(bad or 0))
    )
    shown, text = call(base + spec.serving.metrics_path)
    report.clauses.append(
        Clause(
            f"GET {spec.serving.metrics_path} counts requests in {names.requests_total} "
            f"and {names.duration_seconds}",
            contract.check_metrics(shown or 0, text.decode(errors="replace"), names, 2),
        )
    )
    grace = seconds(spec.serving.kill_timeout)
    container.terminate()
    draining, _ = call(health, timeout_s=1)
    report.clauses.append(
        Clause(
            f"on SIGTERM drains and exits 0 within kill_timeout ({spec.serving.kill_timeout})",
            contract.check_shutdown(draining, container.wait(grace), grace),
        )
    )
