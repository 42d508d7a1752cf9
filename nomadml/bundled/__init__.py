"""Standalone, stdlib-only programs that nomadml ships inside container images:
`bootstrap.py` (the model installer) and `serve.py` (the reference model server).
They must not import anything from nomadml."""

from __future__ import annotations

import importlib.resources
from pathlib import Path


def bundled_program(name: str) -> Path:
    """The path of a shipped program (`bootstrap.py`, `serve.py`), as a package resource."""
    return Path(str(importlib.resources.files(__name__) / name))
