"""A bootstrap killed mid-copy leaves no half-installed version visible, and the
next run installs it cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from nomadml.bundled import bootstrap

SCRIPT = Path(bootstrap.__file__)


def test_kill_mid_copy_leaves_nothing_visible_and_rerun_installs(tmp_path: Path) -> None:
    source, volume = tmp_path / "src", tmp_path / "vol"
    source.mkdir()
    # Big enough that the copy is still running when we kill it.
    with open(source / "weights.bin", "wb") as f:
        for _ in range(384):
            f.write(os.urandom(1 << 20))
    (source / "model.json").write_text("{}")
    bootstrap.write_manifest(source, bootstrap.build_manifest(source, "m", "1.0.0"))
    args = [
        sys.executable,
        str(SCRIPT),
        "install",
        "--source",
        str(source),
        "--volume",
        str(volume),
        "--model",
        "m",
        "--version",
        "1.0.0",
    ]

    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    temp_dirs: list[Path] = []
    while time.monotonic() < deadline and not temp_dirs:
        temp_dirs = (
            [p for p in (volume / "m").glob(".tmp-1.0.0-*") if any(p.iterdir())]
            if (volume / "m").is_dir()
            else []
        )
        time.sleep(0.001)
    assert temp_dirs, "installer never started copying"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL

    # Only the temp dir exists: no version directory, no marker.
    assert not (volume / "m" / "1.0.0").exists()
    assert temp_dirs[0].exists()

    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (volume / "m" / "1.0.0" / ".nomadml-complete").is_file()
    assert not list((volume / "m").glob(".tmp-1.0.0-*"))  # the stale copy was cleaned up
    assert bootstrap.verify(volume, "m", "1.0.0") == 2
