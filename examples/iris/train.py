"""Train the reference model: a softmax classifier on the iris data set that
ships with scikit-learn (no download), or on the CSV files the spec's `[data]` names
($NOMADML_TRAIN_DATA, $NOMADML_EVAL_DATA: four measurements and a `species` column).
It is exported as plain coefficients so the serving image needs nothing beyond
Python's standard library."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def train_iris(
    out_dir: Path,
    *,
    seed: int = 0,
    c: float = 1.0,
    max_iter: int = 500,
    features: list[str] | None = None,
    data: tuple[Path, Path] | None = None,
) -> dict[str, Any]:
    """Fit, evaluate on a held-out split (or the `data` files: train, evaluation),
    write model.json + metadata.json. `features` picks input columns: another set is
    another signature (a new major)."""
    features = features or FEATURES
    unknown = sorted(set(features) - set(FEATURES))
    if unknown:
        raise ValueError(f"unknown iris features: {', '.join(unknown)}")
    columns = [FEATURES.index(f) for f in features]
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    iris = load_iris()
    names = [str(n) for n in iris.target_names]
    if data is not None:
        x_train, y_train = _read(data[0], features, names)
        x_test, y_test = _read(data[1], features, names)
        rows, source = len(y_train) + len(y_test), f"{data[0].name} + {data[1].name}"
    else:
        x_train, x_test, y_train, y_test = train_test_split(
            iris.data[:, columns],
            iris.target,
            test_size=0.3,
            random_state=seed,
            stratify=iris.target,
        )
        rows, source = len(iris.target), "sklearn.datasets.load_iris"
    clf = LogisticRegression(C=c, max_iter=max_iter, random_state=seed)
    clf.fit(x_train, y_train)
    accuracy = float(clf.score(x_test, y_test))
    classes = [names[i] for i in clf.classes_]
    model = {
        "kind": "linear-softmax",
        "features": features,
        "classes": classes,
        "coef": [[float(v) for v in row] for row in clf.coef_],
        "intercept": [float(v) for v in clf.intercept_],
    }
    metadata = {
        "metrics": {"accuracy": round(accuracy, 6), "test_samples": len(y_test)},
        "signature": {
            "inputs": [{"name": f, "type": "float"} for f in features],
            "outputs": [{"name": "label", "type": "string", "values": classes}],
        },
        "training_data": {"source": source, "rows": rows, "split_seed": seed},
        "params": {"C": c, "max_iter": max_iter},
        "notes": "logistic regression (softmax), exported as coefficients",
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "model.json").write_text(json.dumps(model, indent=1) + "\n", encoding="utf-8")
    (out_dir / "metadata.json").write_text(json.dumps(metadata, indent=1) + "\n", encoding="utf-8")
    return metadata


def _read(
    path: Path, features: list[str], classes: list[str]
) -> tuple[list[list[float]], list[int]]:
    """Feature rows and class indexes from a CSV file with a `species` column."""
    import csv

    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    x = [[float(row[name]) for name in features] for row in rows]
    return x, [classes.index(row["species"]) for row in rows]


def main(argv: list[str] | None = None) -> int:
    """The trainer contract nomadml's retraining run calls: model files and
    metadata.json into $NOMADML_OUTPUT_DIR (or --out), exit 0."""
    import argparse
    import os
    import sys

    parser = argparse.ArgumentParser(prog="examples.iris.train", description=main.__doc__)
    parser.add_argument("--out", default=os.environ.get("NOMADML_OUTPUT_DIR"))
    parser.add_argument("--c", type=float, default=1.0, help="Regularisation strength.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--features", help="Comma-separated input columns (another set = a new major)."
    )
    parser.add_argument(
        "--error-rate",
        type=float,
        default=0.0,
        help="Make the reference server fail this share of predictions (a bad release).",
    )
    args = parser.parse_args(argv)
    if not args.out:
        print("train: no output directory: set NOMADML_OUTPUT_DIR or pass --out", file=sys.stderr)
        return 2
    train, evaluation = os.environ.get("NOMADML_TRAIN_DATA"), os.environ.get("NOMADML_EVAL_DATA")
    data = (Path(train), Path(evaluation)) if train and evaluation else None
    features = args.features.split(",") if args.features else None
    out = Path(args.out)
    metrics = train_iris(out, seed=args.seed, c=args.c, data=data, features=features)["metrics"]
    if args.error_rate:
        model = json.loads((out / "model.json").read_text())
        model["serving"] = {"error_rate": args.error_rate}
        (out / "model.json").write_text(json.dumps(model, indent=1) + "\n")
    print(f"train: iris accuracy {metrics['accuracy']:.3f} on {metrics['test_samples']} rows")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
