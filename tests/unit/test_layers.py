"""The layers stay visible: import-linter checks the contracts in pyproject.toml
(cli -> engine -> adapters -> core; a pure core; click only in the CLI), and a
planted wrong-way import shows the check really fails."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from importlinter.cli import lint_imports_command;"
            " sys.exit(lint_imports_command())",
            "--no-cache",
            "--config",
            str(cwd / "pyproject.toml"),
        ],
        cwd=cwd,
        env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_import_contracts_are_kept() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_core_module_importing_the_engine_breaks_the_contract(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "nomadml", tmp_path / "nomadml", ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    plan = tmp_path / "nomadml" / "core" / "plan.py"
    plan.write_text(plan.read_text() + "\nfrom nomadml.engine import prepare  # wrong way\n")
    result = _lint(tmp_path)
    assert result.returncode != 0
    assert "cli -> engine -> adapters -> core BROKEN" in result.stdout
