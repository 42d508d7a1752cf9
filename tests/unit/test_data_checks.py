"""Data checks on real CSV files with pandera: each failed check is one line naming
the file, the column and the check; good data passes; the operator's own command
runs after the declared checks."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from nomadml.core.spec import ModelSpec, load_spec, parse_spec
from nomadml.engine.data_checks import check_data
from nomadml.errors import SpecError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "iris"


@pytest.fixture()
def spec(tmp_path: Path) -> ModelSpec:
    shutil.copytree(EXAMPLE / "data", tmp_path / "data")
    shutil.copy(EXAMPLE / "iris.toml", tmp_path / "iris.toml")
    return load_spec(tmp_path / "iris.toml")


def _edit(path: Path, row: int, values: list[str]) -> None:
    lines = path.read_text().splitlines()
    lines[row] = ",".join(values)
    path.write_text("\n".join(lines) + "\n")


def test_the_example_data_passes(spec: ModelSpec) -> None:
    report = check_data(spec, spec.directory)
    assert report.passed, report.failures
    assert set(report.env()) == {"NOMADML_TRAIN_DATA", "NOMADML_EVAL_DATA"}


def test_each_failed_check_is_one_line_naming_file_column_and_check(spec: ModelSpec) -> None:
    train = spec.directory / "data" / "train.csv"
    _edit(train, 1, ["", "3.0", "99.0", "1.0", "setosa"])  # missing value, out of range
    _edit(train, 2, ["5.0", "abc", "1.0", "1.0", "setosa"])  # not a number
    report = check_data(spec, spec.directory)
    prefix = f"train data {train}: "
    assert all(line.startswith(prefix) for line in report.failures), report.failures
    found = [line.removeprefix(prefix) for line in report.failures]
    assert any(
        line.startswith("column petal_length: fails less_than_or_equal_to(10.0)") for line in found
    ), found
    assert any(line.startswith("column sepal_width: fails coerce_dtype") for line in found), found
    assert any(
        line.startswith("column sepal_length: 1.0% missing values > max_missing 0.0%")
        for line in found
    ), found


def test_too_few_rows_and_a_missing_column(spec: ModelSpec) -> None:
    evaluation = spec.directory / "data" / "eval.csv"
    lines = evaluation.read_text().splitlines()
    header = lines[0].replace(",species", ",kind")
    kept = [line for line in lines[1:] if not line.endswith("virginica")][:20]
    evaluation.write_text("\n".join([header, *kept]) + "\n")
    found = check_data(spec, spec.directory).failures
    assert any("column species: missing" in line for line in found), found
    assert any(line.endswith("table: fails at least 30 rows") for line in found), found


def test_a_rare_class_is_named(spec: ModelSpec) -> None:
    train = spec.directory / "data" / "train.csv"
    lines = train.read_text().splitlines()
    rare = [line for line in lines[1:] if line.endswith("setosa")][:5]
    others = [line for line in lines[1:] if not line.endswith("setosa")]
    train.write_text("\n".join([lines[0], *others, *rare]) + "\n")
    found = check_data(spec, spec.directory).failures
    assert found == [
        f"train data {train}: column species: class 'setosa' is 6.7% of the rows "
        "< min_class_share 20.0%"
    ]


def test_the_operators_command_runs_on_the_files(spec: ModelSpec, tmp_path: Path) -> None:
    script = tmp_path / "check.py"
    script.write_text(
        "import os, sys\n"
        "rows = open(os.environ['NOMADML_EVAL_DATA']).read().count('setosa')\n"
        "print(f'only {rows} setosa rows'); sys.exit(rows < 100)\n"
    )
    text = spec.text.replace(
        "min_class_share = 0.2", f"command = [{sys.executable!r}, {str(script)!r}]"
    )
    custom = parse_spec(text, str(spec.directory / "custom.toml"))
    found = check_data(custom, spec.directory).failures
    assert found == [f"check command '{sys.executable} {script}' exited 1: only 15 setosa rows"]


def test_bad_check_declarations_are_spec_errors() -> None:
    with pytest.raises(SpecError, match=r"data\.checks\.columns\.x: 'date' is not one of float"):
        parse_spec('[model]\nname = "m"\n[data.checks]\ncolumns = { x = "date" }\n', "s.toml")
    with pytest.raises(SpecError, match=r"data\.checks\.min_class_share: needs data\.label"):
        parse_spec('[model]\nname = "m"\n[data.checks]\nmin_class_share = 0.1\n', "s.toml")
