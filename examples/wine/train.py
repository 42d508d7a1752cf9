"""Train the wine example model: gradient-boosted trees on the wine data set that
ships with scikit-learn (no download), exported to ONNX with skl2onnx.

The exported graph is the whole scikit-learn Pipeline (scaling + trees), so the
serving side needs only onnxruntime and numpy, never scikit-learn. The classifier
is fitted on class *names*, so the graph's `label` output is the name itself.

Why sklearn's GradientBoostingClassifier and not HistGradientBoostingClassifier:
skl2onnx 1.20 cannot convert the latter as fitted by scikit-learn 1.9 (it emits a
boolean where ONNX's TreeEnsemble wants an integer attribute)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MODEL_FILE = "model.onnx"
# sklearn.datasets.load_wine().feature_names, in column order: the model's inputs.
FEATURES = [
    "alcohol",
    "malic_acid",
    "ash",
    "alcalinity_of_ash",
    "magnesium",
    "total_phenols",
    "flavanoids",
    "nonflavanoid_phenols",
    "proanthocyanins",
    "color_intensity",
    "hue",
    "od280/od315_of_diluted_wines",
    "proline",
]
TEST_SIZE = 0.3
# Pinned, so that a newer skl2onnx still writes graphs the serving image's
# onnxruntime (examples/wine/images.py) runs: default domain 17, ONNX-ML 3.
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}


def train_wine(
    out_dir: Path,
    *,
    seed: int = 0,
    n_estimators: int = 100,
    learning_rate: float = 0.1,
    max_depth: int = 3,
    features: list[str] | None = None,
) -> dict[str, Any]:
    """Fit, evaluate on a held-out split, write model.onnx + metadata.json; returns
    the metadata. The same arguments give the same bytes. `features` picks input
    columns: another set is another signature (a new major version)."""
    features = features or FEATURES
    unknown = sorted(set(features) - set(FEATURES))
    if unknown:
        raise ValueError(f"unknown wine features: {', '.join(unknown)}")
    if n_estimators < 1 or max_depth < 1 or not learning_rate > 0:
        raise ValueError("n_estimators and max_depth must be >= 1, learning_rate > 0")
    columns = [FEATURES.index(f) for f in features]

    import numpy as np
    from skl2onnx import to_onnx  # type: ignore[import-untyped]
    from sklearn.datasets import load_wine
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_wine()
    x = data.data[:, columns].astype(np.float32)  # what the ONNX graph will be fed
    y = np.asarray(data.target_names)[data.target]
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_SIZE, random_state=seed, stratify=y
    )
    pipeline = Pipeline(
        [
            ("scale", StandardScaler()),
            (
                "trees",
                GradientBoostingClassifier(
                    n_estimators=n_estimators,
                    learning_rate=learning_rate,
                    max_depth=max_depth,
                    random_state=seed,
                ),
            ),
        ]
    )
    pipeline.fit(x_train, y_train)
    predicted = pipeline.predict(x_test)
    accuracy = float(accuracy_score(y_test, predicted))
    macro_f1 = float(f1_score(y_test, predicted, average="macro", zero_division=0))
    classes = [str(c) for c in pipeline.classes_]

    # zipmap=False: probabilities come out as one float matrix (columns = classes),
    # not a list of dicts, which is what a numpy server wants.
    onx = to_onnx(pipeline, x_train[:1], options={"zipmap": False}, target_opset=dict(TARGET_OPSET))
    onx.doc_string = f"wine classifier, {n_estimators} boosting rounds, seed {seed}"
    # skl2onnx lists the opsets in set order, which changes with PYTHONHASHSEED;
    # sorted, the same arguments give the same bytes (and the same registry digest).
    opsets = sorted(((o.domain, o.version) for o in onx.opset_import), key=lambda o: o[0])
    del onx.opset_import[:]
    for domain, version in opsets:
        onx.opset_import.add(domain=domain, version=version)
    model_bytes = onx.SerializeToString(deterministic=True)

    metadata = {
        "metrics": {
            "accuracy": round(accuracy, 6),
            "macro_f1": round(macro_f1, 6),
            "test_samples": len(y_test),
        },
        "signature": {
            "inputs": [{"name": f, "type": "float"} for f in features],
            "outputs": [
                {"name": "label", "type": "string", "values": classes},
                {"name": "probabilities", "type": "float", "per": "label"},
            ],
        },
        "training_data": {
            "source": "sklearn.datasets.load_wine",
            "rows": len(y),
            "test_size": TEST_SIZE,
            "split_seed": seed,
        },
        "params": {
            "n_estimators": n_estimators,
            "learning_rate": learning_rate,
            "max_depth": max_depth,
            "seed": seed,
        },
        "format": {
            "file": MODEL_FILE,
            "framework": "onnx",
            "opsets": {domain or "ai.onnx": version for domain, version in opsets},
            "producer": f"{onx.producer_name} {onx.producer_version}",
        },
        "notes": "StandardScaler + GradientBoostingClassifier, exported to ONNX (skl2onnx)",
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MODEL_FILE).write_bytes(model_bytes)
    (out_dir / "metadata.json").write_text(json.dumps(metadata, indent=1) + "\n", encoding="utf-8")
    return metadata


def main(argv: list[str] | None = None) -> int:
    """The trainer contract nomadml's retraining run calls: model.onnx and
    metadata.json into $NOMADML_OUTPUT_DIR (or --out), exit 0."""
    import argparse
    import os
    import sys

    parser = argparse.ArgumentParser(prog="examples.wine.train", description=main.__doc__)
    parser.add_argument("--out", default=os.environ.get("NOMADML_OUTPUT_DIR"))
    parser.add_argument("--seed", type=int, default=0, help="Split and model seed.")
    parser.add_argument(
        "--n-estimators",
        type=int,
        default=100,
        help="Boosting rounds (trees per class); 1 makes a deliberately poor model.",
    )
    parser.add_argument("--learning-rate", type=float, default=0.1)
    parser.add_argument("--max-depth", type=int, default=3)
    parser.add_argument(
        "--features",
        help="Comma-separated input columns (default: all 13). Another set is another "
        "signature: register it as a new major version.",
    )
    args = parser.parse_args(argv)
    if not args.out:
        print("train: no output directory: set NOMADML_OUTPUT_DIR or pass --out", file=sys.stderr)
        return 2
    features = [f.strip() for f in args.features.split(",")] if args.features else None
    try:
        metadata = train_wine(
            Path(args.out),
            seed=args.seed,
            n_estimators=args.n_estimators,
            learning_rate=args.learning_rate,
            max_depth=args.max_depth,
            features=features,
        )
    except ValueError as err:
        print(f"train: {err}", file=sys.stderr)
        return 2
    metrics = metadata["metrics"]
    print(
        f"train: wine accuracy {metrics['accuracy']:.3f}, macro F1 {metrics['macro_f1']:.3f} "
        f"on {metrics['test_samples']} rows -> {Path(args.out) / MODEL_FILE}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
