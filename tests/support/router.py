"""What the router's stack tests share: the CLI runner, the router image (the local
stack's, or built from the unpacked HAProxy), and one prediction's rows."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from nomadml import __version__
from nomadml.adapters.image_registry import resolve_digest
from nomadml.adapters.images import build_router_image
from nomadml.cli.main import main
from nomadml.errors import NomadMLError

ROWS = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
ROUTER_ROOT = Path.home() / ".cache" / "nomadml" / "router-root"


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def router_image() -> str:
    try:
        return resolve_digest(f"127.0.0.1:5000/nomadml/router:{__version__}")
    except NomadMLError:
        return build_router_image(ROUTER_ROOT).pinned
