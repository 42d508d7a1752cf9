"""The model volume full or read-only: a defined exit code, one error line naming the path
and the problem, nothing left behind, the installed version untouched, and a plain re-run
succeeding once space is freed or the volume is writable again.

These run against real (small) tmpfs mounts under the test's tmp_path, not mocks: the
kernel decides when space or inodes run out and what a read-only mount refuses. Mounting
needs root (CAP_SYS_ADMIN); without it the tests skip and say so.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import helpers
import pytest
from helpers import error_line, snapshot

from nomadml.bundled import bootstrap

MODEL = "iris"
OLD = "1.0.0"
NEW = "2.0.0"
PAGE = 4096

OLD_FILES = {
    "model.json": b'{"weights": [1, 2, 3]}\n',
    "sub/weights.bin": bytes(range(256)) * 64,
}


# --------------------------------------------------------------------------- helpers


def make_source(
    root: Path, files: dict[str, bytes], version: str, model: str = MODEL
) -> tuple[Path, int]:
    """The source dir, and the bytes the installer's free-space precheck will ask for
    (files + manifest)."""
    helpers.make_source(root, files, model, version)
    needed = sum(len(data) for data in files.values()) + (root / "manifest.json").stat().st_size
    return root, needed


def shards(count: int, size: int) -> dict[str, bytes]:
    return {f"shard-{index:02d}.bin": os.urandom(size) for index in range(count)}


def install_args(source: Path, volume: Path, version: str, model: str = MODEL) -> list[str]:
    return [
        "install", "--source", str(source), "--volume", str(volume),
        "--model", model, "--version", version,
    ]  # fmt: skip


def run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    code = bootstrap.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def listing(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


def free(path: Path) -> tuple[int, int]:
    """(free blocks, free inodes) as the filesystem itself reports them."""
    vfs = os.statvfs(path)
    return vfs.f_bfree, vfs.f_ffree


def assert_intact(final: Path, before: dict[str, tuple[bytes | None, int, int, int]]) -> None:
    """An installed version is byte-for-byte what it was, still complete, still verifies."""
    assert snapshot(final) == before
    assert (final / ".nomadml-complete").is_file()
    assert bootstrap.verify(final.parent.parent, final.parent.name, final.name) == len(OLD_FILES)


# --------------------------------------------------------------------------- tmpfs mounts


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30, check=False)


def _unmount(path: Path) -> None:
    proc = subprocess.run(
        ["umount", str(path)], capture_output=True, text=True, timeout=30, check=False
    )
    if proc.returncode != 0:
        lazy = subprocess.run(
            ["umount", "-l", str(path)], capture_output=True, text=True, timeout=30, check=False
        )
        if lazy.returncode != 0:
            raise RuntimeError(f"could not unmount {path}: {proc.stderr} / {lazy.stderr}")


def _tmpfs_options(size: str, nr_inodes: int | None) -> str:
    options = [f"size={size}", "mode=0755"]
    if nr_inodes is not None:
        options.append(f"nr_inodes={nr_inodes}")
    if os.path.exists("/sys/kernel/mm/transparent_hugepage/shmem_enabled"):
        # Page-by-page accounting, whatever the host's default: the tests count pages.
        options.append("huge=never")
    return ",".join(options)


@pytest.fixture(scope="session")
def mount_permitted() -> None:
    """Checked once: skip (with the reason) only if this process may not mount."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CAP_SYS_ADMIN); running as non-root")
    if shutil.which("mount") is None or shutil.which("umount") is None:
        pytest.skip("mount/umount not installed")
    probe = Path(tempfile.mkdtemp(prefix="nomadml-mount-probe-"))
    try:
        proc = _mount("-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe))
        if proc.returncode != 0:
            reason = proc.stderr.strip()
            lowered = reason.lower()
            if any(
                word in lowered
                for word in ("permission denied", "not permitted", "must be superuser")
            ):
                pytest.skip(f"mounting a tmpfs is not permitted here: {reason}")
            pytest.fail(f"mount -t tmpfs failed unexpectedly: {reason}")
        _unmount(probe)
    finally:
        probe.rmdir()


class Volumes:
    """Small tmpfs mounts under one test's tmp_path; all unmounted by the fixture."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.mounted: list[Path] = []

    def tmpfs(self, name: str, *, size: str, nr_inodes: int | None = None) -> Path:
        path = self.root / name
        path.mkdir()
        proc = _mount("-t", "tmpfs", "-o", _tmpfs_options(size, nr_inodes), "tmpfs", str(path))
        assert proc.returncode == 0, proc.stderr
        self.mounted.append(path)
        return path

    def remount(self, path: Path, option: str) -> None:
        proc = _mount("-o", f"remount,{option}", str(path))
        assert proc.returncode == 0, proc.stderr

    def unmount_all(self) -> None:
        errors: list[str] = []
        while self.mounted:
            path = self.mounted.pop()
            try:
                _unmount(path)
            except RuntimeError as err:
                errors.append(str(err))
        assert not errors, errors


@pytest.fixture()
def volumes(tmp_path: Path, mount_permitted: None) -> Iterator[Volumes]:
    mounts = Volumes(tmp_path)
    try:
        yield mounts
    finally:
        mounts.unmount_all()


def install_old(capsys: pytest.CaptureFixture[str], tmp_path: Path, volume: Path) -> Path:
    """Install version OLD into the volume and return its directory."""
    source, _ = make_source(tmp_path / "src-old", OLD_FILES, OLD)
    code, out, err = run(capsys, install_args(source, volume, OLD))
    assert (code, err) == (0, ""), err
    assert out.startswith(f"installed {MODEL} {OLD} into ")
    return volume / MODEL / OLD


# --------------------------------------------------------------------------- full volume


def test_model_larger_than_free_space_refused_up_front_then_installs_once_freed(
    tmp_path: Path, volumes: Volumes, capsys: pytest.CaptureFixture[str]
) -> None:
    volume = volumes.tmpfs("vol", size="2m")
    old = install_old(capsys, tmp_path, volume)
    before = snapshot(old)
    # Someone else's data on the shared volume leaves less than the new model needs.
    filler = volume / "other-data.bin"
    filler.write_bytes(b"\0" * (1 << 20))
    source, needed = make_source(
        tmp_path / "src-new", {"model.json": b"{}", "weights.bin": os.urandom(1 << 20)}, NEW
    )
    model_dir = volume / MODEL
    vfs = os.statvfs(model_dir)
    available = vfs.f_bavail * vfs.f_frsize
    assert 1024 <= available < needed < 1.05 * (1 << 20)  # so the wording below holds
    blocks, inodes = free(volume)

    code, out, err = run(capsys, install_args(source, volume, NEW))

    assert code == bootstrap.EXIT_IO == 4
    assert error_line(out, err) == (
        f"bootstrap: {model_dir}: No space left on device "
        f"(need {needed / (1 << 20):.1f} MiB, {available / 1024:.1f} KiB free)"
    )
    # Nothing was written but this version's (empty, by-design persistent) lock file.
    assert listing(model_dir) == [f".{OLD}.lock", f".{NEW}.lock", OLD]
    assert (model_dir / f".{NEW}.lock").stat().st_size == 0
    assert free(volume) == (blocks, inodes - 1)
    assert_intact(old, before)

    # Recovery: free the space, run the very same command; no manual cleanup.
    filler.unlink()
    code, out, err = run(capsys, install_args(source, volume, NEW))
    assert (code, err) == (0, ""), err
    assert out == f"installed {MODEL} {NEW} into {model_dir / NEW} (2 files, 1.0 MiB)\n"
    assert bootstrap.verify(volume, MODEL, NEW) == 2
    assert listing(model_dir) == [f".{OLD}.lock", f".{NEW}.lock", OLD, NEW]
    assert_intact(old, before)


@pytest.mark.parametrize(
    ("resource", "fails_at"),
    [
        # 8 inodes left: the lock file and the temp dir take 2, shards 00-05 take 6
        # (files are created one by one, in manifest order).
        ("inodes", r"shard-06\.bin"),
        # 8 pages left, more than the bytes the precheck counts; each small file still
        # takes a whole page, so eight shards fit and the ninth fails. Chunks are written
        # on all cores, so shard-07 and shard-08 may take their pages in either order;
        # the first file (in manifest order) that failed is named.
        ("blocks", r"shard-0[78]\.bin"),
    ],
)
def test_volume_fills_up_during_copy_cleans_up_then_installs_once_freed(
    tmp_path: Path,
    volumes: Volumes,
    capsys: pytest.CaptureFixture[str],
    resource: str,
    fails_at: str,
) -> None:
    headroom = 8
    if resource == "inodes":
        volume = volumes.tmpfs("vol", size="4m", nr_inodes=128)
    else:
        volume = volumes.tmpfs("vol", size="1m", nr_inodes=10_000)
    old = install_old(capsys, tmp_path, volume)
    before = snapshot(old)
    source, needed = make_source(tmp_path / "src-new", shards(24, 100), NEW)

    # Someone else's data on the shared volume leaves exactly `headroom` units.
    filler = volume / "other-data"
    filler.mkdir()
    if resource == "inodes":
        for index in range(free(volume)[1] - headroom):
            (filler / f"f{index}").touch()
        assert free(volume)[1] == headroom
    else:
        (filler / "blob").write_bytes(b"\0" * ((free(volume)[0] - headroom) * PAGE))
        assert free(volume)[0] == headroom
    vfs = os.statvfs(volume)
    assert vfs.f_frsize == PAGE
    # The precheck counts bytes only, so it passes: the failure has to come from the copy.
    assert needed < vfs.f_bavail * vfs.f_frsize
    blocks, inodes = free(volume)
    model_dir = volume / MODEL

    code, out, err = run(capsys, install_args(source, volume, NEW))

    assert code == bootstrap.EXIT_IO == 4
    line = error_line(out, err)
    # Named: the file being written inside this run's temp dir, mid-copy.
    pattern = (
        rf"bootstrap: {re.escape(str(model_dir))}/\.tmp-{re.escape(NEW)}-[0-9a-f]{{16}}/"
        rf"{fails_at}: No space left on device"
    )
    assert re.fullmatch(pattern, line), line
    # The temp dir and every partial file are gone; only the lock file remains.
    assert listing(model_dir) == [f".{OLD}.lock", f".{NEW}.lock", OLD]
    assert free(volume) == (blocks, inodes - 1)
    assert_intact(old, before)

    # Recovery: free the space, run the very same command; no manual cleanup.
    shutil.rmtree(filler)
    code, out, err = run(capsys, install_args(source, volume, NEW))
    assert (code, err) == (0, ""), err
    assert out.startswith(f"installed {MODEL} {NEW} into {model_dir / NEW} (24 files, ")
    assert bootstrap.verify(volume, MODEL, NEW) == 24
    assert listing(model_dir) == [f".{OLD}.lock", f".{NEW}.lock", OLD, NEW]
    assert_intact(old, before)


def test_space_held_by_crashed_run_is_reclaimed_before_the_precheck(
    tmp_path: Path, volumes: Volumes, capsys: pytest.CaptureFixture[str]
) -> None:
    # A run killed mid-copy left its temp dir eating most of the volume; without
    # reclaiming it first, the retry would be refused for lack of space forever.
    volume = volumes.tmpfs("vol", size="2m")
    old = install_old(capsys, tmp_path, volume)
    before = snapshot(old)
    stale = volume / MODEL / f".tmp-{NEW}-0123456789abcdef"
    (stale / "sub").mkdir(parents=True)
    (stale / "sub" / "weights.bin").write_bytes(b"\0" * (1200 << 10))
    source, needed = make_source(
        tmp_path / "src-new", {"model.json": b"{}", "weights.bin": os.urandom(1 << 20)}, NEW
    )
    vfs = os.statvfs(volume)
    assert vfs.f_bavail * vfs.f_frsize < needed

    code, out, err = run(capsys, install_args(source, volume, NEW))

    assert (code, err) == (0, ""), err
    assert out.startswith(f"installed {MODEL} {NEW} into ")
    assert not stale.exists()
    assert listing(volume / MODEL) == [f".{OLD}.lock", f".{NEW}.lock", OLD, NEW]
    assert bootstrap.verify(volume, MODEL, NEW) == 2
    assert_intact(old, before)


# --------------------------------------------------------------------------- read-only volume


@pytest.mark.parametrize("target", ["new version", "new model"])
def test_read_only_volume_refuses_install_serves_installed_then_installs_once_rw(
    tmp_path: Path, volumes: Volumes, capsys: pytest.CaptureFixture[str], target: str
) -> None:
    volume = volumes.tmpfs("vol", size="4m")
    old = install_old(capsys, tmp_path, volume)
    before = snapshot(old)
    model = MODEL if target == "new version" else "other"
    source, _ = make_source(tmp_path / "src-new", shards(3, 1000), NEW, model=model)
    new_args = install_args(source, volume, NEW, model=model)
    top = listing(volume)
    old_listing = listing(volume / MODEL)
    volumes.remount(volume, "ro")

    code, out, err = run(capsys, new_args)

    assert code == bootstrap.EXIT_IO == 4
    # The first write it needs: the version's lock file, or the new model's directory.
    where = volume / MODEL / f".{NEW}.lock" if target == "new version" else volume / "other"
    assert error_line(out, err) == f"bootstrap: {where}: Read-only file system"
    assert listing(volume) == top
    assert listing(volume / MODEL) == old_listing
    assert_intact(old, before)

    # The installed version still re-installs: the fast path reads the marker, writes nothing.
    # With its real source (a lock or temp dir would fail here), and with none at all.
    for old_source in (tmp_path / "src-old", tmp_path / "no-such-source"):
        code, out, err = run(capsys, install_args(old_source, volume, OLD))
        assert (code, err) == (0, ""), err
        assert out == f"{MODEL} {OLD} already installed at {old}\n"
    code, out, err = run(
        capsys, ["verify", "--volume", str(volume), "--model", MODEL, "--version", OLD]
    )
    assert (code, err) == (0, ""), err
    assert out == f"verified {MODEL} {OLD} at {old} (2 files)\n"
    assert_intact(old, before)

    # Recovery: writable again, the very same command installs.
    volumes.remount(volume, "rw")
    code, out, err = run(capsys, new_args)
    assert (code, err) == (0, ""), err
    assert out.startswith(f"installed {model} {NEW} into {volume / model / NEW} (3 files, ")
    assert bootstrap.verify(volume, model, NEW) == 3
    assert [p.name for p in (volume / model).iterdir() if p.name.startswith(".tmp-")] == []
    assert_intact(old, before)
