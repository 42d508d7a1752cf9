"""Scoring answers against labels: classification gives accuracy and macro F1,
regression gives mae and rmse; a prediction is a label or an object with one."""

from __future__ import annotations

import pytest

from nomadml.core.evaluation import predicted_label, score


@pytest.mark.parametrize(
    ("labels", "predictions", "expected"),
    [
        (["a", "b", "a", "b"], ["a", "b", "a", "b"], {"accuracy": 1.0, "f1_macro": 1.0}),
        (["a", "a", "b", "b"], ["a", "a", "a", "b"], {"accuracy": 0.75, "f1_macro": 0.733333}),
        (
            ["setosa", "virginica"],
            [{"label": "setosa", "probabilities": {}}, {"label": "setosa"}],
            {"accuracy": 0.5, "f1_macro": 0.333333},
        ),
        # Class ids as numbers are still classes.
        (["0", "1", "2", "1"], [0, 1, 2, 2], {"accuracy": 0.75, "f1_macro": 0.777778}),
        # Real-valued targets are a regression.
        (["1.5", "2.0", "3.5"], [1.0, 2.0, 4.5], {"mae": 0.5, "rmse": 0.645497}),
    ],
)
def test_scores(labels: list[str], predictions: list[object], expected: dict[str, float]) -> None:
    assert score(labels, predictions) == expected


def test_one_prediction_per_label() -> None:
    with pytest.raises(ValueError, match="2 predictions for 3 labels"):
        score(["a", "b", "c"], ["a", "b"])


def test_a_prediction_is_a_label_or_carries_one() -> None:
    assert predicted_label({"label": "x"}) == "x"
    assert predicted_label({"value": 2.5}) == 2.5
    assert predicted_label("y") == "y"
