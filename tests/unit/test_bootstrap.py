"""Tests for the model bootstrap installer (nomadml/bundled/bootstrap.py)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import helpers
import pytest
from helpers import error_line, snapshot

from nomadml.bundled import bootstrap

BOOTSTRAP = Path(bootstrap.__file__).resolve()
MODEL = "iris"
VERSION = "1.0.0"

FILES = {
    "model.json": b'{"weights": [1, 2, 3]}\n',
    "sub/weights.bin": bytes(range(256)) * 64,
    "sub/deeper/empty.txt": b"",
}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_source(
    root: Path,
    files: dict[str, bytes] | None = None,
    model: str = MODEL,
    version: str = VERSION,
    chunked: bool = True,
) -> Path:
    return helpers.make_source(root, FILES if files is None else files, model, version, chunked)


# Both manifest kinds install: with chunk hashes (copied on all cores) and without
# (images built before chunk hashes; copied file by file).
KINDS = pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "whole-file"])


def write_raw_manifest(root: Path, manifest: object) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "manifest.json").write_text(json.dumps(manifest))


def temp_dirs(model_dir: Path) -> list[str]:
    if not model_dir.exists():
        return []
    return sorted(p.name for p in model_dir.iterdir() if p.name.startswith(".tmp-"))


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NOMADML_")}
    clean.update(env or {})
    return subprocess.run(
        [sys.executable, str(BOOTSTRAP), *args],
        capture_output=True,
        text=True,
        env=clean,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], code: int) -> str:
    assert proc.returncode == code, proc.stderr
    return error_line(proc.stdout, proc.stderr)


# --------------------------------------------------------------------------- manifest


def test_manifest_round_trip(tmp_path: Path) -> None:
    source = make_source(tmp_path / "src")
    written = json.loads((source / "manifest.json").read_text())

    assert written == {
        "format": 1,
        "model": MODEL,
        "version": VERSION,
        "chunk_size": bootstrap.CHUNK_SIZE,
        "files": [
            {
                "path": rel,
                "sha256": sha(FILES[rel]),
                "size": len(FILES[rel]),
                "chunks": [sha(FILES[rel])] if FILES[rel] else [],
            }
            for rel in sorted(FILES)
        ],
    }
    # Rebuilding skips the manifest itself, so it is stable.
    assert bootstrap.build_manifest(source, MODEL, VERSION) == written
    assert sorted(p.name for p in source.iterdir()) == ["manifest.json", "model.json", "sub"]
    parsed = bootstrap.parse_manifest(
        (source / "manifest.json").read_bytes(), source / "manifest.json", MODEL, VERSION
    )
    assert [e.path for e in parsed.files] == sorted(FILES)
    assert parsed.total_bytes == sum(len(v) for v in FILES.values())


def test_build_manifest_hashes_multi_chunk_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bootstrap, "CHUNK_SIZE", 1 << 20)
    data = os.urandom((1 << 20) * 2 + 17)
    (tmp_path / "big.bin").write_bytes(data)
    manifest = bootstrap.build_manifest(tmp_path, MODEL, VERSION)
    chunks = [sha(data[: 1 << 20]), sha(data[1 << 20 : 2 << 20]), sha(data[2 << 20 :])]
    assert manifest["chunk_size"] == 1 << 20
    assert manifest["files"] == [
        {"path": "big.bin", "sha256": sha(data), "size": len(data), "chunks": chunks}
    ]


@pytest.mark.parametrize("link_kind", ["file", "dir"])
def test_build_manifest_refuses_symlinks(tmp_path: Path, link_kind: str) -> None:
    source = tmp_path / "src"
    (source / "real").mkdir(parents=True)
    (source / "real" / "a.txt").write_text("a")
    target = source / "real" / ("a.txt" if link_kind == "file" else "")
    (source / "link").symlink_to(target)
    with pytest.raises(bootstrap.BootstrapError, match=r"refusing symlink .*/src/link$"):
        bootstrap.build_manifest(source, MODEL, VERSION)


def test_build_manifest_refuses_special_files(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(bootstrap.BootstrapError, match=r"not a regular file or directory.*/pipe$"):
        bootstrap.build_manifest(tmp_path, MODEL, VERSION)


def test_build_manifest_refuses_reserved_name(tmp_path: Path) -> None:
    (tmp_path / ".nomadml-complete").write_text("x")
    with pytest.raises(bootstrap.BootstrapError, match="reserved name"):
        bootstrap.build_manifest(tmp_path, MODEL, VERSION)


def test_write_manifest_leaves_no_temp_file(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("a")
    (tmp_path / "manifest.json").write_text("old")
    target = bootstrap.write_manifest(tmp_path, {"format": 1, "files": []})
    assert target == tmp_path / "manifest.json"
    assert json.loads(target.read_text()) == {"format": 1, "files": []}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "manifest.json"]


# --------------------------------------------------------------------------- install


def test_install_happy_path(tmp_path: Path) -> None:
    source = make_source(tmp_path / "src")
    (source / "not-in-manifest.txt").write_text("extra")
    volume = tmp_path / "vol"
    old_umask = os.umask(0o077)
    try:
        result = bootstrap.install(source, volume, MODEL, VERSION)
    finally:
        os.umask(old_umask)

    final = volume / MODEL / VERSION
    assert result == bootstrap.InstallResult(
        path=final,
        already_installed=False,
        files=len(FILES),
        bytes=sum(len(v) for v in FILES.values()),
    )
    for rel, data in FILES.items():
        assert (final / rel).read_bytes() == data
        # Readable by a serving task running as another user, despite the umask.
        assert stat.S_IMODE((final / rel).stat().st_mode) == 0o644
    assert stat.S_IMODE(final.stat().st_mode) == 0o755
    assert not (final / "not-in-manifest.txt").exists()
    assert (final / "manifest.json").read_bytes() == (source / "manifest.json").read_bytes()
    marker = json.loads((final / ".nomadml-complete").read_text())
    assert marker["model"] == MODEL
    assert marker["version"] == VERSION
    assert marker["files"] == len(FILES)
    assert marker["bytes"] == result.bytes
    assert marker["installed_at"].endswith("+00:00")
    assert sorted(p.name for p in final.iterdir()) == [
        ".nomadml-complete",
        "manifest.json",
        "model.json",
        "sub",
    ]
    assert temp_dirs(volume / MODEL) == []
    assert bootstrap.verify(volume, MODEL, VERSION) == len(FILES)


def test_everything_published_is_fsynced_before_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Durability: a crash right after the rename must not expose unflushed bytes."""
    source = make_source(tmp_path / "src")
    volume = tmp_path / "vol"
    synced: set[int] = set()
    events: list[str] = []
    real_fsync, real_rename = os.fsync, os.rename

    def fsync(fd: int) -> None:
        real_fsync(fd)
        synced.add(os.fstat(fd).st_ino)
        events.append("fsync")

    def rename(src: Path, dst: Path) -> None:
        unsynced = [
            str(p.relative_to(src))
            for p in [Path(src), *Path(src).rglob("*")]
            if p.lstat().st_ino not in synced
        ]
        assert unsynced == [], f"renamed before fsync: {unsynced}"
        events.append("rename")
        real_rename(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    bootstrap.install(source, volume, MODEL, VERSION)
    # ...and the model directory's entry for the new version is flushed after it.
    assert events.count("rename") == 1
    assert events[-1] == "fsync"
    assert (volume / MODEL).stat().st_ino in synced


@KINDS
def test_write_back_starts_once_per_written_range(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunked: bool
) -> None:
    """Write-back is started on each chunk right after it is written, each byte once,
    so no page that is already clean (and might be dropped) is advised again."""
    big = os.urandom(1 << 16) * 40  # 2.5 MiB: two whole chunks and a tail
    monkeypatch.setattr(bootstrap, "CHUNK_SIZE", 1 << 20)
    files = {"weights.bin": big, "small.txt": b"x"}
    source = make_source(tmp_path / "src", files, chunked=chunked)
    # The ways through the page cache: O_DIRECT writes leave no dirty pages to start.
    monkeypatch.setattr(bootstrap, "COPY_WAYS", ("copy_file_range", "sendfile"))
    advised: dict[int, list[tuple[int, int]]] = {}
    real = os.posix_fadvise

    def fadvise(fd: int, offset: int, length: int, advice: int) -> None:
        if advice == os.POSIX_FADV_DONTNEED:
            advised.setdefault(os.fstat(fd).st_ino, []).append((offset, length))
        real(fd, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", fadvise)
    bootstrap.install(source, tmp_path / "vol", MODEL, VERSION)
    final = tmp_path / "vol" / MODEL / VERSION
    advised = {inode: sorted(ranges) for inode, ranges in advised.items()}  # threads' order
    assert advised == {
        (final / "weights.bin").stat().st_ino: [
            (0, 1 << 20),
            (1 << 20, 1 << 20),
            (2 << 20, len(big) - (2 << 20)),
        ],
        (final / "small.txt").stat().st_ino: [(0, 1)],
    }
    assert (final / "weights.bin").read_bytes() == big


def test_reinstall_takes_fast_path_without_reading_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = make_source(tmp_path / "src", {"big.bin": os.urandom(8 << 20)})
    volume = tmp_path / "vol"
    first = bootstrap.install(source, volume, MODEL, VERSION)
    assert first.already_installed is False

    # No source any more, and any attempt to load a manifest or hash a file would blow up.
    shutil.rmtree(source)

    def boom(*_args: object) -> None:
        raise AssertionError("fast path must not read the model")

    monkeypatch.setattr(bootstrap, "_load_manifest", boom)
    monkeypatch.setattr(bootstrap, "_copy_files", boom)
    started = time.perf_counter()
    second = bootstrap.install(source, volume, MODEL, VERSION)
    elapsed = time.perf_counter() - started

    assert second.already_installed is True
    assert second.path == first.path
    assert (second.files, second.bytes) == (1, 8 << 20)
    assert elapsed < 0.05


def test_checksum_mismatch(tmp_path: Path) -> None:
    source = make_source(tmp_path / "src", chunked=False)
    tampered = b'{"weights": [6, 6, 6]}\n'
    assert len(tampered) == len(FILES["model.json"])
    (source / "model.json").write_bytes(tampered)
    volume = tmp_path / "vol"

    with pytest.raises(bootstrap.IntegrityError) as caught:
        bootstrap.install(source, volume, MODEL, VERSION)

    assert str(caught.value) == (
        f"checksum mismatch for iris 1.0.0: model.json: "
        f"expected sha256 {sha(FILES['model.json'])[:12]}…, got {sha(tampered)[:12]}…"
    )
    assert caught.value.exit_code == 3
    assert isinstance(caught.value, bootstrap.BootstrapError)
    assert not (volume / MODEL / VERSION).exists()
    assert temp_dirs(volume / MODEL) == []


@KINDS
@pytest.mark.parametrize(("data", "got"), [(b"short", "5"), (b"x" * 10_000, "10000")])
def test_size_mismatch(tmp_path: Path, data: bytes, got: str, chunked: bool) -> None:
    source = make_source(tmp_path / "src", chunked=chunked)
    (source / "model.json").write_bytes(data)
    volume = tmp_path / "vol"

    with pytest.raises(bootstrap.IntegrityError) as caught:
        bootstrap.install(source, volume, MODEL, VERSION)

    assert str(caught.value) == (
        f"size mismatch for iris 1.0.0: model.json: expected 23 bytes, got {got}"
    )
    assert not (volume / MODEL / VERSION).exists()
    assert temp_dirs(volume / MODEL) == []


def test_chunk_checksum_mismatch_names_the_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bootstrap, "CHUNK_SIZE", 1 << 20)
    data = os.urandom(3 << 20)
    source = make_source(tmp_path / "src", {"w.bin": data, "a.txt": b"a"})
    tampered = bytearray(data)
    tampered[(1 << 20) + 5] ^= 0xFF  # one byte in the second chunk
    (source / "w.bin").write_bytes(bytes(tampered))
    volume = tmp_path / "vol"

    with pytest.raises(bootstrap.IntegrityError) as caught:
        bootstrap.install(source, volume, MODEL, VERSION)

    second = sha(data[1 << 20 : 2 << 20])
    assert str(caught.value) == (
        f"checksum mismatch for iris 1.0.0: w.bin: bytes {1 << 20}..{(2 << 20) - 1} "
        f"(chunk 1) do not match their sha256 {second[:12]}…"
    )
    assert not (volume / MODEL / VERSION).exists()
    assert temp_dirs(volume / MODEL) == []


@KINDS
def test_a_file_that_grows_while_copied_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunked: bool
) -> None:
    # Only the manifest's bytes are copied (a growing file cannot fill the volume), and
    # the growth is found once the file's copy ends.
    source = make_source(tmp_path / "src", chunked=chunked)

    def grow(path: Path) -> None:
        with open(path, "ab") as handle:
            handle.write(b"more")

    helpers.after_open(monkeypatch, "model.json", grow)
    with pytest.raises(bootstrap.IntegrityError, match=r"model\.json: expected 23 bytes, got more"):
        bootstrap.install(source, tmp_path / "vol", MODEL, VERSION)
    assert temp_dirs(tmp_path / "vol" / MODEL) == []


def test_chunked_copy_uses_several_threads_and_matches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bootstrap, "CHUNK_SIZE", 1 << 16)
    monkeypatch.setattr(bootstrap, "_workers", lambda: 4)
    files = {f"part-{i}.bin": os.urandom(5 * (1 << 16) + i) for i in range(6)}
    source = make_source(tmp_path / "src", files)
    threads: set[str] = set()
    real = bootstrap._ChunkCopier._copy
    # The first two chunks wait for each other: only two threads copying at once pass.
    together = threading.Barrier(2, timeout=30)
    calls = iter(range(1_000_000))

    def copy(self: bootstrap._ChunkCopier, pair: bootstrap._OpenPair, index: int) -> None:
        threads.add(threading.current_thread().name)
        if next(calls) < 2:
            together.wait()
        real(self, pair, index)

    monkeypatch.setattr(bootstrap._ChunkCopier, "_copy", copy)
    result = bootstrap.install(source, tmp_path / "vol", MODEL, VERSION)
    assert len(threads) > 1
    for rel, data in files.items():
        assert (result.path / rel).read_bytes() == data
    assert bootstrap.verify(tmp_path / "vol", MODEL, VERSION) == len(files)


@KINDS
def test_both_manifest_kinds_install_and_verify(tmp_path: Path, chunked: bool) -> None:
    source = make_source(tmp_path / "src", chunked=chunked)
    result = bootstrap.install(source, tmp_path / "vol", MODEL, VERSION)
    for rel, data in FILES.items():
        assert (result.path / rel).read_bytes() == data
    assert bootstrap.verify(tmp_path / "vol", MODEL, VERSION) == len(FILES)
    # A manifest with chunk hashes still passes a reader of whole-file hashes only.
    written = json.loads((result.path / "manifest.json").read_text())
    assert ("chunk_size" in written) is chunked


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"chunk_size": 1000}, "chunk_size: must be a power of two"),
        ({"chunk_size": True}, "chunk_size: must be a power of two"),
        ({"chunk_size": 1 << 40}, "chunk_size: must be a power of two"),
        ({"chunk_size": 128 << 20}, "chunk_size: must be a power of two"),
        ({"files": [{"chunks": []}]}, r"files\[0\]\.chunks: expected 1 chunk hashes for 23 bytes"),
        ({"files": [{"chunks": "abc"}]}, r"files\[0\]\.chunks: must be a list"),
        ({"files": [{"chunks": ["xyz"]}]}, r"files\[0\]\.chunks\[0\]: must be 64 hex"),
        ({"chunk_size": None}, r"files\[0\]\.chunks: chunk hashes need a top-level chunk_size"),
    ],
)
def test_bad_chunk_fields_are_named(tmp_path: Path, edit: dict[str, object], message: str) -> None:
    source = make_source(tmp_path / "src", {"model.json": FILES["model.json"]})
    manifest = json.loads((source / "manifest.json").read_text())
    for key, value in edit.items():
        if key == "files":
            manifest["files"][0].update(value[0])  # type: ignore[index]
        elif value is None:
            del manifest[key]
        else:
            manifest[key] = value
    write_raw_manifest(source, manifest)
    with pytest.raises(bootstrap.BootstrapError, match=message):
        bootstrap.install(source, tmp_path / "vol", MODEL, VERSION)
    assert not (tmp_path / "vol" / MODEL / VERSION).exists()


def test_file_missing_from_source(tmp_path: Path) -> None:
    source = make_source(tmp_path / "src")
    (source / "sub" / "weights.bin").unlink()
    with pytest.raises(
        bootstrap.BootstrapError, match=r"weights\.bin: listed in the manifest but missing$"
    ):
        bootstrap.install(source, tmp_path / "vol", MODEL, VERSION)
    assert not (tmp_path / "vol" / MODEL / VERSION).exists()
    assert temp_dirs(tmp_path / "vol" / MODEL) == []


BAD_NAMES = ["../x", "/abs", "a/b", "..", "", "x y", "v\x00", "a" * 200, ".hidden", "1..2",
             "v1\n", "caf\u00e9", "\u0661", "-rf"]  # fmt: skip


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(bootstrap.BootstrapError) as caught:
        bootstrap.validate_name("version", name)
    assert str(caught.value).startswith(f"invalid version {name!r}: must match ")
    assert caught.value.exit_code == 2
    assert "\n" not in str(caught.value)

    source = make_source(tmp_path / "src")
    volume = tmp_path / "vol"
    with pytest.raises(bootstrap.BootstrapError, match=r"^invalid version "):
        bootstrap.install(source, volume, MODEL, name)
    with pytest.raises(bootstrap.BootstrapError, match=r"^invalid model "):
        bootstrap.install(source, volume, name, VERSION)
    assert not volume.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


@pytest.mark.parametrize("name", ["1.0.0", "v2", "a", "1.0.0-rc.1+build_7", "A" * 128])
def test_good_names_accepted(name: str) -> None:
    assert bootstrap.validate_name("model", name) == name


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("../evil", "escapes the model directory"),
        ("/etc/passwd", "is absolute"),
        ("a/../../b", "escapes the model directory"),
        ("a/./b", "not a normalized relative path"),
        ("a//b", "not a normalized relative path"),
        ("", "must be a non-empty string"),
        ("manifest.json", "reserved name"),
        (".nomadml-complete", "reserved name"),
    ],
)
def test_manifest_path_escapes_refused(tmp_path: Path, path: str, problem: str) -> None:
    source = tmp_path / "src"
    write_raw_manifest(
        source,
        {
            "format": 1,
            "model": MODEL,
            "version": VERSION,
            "files": [{"path": path, "sha256": "0" * 64, "size": 0}],
        },
    )
    with pytest.raises(bootstrap.BootstrapError) as caught:
        bootstrap.install(source, tmp_path / "vol", MODEL, VERSION)
    assert "files[0].path" in str(caught.value)
    assert problem in str(caught.value)
    assert not (tmp_path / "vol").exists()
    assert not (tmp_path / "evil").exists()


GOOD_ENTRY = {"path": "a", "sha256": "0" * 64, "size": 0}


@pytest.mark.parametrize(
    ("manifest", "field"),
    [
        ({"format": 2, "model": MODEL, "version": VERSION, "files": []}, "format"),
        ({"format": True, "model": MODEL, "version": VERSION, "files": []}, "format"),
        ({"format": 1, "model": "other", "version": VERSION, "files": []}, "model"),
        ({"format": 1, "model": MODEL, "version": "9.9", "files": []}, "version"),
        ({"format": 1, "model": MODEL, "version": VERSION, "files": {}}, "files"),
        ({"format": 1, "model": MODEL, "version": VERSION, "files": ["a"]}, "files[0]"),
        (
            {"format": 1, "model": MODEL, "version": VERSION, "files": [GOOD_ENTRY, GOOD_ENTRY]},
            "files[1].path",
        ),
        (
            {
                "format": 1,
                "model": MODEL,
                "version": VERSION,
                "files": [GOOD_ENTRY, {**GOOD_ENTRY, "path": "a/b"}],
            },
            "files[1].path",
        ),
        (
            {
                "format": 1,
                "model": MODEL,
                "version": VERSION,
                "files": [{**GOOD_ENTRY, "sha256": "xyz"}],
            },
            "files[0].sha256",
        ),
        (
            {
                "format": 1,
                "model": MODEL,
                "version": VERSION,
                "files": [{**GOOD_ENTRY, "size": -1}],
            },
            "files[0].size",
        ),
        (
            {
                "format": 1,
                "model": MODEL,
                "version": VERSION,
                "files": [{**GOOD_ENTRY, "size": 1.5}],
            },
            "files[0].size",
        ),
        ([], "(top level)"),
    ],
)
def test_bad_manifest_fields_named(tmp_path: Path, manifest: object, field: str) -> None:
    source = tmp_path / "src"
    write_raw_manifest(source, manifest)
    with pytest.raises(bootstrap.BootstrapError) as caught:
        bootstrap.install(source, tmp_path / "vol", MODEL, VERSION)
    assert f"manifest {source / 'manifest.json'}: {field}: " in str(caught.value)
    assert not isinstance(caught.value, bootstrap.IntegrityError)


def test_missing_or_garbled_manifest(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    with pytest.raises(bootstrap.BootstrapError, match=r"^no manifest at .*/src/manifest\.json "):
        bootstrap.install(source, tmp_path / "vol", MODEL, VERSION)
    (source / "manifest.json").write_text("{not json")
    with pytest.raises(bootstrap.BootstrapError, match=r"manifest\.json: not valid JSON: "):
        bootstrap.install(source, tmp_path / "vol", MODEL, VERSION)
    with pytest.raises(bootstrap.BootstrapError, match=r"^model directory not found: .*/nope$"):
        bootstrap.install(tmp_path / "nope", tmp_path / "vol", MODEL, VERSION)


@pytest.mark.parametrize("where", ["model.json", "sub"])
def test_install_refuses_symlink_in_source(tmp_path: Path, where: str) -> None:
    source = make_source(tmp_path / "src")
    # Same content behind the link, so only the symlink itself can be the reason.
    elsewhere = tmp_path / "elsewhere"
    shutil.move(source / where, elsewhere)
    (source / where).symlink_to(elsewhere)
    volume = tmp_path / "vol"

    with pytest.raises(bootstrap.BootstrapError) as caught:
        bootstrap.install(source, volume, MODEL, VERSION)

    assert str(caught.value) == f"refusing symlink {source / where}"
    assert not isinstance(caught.value, bootstrap.IntegrityError)
    assert not (volume / MODEL / VERSION).exists()
    assert temp_dirs(volume / MODEL) == []


def test_other_version_untouched(tmp_path: Path) -> None:
    volume = tmp_path / "vol"
    old_source = make_source(tmp_path / "src-old")
    bootstrap.install(old_source, volume, MODEL, "1.0.0")
    before = snapshot(volume / MODEL / "1.0.0")
    time.sleep(0.01)  # so a rewrite would show up as a different mtime

    new_files = {"model.json": b"new", "sub/weights.bin": b"new weights"}
    new_source = make_source(tmp_path / "src-new", new_files, version="1.1.0")
    # A stale temp dir of the *new* version must not make us touch the old one either.
    (volume / MODEL / ".tmp-1.1.0-0123456789abcdef").mkdir()
    result = bootstrap.install(new_source, volume, MODEL, "1.1.0")

    assert result.path == volume / MODEL / "1.1.0"
    assert snapshot(volume / MODEL / "1.0.0") == before
    assert (volume / MODEL / "1.1.0" / "model.json").read_bytes() == b"new"
    assert (volume / MODEL / "1.0.0" / "model.json").read_bytes() == FILES["model.json"]
    assert sorted(p.name for p in (volume / MODEL).iterdir()) == [
        ".1.0.0.lock",
        ".1.1.0.lock",
        "1.0.0",
        "1.1.0",
    ]


def test_concurrent_installs_same_version(tmp_path: Path) -> None:
    files = {f"shard-{i}.bin": os.urandom(4 << 20) for i in range(4)}
    source = make_source(tmp_path / "src", files)
    volume = tmp_path / "vol"
    env = {
        "NOMADML_MODEL_SOURCE": str(source),
        "NOMADML_VOLUME": str(volume),
        "NOMADML_MODEL_NAME": MODEL,
        "NOMADML_MODEL_VERSION": VERSION,
    }
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NOMADML_")}
    procs = [
        subprocess.Popen(
            [sys.executable, str(BOOTSTRAP), "install"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**clean, **env},
        )
        for _ in range(4)
    ]
    outputs = [proc.communicate(timeout=120) for proc in procs]

    assert [proc.returncode for proc in procs] == [0, 0, 0, 0], outputs
    assert all(err == "" for _, err in outputs)
    stdout = [out.strip() for out, _ in outputs]
    final = volume / MODEL / VERSION
    copied = [line for line in stdout if line.startswith("installed ")]
    skipped = [line for line in stdout if line == f"iris 1.0.0 already installed at {final}"]
    assert len(copied) == 1, stdout
    assert len(skipped) == 3, stdout
    for rel, data in files.items():
        assert (final / rel).read_bytes() == data
    assert temp_dirs(volume / MODEL) == []
    assert bootstrap.verify(volume, MODEL, VERSION) == 4


def test_stale_temp_dirs(tmp_path: Path) -> None:
    source = make_source(tmp_path / "src")
    model_dir = tmp_path / "vol" / MODEL
    own = model_dir / ".tmp-1.0.0-deadbeefdeadbeef"
    other_version = model_dir / ".tmp-1.1.0-deadbeefdeadbeef"
    # Version "1.0.0-rc1" shares the ".tmp-1.0.0-" prefix; its live temp dir must survive.
    prefix_lookalike = model_dir / ".tmp-1.0.0-rc1-deadbeefdeadbeef"
    for stale in (own, other_version, prefix_lookalike):
        (stale / "sub").mkdir(parents=True)
        (stale / "sub" / "partial.bin").write_bytes(b"half")

    bootstrap.install(source, tmp_path / "vol", MODEL, VERSION)

    assert not own.exists()
    assert (other_version / "sub" / "partial.bin").read_bytes() == b"half"
    assert (prefix_lookalike / "sub" / "partial.bin").read_bytes() == b"half"
    assert temp_dirs(model_dir) == [prefix_lookalike.name, other_version.name]


@pytest.mark.parametrize("contents", [{"foreign.txt": b"keep me"}, {}])
def test_existing_final_dir_without_marker_refused(
    tmp_path: Path, contents: dict[str, bytes]
) -> None:
    source = make_source(tmp_path / "src")
    final = tmp_path / "vol" / MODEL / VERSION
    final.mkdir(parents=True)
    for name, data in contents.items():
        (final / name).write_bytes(data)

    with pytest.raises(
        bootstrap.BootstrapError,
        match=r"^refusing to replace .*/1\.0\.0: .* no \.nomadml-complete marker",
    ):
        bootstrap.install(source, tmp_path / "vol", MODEL, VERSION)

    assert {p.name: p.read_bytes() for p in final.iterdir()} == contents
    assert temp_dirs(final.parent) == []


def test_final_path_symlink_refused(tmp_path: Path) -> None:
    source = make_source(tmp_path / "src")
    elsewhere = tmp_path / "elsewhere"
    bootstrap.install(source, elsewhere, MODEL, VERSION)
    (tmp_path / "vol" / MODEL).mkdir(parents=True)
    (tmp_path / "vol" / MODEL / VERSION).symlink_to(elsewhere / MODEL / VERSION)

    with pytest.raises(bootstrap.BootstrapError, match=r"^refusing to replace "):
        bootstrap.install(source, tmp_path / "vol", MODEL, VERSION)


def test_model_dir_symlink_refused(tmp_path: Path) -> None:
    source = make_source(tmp_path / "src")
    (tmp_path / "vol").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "vol" / MODEL).symlink_to(tmp_path / "outside")

    with pytest.raises(bootstrap.BootstrapError, match=r"/iris is not a directory \(symlink\?\)"):
        bootstrap.install(source, tmp_path / "vol", MODEL, VERSION)
    assert list((tmp_path / "outside").iterdir()) == []


# --------------------------------------------------------------------------- verify


def test_verify_detects_tampering(tmp_path: Path) -> None:
    source = make_source(tmp_path / "src")
    volume = tmp_path / "vol"
    bootstrap.install(source, volume, MODEL, VERSION)
    assert bootstrap.verify(volume, MODEL, VERSION) == 3

    installed = volume / MODEL / VERSION / "sub" / "weights.bin"
    data = bytearray(installed.read_bytes())
    data[0] ^= 0xFF
    installed.write_bytes(bytes(data))

    with pytest.raises(bootstrap.IntegrityError, match=r"^checksum mismatch for iris 1\.0\.0: sub"):
        bootstrap.verify(volume, MODEL, VERSION)


def test_verify_not_installed(tmp_path: Path) -> None:
    with pytest.raises(bootstrap.BootstrapError, match=r"^iris 1\.0\.0 is not installed"):
        bootstrap.verify(tmp_path, MODEL, VERSION)


# --------------------------------------------------------------------------- CLI


def test_cli_install_and_reinstall_messages(tmp_path: Path) -> None:
    files = {"a.bin": b"x" * 10_000, "b.bin": b"y" * 2_595}
    source = make_source(tmp_path / "src", files)
    volume = tmp_path / "vol"
    args = ["install", "--source", str(source), "--volume", str(volume)]
    args += ["--model", MODEL, "--version", VERSION]

    first = run_cli(*args)
    second = run_cli(*args)

    final = volume / MODEL / VERSION
    assert (first.returncode, first.stderr) == (0, "")
    assert first.stdout == f"installed iris 1.0.0 into {final} (2 files, 12.3 KiB)\n"
    assert (second.returncode, second.stderr) == (0, "")
    assert second.stdout == f"iris 1.0.0 already installed at {final}\n"


def test_cli_env_fallbacks_and_other_commands(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "one.txt").write_bytes(b"1")
    env = {
        "NOMADML_MODEL_SOURCE": str(source),
        "NOMADML_VOLUME": str(tmp_path / "vol"),
        "NOMADML_MODEL_NAME": "m",
        "NOMADML_MODEL_VERSION": "2",
    }

    made = run_cli("manifest", env=env)
    installed = run_cli("install", env=env)
    verified = run_cli("verify", env=env)

    assert made.stdout == f"wrote {source / 'manifest.json'} (1 file, 1 B)\n", made.stderr
    assert json.loads((source / "manifest.json").read_text())["model"] == "m"
    final = tmp_path / "vol" / "m" / "2"
    assert installed.stdout == f"installed m 2 into {final} (1 file, 1 B)\n", installed.stderr
    assert verified.stdout == f"verified m 2 at {final} (1 file)\n", verified.stderr
    assert (final / "one.txt").read_bytes() == b"1"


def test_cli_defaults_without_env(tmp_path: Path) -> None:
    # With no --source and no env, the default is /model; with no model name it is an error.
    proc = run_cli("install", "--volume", str(tmp_path), "--version", "1")
    assert "missing --model (or set $NOMADML_MODEL_NAME)" in assert_one_line_error(proc, 2)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["install", "--model", MODEL, "--version", "../x"], "bootstrap: invalid version '../x'"),
        (["install", "--bogus"], "bootstrap: unrecognized arguments: --bogus"),
        ([], "bootstrap: the following arguments are required: COMMAND"),
        (["frobnicate"], "bootstrap: argument COMMAND: invalid choice"),
    ],
)
def test_cli_bad_input_exit_2(tmp_path: Path, args: list[str], expected: str) -> None:
    proc = run_cli(*args, env={"NOMADML_VOLUME": str(tmp_path / "vol")})
    assert assert_one_line_error(proc, 2).startswith(expected)
    assert not (tmp_path / "vol").exists()


def test_cli_symlink_exit_2(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "link").symlink_to("/etc/hostname")
    proc = run_cli("manifest", "--source", str(source), "--model", MODEL, "--version", VERSION)
    assert (
        assert_one_line_error(proc, 2)
        == f"bootstrap: refusing symlink in model source: {source}/link"
    )


def test_cli_integrity_exit_3(tmp_path: Path) -> None:
    source = make_source(tmp_path / "src")
    (source / "sub" / "weights.bin").write_bytes(b"\0" * len(FILES["sub/weights.bin"]))
    proc = run_cli(
        "install", "--source", str(source), "--volume", str(tmp_path / "vol"),
        "--model", MODEL, "--version", VERSION,
    )  # fmt: skip
    line = assert_one_line_error(proc, 3)
    assert line.startswith("bootstrap: checksum mismatch for iris 1.0.0: sub/weights.bin: ")
    assert line.endswith("…")
    assert not (tmp_path / "vol" / MODEL / VERSION).exists()


def test_cli_io_error_exit_4_unwritable_parent(tmp_path: Path) -> None:
    # Works as root too: no permission bit can make a regular file a directory.
    source = make_source(tmp_path / "src")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a directory")
    volume = blocker / "models"
    proc = run_cli(
        "install", "--source", str(source), "--volume", str(volume),
        "--model", MODEL, "--version", VERSION,
    )  # fmt: skip
    line = assert_one_line_error(proc, 4)
    assert line == f"bootstrap: {volume}: Not a directory"


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permission bits")
def test_cli_io_error_exit_4_read_only_volume(tmp_path: Path) -> None:
    source = make_source(tmp_path / "src")
    volume = tmp_path / "vol"
    volume.mkdir()
    volume.chmod(0o555)
    try:
        proc = run_cli(
            "install", "--source", str(source), "--volume", str(volume),
            "--model", MODEL, "--version", VERSION,
        )  # fmt: skip
    finally:
        volume.chmod(0o755)
    line = assert_one_line_error(proc, 4)
    assert line == f"bootstrap: {volume / MODEL}: Permission denied"
    assert list(volume.iterdir()) == []


def test_main_in_process_returns_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = make_source(tmp_path / "src")
    base = ["--source", str(source), "--volume", str(tmp_path / "vol"), "--model", MODEL]

    assert bootstrap.main(["install", *base, "--version", "1.0.0"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("installed iris 1.0.0 into ")
    assert err == ""

    assert bootstrap.main(["install", *base, "--version", "2.0.0"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"bootstrap: manifest {source / 'manifest.json'}: version: expected '2.0.0', got '1.0.0'\n"
    )
