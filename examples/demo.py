"""The whole story on the local stack, as an operator types it: what `./scripts/demo`
runs. Every step is printed as the command an operator would run (`$ nomadml ...`,
`$ nomad ...`, or the team's own trainer), with its output, followed by the checks
that step must pass. Two example models: iris (scikit-learn, nomadml's reference
server) and wine (gradient-boosted trees exported to ONNX, served by onnxruntime in
its own image).

 1. iris 1.0.0: train, register, validate (measured on the evaluation set), deploy
 2. the scheduled retraining, forced now with new data: 1.1.0 canaried and promoted
    while a load generator sends real predictions
 3. data that fails its checks: the retraining run registers nothing
 4. a worse candidate, rejected by the same-data comparison
 5. a release that fails in production: its canary fails the gates, Nomad rolls back
 6. a rollback to 1.0.0
 7. a new input schema is a new major: iris 2.0.0 beside iris-v1
 8. wine: the serving contract checked, then register, validate, deploy; a worse
    retrain rejected
 9. one address for every version: the model's router (HAProxy, run by Nomad); iris
    1.4.0 released through it under traffic: a shadow phase, then canary steps
10. the registry's view, the lines, and a prediction from each

Exits 0 only if every check passes; ends with `N/N checks passed`."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from nomadml.adapters.model_store import ModelRegistry
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.engine.endpoints import endpoints
from nomadml.engine.lines import managed_jobs
from nomadml.engine.traffic import Traffic
from nomadml.errors import NomadMLError
from nomadml.settings import NomadSettings

EXAMPLES = Path(__file__).resolve().parent
IRIS_ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
PETAL_ROWS = [[1.4, 0.2], [5.2, 2.3]]
WINE_ROW = [13.2, 1.78, 2.14, 11.2, 100.0, 2.65, 2.76, 0.26, 1.28, 4.38, 1.05, 3.4, 1050.0]
SHOWN_LINES = 14  # long outputs are shown by their last lines
# The release spec (step 9): iris/iris.toml with canary steps at the router and a
# shadow phase before them; labels compared (a retrained model's probabilities move).
RELEASE = {
    "auto_revert = true\n": "auto_revert = true\nsteps = [50, 100]\n",
    "[restart]\n": (
        "[update.shadow]\nshare = 100\nmin_requests = 20\nmin_agreement = 1.0\n"
        'compare = "labels"\ntimeout = "60s"\n\n[restart]\n'
    ),
}


def post(url: str, rows: list[list[float]], version: str | None) -> tuple[int, dict[str, Any]]:
    """One POST /predict (`X-Model-Version: version` when given): (status, the JSON answer)."""
    headers = {"Content-Type": "application/json"}
    if version:
        headers["X-Model-Version"] = version
    body = json.dumps({"instances": rows}).encode()
    request = urllib.request.Request(f"{url}/predict", data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status), json.load(response)
    except urllib.error.HTTPError as err:
        return int(err.code), json.loads(err.read() or b"{}")


class RouterClients:
    """Clients asking one major through the router while a block runs (about 20 a
    second, bounded in time): every answer counted by (status, answering version)."""

    def __init__(self, url: str, major: str, rows: list[list[float]]) -> None:
        self.url, self.major, self.rows = url, major, rows
        self.answers: Counter[tuple[int, str]] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="router-clients")

    def __enter__(self) -> RouterClients:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        deadline = time.monotonic() + 300
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                status, answer = post(self.url, self.rows, self.major)
                self.answers[status, str(answer.get("version"))] += 1
            except (OSError, ValueError) as err:  # no answer at all: counted as failed
                self.answers[0, type(err).__name__] += 1
            self._stop.wait(0.05)


class Demo:
    def __init__(self, api: NomadAPI, work: Path) -> None:
        self.api, self.work = api, work
        self.registry = ModelRegistry(api)
        self.checks: list[tuple[str, bool]] = []
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    # -- showing -------------------------------------------------------------------

    def step(self, text: str) -> None:
        print(f"\n=== {text}", flush=True)

    def check(self, what: str, ok: bool) -> bool:
        self.checks.append((what, ok))
        print(f"    [{'ok' if ok else 'FAILED'}] {what}", flush=True)
        return ok

    def show(self, text: str) -> None:
        lines = [line for line in text.rstrip().splitlines() if line.strip()]
        if len(lines) > SHOWN_LINES:
            print(f"    ... ({len(lines) - SHOWN_LINES} lines above)")
        for line in lines[-SHOWN_LINES:]:
            print(f"    {line}")

    def sh(self, shown: str, argv: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
        print(f"$ {shown}", flush=True)
        done = subprocess.run(
            argv,
            cwd=self.work,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            check=False,
        )
        out = done.stdout + done.stderr
        self.show(out)
        return done.returncode, out

    def nomadml(self, *args: str, expect: int = 0) -> str:
        code, out = self.sh("nomadml " + " ".join(args), [sys.executable, "-m", "nomadml", *args])
        self.check(f"nomadml {args[0]}{' ' + args[1] if args[0] == 'model' else ''} exits {expect}",
                   code == expect)  # fmt: skip
        return out

    def train(self, model: str, out: str, *args: str, data: bool = True) -> None:
        env = {}
        if data and model == "iris":
            env = {
                "NOMADML_TRAIN_DATA": str(self.work / "iris" / "data" / "train.csv"),
                "NOMADML_EVAL_DATA": str(self.work / "iris" / "data" / "eval.csv"),
            }
        argv = [sys.executable, "-m", f"examples.{model}.train", "--out", out, *args]
        code, _ = self.sh(
            f"python3 -m examples.{model}.train --out {out} {' '.join(args)}", argv, env
        )
        self.check(f"the {model} trainer wrote {out}", code == 0)

    def stages(self, model: str) -> dict[str, str]:
        return {v.version: v.stage for v in self.registry.versions(model)}

    # -- Nomad's side ------------------------------------------------------------------

    def force_retraining(self, job_id: str, traffic_line: str | None = None) -> tuple[str, str]:
        """`nomad job periodic force`, then the child's end and its log."""
        before = self._children(job_id)
        print(f"$ nomad job periodic force {job_id}", flush=True)
        self.api.request("PUT", f"job/{job_id}/periodic/force")
        launched = self._children(job_id) - before
        child = launched.pop() if launched else ""
        with contextlib.ExitStack() as stack:
            if traffic_line:
                load = Traffic(self.api, traffic_line, rate_per_s=15, max_seconds=300)
                self.traffic = stack.enter_context(load).report
            deadline, index = time.monotonic() + 300, 0
            while child and time.monotonic() < deadline:
                answer = self.api.get(f"job/{child}", index, wait=10)  # wakes on a change
                if (answer.body or {}).get("Status") == "dead":
                    break
                index = answer.index
        allocs = self.api.job_allocations(child) if child else []
        if not allocs:
            return "missing", ""
        alloc = allocs[0]
        log = self.api.task_log_tail(alloc["ID"], "train", "stdout", size=20000)
        log += self.api.task_log_tail(alloc["ID"], "train", "stderr", size=5000)
        print(f"$ nomad alloc logs {alloc['ID'][:8]} train", flush=True)
        self.show(
            "\n".join(
                line for line in log.splitlines() if line.startswith(("retrain:", "nomadml:"))
            )
        )
        return str(alloc["ClientStatus"]), log

    def _children(self, job_id: str) -> set[str]:
        jobs = self.api.request("GET", "jobs", params={"prefix": f"{job_id}/periodic-"}).body
        return {j["ID"] for j in jobs or []}

    def clean(self, model: str) -> None:
        """Purge what an earlier run left of `model`: its lines, its retraining job, its
        registry records and its lines' rollout records (a report of the latest rollout
        must not find an earlier run's), so the story starts fresh."""
        for prefix in (f"models/{model}/", f"routes/{model}", f"rollouts/{model}-v"):
            for var in self.api.list_variables(f"nomadml/{prefix}"):
                self.api.request("DELETE", f"var/{var['Path']}")
        for job in managed_jobs(self.api, model):
            if job["Meta"].get("nomadml.model") == model:
                print(f"    purging {job['ID']} from an earlier run")
                self.api.stop_job(job["ID"], purge=True)
        for job in (
            self.api.request("GET", "jobs", params={"prefix": f"{model}-retrain"}).body or []
        ):
            self.api.stop_job(job["ID"], purge=True)

    def ask(
        self, url: str, rows: list[list[float]], version: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        """POST /predict as the operator's curl would: (status, the JSON answer)."""
        body = json.dumps({"instances": rows})
        header = f" -H 'X-Model-Version: {version}'" if version else ""
        print(f"$ curl -s{header} {url}/predict -d '{body}'", flush=True)
        status, answer = post(url, rows, version)
        if status == 200:
            found = answer["predictions"]
            labels = [p.get("label") if isinstance(p, dict) else p for p in found]
            print(f"    version {answer.get('version')}: {labels}")
        else:
            print(f"    HTTP {status}: {json.dumps(answer)}")
        return status, answer

    def predict(
        self, url: str, rows: list[list[float]], version: str | None = None
    ) -> dict[str, Any]:
        return self.ask(url, rows, version)[1]

    # -- the story -------------------------------------------------------------------

    def run(self) -> bool:
        for model in ("iris", "wine"):
            self.clean(model)
        shutil.copytree(EXAMPLES / "iris" / "data", self.work / "iris" / "data")
        spec = (EXAMPLES / "iris" / "iris.toml").read_text()
        spec = spec.replace("auto_deploy = false ", "auto_deploy = true  ", 1)
        (self.work / "iris" / "iris.toml").write_text(spec)
        (self.work / "wine").mkdir()
        shutil.copy(EXAMPLES / "wine" / "wine.toml", self.work / "wine" / "wine.toml")
        print(f"(working in {self.work}: iris/iris.toml with auto_deploy = true, its data)")
        self.iris()
        self.wine()
        self.router()
        self.overview()
        failed = [what for what, ok in self.checks if not ok]
        print(f"\n{len(self.checks) - len(failed)}/{len(self.checks)} checks passed")
        return not failed

    def iris(self) -> None:
        self.step(
            "1. iris 1.0.0: train, register, validate (measured on the evaluation set), deploy"
        )
        self.train("iris", "models/iris-1.0.0")
        self.nomadml(
            "model", "register", "models/iris-1.0.0", "--name", "iris", "--version", "1.0.0"
        )
        out = self.nomadml("model", "validate", "iris", "1.0.0", "--spec", "iris/iris.toml")
        self.check("validation measured 1.0.0 itself", "measured = True" in out)
        out = self.nomadml("deploy", "iris/iris.toml", "--version", "1.0.0")
        self.check("1.0.0 is the production version", "iris 1.0.0 -> production" in out)

        self.step("2. the scheduled retraining, forced now with new data: a canary under traffic")
        self.nomadml("schedule-retraining", "iris/iris.toml")
        train = self.work / "iris" / "data" / "train.csv"
        rows = train.read_text().splitlines()
        train.write_text("\n".join(rows + rows[1:31]) + "\n")
        print("(new data: 30 more rows in iris/data/train.csv)")
        status, log = self.force_retraining("iris-retrain", traffic_line="iris-v1")
        self.check("the retraining run completed", status == "complete")
        self.check("it made 1.1.0, which passed its gates and was promoted",
                   "deploy of 1.1.0: succeeded" in log)  # fmt: skip
        report = self.traffic
        self.check(f"traffic during the rollout: {report.ok} ok, {report.failed} failed",
                   report.failed == 0 and report.ok > 0)  # fmt: skip

        self.step("3. data that fails its checks: the run stops, nothing is registered")
        good = train.read_text()
        broken = good.splitlines()
        broken[1] = ",".join(["", "3.0", "99.0", "1.0", "setosa"])
        train.write_text("\n".join(broken) + "\n")
        print("(iris/data/train.csv: one row with a missing value and a petal of 99 cm)")
        status, log = self.force_retraining("iris-retrain")
        self.check("the run failed on its data checks",
                   status == "failed" and "data check failed" in log)  # fmt: skip
        self.check("nothing new registered", sorted(self.stages("iris")) == ["1.0.0", "1.1.0"])
        train.write_text(good)

        self.step("4. a worse candidate, rejected by the same-data comparison")
        self.train("iris", "models/iris-worse", "--c", "0.001")
        self.nomadml(
            "model", "register", "models/iris-worse", "--name", "iris", "--version", "1.2.0"
        )
        out = self.nomadml(
            "model", "validate", "iris", "1.2.0", "--spec", "iris/iris.toml", expect=7
        )
        self.check("1.2.0 rejected on measured accuracy", "failed: accuracy" in out)
        self.nomadml("deploy", "iris/iris.toml", "--version", "1.2.0", expect=2)

        self.step("5. a release that fails in production: half its answers are errors")
        self.train("iris", "models/iris-faulty", "--c", "0.7", "--error-rate", "0.5")
        self.nomadml(
            "model", "register", "models/iris-faulty", "--name", "iris", "--version", "1.3.0"
        )
        self.nomadml("model", "validate", "iris", "1.3.0", "--spec", "iris/iris.toml")
        with Traffic(self.api, "iris-v1", rate_per_s=15, max_seconds=300) as load:
            out = self.nomadml("deploy", "iris/iris.toml", "--version", "1.3.0", expect=6)
        self.check("its gate failed and Nomad rolled back", "gate fail" in out)
        kept = load.report
        self.check(
            f"1.1.0 kept serving: {kept.by_version['1.1.0']} answers, "
            f"{kept.failed_by_version['1.1.0']} failures",
            kept.failed_by_version["1.1.0"] == 0 and kept.by_version["1.1.0"] > 0,
        )
        # The rollout as one page to attach to the incident (self-contained HTML).
        page = self.work / "reports" / "iris-v1-1.3.0.html"
        page.parent.mkdir(exist_ok=True)
        self.nomadml("report", "iris-v1", "--output", "reports/iris-v1-1.3.0.html")
        text = page.read_text() if page.is_file() else ""
        self.check(
            f"the report page {page.name} shows the failed look and 1.3.0 rejected",
            "verdict: fail" in text and "rejected" in text,
        )

        self.step("6. a rollback to 1.0.0")
        self.nomadml("rollback", "iris-v1", "--to", "1.0.0")

        self.step("7. a new input schema is a new major: iris 2.0.0 beside iris-v1")
        self.train("iris", "models/iris-2.0.0", "--features", "petal_length,petal_width")
        self.nomadml(
            "model", "register", "models/iris-2.0.0", "--name", "iris", "--version", "2.0.0"
        )
        self.nomadml("model", "validate", "iris", "2.0.0", "--spec", "iris/iris.toml")
        self.nomadml("deploy", "iris/iris.toml", "--version", "2.0.0")

    def wine(self) -> None:
        self.step("8. wine: gradient-boosted trees in ONNX, served by onnxruntime in its own image")
        code, out = self.sh("python3 -m examples.wine.images",
                            [sys.executable, "-m", "examples.wine.images"])  # fmt: skip
        image = out.strip().splitlines()[-1] if out.strip() else ""
        self.check("the wine serving image is built and pinned", code == 0 and "@sha256:" in image)
        self.train("wine", "models/wine-1.0.0")
        self.nomadml("conformance", "wine/wine.toml", "models/wine-1.0.0", "--serving-image", image)
        self.nomadml(
            "model", "register", "models/wine-1.0.0", "--name", "wine", "--version", "1.0.0"
        )
        self.nomadml("model", "validate", "wine", "1.0.0", "--spec", "wine/wine.toml")
        out = self.nomadml(
            "deploy", "wine/wine.toml", "--version", "1.0.0", "--serving-image", image
        )
        self.check("wine 1.0.0 is the production version", "wine 1.0.0 -> production" in out)
        self.train("wine", "models/wine-worse", "--n-estimators", "1", "--learning-rate", "0.01")
        self.nomadml(
            "model", "register", "models/wine-worse", "--name", "wine", "--version", "1.1.0"
        )
        self.nomadml("model", "validate", "wine", "1.1.0", "--spec", "wine/wine.toml", expect=7)

    def router(self) -> None:
        self.step("9. one address for every version: the model's router")
        out = self.nomadml("router", "up", "iris/iris.toml")
        routers = [w for w in out.split() if w.startswith("http://")]
        if not self.check(f"iris has a router: {routers}", bool(routers)):
            return
        url = routers[0]
        for header, rows, version in (("1", IRIS_ROWS, "1.0.0"), ("2", PETAL_ROWS, "2.0.0"),
                                      (None, PETAL_ROWS, "2.0.0")):  # fmt: skip
            answer = self.predict(url, rows, header)
            said = f"X-Model-Version: {header}" if header else "no version (the newest major)"
            self.check(f"router, {said}: answered by {version}", answer.get("version") == version)
        status, _ = self.ask(url, IRIS_ROWS, "7")
        self.check(f"router, X-Model-Version: 7 (no such version): HTTP {status}", status == 404)
        self.release(url)

    def release(self, url: str) -> None:
        """iris 1.4.0 released through the router while clients ask line 1 there: a
        shadow phase (every request of the line mirrored, answers compared and
        discarded), then canary steps of 50 % and 100 % with the gates at each."""
        spec = (self.work / "iris" / "iris.toml").read_text()
        for old, new in RELEASE.items():
            spec = spec.replace(old, new, 1)
        (self.work / "iris" / "release.toml").write_text(spec)
        print("(iris/release.toml: iris/iris.toml with, in [update] and after it:)")
        self.show("\n".join(new.replace(old, "").strip() for old, new in RELEASE.items()))
        started = time.monotonic()
        # Weaker regularization: other probabilities than 1.0.0's, the same labels.
        self.train("iris", "models/iris-1.4.0", "--c", "0.5")
        self.nomadml(
            "model", "register", "models/iris-1.4.0", "--name", "iris", "--version", "1.4.0"
        )
        self.nomadml("model", "validate", "iris", "1.4.0", "--spec", "iris/release.toml")
        with RouterClients(url, "1", IRIS_ROWS) as clients:
            out = self.nomadml("deploy", "iris/release.toml", "--version", "1.4.0")
        self.check("1.4.0 passed its shadow phase, then its steps, and is the production version",
                   "iris 1.4.0 -> production" in out)  # fmt: skip
        out = self.nomadml("history", "iris-v1")
        verdict = re.search(r"shadow pass: agreed (\d+)/(\d+)", out)
        agreed = f"agreed {verdict[1]}/{verdict[2]}" if verdict else "no shadow verdict"
        self.check(f"history shows 1.4.0's shadow verdict: {agreed}",
                   verdict is not None and verdict[1] == verdict[2] != "0")  # fmt: skip
        served = Counter({v: n for (status, v), n in clients.answers.items() if status == 200})
        failed = sum(clients.answers.values()) - sum(served.values())
        self.check(
            f"clients through the router during the release: answered by {dict(served)}, "
            f"{failed} failed",
            failed == 0 and set(served) == {"1.0.0", "1.4.0"},
        )
        print(f"(the release took {time.monotonic() - started:.0f} s)")

    def overview(self) -> None:
        self.step("10. the registry's view, the lines, and a prediction from each")
        self.nomadml("model", "list", "iris")
        self.nomadml("model", "list", "wine")
        self.nomadml("status")
        self.nomadml("endpoints", "iris")
        # What would leave the nodes' volumes: versions no kept job version names.
        out = self.nomadml("volume", "prune", "iris-v1", "--dry-run")
        self.check("volume prune keeps what iris-v1 can still run", "keeping 1.0.0" in out)
        want = {
            "iris": {"1.0.0": "archived", "1.1.0": "archived", "1.2.0": "rejected",
                     "1.3.0": "rejected", "1.4.0": "production", "2.0.0": "production"},
            "wine": {"1.0.0": "production", "1.1.0": "rejected"},
        }  # fmt: skip
        for model, stages in want.items():
            self.check(f"registry: {model} {stages}", self.stages(model) == stages)
        asks = (("iris-v1", IRIS_ROWS, "1.4.0"), ("iris-v2", PETAL_ROWS, "2.0.0"),
                ("wine-v1", [WINE_ROW], "1.0.0"))  # fmt: skip
        for line, rows, version in asks:
            live = [e for e in endpoints(self.api, line) if e.healthy]
            if not self.check(f"{line} has live endpoints", bool(live)):
                continue
            answer = self.predict(live[0].url, rows)
            self.check(f"{line} answers with {version}", answer.get("version") == version)


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="nomadml-demo-"))
    try:
        ok = Demo(NomadAPI(NomadSettings.from_env()), work).run()
    except NomadMLError as err:
        print(f"demo: {err}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
