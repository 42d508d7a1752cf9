"""What several unit test files share: bootstrap sources and snapshots, the one-line
error a failed bootstrap prints, and the CLI's commands."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click
import pytest

from nomadml.bundled import bootstrap
from nomadml.cli.main import main


def make_source(
    root: Path, files: dict[str, bytes], model: str, version: str, chunked: bool = True
) -> Path:
    """A model source dir with these files and its manifest; `chunked=False` writes a
    manifest as images built before chunk hashes have it (whole-file hashes only)."""
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    manifest = bootstrap.build_manifest(root, model, version)
    if not chunked:
        del manifest["chunk_size"]
        for entry in manifest["files"]:
            del entry["chunks"]
    bootstrap.write_manifest(root, manifest)
    return root


def snapshot(root: Path) -> dict[str, tuple[bytes | None, int, int, int]]:
    """Content, mtime, inode and mode of everything under root (root included);
    symlinks as themselves, never followed."""
    result: dict[str, tuple[bytes | None, int, int, int]] = {}
    for path in [root, *sorted(root.rglob("*"))]:
        st = path.lstat()
        data = path.read_bytes() if path.is_file() and not path.is_symlink() else None
        result[str(path.relative_to(root))] = (data, st.st_mtime_ns, st.st_ino, st.st_mode)
    return result


def error_line(out: str, err: str) -> str:
    """The one line a failed bootstrap run prints: nothing on stdout, no traceback."""
    assert out == ""
    assert "Traceback" not in err
    assert err.endswith("\n"), err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("bootstrap: "), err
    return lines[0]


def all_commands() -> dict[str, click.Command]:
    """Every top-level command, importing the lazily loaded ones."""
    assert isinstance(main, click.Group)
    ctx = click.Context(main)
    found = {name: main.get_command(ctx, name) for name in main.list_commands(ctx)}
    assert None not in found.values(), found
    return {name: command for name, command in found.items() if command is not None}


def after_open(monkeypatch: pytest.MonkeyPatch, rel: str, action: Callable[[Path], None]) -> None:
    """Run ``action`` on the source file ``rel`` right after the chunked install opened
    it (and its copy): a source that changes while it is being copied."""
    real = bootstrap._open_pair

    def open_then_act(
        src: Path, tmp: Path, entry: bootstrap.ManifestEntry, manifest: bootstrap.Manifest
    ) -> bootstrap._OpenPair:
        pair = real(src, tmp, entry, manifest)
        if entry.path == rel:
            action(src / rel)
        return pair

    monkeypatch.setattr(bootstrap, "_open_pair", open_then_act)
