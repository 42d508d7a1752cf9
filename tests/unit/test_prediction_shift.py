"""The model-level signal: canary vs stable predicted-label distributions (pure)."""

from __future__ import annotations

import math

import pytest

from nomadml.core.gates import GateConfig, WindowStats, evaluate
from nomadml.core.metrics import MetricNames, delta, merge, parse, snapshot
from nomadml.core.prediction_shift import (
    PredictionCheck,
    chi2_homogeneity,
    chi2_survival,
    compare,
    psi,
)

CHI2 = PredictionCheck(enabled=True, test="chi2", alpha=0.001, max_psi=0.25, min_predictions=50)
PSI = PredictionCheck(enabled=True, test="psi", alpha=0.001, max_psi=0.25, min_predictions=50)


@pytest.mark.parametrize(
    ("x", "df", "p"),
    [
        # Reference values of the chi-squared survival function (scipy.stats.chi2.sf).
        (0.5, 1, 0.47950012218695337),
        (3.84, 1, 0.05004352124870519),
        (7.81, 3, 0.05010605635000589),
        (10.0, 3, 0.01856613546304325),
        (30.0, 20, 0.06985366069940986),
        (50.0, 2, 1.3887943864964e-11),
        (200.0, 10, 1.6139305336977317e-37),
        (0.0, 4, 1.0),
    ],
)
def test_chi2_survival_matches_reference_values(x: float, df: int, p: float) -> None:
    assert math.isclose(chi2_survival(x, df), p, rel_tol=1e-9)


def test_chi2_survival_refuses_no_degrees_of_freedom() -> None:
    with pytest.raises(ValueError, match="degrees of freedom"):
        chi2_survival(1.0, 0)


def test_homogeneity_statistic_by_hand() -> None:
    # 2 x 2: canary 30/10, stable 20/20; expected canary 25/15, stable 25/15.
    statistic, df = chi2_homogeneity({"a": 30, "b": 10}, {"a": 20, "b": 20})
    by_hand = 25 / 25 + 25 / 15 + 25 / 25 + 25 / 15
    assert df == 1 and math.isclose(statistic, by_hand)


@pytest.mark.parametrize(
    ("canary", "stable", "check", "shifted", "enough"),
    [
        # Same shares: no shift, whatever the test.
        ({"a": 150, "b": 150, "c": 150}, {"a": 50, "b": 50, "c": 50}, CHI2, False, True),
        ({"a": 150, "b": 150, "c": 150}, {"a": 50, "b": 50, "c": 50}, PSI, False, True),
        # The iris canary of the stack test: 27/15/3 against 15/15/15, ten requests each.
        ({"v": 270, "s": 150, "c": 30}, {"v": 150, "s": 150, "c": 150}, CHI2, True, True),
        ({"v": 270, "s": 150, "c": 30}, {"v": 150, "s": 150, "c": 150}, PSI, True, True),
        # A label only the canary predicts: finite PSI, a shift.
        ({"a": 100, "new": 100}, {"a": 200}, PSI, True, True),
        ({"a": 100, "new": 100}, {"a": 200}, CHI2, True, True),
        # Too few predictions on a side: never a shift, not enough.
        ({"v": 27, "s": 15, "c": 3}, {"v": 15, "s": 15, "c": 15}, CHI2, False, False),
        ({"a": 500}, {}, CHI2, False, False),
        # One label everywhere: identical, no test needed.
        ({"a": 500}, {"a": 70}, CHI2, False, True),
    ],
)
def test_compare(
    canary: dict[str, float],
    stable: dict[str, float],
    check: PredictionCheck,
    shifted: bool,
    enough: bool,
) -> None:
    result = compare(canary, stable, check)
    assert (result.shifted, result.enough) == (shifted, enough)


def test_psi_is_zero_for_equal_shares_and_grows_with_the_shift() -> None:
    base = {"a": 50.0, "b": 50.0}
    assert psi({"a": 5.0, "b": 5.0}, base) == 0.0
    small, large = psi({"a": 55.0, "b": 45.0}, base), psi({"a": 80.0, "b": 20.0}, base)
    assert 0 < small < 0.1 < 0.25 < large


SCRAPE = """
nomadml_requests_total{path="/predict",code="200"} %d
nomadml_predictions_total{label="setosa"} %d
nomadml_predictions_total{label="virginica"} %d
"""


def test_snapshots_count_predictions_by_label_and_subtract_and_add() -> None:
    names = MetricNames()
    before = snapshot(parse(SCRAPE % (10, 10, 10)), names)
    after = snapshot(parse(SCRAPE % (30, 25, 35)), names)
    assert after.predictions == (("setosa", 25.0), ("virginica", 35.0))
    window = delta(before, after)
    assert window.predictions == (("setosa", 15.0), ("virginica", 25.0))
    assert merge([window, window]).predictions == (("setosa", 30.0), ("virginica", 50.0))
    # A restart (a label's counter went down) counts everything after it.
    restarted = snapshot(parse(SCRAPE % (40, 2, 50)), names)
    assert delta(after, restarted).predictions == (("setosa", 2.0), ("virginica", 50.0))


def _window(predictions: dict[str, float]) -> WindowStats:
    return WindowStats(100, 0, 0.0, 20.0, predictions)


def test_the_gate_fails_a_shift_even_when_errors_and_latency_pass() -> None:
    cfg = GateConfig(min_requests=10, predictions=CHI2)
    shifted = evaluate(
        _window({"v": 270, "s": 150, "c": 30}), _window({"v": 150, "s": 150, "c": 150}), cfg
    )
    assert shifted.verdict == "fail"
    assert shifted.reasons[0].startswith("predictions shifted against stable (chi2 ")
    assert shifted.values["prediction_test"] == "chi2"
    alike = evaluate(_window({"a": 100, "b": 100}), _window({"a": 90, "b": 110}), cfg)
    assert alike.verdict == "pass" and alike.values["canary_predictions"] == 200


def test_too_few_predictions_is_no_verdict_and_naming_the_counter() -> None:
    cfg = GateConfig(min_requests=10, predictions=CHI2)
    result = evaluate(_window({}), _window({"a": 100}), cfg)
    assert result.verdict == "insufficient"
    assert "0 canary and 100 stable predictions" in result.reasons[0]
    assert "nomadml_predictions_total{label}" in result.reasons[0]


def test_disabled_by_default() -> None:
    result = evaluate(_window({"x": 500}), _window({"y": 500}), GateConfig(min_requests=10))
    assert result.verdict == "pass" and "prediction_test" not in result.values
