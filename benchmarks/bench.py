"""nomadml's benchmarks: every figure is a ratio against a baseline measured in the
same run on the same machine, with the median and spread over repeated runs.
Run through benchmarks/run (which brings the local stack up first)."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nomadml.bundled import bootstrap  # noqa: E402
from nomadml.core.jobs import Release, render_service  # noqa: E402
from nomadml.core.spec import load_spec, parse_spec  # noqa: E402

VENV_BIN = ROOT / ".venv" / "bin"
NOMAD = Path.home() / ".cache" / "nomadml" / "nomad-1.10.5" / "nomad"
RESULTS: list[dict[str, Any]] = []


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def interleaved(
    contenders: Mapping[str, Callable[[], object]],
    repeat: int,
    before_each: Callable[[], object] = lambda: None,
) -> dict[str, list[float]]:
    """Seconds per run of each contender, run round by round in an order that rotates
    each round, so a slow spell of the machine and any order effect hit all alike."""
    names = list(contenders)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(repeat):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            before_each()
            times[name] += timed(contenders[name], 1)
    return times


def report(
    name: str,
    ours: list[float],
    base: list[float],
    baseline: str,
    target: str,
    met: Callable[[float], bool] | None,
    unit: str = "s",
) -> None:
    """Print and keep one figure; `met` None: a reference point, with no target."""
    m_ours, m_base = statistics.median(ours), statistics.median(base)
    ratio = m_ours / m_base if m_base else float("inf")
    row = {
        "figure": name,
        "ours_median": m_ours,
        "ours_spread": [min(ours), max(ours)],
        "baseline": baseline,
        "baseline_median": m_base,
        "baseline_spread": [min(base), max(base)],
        "ratio": ratio,
        "target": target,
        "met": None if met is None else met(ratio),
        "runs": len(ours),
        "unit": unit,
    }
    RESULTS.append(row)
    print(
        f"{name}: ours {m_ours:.4g} {unit} [{min(ours):.4g}..{max(ours):.4g}] vs {baseline} "
        f"{m_base:.4g} {unit} [{min(base):.4g}..{max(base):.4g}] -> ratio {ratio:.3f} "
        + (
            f"(target {target}: {'met' if row['met'] else 'NOT met'})"
            if met is not None
            else "(a reference point, no target)"
        ),
        flush=True,
    )


def cli_env() -> dict[str, str]:
    """The nomad CLI's environment: it takes one address where nomadml takes a list
    (the cluster profile's NOMAD_ADDR lists all servers), so it gets the first."""
    return {**os.environ, "NOMAD_ADDR": os.environ.get("NOMAD_ADDR", "").split(",")[0]}


def use_cluster() -> None:
    """Point every figure at the cluster profile (3 servers, 3 clients, mTLS, ACLs):
    the environment `scripts/stack env --cluster` prints (NOMAD_ADDR lists the servers)."""
    import shlex

    printed = subprocess.run(
        [str(ROOT / "scripts" / "stack"), "env", "--cluster"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for line in printed.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        if name.startswith("NOMAD_"):
            os.environ[name] = shlex.split(value)[0] if value else ""


def where() -> str:
    """What the figures ran against, for their names: nothing for the single dev agent."""
    servers = len(os.environ.get("NOMAD_ADDR", "x").split(","))
    return f", {servers}-server cluster, mTLS + ACL" if servers > 1 else ""


def run(*cmd: str) -> None:
    subprocess.run(
        cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=cli_env()
    )


# -- 1. CLI start ----------------------------------------------------------------------


def bench_cli(repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        installed = install_plainly(Path(tmp))
        python = str(Path(installed).with_name("python"))
        commands = {
            "nomad version": [str(NOMAD), "version"],
            "CLI start: nomadml --version": [str(VENV_BIN / "nomadml"), "--version"],
            "CLI start: nomadml status --help": [str(VENV_BIN / "nomadml"), "status", "--help"],
            "CLI start: nomadml status --help, installed as a package (not editable)": [
                installed,
                "status",
                "--help",
            ],
            # The floor of any click CLI (same plain install): the interpreter, then click.
            "CLI floor: python -c pass": [python, "-c", "pass"],
            "CLI floor: python -c 'import click'": [python, "-c", "import click"],
        }
        for argv in commands.values():
            run(*argv)  # compiled, cached and in the page cache before timing
        times = interleaved(
            {name: functools.partial(run, *argv) for name, argv in commands.items()}, repeat
        )
    base = times.pop("nomad version")
    for name, ours in times.items():
        floor = name.startswith("CLI floor")
        report(
            name,
            ours,
            base,
            "nomad version",
            "-" if floor else "<= 1.0",
            None if floor else (lambda r: r <= 1.0),
        )


def install_plainly(where: Path) -> str:
    """nomadml installed the way a wheel installs it (package files in site-packages,
    pip's console script), beside the dev venv's dependencies; returns the script.

    The dev venv's editable install adds an import hook that every start pays for
    (~10 ms: it imports pathlib and importlib.util); operators do not have it."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where / "venv")], check=True)
    site = where / "venv" / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    site = site / "site-packages"
    shutil.copytree(
        ROOT / "nomadml", site / "nomadml", ignore=shutil.ignore_patterns("__pycache__")
    )
    deps = ROOT / ".venv" / "lib" / site.parent.name / "site-packages"
    # A path in a .pth is only appended to sys.path: the dev venv's own .pth hooks stay off.
    (site / "dev-dependencies.pth").write_text(f"{deps}\n")
    script = where / "venv" / "bin" / "nomadml"
    script.write_text(
        f"#!{where / 'venv' / 'bin' / 'python'}\n"
        "import re\nimport sys\nfrom nomadml.entry import run\n"
        "if __name__ == '__main__':\n"
        "    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n"
        "    sys.exit(run())\n"
    )
    script.chmod(0o755)
    return str(script)


# -- 7. Render -------------------------------------------------------------------------


def bench_render(repeat: int) -> None:
    spec = load_spec(ROOT / "examples" / "iris" / "iris.toml")
    release = Release(
        "1.2.0",
        "127.0.0.1:5000/nomadml/models/iris@sha256:" + "a" * 64,
        "127.0.0.1:5000/nomadml/serve@sha256:" + "b" * 64,
    )
    n = 2000
    render_service(spec, release)  # compile once, as a long-running process would
    times = timed(lambda: [render_service(spec, release) for _ in range(n)], repeat)
    rates = [n / t for t in times]
    # Baseline: 1,000 renders per second, the target itself (a rate, higher is better).
    report(
        "Render: specs rendered per second (shipped template)",
        rates,
        [1000.0] * len(rates),
        "target rate 1000/s",
        ">= 1.0",
        lambda r: r >= 1.0,
        unit="renders/s",
    )


# -- 2./3. Deploy overhead and watch cost ----------------------------------------------


def bench_deploy(repeat: int) -> None:
    from nomadml.adapters.images import build_serving_image
    from nomadml.adapters.nomad_api import NomadAPI
    from nomadml.core.jobs import render_service
    from nomadml.engine.deploy import deploy
    from nomadml.engine.prepare import prepare
    from nomadml.settings import NomadSettings

    text = (ROOT / "examples" / "iris" / "iris.toml").read_text()
    edits = {
        "count = 2": "count = 1",
        "canary = 1": "canary = 0",
        "[gates]\n": "[gates]\nanalysis = false\n",
        'min_healthy_time = "3s"': 'min_healthy_time = "1s"',
    }
    for old, new in edits.items():
        text = text.replace(old, new, 1)
    api = NomadAPI(NomadSettings.from_env())
    serving = build_serving_image().pinned
    images = {}
    for name in ("bench-nml", "bench-cli"):
        spec = parse_spec(text.replace('name = "iris"', f'name = "{name}"', 1), name)
        images[name] = [ship(name, v, c) for v, c in (("1.0.0", 1.0), ("1.0.1", 0.5))]
    ours: list[float] = []
    base: list[float] = []
    try:
        for i in range(repeat + 1):
            version, image = ("1.0.0", 0) if i % 2 == 0 else ("1.0.1", 1)
            spec = parse_spec(text.replace('name = "iris"', 'name = "bench-nml"', 1), "nml")
            prepared = prepare(
                spec, version, model_image=images["bench-nml"][image], serving_image=serving
            )
            t = time.perf_counter()
            result = deploy(api, prepared)
            took = time.perf_counter() - t
            assert result.action.value == "succeeded", result.reason
            cspec = parse_spec(text.replace('name = "iris"', 'name = "bench-cli"', 1), "cli")
            hcl = render_service(cspec, Release(version, images["bench-cli"][image], serving))
            with tempfile.NamedTemporaryFile("w", suffix=".hcl", delete=False) as f:
                f.write(hcl)
            t = time.perf_counter()
            run(str(NOMAD), "job", "run", f.name)
            took_cli = time.perf_counter() - t
            os.unlink(f.name)
            if i == 0:
                continue  # first versions of both jobs: no update, not a "new version"
            ours.append(took)
            base.append(took_cli)
    finally:
        for job in ("bench-nml-v1", "bench-cli-v1"):
            api.stop_job(job, purge=True)
    report(
        f"Deploy a new version to successful (health gates only{where()})",
        ours,
        base,
        "nomad job run (monitors)",
        "<= 1.02",
        lambda r: r <= 1.02,
    )


def bench_watch(repeat: int) -> None:
    """Requests per minute over a rollout as operators run it: 2 allocations, 1 canary
    promoted by nomadml, 20 s min_healthy_time (about a minute of watching)."""
    from nomadml.adapters.images import build_serving_image
    from nomadml.adapters.nomad_api import NomadAPI
    from nomadml.engine.deploy import deploy
    from nomadml.engine.prepare import prepare
    from nomadml.settings import NomadSettings

    text = (ROOT / "examples" / "iris" / "iris.toml").read_text()
    for old, new in {
        "[gates]\n": "[gates]\nanalysis = false\n",
        'min_healthy_time = "3s"': 'min_healthy_time = "20s"',
        'name = "iris"': 'name = "bench-watch"',
    }.items():
        text = text.replace(old, new, 1)
    spec = parse_spec(text, "bench-watch")
    api = NomadAPI(NomadSettings.from_env())
    serving = build_serving_image().pinned
    versions = [(f"1.0.{k}", ship("bench-watch", f"1.0.{k}", 1.0 - k * 0.05)) for k in range(7)]
    per_min: dict[bool, list[float]] = {True: [], False: []}
    try:
        for k, (version, image) in enumerate(versions[: 2 * repeat + 1]):
            prepared = prepare(spec, version, model_image=image, serving_image=serving)
            stream = k % 2 == 1
            result = deploy(api, prepared, stream=stream)
            assert result.action.value == "succeeded", result.reason
            if k:  # the first version places without canaries
                # Requests from the watch's start to its verdict, per minute of the
                # whole deploy (planning and registering add a few tenths of a second).
                took = result.seconds
                per_min[stream].append(result.watch_calls / (took / 60))
                mode = "stream" if stream else "blocking"
                print(
                    f"  watch {version} ({mode}): {result.watch_calls} requests in {took:.0f} s",
                    flush=True,
                )
    finally:
        api.stop_job("bench-watch-v1", purge=True)
    for stream, name in ((True, "event stream"), (False, "blocking queries")):
        report(
            f"Watch cost, {name}: Nomad API requests per minute over a canary rollout{where()}",
            per_min[stream],
            [60.0] * len(per_min[stream]),
            "1-second poller (60/min)",
            "<= 0.1",
            lambda r: r <= 0.1,
            unit="req/min",
        )


def _wait_for(api: Any, path: str, done: Callable[[Any], bool], limit: float = 300) -> Any:
    """Block on Nomad (index queries, no polling delay) until `done(body)`; the body."""
    deadline, index = time.monotonic() + limit, 0
    while time.monotonic() < deadline:
        answer = api.get(path, index, wait=5)
        if done(answer.body):
            return answer.body
        index = max(answer.index, 1)
    raise AssertionError(f"{path}: not there within {limit:.0f} s")


def _has_deployment(status: str, first: int, last: int | None, deployments: Any) -> bool:
    """A deployment in `status` of a job version from `first` to `last` (None: any)."""
    return any(
        d["Status"] == status
        and d["JobVersion"] >= first
        and (last is None or d["JobVersion"] <= last)
        for d in deployments or []
    )


def _serving_only(api: Any, line: str, version: str, count: int, limit: float = 300) -> float:
    """Seconds until every live registration of `line` serves `version` (and `count` do)."""
    from nomadml.engine.endpoints import endpoints

    t = time.perf_counter()
    while time.perf_counter() - t < limit:
        live = [e for e in endpoints(api, line) if e.healthy]
        if len(live) >= count and all(e.version == version for e in live):
            return time.perf_counter() - t
        time.sleep(0.2)
    raise AssertionError(f"{line} never served {version} alone")


def bench_rollback(repeat: int) -> None:
    """6. Back to the previous version: nomadml vs Nomad's own means on the same job.

    a) after a promotion: `nomadml rollback` vs `nomad job revert` (Nomad re-runs the
       canary phase, issue #10882; the baseline promotes the moment canaries are
       healthy, a best case no operator matches);
    b) a failed canary: from the failure being decided (nomadml's gate, or Nomad
       marking the deployment failed) until the revert's deployment is successful;
       both go through Nomad's auto_revert, so parity is the expected result. (The
       bad canary never turned healthy, so it never took traffic in either case.)"""
    from nomadml.adapters.images import build_serving_image
    from nomadml.adapters.nomad_api import NomadAPI
    from nomadml.engine.deploy import deploy
    from nomadml.engine.prepare import prepare
    from nomadml.engine.rollback import rollback
    from nomadml.settings import NomadSettings

    text = (ROOT / "examples" / "iris" / "iris.toml").read_text()
    for old, new in {
        "[gates]\n": "[gates]\nanalysis = false\n",
        'healthy_deadline = "1m"': 'healthy_deadline = "20s"',
        'progress_deadline = "2m"': 'progress_deadline = "1m"',
    }.items():
        text = text.replace(old, new, 1)
    api = NomadAPI(NomadSettings.from_env())
    serving = build_serving_image().pinned
    lines = {"nml": "bench-rb-nml", "cli": "bench-rb-cli"}
    images = {k: [ship(n, v, 1.0) for v in ("1.0.0", "1.0.1")] for k, n in lines.items()}
    after: dict[str, list[float]] = {"nml": [], "cli": []}
    failed: dict[str, list[float]] = {"nml": [], "cli": []}

    def spec_of(kind: str, health: str = "/health") -> Any:
        t = text.replace('name = "iris"', f'name = "{lines[kind]}"', 1)
        return parse_spec(t.replace('health_path = "/health"', f'health_path = "{health}"'), kind)

    def up(kind: str, version: str, image: str, health: str = "/health") -> Any:
        prepared = prepare(spec_of(kind, health), version, model_image=image, serving_image=serving)
        return deploy(api, prepared, timeout_s=300)

    try:
        for _ in range(repeat):
            for kind in lines:
                for k, version in enumerate(("1.0.0", "1.0.1")):
                    assert up(kind, version, images[kind][k]).action.value == "succeeded"
            job = f"{lines['nml']}-v1"
            t = time.perf_counter()
            assert rollback(api, job, timeout_s=300).action.value == "succeeded"
            after["nml"].append(time.perf_counter() - t + _serving_only(api, job, "1.0.0", 2))

            job = f"{lines['cli']}-v1"
            target = next(
                v["Version"]
                for v in api.job_versions(job)
                if v["Meta"]["nomadml.version"] == "1.0.0"
            )
            t = time.perf_counter()
            run(str(NOMAD), "job", "revert", "-detach", job, str(target))
            # The operator promotes the moment the canaries are healthy.
            dep = _wait_for(
                api,
                f"job/{job}/deployment",
                lambda d: (
                    bool(d)
                    and d["Status"] == "running"
                    and d["TaskGroups"]["model"].get("HealthyAllocs", 0) >= 1
                ),
            )
            if not dep["TaskGroups"]["model"].get("Promoted"):
                api.promote(dep["ID"])
            after["cli"].append(time.perf_counter() - t + _serving_only(api, job, "1.0.0", 2))

            # b) A canary that never turns healthy (its check path answers 404).
            for kind in lines:
                assert up(kind, "1.0.1", images[kind][1]).action.value == "succeeded"
            bad = {k: ship(n, "1.0.2", 0.5) for k, n in lines.items()}
            result = up("nml", "1.0.2", bad["nml"], health="/nope")
            assert result.action.value == "rolled-back", result.reason
            failed["nml"].append(float(result.rollback_seconds or 0))
            job = f"{lines['cli']}-v1"
            hcl = render_service(spec_of("cli", "/nope"), Release("1.0.2", bad["cli"], serving))
            with tempfile.NamedTemporaryFile("w", suffix=".hcl", delete=False) as f:
                f.write(hcl)
            run(str(NOMAD), "job", "run", "-detach", f.name)
            os.unlink(f.name)
            bad_version = int((api.job(job) or {})["Version"])
            _wait_for(  # Nomad marks it failed, then reverts on its own
                api,
                f"job/{job}/deployments",
                functools.partial(_has_deployment, "failed", bad_version, bad_version),
            )
            t = time.perf_counter()
            _wait_for(
                api,
                f"job/{job}/deployments",
                functools.partial(_has_deployment, "successful", bad_version + 1, None),
            )
            failed["cli"].append(time.perf_counter() - t)
            for kind in lines:  # the next round starts from 1.0.0 again
                api.stop_job(f"{lines[kind]}-v1", purge=True)
    finally:
        for name in lines.values():
            with contextlib.suppress(Exception):
                api.stop_job(f"{name}-v1", purge=True)
    report(
        "Rollback after promotion: previous version alone serving",
        after["nml"],
        after["cli"],
        "nomad job revert + promotion the moment canaries are healthy",
        "< 1.0, no manual promotion",
        lambda r: r < 1.0,
    )
    report(
        "Rollback of a failed canary: failure decided -> Nomad's revert deployment successful",
        failed["nml"],
        failed["cli"],
        "Nomad auto_revert after it marks the deployment failed",
        "<= 1.0",
        lambda r: r <= 1.0,
    )


def ship(name: str, version: str, c: float) -> str:
    from examples.iris.train import train_iris
    from nomadml.adapters.images import build_model_image

    with tempfile.TemporaryDirectory() as tmp:
        train_iris(Path(tmp), c=c)
        bootstrap.write_manifest(Path(tmp), bootstrap.build_manifest(Path(tmp), name, version))
        return build_model_image(Path(tmp), name, version, labels={}).pinned


# -- 4. Fleet ----------------------------------------------------------------------------


def bench_fleet(sizes: list[int], workers: int) -> None:
    """Plan and submit N lines the way `nomadml deploy` does (Nomad's parse and
    validate, the owner check, the plan, then the register under the job's lock with
    check-and-set), N at a time, vs the CLI loop; rendering is done before timing,
    for both."""
    from nomadml.adapters.job_lock import register_exclusively
    from nomadml.adapters.nomad_api import NomadAPI
    from nomadml.engine.prepare import Prepared, plan
    from nomadml.settings import NomadSettings

    api = NomadAPI(NomadSettings.from_env())
    text = (
        (ROOT / "examples" / "iris" / "iris.toml")
        .read_text()
        .replace('datacenters = ["*"]', 'datacenters = ["bench-nowhere"]', 1)
    )  # plan + submit, place nothing
    image = "127.0.0.1:5000/nomadml/models/x@sha256:" + "c" * 64
    serving = "127.0.0.1:5000/nomadml/serve@sha256:" + "d" * 64
    for n in sizes:
        specs = [
            parse_spec(text.replace('name = "iris"', f'name = "fleet-{k:04d}"', 1), f"f{k}")
            for k in range(2 * n)
        ]
        release = Release("1.0.0", image, serving)
        prepared = [Prepared(s, release, render_service(s, release)) for s in specs]

        def one(release: Prepared) -> None:
            job, summary = plan(api, release)
            register_exclusively(
                api, job, enforce_index=summary.job_modify_index, source=release.hcl
            )

        def ours(batch: list[Prepared] = prepared[:n]) -> None:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(one, batch))

        def cli(batch: list[Prepared] = prepared[n:]) -> None:
            with tempfile.TemporaryDirectory() as tmp:
                for k, hcl in enumerate(p.hcl for p in batch):
                    path = Path(tmp) / f"{k}.hcl"
                    path.write_text(hcl)
                    subprocess.run(
                        [str(NOMAD), "job", "plan", str(path)],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        env=cli_env(),
                    )
                    run(str(NOMAD), "job", "run", "-detach", str(path))

        try:
            t_ours = timed(ours, 1)
            t_cli = timed(cli, 1)
        finally:
            for s in specs:
                with contextlib.suppress(Exception):
                    api.stop_job(f"{s.name}-v1", purge=True)
        report(
            f"Fleet: plan + submit {n} model lines ({workers} at a time{where()})",
            t_ours,
            t_cli,
            "sequential nomad job plan + job run -detach",
            "<= 0.2 (5x faster)",
            lambda r: r <= 0.2,
        )


FIGURES = ("cli", "render", "bootstrap", "deploy", "watch", "rollback", "fleet", "router")


def _positive(text: str) -> int:
    """A count of at least 1 (argparse puts the option's name before the message)."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def _positives(text: str) -> list[int]:
    return [_positive(word) for word in text.split(",")]


def _figures(text: str) -> set[str]:
    """Names from FIGURES: a misspelt one would run nothing and still exit 0."""
    names = set(text.split(","))
    unknown = sorted(names - set(FIGURES))
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown figure(s) {', '.join(unknown)}; known: {', '.join(FIGURES)}"
        )
    return names


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=_positive, default=5)
    parser.add_argument("--bootstrap-mib", type=_positive, default=1024)
    parser.add_argument("--fleet", type=_positives, default="50,200")
    parser.add_argument("--only", type=_figures, default=",".join(FIGURES))
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "latest.json"))
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="against the cluster profile (scripts/stack up --cluster), not the dev agent",
    )
    args = parser.parse_args()
    if args.cluster:
        use_cluster()
    only: set[str] = args.only
    if "cli" in only:
        bench_cli(max(args.repeat, 10))
    if "render" in only:
        bench_render(args.repeat)
    if "bootstrap" in only:
        from bench_bootstrap import bench_bootstrap

        bench_bootstrap(max(3, args.repeat // 2), args.bootstrap_mib, report, interleaved)
    if "deploy" in only:
        bench_deploy(max(3, args.repeat // 2))
    if "watch" in only:
        bench_watch(max(2, args.repeat // 2))
    if "rollback" in only:
        bench_rollback(max(1, args.repeat // 3))
    if "fleet" in only:
        bench_fleet(args.fleet, workers=8)
    if "router" in only:
        from bench_router import bench_router

        bench_router(ROOT, max(3, args.repeat // 2), report)
    write_results(Path(args.json), RESULTS)
    return 0


def write_results(path: Path, rows: list[dict[str, Any]]) -> None:
    """Replace this run's figures in ``path``, keeping (in order) those not re-run,
    so `--only` updates part of the record instead of erasing the rest."""
    fresh = {(row["figure"], row["baseline"]): row for row in rows}
    rerun = {row["figure"] for row in rows}
    kept: list[dict[str, Any]] = []
    if path.exists():
        for row in json.loads(path.read_text()):
            key = (row["figure"], row["baseline"])
            if key in fresh:
                kept.append(fresh.pop(key))
            elif row["figure"] not in rerun:
                kept.append(row)
    path.write_text(json.dumps([*kept, *fresh.values()], indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
