"""The whole story on the local stack, narrated: what `./scripts/demo` runs.

1. train iris 1.0.0, register it (model image + registry record), validate it,
   deploy it as line iris-v1
2. retrain to 1.1.0 and canary it through the gates (real traffic) to promotion
3. deploy a deliberately bad 1.2.0: the gates fail it and Nomad rolls back while
   1.1.0 keeps serving
4. train 2.0.0 on a different input schema (a new major): it runs beside v1
5. show status, history and endpoints, and call both majors

Exits 0 only if every step behaved as expected; prints each check."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from examples.iris.quickstart import predict
from examples.iris.train import train_iris
from nomadml.adapters.model_store import ModelRegistry
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.cli.tables import format_history, format_status
from nomadml.core.decide import Action
from nomadml.core.spec import ModelSpec, load_spec
from nomadml.engine.deploy import deploy
from nomadml.engine.endpoints import endpoints
from nomadml.engine.lines import history_rows, status
from nomadml.engine.prepare import ReleasePolicy, prepare_release
from nomadml.engine.registration import register_model
from nomadml.engine.result import RolloutResult
from nomadml.engine.stages import validate_version
from nomadml.engine.traffic import Traffic
from nomadml.errors import NomadMLError
from nomadml.settings import NomadSettings

SPEC = Path(__file__).resolve().parent / "iris.toml"
V1_SAMPLE = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
V2_SAMPLE = [[1.4, 0.2], [5.2, 2.3]]  # v2 takes petal measurements only


class Story:
    def __init__(self, api: NomadAPI, spec: ModelSpec, out: Callable[[str], None] = print) -> None:
        self.api, self.spec, self.out = api, spec, out
        self.registry = ModelRegistry(api)
        self.checks: list[tuple[str, bool]] = []

    def step(self, text: str) -> None:
        self.out(f"\n=== {text}")

    def check(self, what: str, ok: bool) -> bool:
        self.checks.append((what, ok))
        self.out(f"    [{'ok' if ok else 'FAILED'}] {what}")
        return ok

    def ship(self, version: str, **training: Any) -> str:
        """Train, register in the model registry (image built and pushed with the
        docker SDK), run the spec's validation gates; returns the pinned image."""
        serving = training.pop("serving", None)
        with tempfile.TemporaryDirectory() as tmp:
            model_dir = Path(tmp)
            metrics = train_iris(model_dir, **training)["metrics"]
            if serving:
                import json

                model = json.loads((model_dir / "model.json").read_text())
                model["serving"] = serving
                (model_dir / "model.json").write_text(json.dumps(model))
            record, _ = register_model(
                self.registry,
                model_dir,
                self.spec.name,
                version=version,
                image_registry=self.spec.model.registry,
            )
        report = validate_version(self.registry, record, self.spec.validation)
        self.out(
            f"    registered {self.spec.name} {version}: accuracy {metrics['accuracy']:.3f}, "
            f"{'validated' if report.passed else 'rejected'}; image {record.image}"
        )
        return record.image

    def deploy(self, version: str, image: str) -> RolloutResult:
        """Deploy as `nomadml deploy` does: the registry decides what goes out, and the
        outcome settles the version's stage (production, or rejected by its gates)."""
        prepared = prepare_release(
            self.spec, version, nomad=lambda: self.api, model_image=image, policy=ReleasePolicy()
        )
        return deploy(self.api, prepared, emit=lambda e: self.out(f"    {e.message}"))

    def clean(self) -> None:
        """Purge the model's lines and registry entries left by an earlier run, so the
        story starts fresh."""
        from nomadml.engine.lines import managed_jobs

        for var in self.api.list_variables(f"nomadml/models/{self.spec.name}/"):
            self.api.request("DELETE", f"var/{var['Path']}")

        for job in managed_jobs(self.api, self.spec.name):
            if job["Meta"].get("nomadml.model") == self.spec.name:
                self.out(f"    purging {job['ID']} from an earlier run")
                self.api.stop_job(job["ID"], purge=True)

    def run(self) -> bool:
        name = self.spec.name
        self.step(f"0. start from a clean slate for model {name}")
        self.clean()
        self.step(f"1. train and register {name} 1.0.0, then deploy it as line {name}-v1")
        first = self.deploy("1.0.0", self.ship("1.0.0"))
        self.check("1.0.0 deployed", first.action is Action.SUCCEEDED)

        self.step("2. retrain to 1.1.0 and canary it through the gates under real traffic")
        image = self.ship("1.1.0", c=0.5)
        with Traffic(self.api, f"{name}-v1", rate_per_s=15, max_seconds=300) as traffic:
            good = self.deploy("1.1.0", image)
        self.check("1.1.0 passed its gates and was promoted", good.action is Action.SUCCEEDED)
        self.check(
            f"traffic during the rollout: {traffic.report.ok} ok, {traffic.report.failed} failed",
            traffic.report.failed == 0,
        )

        self.step("3. deploy a deliberately bad 1.2.0 (half its answers are errors)")
        image = self.ship("1.2.0", serving={"error_rate": 0.5})
        with Traffic(self.api, f"{name}-v1", rate_per_s=15, max_seconds=300) as traffic:
            bad = self.deploy("1.2.0", image)
        self.check("1.2.0 failed its gate and was rolled back", bad.action is Action.ROLLED_BACK)
        stable_failures = traffic.report.failed_by_version["1.1.0"]
        self.check(
            f"1.1.0 kept serving: {traffic.report.by_version['1.1.0']} answers, "
            f"{stable_failures} failures (the canary's own errors: "
            f"{traffic.report.failed_by_version['1.2.0']})",
            stable_failures == 0,
        )
        job = self.api.job(f"{name}-v1") or {}
        self.check(
            "line v1 runs 1.1.0 again", job.get("Meta", {}).get("nomadml.version") == "1.1.0"
        )

        self.step("4. train 2.0.0 on petal measurements only (a new input schema = a new major)")
        v2 = self.deploy("2.0.0", self.ship("2.0.0", features=["petal_length", "petal_width"]))
        self.check(f"2.0.0 runs as line {name}-v2 beside {name}-v1", v2.action is Action.SUCCEEDED)

        self.step("5. status, history, endpoints, and a prediction from each major")
        for line in format_status(status(self.api, name)):
            self.out(f"    {line}")
        for line in format_history(f"{name}-v1", history_rows(self.api, f"{name}-v1")):
            self.out(f"    {line}")
        stages = {r.version: r.stage for r in self.registry.versions(name)}
        for version, stage in stages.items():
            self.out(f"    registry: {name} {version} {stage}")
        self.check(
            "registry: 1.1.0 and 2.0.0 in production, 1.2.0 rejected, 1.0.0 archived",
            stages
            == {
                "1.0.0": "archived",
                "1.1.0": "production",
                "1.2.0": "rejected",
                "2.0.0": "production",
            },
        )
        for major, sample, version in (("1", V1_SAMPLE, "1.1.0"), ("2", V2_SAMPLE, "2.0.0")):
            live = [e for e in endpoints(self.api, f"{name}-v{major}") if e.healthy]
            self.check(f"{name}-v{major} has live endpoints: {[e.url for e in live]}", bool(live))
            if live:
                answer = predict(live[0].url, sample)
                labels = [p["label"] for p in answer["predictions"]]
                self.out(
                    f"    POST {live[0].url}/predict {sample} -> {answer['version']}: {labels}"
                )
                self.check(
                    f"major {major} answers with {version}: {labels}",
                    answer["version"] == version and labels == ["setosa", "virginica"],
                )
        failed = [what for what, ok in self.checks if not ok]
        self.out(f"\n{len(self.checks) - len(failed)}/{len(self.checks)} checks passed")
        return not failed


def main() -> int:
    try:
        ok = Story(NomadAPI(NomadSettings.from_env()), load_spec(SPEC)).run()
    except NomadMLError as err:
        print(f"demo: {err}", file=sys.stderr)
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
