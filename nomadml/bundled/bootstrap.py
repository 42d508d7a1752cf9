#!/usr/bin/env python3
"""Model bootstrap: install one model version from an image into a shared host volume.

A Nomad ``prestart`` task runs this file inside the model's own container image, which
only promises a ``python3``; so this module is standalone and uses the standard library
only. It copies ``<source>`` (e.g. ``/model``) into ``<volume>/<model>/<version>/``,
checking every file against the ``manifest.json`` baked into the image.

Invariants, because old and new versions share the volume during a canary:

* only ``<volume>/<model>/<version>`` and this version's own lock and temp dirs are written;
* the final directory appears atomically (rename of a complete, fsynced temp dir) and
  always carries the ``.nomadml-complete`` marker; anything without it is never replaced;
* symlinks are refused on the way in and never followed on the way out.

Command line::

    bootstrap.py install  --source DIR --volume DIR --model NAME --version V
    bootstrap.py verify   --volume DIR --model NAME --version V
    bootstrap.py manifest --source DIR --model NAME --version V
    bootstrap.py prune    --volume DIR --model NAME --major N --keep V[,V...] [--dry-run]

Manifests carry a sha256 per file and, since chunk hashes were added, a sha256 per
``chunk_size`` bytes of each file (``"chunk_size"`` at the top, ``"chunks"`` per file;
still format 1: readers that only know whole-file hashes ignore the extra fields). With
chunk hashes the install copies and verifies chunks on all cores at once; a manifest
without them (an image built before) is copied the same ways, each file as one hash
stream on one thread, the files on all cores at once.

Each chunk is hashed from the source's pages where the page cache holds them and
written to the disk straight from those pages (O_DIRECT), so the bytes written are the
bytes checked and nothing is copied through memory. Where the volume takes no O_DIRECT,
the chunk is copied in the kernel (``copy_file_range`` on one filesystem, ``sendfile``
across them, e.g. from the image's overlayfs to the host volume) and the copy itself is
hashed; where the kernel offers neither, it is read, hashed and written from Python.

Exit codes: 0 ok, 2 bad input, 3 integrity failure, 4 I/O error.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import hashlib
import io
import json
import mmap
import os
import re
import secrets
import shutil
import stat
import sys
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Final, NoReturn

MANIFEST_FORMAT: Final = 1
MANIFEST_NAME: Final = "manifest.json"
MARKER_NAME: Final = ".nomadml-complete"
# Names we write next to the model files; a model file with one of these names would
# clobber them, so the manifest may not list them.
RESERVED_NAMES: Final = frozenset({MANIFEST_NAME, MARKER_NAME})

HASH_CHUNK: Final = 1 << 20
# Bytes per chunk hash in new manifests: big enough that hashing, not bookkeeping, is
# the cost; small enough that a big file spreads over every core.
CHUNK_SIZE: Final = 8 << 20
# At most 64 MiB: where a chunk goes through Python, each thread holds one in memory,
# and a bootstrap task runs in Nomad's default 128 MiB memory limit.
_CHUNK_SIZE_LIMITS: Final = (64 << 10, 64 << 20)
# Open files and queued chunks the parallel install keeps ahead of the one it checks.
_OPEN_FILES_AHEAD: Final = 64
# Ways to copy a chunk, best first (see _ChunkCopier). A way the kernel refuses for these
# files (another filesystem, an old kernel, a Python without it) is dropped for the
# install; past the last, the chunk is read, hashed and written through Python.
COPY_WAYS: Final = ("direct", "copy_file_range", "sendfile")
# O_DIRECT writes start and end on this boundary (a multiple of any block size in use);
# the few bytes of a file past its last boundary go through the page cache.
_DIRECT_ALIGN: Final = 4096
# What those calls answer when they cannot copy between these two files at all, as
# opposed to a failing disk (which is an error like any other).
_COPY_UNSUPPORTED: Final = frozenset(
    {errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL}
)
# Failures of an in-kernel copy that can only be the destination's.
_DESTINATION_ERRORS: Final = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})

EXIT_OK: Final = 0
EXIT_BAD_INPUT: Final = 2
EXIT_INTEGRITY: Final = 3
EXIT_IO: Final = 4
EXIT_INTERNAL: Final = 70
EXIT_INTERRUPTED: Final = 130

NAME_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$"
# fullmatch without the anchors: with re.match, `$` would also accept a trailing "\n".
_NAME_RE: Final = re.compile(NAME_PATTERN[1:-1])
_SHA256_RE: Final = re.compile(r"[0-9a-fA-F]{64}")
# Temp dirs are `.tmp-<version>-<16 hex>`; the exact suffix shape is what stops version
# "1.0" from matching (and deleting) the live temp dir of version "1.0-rc1".
_TMP_SUFFIX_RE: Final = re.compile(r"[0-9a-f]{16}")

_FILE_MODE: Final = 0o644
_DIR_MODE: Final = 0o755


class BootstrapError(ValueError):
    """Bad input: a name, argument or manifest is wrong. ``str()`` is one line."""

    exit_code: int = EXIT_BAD_INPUT


class IntegrityError(BootstrapError):
    """A model file does not match its manifest (checksum, size, or missing)."""

    exit_code: int = EXIT_INTEGRITY


@dataclass(frozen=True)
class InstallResult:
    path: Path
    already_installed: bool
    files: int
    bytes: int


@dataclass(frozen=True)
class ManifestEntry:
    path: str
    sha256: str
    size: int
    chunks: tuple[str, ...] = ()  # sha256 per chunk_size bytes; () without chunk hashes


@dataclass(frozen=True)
class Manifest:
    model: str
    version: str
    files: tuple[ManifestEntry, ...]
    raw: bytes  # the exact bytes validated, so the installed copy is what was checked
    chunk_size: int = 0  # 0: whole-file hashes only (a manifest from before chunk hashes)

    @property
    def total_bytes(self) -> int:
        return sum(entry.size for entry in self.files)


# --------------------------------------------------------------------------- names


def validate_name(kind: str, value: str) -> str:
    """Return ``value`` if it is a safe model name / version, else raise BootstrapError.

    The value becomes a directory name on a shared volume, so anything that could
    escape it or hide from a listing (``..``, ``/``, leading dot, NUL, spaces) is refused.
    """
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value) or ".." in value:
        raise BootstrapError(
            f"invalid {kind} {value!r}: must match {NAME_PATTERN} and not contain '..'"
        )
    return value


def _version_dir(volume: Path, model: str, version: str) -> Path:
    return volume / validate_name("model", model) / validate_name("version", version)


# --------------------------------------------------------------------------- helpers


def _with_path(err: OSError, path: Path | str) -> OSError:
    """Attach ``path`` to an OSError raised on a bare fd, so the operator sees where."""
    if err.filename is not None:
        return err
    new = type(err)(err.errno, err.strerror or str(err), str(path))
    new.__cause__ = err
    return new


def _fsync(path: Path, directory: bool = False) -> None:
    """Flush ``path`` (a file we wrote, never through a symlink; or a directory)."""
    kind = os.O_DIRECTORY if directory else os.O_NOFOLLOW
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | kind)
    try:
        os.fsync(fd)
    except OSError as err:
        # Some filesystems cannot fsync a directory; their rename is as durable as it gets.
        if not (directory and err.errno == errno.EINVAL):
            raise _with_path(err, path) from err
    finally:
        os.close(fd)


def _advise(fd: int, offset: int, length: int, advice: str) -> None:
    """posix_fadvise where the platform has it: advice only, so failing is harmless."""
    with contextlib.suppress(OSError, AttributeError):
        os.posix_fadvise(fd, offset, length, getattr(os, advice))


def _is_complete(final: Path) -> bool:
    """Cheap check (two lstat calls) for a finished install: the whole fast path."""
    try:
        if not stat.S_ISDIR(os.lstat(final).st_mode):
            return False
        return stat.S_ISREG(os.lstat(final / MARKER_NAME).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False


def _human_size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _open_regular(root: Path, rel: str, error: type[BootstrapError]) -> int:
    """Open ``root/rel`` for reading without following any symlink below ``root``.

    Each component is lstat'ed (for a clear message) and then opened with O_NOFOLLOW
    relative to its parent's fd (so a swap between the two cannot redirect us).
    """
    parts = rel.split("/")
    dir_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for index, part in enumerate(parts):
            shown = root / "/".join(parts[: index + 1])
            last = index == len(parts) - 1
            try:
                mode = os.stat(part, dir_fd=dir_fd, follow_symlinks=False).st_mode
            except FileNotFoundError:
                raise error(f"{shown}: listed in the manifest but missing") from None
            except NotADirectoryError:
                raise error(f"{shown}: a parent is not a directory") from None
            if stat.S_ISLNK(mode):
                raise error(f"refusing symlink {shown}")
            if last and not stat.S_ISREG(mode):
                raise error(f"{shown}: not a regular file")
            if not last and not stat.S_ISDIR(mode):
                raise error(f"{shown}: not a directory")
            # O_NONBLOCK: if the entry was swapped for a FIFO, open must not hang.
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
            if not last:
                flags |= os.O_DIRECTORY
            try:
                fd = os.open(part, flags, dir_fd=dir_fd)
            except OSError as err:
                if err.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise error(f"{shown}: changed while being read (symlink?)") from None
                raise _with_path(err, shown) from err
            os.close(dir_fd)
            dir_fd = fd
        if not stat.S_ISREG(os.fstat(dir_fd).st_mode):
            raise error(f"{root / rel}: not a regular file")
        fd, dir_fd = dir_fd, -1
        return fd
    finally:
        if dir_fd >= 0:
            os.close(dir_fd)


def _hash_fd(fd: int, path: Path, chunk_size: int = 0) -> tuple[str, int, list[str]]:
    """The file's sha256, its size and, with ``chunk_size``, the sha256 of each chunk."""
    digest = hashlib.sha256()
    buf = bytearray(chunk_size or HASH_CHUNK)
    view = memoryview(buf)
    total = 0
    chunks: list[str] = []
    try:
        while n := _read_full(fd, view):
            digest.update(view[:n])
            if chunk_size:
                chunks.append(hashlib.sha256(view[:n]).hexdigest())
            total += n
    except OSError as err:
        raise _with_path(err, path) from err
    return digest.hexdigest(), total, chunks


def _read_full(fd: int, view: memoryview, offset: int = -1) -> int:
    """Fill ``view`` (from ``offset``, or the file position) unless the file ends first."""
    got = 0
    while got < len(view):
        part = view[got:]
        n = os.readv(fd, [part]) if offset < 0 else os.preadv(fd, [part], offset + got)
        if not n:
            break
        got += n
    return got


def _chunk_count(size: int, chunk_size: int) -> int:
    return -(-size // chunk_size)


# --------------------------------------------------------------------------- manifest


def _walk_source(root: Path, rel: str = "") -> Iterator[str]:
    """Yield relative POSIX paths of regular files; refuse symlinks and special files."""
    directory = root / rel if rel else root
    with os.scandir(directory) as entries:
        children = sorted(entries, key=lambda entry: entry.name)
    for entry in children:
        child = f"{rel}/{entry.name}" if rel else entry.name
        if not rel and entry.name == MANIFEST_NAME:
            continue
        if entry.is_symlink():
            raise BootstrapError(f"refusing symlink in model source: {root / child}")
        if entry.is_dir(follow_symlinks=False):
            yield from _walk_source(root, child)
        elif entry.is_file(follow_symlinks=False):
            yield child
        else:
            raise BootstrapError(f"not a regular file or directory in model source: {root / child}")


def build_manifest(source_dir: Path, model: str, version: str) -> dict[str, Any]:
    """Describe every regular file under ``source_dir`` (sha256 + size), sorted by path."""
    validate_name("model", model)
    validate_name("version", version)
    source_dir = Path(source_dir)
    files: list[dict[str, Any]] = []
    for rel in sorted(_walk_source(source_dir)):
        _check_entry_path(rel, f"files[{len(files)}].path", source_dir / MANIFEST_NAME)
        fd = _open_regular(source_dir, rel, BootstrapError)
        try:
            sha256, size, chunks = _hash_fd(fd, source_dir / rel, CHUNK_SIZE)
        finally:
            os.close(fd)
        files.append({"path": rel, "sha256": sha256, "size": size, "chunks": chunks})
    return {
        "format": MANIFEST_FORMAT,
        "model": model,
        "version": version,
        "chunk_size": CHUNK_SIZE,
        "files": files,
    }


def write_manifest(source_dir: Path, manifest: dict[str, Any]) -> Path:
    """Write ``manifest.json`` atomically, so a crash never leaves half a manifest."""
    source_dir = Path(source_dir)
    target = source_dir / MANIFEST_NAME
    tmp = source_dir / f".{MANIFEST_NAME}.tmp-{secrets.token_hex(8)}"
    data = (json.dumps(manifest, indent=2) + "\n").encode("utf-8")
    try:
        _write_new_file(tmp, data)
        os.rename(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync(source_dir, directory=True)
    return target


def _manifest_error(where: Path, field: str, problem: str) -> BootstrapError:
    return BootstrapError(f"manifest {where}: {field}: {problem}")


def _check_entry_path(path: object, field: str, where: Path) -> str:
    if not isinstance(path, str) or not path:
        raise _manifest_error(where, field, "must be a non-empty string")
    if path.startswith("/"):
        raise _manifest_error(where, field, f"{path!r} is absolute")
    if "\x00" in path:
        raise _manifest_error(where, field, f"{path!r} contains NUL")
    segments = path.split("/")
    if ".." in segments:
        raise _manifest_error(where, field, f"{path!r} escapes the model directory")
    if any(segment in ("", ".") for segment in segments):
        raise _manifest_error(where, field, f"{path!r} is not a normalized relative path")
    if path in RESERVED_NAMES:
        raise _manifest_error(where, field, f"{path!r} is a reserved name")
    return path


def _check_entry(item: object, index: int, where: Path, chunk_size: int) -> ManifestEntry:
    field = f"files[{index}]"
    if not isinstance(item, dict):
        raise _manifest_error(where, field, "must be an object")
    path = _check_entry_path(item.get("path"), f"{field}.path", where)
    sha256 = item.get("sha256")
    if not isinstance(sha256, str) or not _SHA256_RE.fullmatch(sha256):
        raise _manifest_error(where, f"{field}.sha256", "must be 64 hex characters")
    size = item.get("size")
    # bool is an int subclass; `true` is not a size.
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _manifest_error(where, f"{field}.size", "must be an integer >= 0")
    chunks = _check_chunks(item.get("chunks"), f"{field}.chunks", where, size, chunk_size)
    return ManifestEntry(path=path, sha256=sha256.lower(), size=size, chunks=chunks)


def _check_chunk_size(value: object, where: Path) -> int:
    """0 when the manifest has no chunk hashes; else a power of two within limits."""
    if value is None:
        return 0
    low, high = _CHUNK_SIZE_LIMITS
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or not low <= value <= high
        or value & (value - 1)
    ):
        raise _manifest_error(
            where, "chunk_size", f"must be a power of two from {low} to {high}, got {value!r}"
        )
    return value


def _check_chunks(
    value: object, field: str, where: Path, size: int, chunk_size: int
) -> tuple[str, ...]:
    if chunk_size == 0:
        if value is not None:
            raise _manifest_error(where, field, "chunk hashes need a top-level chunk_size")
        return ()
    if not isinstance(value, list):
        raise _manifest_error(where, field, "must be a list (the manifest has a chunk_size)")
    expected = _chunk_count(size, chunk_size)
    if len(value) != expected:
        raise _manifest_error(
            where, field, f"expected {expected} chunk hashes for {size} bytes, got {len(value)}"
        )
    for index, digest in enumerate(value):
        if not isinstance(digest, str) or not _SHA256_RE.fullmatch(digest):
            raise _manifest_error(where, f"{field}[{index}]", "must be 64 hex characters")
    return tuple(digest.lower() for digest in value)


def _check_no_collisions(entries: Sequence[ManifestEntry], where: Path) -> None:
    """Refuse duplicates and file-vs-directory clashes ("a" and "a/b") up front."""
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        if entry.path in seen:
            raise _manifest_error(where, f"files[{index}].path", f"duplicate {entry.path!r}")
        seen.add(entry.path)
    for index, entry in enumerate(entries):
        parts = entry.path.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in seen:
                raise _manifest_error(
                    where, f"files[{index}].path", f"{entry.path!r} is below file {parent!r}"
                )


def parse_manifest(raw: bytes, where: Path, model: str, version: str) -> Manifest:
    """Validate manifest bytes for ``model``/``version``; errors name the bad field."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as err:
        raise BootstrapError(f"manifest {where}: not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise _manifest_error(where, "(top level)", "must be a JSON object")
    fmt = data.get("format")
    if fmt != MANIFEST_FORMAT or isinstance(fmt, bool):
        raise _manifest_error(where, "format", f"expected {MANIFEST_FORMAT}, got {fmt!r}")
    if data.get("model") != model:
        raise _manifest_error(where, "model", f"expected {model!r}, got {data.get('model')!r}")
    if data.get("version") != version:
        raise _manifest_error(
            where, "version", f"expected {version!r}, got {data.get('version')!r}"
        )
    chunk_size = _check_chunk_size(data.get("chunk_size"), where)
    items = data.get("files")
    if not isinstance(items, list):
        raise _manifest_error(where, "files", "must be a list")
    entries = tuple(
        _check_entry(item, index, where, chunk_size) for index, item in enumerate(items)
    )
    _check_no_collisions(entries, where)
    return Manifest(model=model, version=version, files=entries, raw=raw, chunk_size=chunk_size)


def _load_manifest(directory: Path, model: str, version: str) -> Manifest:
    where = directory / MANIFEST_NAME
    if not os.path.isdir(directory):
        raise BootstrapError(f"model directory not found: {directory}")
    if not os.path.lexists(where):
        raise BootstrapError(f"no manifest at {where} (create it with `bootstrap.py manifest`)")
    fd = _open_regular(directory, MANIFEST_NAME, BootstrapError)
    try:
        with os.fdopen(fd, "rb", closefd=True) as handle:
            raw = handle.read()
    except OSError as err:
        raise _with_path(err, where) from err
    return parse_manifest(raw, where, model, version)


# --------------------------------------------------------------------------- install


def _write_new_file(path: Path, data: bytes) -> None:
    """Create ``path`` (never through a symlink, never over a file) with data, fsynced."""
    fd = os.open(
        path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, _FILE_MODE
    )
    try:
        # The serving task may run as another user; the umask must not hide the model.
        os.fchmod(fd, _FILE_MODE)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except OSError as err:
        raise _with_path(err, path) from err
    finally:
        os.close(fd)


def _ensure_model_dir(volume: Path, model: str) -> Path:
    """Create ``volume/model`` if needed and make sure it is a real directory."""
    os.makedirs(volume, exist_ok=True)
    model_dir = volume / model
    try:
        os.mkdir(model_dir, _DIR_MODE)
        os.chmod(model_dir, _DIR_MODE)
    except FileExistsError:
        pass
    if not stat.S_ISDIR(os.lstat(model_dir).st_mode):
        raise BootstrapError(f"{model_dir} is not a directory (symlink?); refusing to write")
    return model_dir


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive flock; the kernel drops it if we die, so it is never stale."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, _FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        # The file stays: unlinking a lock file races with the next waiter.
        os.close(fd)


def _remove_stale_temp_dirs(model_dir: Path, version: str) -> list[Path]:
    """Remove temp dirs of this version left by crashed runs (we hold the lock)."""
    prefix = f".tmp-{version}-"
    removed: list[Path] = []
    with os.scandir(model_dir) as entries:
        names = [entry.name for entry in entries]
    for name in names:
        if name.startswith(prefix) and _TMP_SUFFIX_RE.fullmatch(name[len(prefix) :]):
            stale = model_dir / name
            # rmtree never follows symlinks inside and refuses a symlink at the top.
            shutil.rmtree(stale)
            removed.append(stale)
    return removed


def _refuse_foreign_final(final: Path) -> None:
    if os.path.lexists(final) and not _is_complete(final):
        raise BootstrapError(
            f"refusing to replace {final}: it exists but has no {MARKER_NAME} marker "
            "(not installed by bootstrap, or tampered with); remove it by hand"
        )


def _check_free_space(model_dir: Path, needed: int) -> None:
    vfs = os.statvfs(model_dir)
    # f_blocks == 0: the filesystem does not report space; let the writes decide.
    free = vfs.f_bavail * vfs.f_frsize
    if vfs.f_blocks and free < needed:
        raise OSError(
            errno.ENOSPC,
            f"No space left on device (need {_human_size(needed)}, {_human_size(free)} free)",
            str(model_dir),
        )


def _integrity_error(manifest: Manifest, path: str, problem: str, kind: str) -> IntegrityError:
    return IntegrityError(f"{kind} for {manifest.model} {manifest.version}: {path}: {problem}")


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Have the kernel start writing these just-written bytes to disk, without waiting.

    On Linux, POSIX_FADV_DONTNEED starts write-back of dirty pages and drops only clean
    ones; freshly written pages are all dirty, so nothing is dropped. The disk then
    works while the next chunk is hashed, and the fsyncs before the rename find little
    left to do (about 1.3-1.5x the throughput here; see benchmarks/RESULTS.md). Advisory:
    where it is not supported, the fsyncs do all the work as before."""
    if length > 0:
        _advise(fd, offset, length, "POSIX_FADV_DONTNEED")


def _check_size(manifest: Manifest, entry: ManifestEntry, size: int, capped: bool) -> None:
    """``capped``: the read stopped once past the expected size, so a bigger ``size``
    is only a lower bound."""
    if size != entry.size:
        got = f"more than {entry.size}" if capped and size > entry.size else f"{size}"
        raise _integrity_error(
            manifest, entry.path, f"expected {entry.size} bytes, got {got}", "size mismatch"
        )


def _check_bytes(
    manifest: Manifest, entry: ManifestEntry, size: int, sha256: str, capped: bool = False
) -> None:
    """The bytes read for ``entry`` against the manifest."""
    _check_size(manifest, entry, size, capped)
    if sha256 != entry.sha256:
        raise _integrity_error(
            manifest,
            entry.path,
            f"expected sha256 {entry.sha256[:12]}…, got {sha256[:12]}…",
            "checksum mismatch",
        )


def _make_parents(tmp_dir: Path, rel: str, made: set[str], dirs: list[Path]) -> None:
    parts = rel.split("/")[:-1]
    for depth in range(1, len(parts) + 1):
        sub = "/".join(parts[:depth])
        if sub not in made:
            path = tmp_dir / sub
            os.mkdir(path, _DIR_MODE)
            os.chmod(path, _DIR_MODE)
            made.add(sub)
            dirs.append(path)


def _marker_bytes(manifest: Manifest) -> bytes:
    marker = {
        "model": manifest.model,
        "version": manifest.version,
        "installed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "files": len(manifest.files),
        "bytes": manifest.total_bytes,
    }
    return (json.dumps(marker, indent=2) + "\n").encode("utf-8")


def _workers() -> int:
    """Threads for the chunked copy: one per CPU this process may run on (the
    hashing, reads and writes all release the GIL)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 16))


@dataclass
class _OpenPair:
    """One file being copied chunk by chunk: both fds stay open until its chunks end."""

    entry: ManifestEntry
    src: int
    dst: int
    src_path: Path
    dst_path: Path
    chunks: list[Future[None]]
    direct: int = -1  # the same file as dst, opened O_DIRECT; -1: none


class _Refused(Exception):
    """This way of copying does not work for these files: the next way is tried."""


def _pwrite_all(fd: int, view: memoryview, offset: int, path: Path) -> None:
    try:
        written = 0
        while written < len(view):
            written += os.pwrite(fd, view[written:], offset + written)
    except OSError as err:
        raise _with_path(err, path) from err


def _write_mapped(mapped: mmap.mmap, pair: _OpenPair, offset: int) -> tuple[int, str, bool] | None:
    """Write a mapped chunk at ``offset``: with O_DIRECT up to its last block boundary,
    the rest through the page cache. A failure comes back as (errno, reason, whether
    the O_DIRECT write failed) rather than raised: a traceback could keep a view of the
    mapping alive, and a mapping with views cannot be closed."""
    aligned = len(mapped) - len(mapped) % _DIRECT_ALIGN
    with memoryview(mapped) as view:
        for fd, start, end in ((pair.direct, 0, aligned), (pair.dst, aligned, len(mapped))):
            try:
                while start < end:
                    start += os.pwrite(fd, view[start:end], offset + start)
            except OSError as err:
                return err.errno or errno.EIO, err.strerror or str(err), fd == pair.direct
    return None


def _open_direct(path: Path) -> int:
    """A second fd on ``path`` that writes past the page cache (O_DIRECT); -1 where the
    platform or the filesystem has none."""
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return -1
    try:
        return os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC | flag)
    except OSError:
        return -1


def _copy_file_range(src: int, dst: int, offset: int, length: int) -> int:
    """Copy bytes [offset, offset + length) of src to the same place in dst, in the
    kernel; the bytes copied (fewer if the source ends first)."""
    done = 0
    while done < length:
        n = os.copy_file_range(src, dst, length - done, offset + done, offset + done)
        if not n:
            break
        done += n
    return done


def _sendfile(src: int, dst_path: Path, offset: int, length: int) -> int:
    """Like _copy_file_range, across filesystems too. sendfile writes at the output's
    file position, so each chunk gets an fd of its own: chunks copied at once on other
    threads must not share one position."""
    dst = os.open(dst_path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.lseek(dst, offset, os.SEEK_SET)
        done = 0
        while done < length:
            n = os.sendfile(dst, src, offset + done, length - done)
            if not n:
                break
            done += n
        return done
    finally:
        os.close(dst)


def _hash_range(fd: int, offset: int, length: int, digest: Any) -> None:
    """Feed bytes [offset, offset + length) of ``fd`` to ``digest`` as the page cache
    holds them: mapped, not read into a buffer, so hashing costs no extra copy (read
    where mapping fails). The caller knows those bytes exist: mapping past the end
    would fault."""
    if length and offset % mmap.ALLOCATIONGRANULARITY == 0:
        try:
            mapped = mmap.mmap(fd, length, access=mmap.ACCESS_READ, offset=offset)
        except (OSError, ValueError):
            pass
        else:
            with mapped:
                digest.update(mapped)
            return
    buf = bytearray(length)
    got = _read_full(fd, memoryview(buf), offset)
    digest.update(memoryview(buf)[:got])


class _ChunkCopier:
    """Copies and verifies chunks on a thread pool; each thread reuses one buffer where
    the copy goes through Python."""

    def __init__(self, manifest: Manifest, pool: ThreadPoolExecutor) -> None:
        self.manifest, self.pool = manifest, pool
        self.local = threading.local()
        # Only ever shrinks; threads racing to drop the same way drop it alike.
        self.ways: tuple[str, ...] = COPY_WAYS
        # Bytes copied at a time: a chunk, or a piece of a file without chunk hashes.
        self.piece = manifest.chunk_size or CHUNK_SIZE

    def _buffer(self) -> memoryview:
        buf: memoryview | None = getattr(self.local, "buf", None)
        if buf is None:
            buf = self.local.buf = memoryview(bytearray(self.piece))
        return buf

    def submit(self, pair: _OpenPair) -> None:
        if not pair.entry.size:  # nothing to copy; its hash is still the manifest's?
            _check_bytes(self.manifest, pair.entry, 0, hashlib.sha256().hexdigest())
            return
        if not self.manifest.chunk_size:  # an image built before chunk hashes
            pair.chunks.append(self.pool.submit(self._copy_whole, pair))
            return
        for index in range(len(pair.entry.chunks)):
            pair.chunks.append(self.pool.submit(self._copy, pair, index))

    def _copy(self, pair: _OpenPair, index: int) -> None:
        """Copy chunk ``index`` and check it against its hash."""
        offset = index * self.piece
        length = min(self.piece, pair.entry.size - offset)
        digest = hashlib.sha256()
        self._copy_piece(pair, offset, length, digest)
        self._check_hash(pair, index, offset, length, digest.hexdigest())

    def _copy_whole(self, pair: _OpenPair) -> None:
        """Copy a file whose manifest has only its whole-file hash: its pieces in order
        on one thread (one hash stream), other files on the other threads."""
        digest = hashlib.sha256()
        for offset in range(0, pair.entry.size, self.piece):
            self._copy_piece(pair, offset, min(self.piece, pair.entry.size - offset), digest)
        _check_bytes(self.manifest, pair.entry, pair.entry.size, digest.hexdigest())

    def _copy_piece(self, pair: _OpenPair, offset: int, length: int, digest: Any) -> None:
        """Copy bytes [offset, offset + length) and feed them to ``digest`` (a sha256),
        the first way that works:

        * ``direct``: the source's pages, mapped where the page cache holds them, are
          written to the disk from there (O_DIRECT) and hashed: no copy through
          memory, no dirty pages, the least CPU (most of it is the hash);
        * ``copy_file_range`` / ``sendfile``: copied in the kernel, then the copy itself,
          as the page cache holds it for the disk, is hashed;
        * else read into a buffer, hashed, and written.
        """
        for way in self.ways:
            if way == "direct" and pair.direct < 0:
                continue  # a file under one block, or a volume without O_DIRECT
            try:
                if way == "direct":
                    self._write_direct(pair, offset, length, digest)
                    return
                copied = self._copy_in_kernel(way, pair, offset, length)
                self._check_length(pair, offset, length, copied)
                _hash_range(pair.dst, offset, length, digest)
                _start_writeback(pair.dst, offset, length)
                return
            except _Refused:
                # Retried from the piece's start the next way: offsets are explicit (and
                # a way is refused before it hashes anything).
                self.ways = tuple(other for other in self.ways if other != way)
        self._copy_through_python(pair, offset, length, digest)

    def _write_direct(self, pair: _OpenPair, offset: int, length: int, digest: Any) -> None:
        # Touching a mapping past the file's end kills the process (SIGBUS), so a source
        # that shrank is a size mismatch before it is mapped. (An image's layer never
        # changes under a running container; this is for sources anywhere else.)
        try:
            size = os.fstat(pair.src).st_size
        except OSError as err:
            raise _with_path(err, pair.src_path) from err
        self._check_length(pair, offset, length, max(0, min(length, size - offset)))
        try:
            mapped = mmap.mmap(pair.src, length, access=mmap.ACCESS_READ, offset=offset)
        except (OSError, ValueError):
            raise _Refused from None
        with mapped:
            # Pages not cached yet (an image pulled a while ago) are read ahead for the
            # whole piece at once, not faulted in a few at a time.
            with contextlib.suppress(AttributeError, OSError):
                mapped.madvise(mmap.MADV_WILLNEED)
            # Written first, hashed after: a write the volume refuses must leave the
            # digest untouched for the next way. The pages hashed are the pages written.
            failed = _write_mapped(mapped, pair, offset)
            if failed is None:
                digest.update(mapped)
        if failed is not None:
            code, reason, direct = failed
            if direct and code in _COPY_UNSUPPORTED:  # e.g. an alignment it does not take
                raise _Refused
            raise OSError(code, reason, str(pair.dst_path))

    def _copy_in_kernel(self, way: str, pair: _OpenPair, offset: int, length: int) -> int:
        """Bytes copied in the kernel (fewer: the source ended early)."""
        try:
            if way == "copy_file_range":
                return _copy_file_range(pair.src, pair.dst, offset, length)
            return _sendfile(pair.src, pair.dst_path, offset, length)
        except AttributeError:  # a Python without this call
            raise _Refused from None
        except OSError as err:
            if err.errno in _DESTINATION_ERRORS:
                raise _with_path(err, pair.dst_path) from err
            if err.errno in _COPY_UNSUPPORTED:
                raise _Refused from None
            # Either side may have failed: both are named.
            raise OSError(
                err.errno, err.strerror, str(pair.src_path), None, str(pair.dst_path)
            ) from err

    def _copy_through_python(self, pair: _OpenPair, offset: int, length: int, digest: Any) -> None:
        view = self._buffer()[:length]
        try:
            got = _read_full(pair.src, view, offset)
        except OSError as err:
            raise _with_path(err, pair.src_path) from err
        self._check_length(pair, offset, length, got)
        digest.update(view)
        _pwrite_all(pair.dst, view, offset, pair.dst_path)
        _start_writeback(pair.dst, offset, length)

    def _check_length(self, pair: _OpenPair, offset: int, length: int, got: int) -> None:
        if got < length:
            raise _integrity_error(
                self.manifest,
                pair.entry.path,
                f"expected {pair.entry.size} bytes, got {offset + got}",
                "size mismatch",
            )

    def _check_hash(
        self, pair: _OpenPair, index: int, offset: int, length: int, sha256: str
    ) -> None:
        expected = pair.entry.chunks[index]
        if sha256 != expected:
            raise _integrity_error(
                self.manifest,
                pair.entry.path,
                f"bytes {offset}..{offset + length - 1} (chunk {index}) do not match their "
                f"sha256 {expected[:12]}…",
                "checksum mismatch",
            )

    def finish(self, pair: _OpenPair) -> None:
        """Wait for the file's chunks (the first failure raises), then refuse a source
        that grew past its manifest size while being copied."""
        try:
            for chunk in pair.chunks:
                chunk.result()
            try:
                grew = os.pread(pair.src, 1, pair.entry.size)
            except OSError as err:
                raise _with_path(err, pair.src_path) from err
            if grew:
                _check_size(self.manifest, pair.entry, pair.entry.size + 1, capped=True)
        finally:
            _close_pair(pair)


def _close_pair(pair: _OpenPair) -> None:
    # Only once no chunk of it runs any more: a closed fd number may be reused at once.
    wait(pair.chunks)
    for fd in (pair.src, pair.dst, pair.direct):
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)


def _open_pair(source: Path, tmp_dir: Path, entry: ManifestEntry, manifest: Manifest) -> _OpenPair:
    src = _open_regular(source, entry.path, BootstrapError)
    try:
        _check_size(manifest, entry, os.fstat(src).st_size, capped=False)
        dst_path = tmp_dir / entry.path
        # Read too: the copy is hashed through this fd.
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        dst = os.open(dst_path, flags, _FILE_MODE)
    except BaseException:
        os.close(src)
        raise
    try:
        os.fchmod(dst, _FILE_MODE)
    except BaseException:
        os.close(src)
        os.close(dst)
        raise
    direct = _open_direct(dst_path) if entry.size >= _DIRECT_ALIGN else -1
    return _OpenPair(entry, src, dst, source / entry.path, dst_path, [], direct)


def _copy_files(
    source: Path, tmp_dir: Path, manifest: Manifest, made: set[str], dirs: list[Path]
) -> None:
    """Every file copied and verified on all cores (chunk by chunk with chunk hashes,
    else file by file); files are opened ahead of the one being checked, at most
    _OPEN_FILES_AHEAD of them."""
    ahead: deque[_OpenPair] = deque()
    with ThreadPoolExecutor(_workers(), thread_name_prefix="bootstrap") as pool:
        copier = _ChunkCopier(manifest, pool)
        try:
            for entry in manifest.files:
                _make_parents(tmp_dir, entry.path, made, dirs)
                pair = _open_pair(source, tmp_dir, entry, manifest)
                ahead.append(pair)
                copier.submit(pair)
                while len(ahead) > _OPEN_FILES_AHEAD:
                    copier.finish(ahead.popleft())
            while ahead:
                copier.finish(ahead.popleft())
        except BaseException:
            for pair in ahead:
                for chunk in pair.chunks:
                    chunk.cancel()
            for pair in ahead:
                _close_pair(pair)
            raise


def _populate(source: Path, tmp_dir: Path, manifest: Manifest) -> None:
    made: set[str] = set()
    dirs: list[Path] = [tmp_dir]
    _copy_files(source, tmp_dir, manifest, made, dirs)
    # Flushed once all are written, not one by one: the journal then commits once for
    # them all instead of a disk flush per file (see benchmarks/RESULTS.md).
    for entry in manifest.files:
        _fsync(tmp_dir / entry.path)
    _write_new_file(tmp_dir / MANIFEST_NAME, manifest.raw)
    _write_new_file(tmp_dir / MARKER_NAME, _marker_bytes(manifest))
    # Deepest first, so every directory entry is durable before the rename publishes it.
    for directory in reversed(dirs):
        _fsync(directory, directory=True)


def _install_locked(
    source: Path, model_dir: Path, final: Path, manifest: Manifest
) -> InstallResult:
    _refuse_foreign_final(final)
    _remove_stale_temp_dirs(model_dir, manifest.version)
    _check_free_space(model_dir, manifest.total_bytes + len(manifest.raw))
    tmp_dir = model_dir / f".tmp-{manifest.version}-{secrets.token_hex(8)}"
    os.mkdir(tmp_dir, _DIR_MODE)
    try:
        os.chmod(tmp_dir, _DIR_MODE)
        _populate(source, tmp_dir, manifest)
        _refuse_foreign_final(final)
        os.rename(tmp_dir, final)
    except BaseException:
        # Also on KeyboardInterrupt: a half-copied version must never linger.
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    _fsync(model_dir, directory=True)
    return InstallResult(
        path=final, already_installed=False, files=len(manifest.files), bytes=manifest.total_bytes
    )


def install(source: Path, volume: Path, model: str, version: str) -> InstallResult:
    """Install ``source`` as ``volume/model/version``; a no-op if already complete."""
    source, volume = Path(source), Path(volume)
    final = _version_dir(volume, model, version)
    if _is_complete(final):
        return _already_installed(final)
    manifest = _load_manifest(source, model, version)
    model_dir = _ensure_model_dir(volume, model)
    with _locked(model_dir / f".{version}.lock"):
        if _is_complete(final):
            return _already_installed(final)
        return _install_locked(source, model_dir, final, manifest)


def _already_installed(final: Path) -> InstallResult:
    """Result for a finished install, from its marker only (never from the model files)."""
    files = size = 0
    with contextlib.suppress(OSError, ValueError, TypeError):
        with open(final / MARKER_NAME, "rb") as handle:
            marker = json.loads(handle.read(64 * 1024))
        if isinstance(marker, dict):
            files = int(marker.get("files", 0))
            size = int(marker.get("bytes", 0))
    return InstallResult(path=final, already_installed=True, files=files, bytes=size)


def verify(volume: Path, model: str, version: str) -> int:
    """Re-hash an installed version against its own manifest; return the file count."""
    final = _version_dir(Path(volume), model, version)
    if not _is_complete(final):
        raise BootstrapError(f"{model} {version} is not installed at {final}")
    manifest = _load_manifest(final, model, version)
    for entry in manifest.files:
        fd = _open_regular(final, entry.path, IntegrityError)
        try:
            sha256, size, chunks = _hash_fd(fd, final / entry.path, manifest.chunk_size)
        finally:
            os.close(fd)
        _check_bytes(manifest, entry, size, sha256)
        if tuple(chunks) != entry.chunks:
            raise _integrity_error(manifest, entry.path, "chunk hashes differ", "checksum mismatch")
    return len(manifest.files)


# --------------------------------------------------------------------------- prune


@dataclass(frozen=True)
class PruneResult:
    removed: tuple[tuple[str, int], ...]  # (version, bytes)
    kept: tuple[str, ...]
    busy: tuple[str, ...]  # locked by an install running now: left for the next prune


def _tree_bytes(root: Path) -> int:
    total = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


def _major_of(version: str) -> int | None:
    head = version.split(".", 1)[0]
    return int(head) if head.isdigit() else None


def prune(
    volume: Path, model: str, major: int, keep: Sequence[str], dry_run: bool = False
) -> PruneResult:
    """Remove the installed versions of ``model`` in ``major`` that ``keep`` does not
    name. Only complete installs (with the marker) of that major are candidates: other
    majors, foreign directories and temp dirs are never touched. Each removal holds the
    version's install lock and unpublishes the directory by a rename before deleting it,
    so an install of the same version never sees half of it."""
    validate_name("model", model)
    kept_names = {validate_name("version", version) for version in keep}
    model_dir = Path(volume) / model
    if not os.path.isdir(model_dir):
        return PruneResult((), (), ())
    removed: list[tuple[str, int]] = []
    kept: list[str] = []
    busy: list[str] = []
    for name in sorted(os.listdir(model_dir)):
        if name.startswith(".trash-") and not dry_run:
            shutil.rmtree(model_dir / name, ignore_errors=True)  # a prune that died midway
            continue
        if name.startswith(".") or not _NAME_RE.fullmatch(name) or _major_of(name) != major:
            continue
        final = model_dir / name
        if not _is_complete(final):
            continue
        if name in kept_names:
            kept.append(name)
            continue
        if dry_run:
            removed.append((name, _tree_bytes(final)))
            continue
        if not _remove_version(model_dir, name, removed):
            busy.append(name)
    if removed and not dry_run:
        _fsync(model_dir, directory=True)
    return PruneResult(tuple(removed), tuple(kept), tuple(busy))


def _remove_version(model_dir: Path, version: str, removed: list[tuple[str, int]]) -> bool:
    """False when an install of this version holds its lock right now."""
    lock = os.open(
        model_dir / f".{version}.lock",
        os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
        _FILE_MODE,
    )
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        final = model_dir / version
        if not _is_complete(final):
            return True  # gone meanwhile: nothing to do
        size = _tree_bytes(final)
        trash = model_dir / f".trash-{version}-{secrets.token_hex(8)}"
        os.rename(final, trash)
        shutil.rmtree(trash)
        removed.append((version, size))
        return True
    finally:
        os.close(lock)


# --------------------------------------------------------------------------- CLI


class _Parser(argparse.ArgumentParser):
    """argparse prints usage plus an error over several lines; we promise one line."""

    def error(self, message: str) -> NoReturn:
        raise BootstrapError(message)


def _build_parser() -> _Parser:
    parser = _Parser(prog="bootstrap.py", description=__doc__.splitlines()[0] if __doc__ else "")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    env = os.environ

    def add(name: str, help_text: str, *, source: bool, volume: bool, version: bool = True) -> None:
        sub = commands.add_parser(name, help=help_text)
        if source:
            sub.add_argument(
                "--source",
                type=Path,
                default=Path(env.get("NOMADML_MODEL_SOURCE") or "/model"),
                help="model directory in the image (default: $NOMADML_MODEL_SOURCE or /model)",
            )
        if volume:
            sub.add_argument(
                "--volume",
                type=Path,
                default=Path(env.get("NOMADML_VOLUME") or "/models"),
                help="shared host volume (default: $NOMADML_VOLUME or /models)",
            )
        sub.add_argument(
            "--model",
            default=env.get("NOMADML_MODEL_NAME") or None,
            help="model name (default: $NOMADML_MODEL_NAME)",
        )
        if version:
            sub.add_argument(
                "--version",
                default=env.get("NOMADML_MODEL_VERSION") or None,
                help="model version (default: $NOMADML_MODEL_VERSION)",
            )

    add("install", "copy the model version into the volume", source=True, volume=True)
    add("verify", "re-hash an installed version", source=False, volume=True)
    add("manifest", "write manifest.json for the source directory", source=True, volume=False)
    add(
        "prune",
        "remove installed versions of a major not kept",
        source=False,
        volume=True,
        version=False,
    )
    sub = commands.choices["prune"]
    sub.add_argument("--major", type=int, required=True, help="the major whose versions go")
    sub.add_argument("--keep", default="", help="comma-separated versions to keep")
    sub.add_argument("--dry-run", action="store_true", help="say what would go, remove nothing")
    return parser


def _required(value: str | None, option: str, env_name: str) -> str:
    if not value:
        raise BootstrapError(f"missing {option} (or set ${env_name})")
    return value


def _prune_report(args: argparse.Namespace, model: str) -> str:
    keep = [version for version in args.keep.split(",") if version]
    result = prune(args.volume, model, args.major, keep, args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    lines = [f"{verb} {model} {v} ({_human_size(size)})" for v, size in result.removed]
    lines += [f"busy {model} {v}: an install holds its lock; left" for v in result.busy]
    total = sum(size for _v, size in result.removed)
    lines.append(
        f"pruned {model} major {args.major}: {verb} {_plural(len(result.removed), 'version')} "
        f"({_human_size(total)}); kept {', '.join(result.kept) or 'none'}"
    )
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> str:
    model = _required(args.model, "--model", "NOMADML_MODEL_NAME")
    if args.command == "prune":
        return _prune_report(args, model)
    version = _required(args.version, "--version", "NOMADML_MODEL_VERSION")
    if args.command == "install":
        result = install(args.source, args.volume, model, version)
        if result.already_installed:
            return f"{model} {version} already installed at {result.path}"
        return (
            f"installed {model} {version} into {result.path} "
            f"({_plural(result.files, 'file')}, {_human_size(result.bytes)})"
        )
    if args.command == "verify":
        count = verify(args.volume, model, version)
        return f"verified {model} {version} at {args.volume / model / version} " + (
            f"({_plural(count, 'file')})"
        )
    manifest = build_manifest(args.source, model, version)
    target = write_manifest(args.source, manifest)
    total = sum(int(item["size"]) for item in manifest["files"])
    return f"wrote {target} ({_plural(len(manifest['files']), 'file')}, {_human_size(total)})"


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "unknown error"


def _describe_os_error(err: OSError) -> str:
    reason = err.strerror or str(err)
    if err.filename is None:
        return reason
    where = os.fsdecode(err.filename)
    if err.filename2 is not None:
        where = f"{where} -> {os.fsdecode(err.filename2)}"
    return f"{where}: {reason}"


def _robust_streams() -> None:
    # An odd locale must not turn a "…" or an undecodable path into a traceback.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            with contextlib.suppress(ValueError, OSError):
                stream.reconfigure(errors="backslashreplace")


def main(argv: Sequence[str] | None = None) -> int:
    _robust_streams()
    try:
        args = _build_parser().parse_args(argv)
        print(_run(args), flush=True)
        return EXIT_OK
    except BootstrapError as err:
        code, message = err.exit_code, str(err)
    except OSError as err:
        code, message = EXIT_IO, _describe_os_error(err)
    except KeyboardInterrupt:
        code, message = EXIT_INTERRUPTED, "interrupted"
    except Exception as err:  # the contract is "never a traceback", even for our bugs
        code, message = EXIT_INTERNAL, f"internal error: {type(err).__name__}: {err}"
    with contextlib.suppress(OSError, ValueError):
        print(f"bootstrap: {_one_line(message)}", file=sys.stderr, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
