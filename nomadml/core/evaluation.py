"""Scoring a model's answers against the evaluation set's labels: the numbers the
validation gates compare when nomadml measures a version itself instead of taking
the trainer's word. Pure."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def predicted_label(prediction: Any) -> Any:
    """A prediction is the label itself, or an object with a `label` (or `value`)."""
    if isinstance(prediction, dict):
        return prediction.get("label", prediction.get("value"))
    return prediction


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        return None


def score(labels: Sequence[Any], predictions: Sequence[Any]) -> dict[str, float]:
    """Classification (labels that are not all numbers): accuracy and macro F1;
    regression (numeric labels and answers): mae and rmse."""
    if len(labels) != len(predictions) or not labels:
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels")
    answers = [predicted_label(p) for p in predictions]
    truths = [_number(v) for v in labels]
    guesses = [_number(v) for v in answers]
    numeric = [
        (t, g) for t, g in zip(truths, guesses, strict=True) if t is not None and g is not None
    ]
    # Numbers that are not a handful of class ids are a regression target.
    classes_like = all(t.is_integer() for t, _ in numeric) and len({t for t, _ in numeric}) <= 20
    if len(numeric) == len(labels) and not classes_like:
        errors = [abs(t - g) for t, g in numeric]
        return {
            "mae": round(sum(errors) / len(errors), 6),
            "rmse": round(math.sqrt(sum(e * e for e in errors) / len(errors)), 6),
        }
    said = [str(a) for a in answers]
    truth = [str(v) for v in labels]
    right = sum(1 for t, a in zip(truth, said, strict=True) if t == a)
    f1s = []
    for cls in sorted(set(truth)):
        tp = sum(1 for t, a in zip(truth, said, strict=True) if t == cls and a == cls)
        fp = sum(1 for t, a in zip(truth, said, strict=True) if t != cls and a == cls)
        fn = sum(1 for t, a in zip(truth, said, strict=True) if t == cls and a != cls)
        f1s.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return {
        "accuracy": round(right / len(truth), 6),
        "f1_macro": round(sum(f1s) / len(f1s), 6),
    }
