"""The model-level gate on the real stack: a canary that answers without errors and
fast enough, but whose predicted labels are distributed unlike stable's, is failed on
the prediction counters the reference server exposes (chi-squared test), and rolled
back with stable serving throughout; a retrained version predicting alike passes."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.decide import Action
from nomadml.engine.result import RolloutResult
from nomadml.engine.traffic import Traffic

EVAL = Path(__file__).resolve().parents[2] / "examples" / "iris" / "data" / "eval.csv"
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
# Predictions by label from the servers themselves (gates.source direct), 200 a side.
PREDICTION_TABLE = "[gates.predictions]\nenabled = true\nmin_predictions = 200\n\n"
PREDICTIONS_GATE = {"[gates]\n": PREDICTION_TABLE + '[gates]\nsource = "direct"\n'}


def _rows() -> list[list[float]]:
    """Every evaluation row in each request: 45 predictions, 15 of each species."""
    with EVAL.open(newline="") as f:
        return [[float(r[k]) for k in FEATURES] for r in csv.DictReader(f)]


def test_a_canary_whose_predictions_shift_is_rolled_back_and_a_like_one_passes(
    nomad: NomadAPI,
    roll: Callable[..., RolloutResult],
    ship: Callable[..., str],
    stable_line: Callable[..., tuple[Path, str]],
) -> None:
    spec, job_id = stable_line(PREDICTIONS_GATE, gates="fast")
    rows = _rows()

    # C = 0.001 predicts 27 virginica, 15 setosa, 3 versicolor for the same 45 rows.
    with Traffic(nomad, job_id, rate_per_s=10, max_seconds=180, instances=rows) as traffic:
        result = roll(spec, "1.1.0", ship("1.1.0", c=0.001))
    assert result.action is Action.ROLLED_BACK, result.reason
    assert "predictions shifted against stable (chi2" in result.reason, result.reason
    failing = result.gates[-1]
    assert failing["verdict"] == "fail" and failing["values"]["canary_error_rate"] == 0
    assert failing["values"]["prediction_p_value"] < 0.001
    assert traffic.report.failed == 0, traffic.report  # nobody saw an error

    # A version trained again alike predicts alike: it passes every window.
    with Traffic(nomad, job_id, rate_per_s=10, max_seconds=180, instances=rows):
        result = roll(spec, "1.2.0", ship("1.2.0"))
    assert result.action is Action.SUCCEEDED, result.reason
    passing = [g for g in result.gates if g["verdict"] == "pass"]
    assert passing and all(g["values"]["prediction_p_value"] >= 0.001 for g in passing)
    assert passing[-1]["values"]["canary_predictions"] >= 200
