"""The chunked install copies in the kernel (copy_file_range, else sendfile) and hashes
the copy; where the kernel refuses, it falls back, down to reading and writing itself."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import helpers
import pytest

from nomadml.bundled import bootstrap

MODEL, VERSION = "iris", "1.0.0"
CHUNK = 1 << 16
WAYS = pytest.mark.parametrize(
    "ways",
    [("direct", "copy_file_range", "sendfile"), ("copy_file_range", "sendfile"), ("sendfile",), ()],
    ids=["direct", "copy_file_range", "sendfile", "python"],
)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def files() -> dict[str, bytes]:
    return {
        "w.bin": os.urandom(5 * CHUNK + 123),
        "sub/small.bin": os.urandom(100),
        "sub/empty.txt": b"",
    }


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Chunks of 64 KiB and a count of the chunks copied each way."""
    monkeypatch.setattr(bootstrap, "CHUNK_SIZE", CHUNK)
    counted: Counter[str] = Counter()

    def spy(owner: object, attr: str, way: str) -> None:
        real = getattr(owner, attr)

        def counting(*args: Any) -> Any:
            result = real(*args)
            counted[way] += 1  # only once it worked: a refused way raises first
            return result

        monkeypatch.setattr(owner, attr, counting)

    spy(bootstrap, "_copy_file_range", "copy_file_range")
    spy(bootstrap, "_sendfile", "sendfile")
    spy(bootstrap._ChunkCopier, "_write_direct", "direct")
    spy(bootstrap._ChunkCopier, "_copy_through_python", "python")
    return counted


def refuse(monkeypatch: pytest.MonkeyPatch, name: str, code: int) -> Counter[str]:
    refused: Counter[str] = Counter()

    def fail(*_args: int) -> int:
        refused[name] += 1
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, name, fail)
    return refused


def source_copied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ways: tuple[str, ...]
) -> tuple[dict[str, bytes], Path]:
    """A source whose install copies only these ways."""
    monkeypatch.setattr(bootstrap, "COPY_WAYS", ways)
    data = files()
    return data, helpers.make_source(tmp_path / "src", data, MODEL, VERSION, True)


def install_and_check(tmp_path: Path, data: dict[str, bytes]) -> None:
    source = helpers.make_source(tmp_path / "src", data, MODEL, VERSION, True)
    result = bootstrap.install(source, tmp_path / "vol", MODEL, VERSION)
    for rel, content in data.items():
        assert (result.path / rel).read_bytes() == content
    assert bootstrap.verify(tmp_path / "vol", MODEL, VERSION) == len(data)


def test_big_chunks_are_written_direct_the_rest_through_the_page_cache(
    tmp_path: Path, calls: Counter[str]
) -> None:
    install_and_check(tmp_path, files())
    # w.bin's 6 chunks (its last one, 123 bytes, all tail); small.bin is under one block.
    assert calls == {"direct": 6, "copy_file_range": 1}


def test_a_volume_without_o_direct_copies_in_the_kernel(
    tmp_path: Path, calls: Counter[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bootstrap, "_open_direct", lambda _path: -1)
    install_and_check(tmp_path, files())
    assert calls == {"copy_file_range": 7}


@pytest.mark.parametrize("code", [errno.EINVAL, errno.EOPNOTSUPP])
def test_refused_direct_writes_fall_back_for_the_rest(
    tmp_path: Path, calls: Counter[str], monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    # A volume that opens O_DIRECT but refuses the writes (alignment, or not at all).
    real = os.pwrite
    refused: Counter[str] = Counter()

    def pwrite(fd: int, data: Any, offset: int) -> int:
        if fcntl_flags(fd) & os.O_DIRECT:
            refused["direct"] += 1
            raise OSError(code, os.strerror(code))
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
    install_and_check(tmp_path, files())
    assert "direct" not in calls
    assert 1 <= refused["direct"] <= bootstrap._workers()
    assert calls["copy_file_range"] == 7


def test_a_failing_direct_write_names_the_copy_and_leaves_nothing(
    tmp_path: Path, calls: Counter[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.pwrite

    def pwrite(fd: int, data: Any, offset: int) -> int:
        if fcntl_flags(fd) & os.O_DIRECT:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
    source = helpers.make_source(tmp_path / "src", files(), MODEL, VERSION, True)
    with pytest.raises(OSError) as caught:
        bootstrap.install(source, tmp_path / "vol", MODEL, VERSION)
    assert caught.value.errno == errno.ENOSPC
    assert str(caught.value.filename).endswith("/w.bin")
    assert str(caught.value.filename).startswith(str(tmp_path / "vol" / MODEL / ".tmp-"))
    assert sorted(p.name for p in (tmp_path / "vol" / MODEL).iterdir()) == [f".{VERSION}.lock"]


def fcntl_flags(fd: int) -> int:
    return fcntl.fcntl(fd, fcntl.F_GETFL)


@pytest.mark.parametrize("code", [errno.EXDEV, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL])
def test_refused_copy_file_range_falls_back_to_sendfile(
    tmp_path: Path, calls: Counter[str], monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    # What copy_file_range answers from the image's overlayfs to the host volume.
    monkeypatch.setattr(bootstrap, "COPY_WAYS", ("copy_file_range", "sendfile"))
    refused = refuse(monkeypatch, "copy_file_range", code)
    install_and_check(tmp_path, files())
    assert calls == {"sendfile": 7}
    # Dropped after the first refusal (once per copying thread at most).
    assert 1 <= refused["copy_file_range"] <= bootstrap._workers()


def test_no_kernel_copy_at_all_reads_and_writes_itself(
    tmp_path: Path, calls: Counter[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bootstrap, "_open_direct", lambda _path: -1)
    monkeypatch.delattr(os, "copy_file_range")  # a Python without it
    refused = refuse(monkeypatch, "sendfile", errno.EINVAL)
    install_and_check(tmp_path, files())
    assert calls == {"python": 7}
    assert 1 <= refused["sendfile"] <= bootstrap._workers()


@WAYS
def test_a_tampered_chunk_is_named_whichever_way_it_is_copied(
    tmp_path: Path, calls: Counter[str], monkeypatch: pytest.MonkeyPatch, ways: tuple[str, ...]
) -> None:
    data, source = source_copied(tmp_path, monkeypatch, ways)
    tampered = bytearray(data["w.bin"])
    tampered[3 * CHUNK + 7] ^= 0x01  # one bit in the fourth chunk
    (source / "w.bin").write_bytes(bytes(tampered))

    with pytest.raises(bootstrap.IntegrityError) as caught:
        bootstrap.install(source, tmp_path / "vol", MODEL, VERSION)

    expected = sha(data["w.bin"][3 * CHUNK : 4 * CHUNK])
    assert str(caught.value) == (
        f"checksum mismatch for iris 1.0.0: w.bin: bytes {3 * CHUNK}..{4 * CHUNK - 1} "
        f"(chunk 3) do not match their sha256 {expected[:12]}…"
    )
    # Only the first way ran (and the next for small.bin, under one block, if direct).
    assert set(calls) <= set(ways[: 2 if ways[:1] == ("direct",) else 1] or ["python"])
    assert sorted(p.name for p in (tmp_path / "vol" / MODEL).iterdir()) == [f".{VERSION}.lock"]


@WAYS
def test_a_source_that_shrinks_while_copied_is_a_size_mismatch(
    tmp_path: Path, calls: Counter[str], monkeypatch: pytest.MonkeyPatch, ways: tuple[str, ...]
) -> None:
    _data, source = source_copied(tmp_path, monkeypatch, ways)
    helpers.after_open(monkeypatch, "w.bin", lambda path: os.truncate(path, 2 * CHUNK + 5))
    with pytest.raises(bootstrap.IntegrityError) as caught:
        bootstrap.install(source, tmp_path / "vol", MODEL, VERSION)
    # Whichever chunk past the new end a thread reached first is the one reported.
    assert str(caught.value).startswith(
        f"size mismatch for iris 1.0.0: w.bin: expected {5 * CHUNK + 123} bytes, got "
    )
    assert not (tmp_path / "vol" / MODEL / VERSION).exists()


def test_a_failing_kernel_copy_names_both_files_and_leaves_nothing(
    tmp_path: Path, calls: Counter[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bootstrap, "_open_direct", lambda _path: -1)
    refuse(monkeypatch, "copy_file_range", errno.EIO)  # a disk error, not a refusal
    source = helpers.make_source(tmp_path / "src", files(), MODEL, VERSION, True)
    volume = tmp_path / "vol"

    with pytest.raises(OSError) as caught:
        bootstrap.install(source, volume, MODEL, VERSION)

    err = caught.value
    assert err.errno == errno.EIO
    # The first file in manifest order with a chunk (empty.txt has none).
    assert err.filename == str(source / "sub" / "small.bin")
    assert str(err.filename2).startswith(str(volume / MODEL / f".tmp-{VERSION}-"))
    assert str(err.filename2).endswith("/sub/small.bin")
    assert calls["sendfile"] == 0  # an I/O error is not retried another way
    assert sorted(p.name for p in (volume / MODEL).iterdir()) == [f".{VERSION}.lock"]


@pytest.mark.parametrize("offset", [0, CHUNK, 100])  # 100: not mappable there, so read
def test_hash_range_is_the_sha256_of_those_bytes(tmp_path: Path, offset: int) -> None:
    data = os.urandom(3 * CHUNK)
    (tmp_path / "f").write_bytes(data)
    fd = os.open(tmp_path / "f", os.O_RDONLY)
    digest = hashlib.sha256(b"before")
    try:
        bootstrap._hash_range(fd, offset, CHUNK, digest)
    finally:
        os.close(fd)
    assert digest.hexdigest() == sha(b"before" + data[offset : offset + CHUNK])


def test_the_copy_is_what_is_hashed_not_the_source(
    tmp_path: Path, calls: Counter[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A copy that goes wrong in the kernel (or under it) while the source stays right.
    monkeypatch.setattr(bootstrap, "COPY_WAYS", ("copy_file_range",))
    real = bootstrap._copy_file_range

    def copy_badly(src: int, dst: int, offset: int, length: int) -> int:
        copied = real(src, dst, offset, length)
        if offset == 2 * CHUNK:
            byte = os.pread(dst, 1, offset + 9)
            os.pwrite(dst, bytes([byte[0] ^ 0x80]), offset + 9)
        return copied

    monkeypatch.setattr(bootstrap, "_copy_file_range", copy_badly)
    data = files()
    source = helpers.make_source(tmp_path / "src", data, MODEL, VERSION, True)
    bad = r"w\.bin: bytes 131072\.\.196607 \(chunk 2\)"
    with pytest.raises(bootstrap.IntegrityError, match=bad):
        bootstrap.install(source, tmp_path / "vol", MODEL, VERSION)
    assert not (tmp_path / "vol" / MODEL / VERSION).exists()


@WAYS
def test_an_old_manifest_installs_each_way_and_a_tampered_file_is_named(
    tmp_path: Path, calls: Counter[str], monkeypatch: pytest.MonkeyPatch, ways: tuple[str, ...]
) -> None:
    # Images built before chunk hashes: each file one hash stream, copied piece by piece.
    monkeypatch.setattr(bootstrap, "COPY_WAYS", ways)
    data = files()
    source = helpers.make_source(tmp_path / "old", data, MODEL, VERSION, False)
    result = bootstrap.install(source, tmp_path / "vol", MODEL, VERSION)
    for rel, content in data.items():
        assert (result.path / rel).read_bytes() == content
    assert bootstrap.verify(tmp_path / "vol", MODEL, VERSION) == len(data)
    assert sum(calls.values()) == 7  # 6 pieces of w.bin, 1 of small.bin
    assert calls[ways[0] if ways else "python"] >= 6

    tampered = bytearray(data["w.bin"])
    tampered[4 * CHUNK] ^= 0x01
    (source / "w.bin").write_bytes(bytes(tampered))
    with pytest.raises(bootstrap.IntegrityError) as caught:
        bootstrap.install(source, tmp_path / "vol2", MODEL, VERSION)
    assert str(caught.value) == (
        f"checksum mismatch for iris 1.0.0: w.bin: expected sha256 {sha(data['w.bin'])[:12]}…, "
        f"got {sha(bytes(tampered))[:12]}…"
    )
    assert sorted(p.name for p in (tmp_path / "vol2" / MODEL).iterdir()) == [f".{VERSION}.lock"]


def test_a_direct_write_refused_midway_hashes_each_byte_once(
    tmp_path: Path, calls: Counter[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The volume refuses O_DIRECT only from the third piece on: the pieces before went
    # direct, the rest through the kernel copy, and the one whole-file hash still matches.
    real = os.pwrite

    def pwrite(fd: int, data: Any, offset: int) -> int:
        if fcntl_flags(fd) & os.O_DIRECT and offset >= 2 * CHUNK:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
    monkeypatch.setattr(bootstrap, "_workers", lambda: 1)
    data = files()
    source = helpers.make_source(tmp_path / "old", data, MODEL, VERSION, False)
    result = bootstrap.install(source, tmp_path / "vol", MODEL, VERSION)
    assert (result.path / "w.bin").read_bytes() == data["w.bin"]
    assert calls == {"direct": 2, "copy_file_range": 5}


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "whole-file"])
def test_an_empty_file_is_checked_against_its_hash_too(tmp_path: Path, chunked: bool) -> None:
    source = helpers.make_source(tmp_path / "src", {"empty.txt": b""}, MODEL, VERSION, chunked)
    manifest = json.loads((source / "manifest.json").read_text())
    manifest["files"][0]["sha256"] = sha(b"not empty")
    (source / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(bootstrap.IntegrityError, match=r"empty\.txt: expected sha256 "):
        bootstrap.install(source, tmp_path / "vol", MODEL, VERSION)
    assert sorted(p.name for p in (tmp_path / "vol" / MODEL).iterdir()) == [f".{VERSION}.lock"]
