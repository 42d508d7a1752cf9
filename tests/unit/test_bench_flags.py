"""bench.py refuses a bad flag before running anything: a misspelt figure name would
otherwise run nothing and exit 0, a bad count fail with a traceback after the rest."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench.py"


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--only", "bootstrp"], "argument --only: unknown figure(s) bootstrp; known: cli,"),
        (["--fleet", "50,abc"], "argument --fleet: expected a whole number >= 1, got 'abc'"),
        (["--repeat", "0"], "argument --repeat: expected a whole number >= 1, got '0'"),
        (["--bootstrap-mib", "-3"], "argument --bootstrap-mib: expected a whole number >= 1"),
    ],
)
def test_a_bad_flag_is_one_line_and_exit_2(tmp_path: Path, args: list[str], said: str) -> None:
    out = tmp_path / "latest.json"
    run = subprocess.run(
        [sys.executable, str(BENCH), *args, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2, run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith(f"bench.py: error: {said}"), run.stderr
    assert "Traceback" not in run.stderr and not out.exists()
