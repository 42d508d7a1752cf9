"""Data checks before training (the spec's `[data.checks]`): the training and the
evaluation file are read as tables and checked with pandera (columns and types,
ranges, missing values, minimum rows, label balance), then the operator's own check
command runs if there is one. Every failed check is one line naming the file, the
check and the column; failing data yields no model version."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nomadml.core.spec import DataChecks, ModelSpec
from nomadml.errors import BadInput, StackError

CHECK_TIMEOUT_S = 3600


@dataclass
class DataReport:
    files: dict[str, Path] = field(default_factory=dict)  # train / evaluation -> file
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def env(self) -> dict[str, str]:
        """The files as the trainer and the check command see them."""
        names = {"train": "NOMADML_TRAIN_DATA", "evaluation": "NOMADML_EVAL_DATA"}
        return {names[which]: str(path) for which, path in self.files.items()}


def check_data(spec: ModelSpec, base: Path) -> DataReport:
    """Check the spec's data files (relative paths are `base`'s)."""
    report = DataReport()
    for which in ("train", "evaluation"):
        path = spec.data.path(which, base)
        if path is not None:
            report.files[which] = path
    checks = spec.data.checks
    for which, path in report.files.items():
        report.failures += [f"{which} data {path}: {line}" for line in _check_file(path, spec)]
    if checks.command and report.passed:
        report.failures += _run_command(list(checks.command), report.env())
    return report


def _schema(checks: DataChecks, label: str) -> Any:
    try:
        import pandera.pandas as pa
    except ImportError:
        raise StackError("data checks need pandera: pip install 'nomadml[data]'") from None

    kinds = {"float": float, "int": int, "str": str, "bool": bool}
    named = set(checks.columns) | set(checks.min) | set(checks.max) | ({label} - {""})
    columns = {}
    for name in sorted(named):
        column_checks = []
        if name in checks.min:
            column_checks.append(pa.Check.ge(checks.min[name]))
        if name in checks.max:
            column_checks.append(pa.Check.le(checks.max[name]))
        kind = kinds.get(checks.columns.get(name, ""))
        columns[name] = pa.Column(
            kind, checks=column_checks, nullable=True, coerce=kind is not None
        )
    frame_checks = []
    if checks.min_rows:
        frame_checks.append(
            pa.Check(lambda df: len(df) >= checks.min_rows, name=f"at least {checks.min_rows} rows")
        )
    return pa.DataFrameSchema(columns, checks=frame_checks, strict=False)


def _check_file(path: Path, spec: ModelSpec) -> list[str]:
    import pandas as pd

    checks = spec.data.checks
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        return ["not found"]
    except (OSError, ValueError, UnicodeDecodeError) as err:
        return [f"not a readable CSV table: {' '.join(str(err).split())[:200]}"]
    failures = _pandera_failures(_schema(checks, spec.data.label), frame)
    for column in frame.columns if checks.max_missing < 1 else []:
        missing = float(frame[column].isna().mean())
        if missing > checks.max_missing:
            failures.append(
                f"column {column}: {missing:.1%} missing values > max_missing "
                f"{checks.max_missing:.1%}"
            )
    label = spec.data.label
    if checks.min_class_share and label in frame.columns:
        shares = frame[label].value_counts(normalize=True)
        if len(shares) and float(shares.min()) < checks.min_class_share:
            rare = shares.idxmin()
            failures.append(
                f"column {label}: class {rare!r} is {float(shares.min()):.1%} of the rows "
                f"< min_class_share {checks.min_class_share:.1%}"
            )
    return failures


def _pandera_failures(schema: Any, frame: Any) -> list[str]:
    import pandera.errors

    try:
        schema.validate(frame, lazy=True)
    except pandera.errors.SchemaErrors as err:
        return _describe(err.failure_cases)
    return []


def _describe(cases: Any) -> list[str]:
    """One line per failed check and column, with a few failing values."""
    lines = []
    for (column, check), group in cases.groupby(["column", "check"], dropna=False, sort=True):
        values = [str(v) for v in group["failure_case"].tolist()]
        if check == "column_in_dataframe":
            lines += [f"column {name}: missing" for name in values]
        elif not isinstance(column, str) or not column:
            lines.append(f"table: fails {check}")
        else:
            plural = "s" if len(values) > 1 else ""
            lines.append(
                f"column {column}: fails {check} (e.g. {', '.join(values[:3])}); "
                f"{len(values)} value{plural}"
            )
    return lines


def _run_command(command: list[str], env: dict[str, str]) -> list[str]:
    shown = " ".join(command)
    try:
        done = subprocess.run(
            command,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=False,
            timeout=CHECK_TIMEOUT_S,
        )
    except FileNotFoundError:
        raise BadInput(f"data.checks.command: {command[0]!r} not found") from None
    except subprocess.TimeoutExpired:
        return [f"check command {shown!r} ran over {CHECK_TIMEOUT_S} s"]
    if done.returncode == 0:
        return []
    said = (done.stdout + done.stderr).strip().splitlines()
    last = f": {said[-1][:300]}" if said else ""
    return [f"check command {shown!r} exited {done.returncode}{last}"]
