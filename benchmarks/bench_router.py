"""Router figures (issue 14), each against its baseline in the same run:

1. weight change -> the first request served under the new weights (baseline: the
   issue's 2 s goal);
2. the router's cost per request: p50 through the router vs straight to a server
   (goal: at most +1 ms on loopback);
3. rollback by routing: from the decision (weight 0) to the last request the bad
   version answers, vs Nomad failing and reverting the same canary (the last answer
   from the canary's own address).

Run by `benchmarks/run --only router` (it brings the stack up)."""

from __future__ import annotations

import json
import statistics
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROWS = json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2]]}).encode()


def _ask(url: str, version: str | None = None) -> str:
    headers = {"Content-Type": "application/json"}
    if version:
        headers["X-Model-Version"] = version
    request = urllib.request.Request(url + "/predict", data=ROWS, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return str(json.load(response).get("version"))
    except (urllib.error.URLError, OSError):
        return "none"


def _line(root: Path, name: str) -> tuple[Any, Path, str]:
    """A line serving 1.0.0 x2 with a healthy 1.1.0 canary waiting, and its router."""
    from examples.iris.train import train_iris
    from nomadml import __version__
    from nomadml.adapters.image_registry import resolve_digest
    from nomadml.adapters.images import build_model_image, build_serving_image
    from nomadml.adapters.nomad_api import NomadAPI
    from nomadml.bundled.bootstrap import build_manifest, write_manifest
    from nomadml.core.spec import load_spec
    from nomadml.engine import router
    from nomadml.engine.deploy import deploy
    from nomadml.engine.prepare import prepare
    from nomadml.settings import NomadSettings

    api = NomadAPI(NomadSettings.from_env())
    text = (root / "examples" / "iris" / "iris.toml").read_text()
    text = text.replace('name = "iris"', f'name = "{name}"', 1)
    text = text.replace("[gates]\n", "[gates]\nanalysis = false\n", 1)
    spec_path = Path(tempfile.mkdtemp()) / "spec.toml"
    spec_path.write_text(text)
    spec = load_spec(spec_path)
    serving = build_serving_image().pinned
    for version, c, no_promote in (("1.0.0", 1.0, False), ("1.1.0", 0.5, True)):
        with tempfile.TemporaryDirectory() as tmp:
            train_iris(Path(tmp), c=c)
            write_manifest(Path(tmp), build_manifest(Path(tmp), name, version))
            image = build_model_image(Path(tmp), name, version, labels={}).pinned
        prepared = prepare(spec, version, model_image=image, serving_image=serving)
        result = deploy(api, prepared, no_promote=no_promote, timeout_s=240)
        assert result.action.value in ("succeeded", "await-promotion"), result.reason
    image = resolve_digest(f"127.0.0.1:5000/nomadml/router:{__version__}")
    state = router.up(api, spec, image, count=1)
    return api, spec_path, state.addresses[0]


def bench_router(root: Path, repeat: int, report: Any) -> None:
    from nomadml.core.routing import Line, Split
    from nomadml.engine import router

    name = "bench-router"
    api, _, url = _line(root, name)
    line = f"{name}-v1"
    try:
        # 1. weight change -> first request under the new weights.
        changes = []
        for i in range(repeat * 2):
            target = "1.1.0" if i % 2 == 0 else "1.0.0"
            other = "1.0.0" if target == "1.1.0" else "1.1.0"
            split = (Split(target, 100), Split(other, 0))
            t = time.perf_counter()
            router.set_line(api, name, Line(line, 1, split))
            while _ask(url) != target:
                pass
            changes.append(time.perf_counter() - t)
        report(
            "Router: weight change -> first request served under the new weights",
            changes,
            [2.0],
            "the issue's goal, 2 s",
            "<= 1.0",
            lambda r: r <= 1.0,
        )

        # 2. the router's cost per request, interleaved with direct requests.
        direct_url = next(
            f"http://{r['Address']}:{r['Port']}"
            for r in api.job_services(line)
            if "version=1.0.0" in (r.get("Tags") or [])
        )
        through, direct = [], []
        for _ in range(500):
            t = time.perf_counter()
            _ask(url, "1.0.0")
            through.append(time.perf_counter() - t)
            t = time.perf_counter()
            _ask(direct_url)
            direct.append(time.perf_counter() - t)
        extra_ms = (statistics.median(through) - statistics.median(direct)) * 1000
        print(f"router overhead p50: +{extra_ms:.2f} ms", flush=True)
        report(
            "Router: p50 latency of one prediction through the router (500 interleaved)",
            through,
            direct,
            "the same request straight to a server",
            "ours - baseline <= +1 ms",
            lambda r: (r - 1) * statistics.median(direct) * 1000 <= 1.0,
        )

        # 3. rollback by routing: decision -> the last answer from the bad version.
        router.set_line(api, name, Line(line, 1, (Split("1.0.0", 50), Split("1.1.0", 50))))
        while _ask(url) != "1.1.0":
            pass
        # Requests flow from a thread all along: set_line returns only once the router
        # serves the new table, so answers are timed while it runs, not after.
        answers: list[tuple[float, str]] = []
        stop = threading.Event()

        def client() -> None:
            while not stop.is_set():
                version = _ask(url)
                answers.append((time.perf_counter(), version))

        flowing = threading.Thread(target=client, daemon=True)
        flowing.start()
        while not any(v == "1.1.0" for _, v in answers):
            pass
        t = time.perf_counter()
        router.set_line(api, name, Line(line, 1, (Split("1.0.0", 100), Split("1.1.0", 0))))
        while time.perf_counter() - t < 5:
            stop.wait(0.1)
        stop.set()
        flowing.join()
        last = max((at - t for at, v in answers if v == "1.1.0" and at > t), default=0.0)
        canary = next(
            f"http://{r['Address']}:{r['Port']}"
            for r in api.job_services(line)
            if "version=1.1.0" in (r.get("Tags") or [])
        )
        dep = api.latest_deployment(line) or {}
        t = time.perf_counter()
        api.fail_deployment(dep["ID"])
        revert = 0.0
        while time.perf_counter() - t < 120:
            if _ask(canary) == "1.1.0":
                revert = time.perf_counter() - t
            elif revert and time.perf_counter() - t - revert > 5:
                break
        report(
            "Rollback by routing: decision -> last request answered by the bad version",
            [last],
            [revert],
            "Nomad failing and reverting the canary (its last answer)",
            "<= 1 s absolute",
            lambda r: r * revert <= 1.0,
        )
    finally:
        for job in (f"{name}-router", f"{name}-v1"):
            api.stop_job(job, purge=True)
        api.request("DELETE", f"var/nomadml/routes/{name}")
