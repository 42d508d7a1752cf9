"""Wheels unpacked for images whose base has no pip (nomadml's base image): a wheel
is a zip file, and unzipping it into one site-packages folder is what pip would do
for the pure and platform libraries an image runs."""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from pathlib import Path


def unpack_wheels(wheels: list[Path], target: Path) -> Path:
    """Unzip wheels into one site-packages folder, as pip would install them: a
    wheel's `<name>.data/purelib|platlib` go to the top, its scripts and headers are
    left out (the image runs no console scripts). Built once per tag, atomically."""
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=target.parent))
    try:
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as archive:
                for member in archive.infolist():
                    parts = Path(member.filename).parts
                    if member.is_dir() or ".." in parts or Path(member.filename).is_absolute():
                        continue
                    if parts[0].endswith(".data"):
                        if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
                            continue
                        parts = parts[2:]
                    dest = staging.joinpath(*parts)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    with archive.open(member) as src, dest.open("wb") as out:
                        shutil.copyfileobj(src, out)
        os.rename(staging, target)  # another process may have won: keep its copy
    except OSError:
        if not target.is_dir():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
