"""Short writes in the bootstrap's own write loops: a pwrite that takes only part of
what it was given (a signal, a full pipe of a FUSE volume, a quota about to run out) is
followed by the rest, through the page cache or O_DIRECT (whose next write, no longer
on a block boundary, the kernel refuses: the piece is copied again the next way)."""

from __future__ import annotations

import fcntl
import os
from collections import Counter
from pathlib import Path
from typing import Any

import helpers
import pytest

from nomadml.bundled import bootstrap

MODEL, VERSION = "iris", "1.0.0"
CHUNK = 1 << 16


@pytest.mark.parametrize("ways", [("direct",), ()], ids=["direct-then-python", "python"])
def test_a_pwrite_that_takes_part_of_its_bytes_is_followed_by_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ways: tuple[str, ...]
) -> None:
    monkeypatch.setattr(bootstrap, "CHUNK_SIZE", CHUNK)
    monkeypatch.setattr(bootstrap, "COPY_WAYS", ways)
    real = os.pwrite
    short: Counter[str] = Counter()

    def pwrite(fd: int, data: Any, offset: int) -> int:
        view = memoryview(data)
        if len(view) > 1:  # a short write, never on a block boundary
            short["direct" if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT else "cached"] += 1
            view = view[: len(view) // 2 + 1]
        return real(fd, view, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
    data = {"w.bin": os.urandom(3 * CHUNK + 123), "small.bin": os.urandom(100)}
    source = helpers.make_source(tmp_path / "src", data, MODEL, VERSION, True)
    result = bootstrap.install(source, tmp_path / "vol", MODEL, VERSION)
    for rel, content in data.items():
        assert (result.path / rel).read_bytes() == content, rel
    assert bootstrap.verify(tmp_path / "vol", MODEL, VERSION) == len(data)
    assert short["cached"] > 0
    # O_DIRECT was tried, cut short, then refused (where the volume opens it at all)
    probe = bootstrap._open_direct(result.path / "w.bin")
    if probe >= 0:
        os.close(probe)
    assert ("direct" in short) is (bool(ways) and probe >= 0)
