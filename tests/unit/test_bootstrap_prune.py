"""The bootstrap's prune: which installed versions leave a node's volume."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest
from test_bootstrap import make_source, run_cli, temp_dirs

from nomadml.bundled import bootstrap

MODEL = "iris"


def installed(volume: Path, *versions: str) -> None:
    for version in versions:
        source = make_source(volume.parent / f"src-{version}", version=version)
        bootstrap.install(source, volume, MODEL, version)


def listing(volume: Path) -> list[str]:
    return sorted(p.name for p in (volume / MODEL).iterdir() if not p.name.startswith("."))


def test_removes_only_versions_of_the_major_not_kept(tmp_path: Path) -> None:
    volume = tmp_path / "vol"
    installed(volume, "1.0.0", "1.1.0", "1.2.0", "2.0.0", "10.0.0")
    foreign = volume / MODEL / "1.9.0"  # no completion marker: never ours to remove
    foreign.mkdir()
    (foreign / "x").write_text("x")

    result = bootstrap.prune(volume, MODEL, 1, ["1.2.0"])

    assert [v for v, _ in result.removed] == ["1.0.0", "1.1.0"]
    assert all(size > 0 for _, size in result.removed)
    assert result.kept == ("1.2.0",)
    assert listing(volume) == ["1.2.0", "1.9.0", "10.0.0", "2.0.0"]
    assert temp_dirs(volume / MODEL) == []
    assert not [p for p in (volume / MODEL).iterdir() if p.name.startswith(".trash-")]


def test_dry_run_removes_nothing(tmp_path: Path) -> None:
    volume = tmp_path / "vol"
    installed(volume, "1.0.0", "1.1.0")
    result = bootstrap.prune(volume, MODEL, 1, ["1.1.0"], dry_run=True)
    assert [v for v, _ in result.removed] == ["1.0.0"]
    assert listing(volume) == ["1.0.0", "1.1.0"]


def test_a_version_being_installed_is_left(tmp_path: Path) -> None:
    volume = tmp_path / "vol"
    installed(volume, "1.0.0", "1.1.0")
    lock = os.open(volume / MODEL / ".1.0.0.lock", os.O_RDWR)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as an install of 1.0.0 on this node holds it
        result = bootstrap.prune(volume, MODEL, 1, ["1.1.0"])
    finally:
        os.close(lock)
    assert result.removed == () and result.busy == ("1.0.0",)
    assert listing(volume) == ["1.0.0", "1.1.0"]


def test_leftovers_of_a_prune_that_died_are_cleared(tmp_path: Path) -> None:
    volume = tmp_path / "vol"
    installed(volume, "1.0.0")
    dead = volume / MODEL / ".trash-1.0.0-0123456789abcdef"
    dead.mkdir()
    (dead / "half").write_text("half")
    bootstrap.prune(volume, MODEL, 1, ["1.0.0"])
    assert not dead.exists()
    assert listing(volume) == ["1.0.0"]


def test_a_volume_without_the_model_is_fine(tmp_path: Path) -> None:
    assert bootstrap.prune(tmp_path, MODEL, 1, []) == bootstrap.PruneResult((), (), ())


def test_cli_prints_one_line_per_version_and_a_summary(tmp_path: Path) -> None:
    volume = tmp_path / "vol"
    installed(volume, "1.0.0", "1.1.0")
    args = ["prune", "--volume", str(volume), "--model", MODEL, "--major", "1"]
    proc = run_cli(*args, "--keep", "1.1.0")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("removed iris 1.0.0 (")
    assert lines[-1].startswith("pruned iris major 1: removed 1 version (")
    assert lines[-1].endswith("kept 1.1.0")
    assert listing(volume) == ["1.1.0"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--keep", "../x"], "invalid version '../x'"),
        (["--major", "one"], "argument --major: invalid int value: 'one'"),
    ],
)
def test_cli_bad_input_is_one_line_and_removes_nothing(
    tmp_path: Path, extra: list[str], message: str
) -> None:
    volume = tmp_path / "vol"
    installed(volume, "1.0.0")
    proc = run_cli("prune", "--volume", str(volume), "--model", MODEL, "--major", "1", *extra)
    assert proc.returncode == bootstrap.EXIT_BAD_INPUT
    assert message in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert listing(volume) == ["1.0.0"]
