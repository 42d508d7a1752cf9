"""The guard watching the predicted labels after a promotion, on the real stack: 1.1.0
predicts like 1.0.0 for each allocation's first requests (its canary passes the judge and
the sequential prediction gate), then answers "setosa" for every row - no error, no delay,
only the predictions shift (inputs that break later). `nomadml guard LINE` tests the
labels since the promotion against stable's counts from the rollout and rolls the line
back; no client request fails at any point.

Every figure is printed so the run log records it (pytest -s, or on failure)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from support.router import RouterLoad, router_up

from nomadml.adapters import rollout_records as history
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.decide import Action
from nomadml.engine.result import RolloutResult
from nomadml.engine.traffic import Traffic
from nomadml.errors import ExitCode

EVAL = Path(__file__).resolve().parents[2] / "examples" / "iris" / "data" / "eval.csv"
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
RATE = 10  # requests per second, 45 predictions each (15 per species)
GOOD_FOR = 300  # requests each allocation of 1.1.0 answers as trained
SPEC = {
    'window = "20s"': 'window = "4s"',
    'interval = "5s"': 'interval = "2s"\nsource = "direct"',
    "[validation]": (
        "[gates.judge]\nenabled = true\nalpha = 0.01\nerror_increase = 0.2\n"
        'latency = false\ndeadline = "3m"\n\n'
        '[gates.predictions]\nenabled = true\ntest = "sequential"\nalpha = 0.001\n'
        "min_predictions = 200\n\n"
        '[guard]\nbake = "4m"\ncompare = "judge"\non_regression = "rollback"\n\n'
        "[validation]"
    ),
}


def _guard(line: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """`nomadml guard LINE`, as an operator runs it; with how long it took."""
    started = time.monotonic()
    guarded = subprocess.run(
        [sys.executable, "-m", "nomadml", "guard", line],
        capture_output=True,
        text=True,
        timeout=400,
        env=dict(os.environ),
    )
    return guarded, time.monotonic() - started


def _rows() -> list[list[float]]:
    with EVAL.open(newline="") as f:
        return [[float(r[k]) for k in FEATURES] for r in csv.DictReader(f)]


def test_a_version_whose_predictions_shift_after_its_promotion_is_rolled_back(
    roll: Callable[..., RolloutResult],
    nomad: NomadAPI,
    make_spec: Callable[..., Path],
    ship: Callable[..., str],
    model_name: str,
) -> None:
    spec, line = make_spec(SPEC), f"{model_name}-v1"
    assert roll(spec, "1.0.0", ship("1.0.0")).action is Action.SUCCEEDED
    stuck = ship("1.1.0", serving={"stuck_after": GOOD_FOR})
    rows = _rows()
    with Traffic(nomad, line, rate_per_s=RATE, max_seconds=420, instances=rows) as traffic:
        promoted = roll(spec, "1.1.0", stuck)
        assert promoted.action is Action.SUCCEEDED, promoted.reason
        guarded, took = _guard(line)
    report = traffic.report
    deciding = promoted.gates[-1]
    print(f"guard: {took:.1f} s; traffic: {report.summary()}")
    print(f"deciding look's predictions: {json.dumps(deciding.get('predictions'))}")
    print(guarded.stdout[-3000:])
    assert deciding["verdict"] == "pass" and deciding["predictions"]["test"] == "sequential"
    assert guarded.returncode == int(ExitCode.ROLLED_BACK), guarded.stdout + guarded.stderr
    assert "guard rolled-back — regression: predictions shifted" in guarded.stdout
    assert "look every 2 s; predicted labels too)" in guarded.stdout  # said when it starts

    assert (nomad.job(line) or {})["Meta"]["nomadml.version"] == "1.0.0"
    assert report.failed == 0, report.summary()  # shifted, never failing
    record = history.records(nomad, line)[int(promoted.job_version or 0)]["guard"]
    assert record["status"] == "rolled-back", record
    base = record["baseline"]["predictions"]
    assert sorted(base["labels"]) == ["setosa", "versicolor", "virginica"]
    shown = record["evidence"]["predictions"]
    print(f"baseline: {base}; evidence: {shown}; looks {record['state']['looks']}")
    assert shown["shifted"] and shown["log_e"] >= shown["log_threshold"]
    assert record["evidence"]["signals"]["errors"]["bad"] == 0  # the labels alone


def test_through_the_router_the_labels_the_router_counted_are_the_baseline(
    roll: Callable[..., RolloutResult],
    nomad: NomadAPI,
    make_spec: Callable[..., Path],
    ship: Callable[..., str],
    model_name: str,
) -> None:
    """The rollout judged at the router (canary steps 50/100, the router's counts of the
    X-Nomadml-Predictions header); after the promotion the guard reads the router's counts
    too (labels decoded on both sides), and rolls the stuck version back through the router."""
    routed = {
        **SPEC,
        'interval = "5s"': 'interval = "2s"',
        "auto_revert = true": "auto_revert = true\nsteps = [50, 100]",
    }
    spec, line = make_spec(routed), f"{model_name}-v1"
    assert roll(spec, "1.0.0", ship("1.0.0")).action is Action.SUCCEEDED
    router = router_up(spec)
    stuck = ship("1.1.0", serving={"stuck_after": GOOD_FOR})
    with RouterLoad(router, rows={"instances": _rows()}) as load:
        promoted = roll(spec, "1.1.0", stuck)
        assert promoted.action is Action.SUCCEEDED, promoted.reason
        guarded, took = _guard(line)
    deciding = [g for g in promoted.gates if g.get("predictions")][-1]
    print(f"guard: {took:.1f} s; answers through the router: {dict(load.answers)}")
    print(f"deciding look ({deciding.get('source')}): {json.dumps(deciding['predictions'])}")
    print(guarded.stdout[-2000:])
    assert deciding["source"] == "router" and deciding["verdict"] == "pass"
    assert guarded.returncode == int(ExitCode.ROLLED_BACK), guarded.stdout + guarded.stderr
    assert "guard rolled-back — regression: predictions shifted" in guarded.stdout
    assert "look every 2 s; predicted labels too)" in guarded.stdout  # said when it starts
    assert sum(n for (status, _), n in load.answers.items() if status != 200) == 0, load.answers
    record = history.records(nomad, line)[int(promoted.job_version or 0)]["guard"]
    base = record["baseline"]["predictions"]
    assert sorted(base["labels"]) == ["setosa", "versicolor", "virginica"], base
    print(f"baseline: {base}; evidence: {record['evidence']['predictions']}")
