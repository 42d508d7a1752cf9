"""Bootstrap figure (issue 16 item 7): installing 1 GiB, verified and durable, against
`cp -r && sync` of the same files onto the same disk, interleaved round by round.

Two sources, each copied by both contenders:

* a plain directory on the same ext4 as the target: GNU cp copies with
  copy_file_range there, in the kernel (its best case);
* an overlayfs mount over that directory, which is where the bootstrap reads in
  production (the model dir of the serving image, inside its container; the target is
  the host volume, a bind-mounted ext4 directory). Across the two filesystems
  copy_file_range answers EXDEV: cp falls back to read/write, the bootstrap to
  sendfile. Mounting needs root; without it this half is left out and says so.

Run by `benchmarks/run --only bootstrap`."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from nomadml.bundled import bootstrap

Report = Callable[..., None]
Interleaved = Callable[..., dict[str, list[float]]]


def make_model(where: Path, total_mib: int) -> None:
    """One file of 3/4 of the size (a single hash stream before chunk hashes) and
    1 MiB shards for the rest."""
    where.mkdir(parents=True)
    chunk = os.urandom(1 << 20)
    with open(where / "weights.bin", "wb") as f:
        for i in range(total_mib * 3 // 4):
            f.write(chunk[i % 7 :] + chunk[: i % 7])
    small = where / "shards"
    small.mkdir()
    for i in range(total_mib // 4):
        (small / f"shard-{i:04d}.bin").write_bytes(chunk[i:] + chunk[:i])
    bootstrap.write_manifest(where, bootstrap.build_manifest(where, "big", "1.0.0"))


def _quiet(*cmd: str) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@contextlib.contextmanager
def overlay(lower: Path, tmp: Path) -> Iterator[Path | None]:
    """``lower`` seen through overlayfs, as a container sees its image's files; None
    where this user cannot mount."""
    mnt, upper, work = tmp / "ovl", tmp / "ovl-upper", tmp / "ovl-work"
    for path in (mnt, upper, work):
        path.mkdir()
    options = f"lowerdir={lower},upperdir={upper},workdir={work}"
    try:
        _quiet("mount", "-t", "overlay", "overlay", "-o", options, str(mnt))
    except (OSError, subprocess.CalledProcessError):
        yield None
        return
    try:
        yield mnt
    finally:
        _quiet("umount", str(mnt))


def bench_bootstrap(repeat: int, size_mib: int, report: Report, interleaved: Interleaved) -> None:
    with tempfile.TemporaryDirectory(dir=os.environ.get("NOMADML_BENCH_DIR")) as name:
        tmp = Path(name)
        src = tmp / "src"
        make_model(src, size_mib)
        with overlay(src, tmp) as ovl:
            _bench(tmp, src, ovl, repeat, size_mib, report, interleaved)


def _bench(
    tmp: Path,
    src: Path,
    ovl: Path | None,
    repeat: int,
    size_mib: int,
    report: Report,
    interleaved: Interleaved,
) -> None:
    script = str(Path(bootstrap.__file__))
    files = json.loads((src / "manifest.json").read_text())["files"]

    def ours(source: Path) -> Callable[[], None]:
        return lambda: _quiet(
            sys.executable,
            script,
            "install",
            *("--source", str(source), "--volume", str(tmp / "vol")),
            *("--model", "big", "--version", "1.0.0"),
        )

    def cp(source: Path) -> Callable[[], None]:
        return lambda: _quiet("cp", "-r", str(source), str(tmp / "cp"))

    def cp_sync(source: Path) -> Callable[[], None]:
        def run() -> None:
            cp(source)()
            _quiet("sync", "-f", str(tmp / "cp"))  # what is durable, like ours

        return run

    def cp_fsync_each() -> None:
        # `sync -f` flushes the whole filesystem, other engineers' dirty data too; this
        # flushes only the copy, file by file and its directories, as ours does.
        cp(src)()
        copied = [str(tmp / "cp" / f["path"]) for f in files]
        dirs = sorted({str(Path(p).parent) for p in copied}, key=len, reverse=True)
        _quiet("sync", *copied, *dirs)

    def sha256_of(root: Path) -> None:
        # openssl, not sha256sum: coreutils' own sha256 runs ~4x slower here, which
        # would flatter ours; openssl uses the CPU's SHA extensions, as hashlib does.
        out = subprocess.run(
            ["openssl", "dgst", "-sha256", "-r", *(f["path"] for f in files)],
            cwd=root,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        got = {line[66:]: line[:64] for line in out.splitlines()}
        assert got == {f["path"]: f["sha256"] for f in files}, "copy differs"

    def cp_verify_sync() -> None:
        cp_sync(src)()
        sha256_of(tmp / "cp")  # the integrity check ours makes, over the copy

    def settle() -> None:
        # Each contender starts on an empty target with nothing left to write back.
        for old in ("vol", "cp"):
            shutil.rmtree(tmp / old, ignore_errors=True)
        os.sync()
        time.sleep(1)

    cp(src)()  # warm the page cache for all (the overlay reads the same pages)
    settle()
    contenders: dict[str, Callable[[], None]] = {
        "ours": ours(src),
        "cp -r (no verification, no fsync)": cp(src),
        "cp -r + sync (durable, no verification)": cp_sync(src),
        "cp -r + fsync of each copied file and directory (durable, no verification)": (
            cp_fsync_each
        ),
        "cp -r + sync + openssl sha256 of the copy (durable and verified, like ours)": (
            cp_verify_sync
        ),
        "openssl sha256 of the source alone (no copy; the bound for a verified install)": (
            lambda: sha256_of(src)
        ),
    }
    if ovl is not None:
        contenders["ours, source on overlayfs"] = ours(ovl)
        contenders["cp -r + sync, source on overlayfs"] = cp_sync(ovl)
    times = interleaved(contenders, repeat, before_each=settle)
    size = size_mib / 1024
    rates = {name: [size / t for t in runs] for name, runs in times.items()}
    _report_rates(rates, size_mib, report)
    if ovl is None:
        print("bootstrap from overlayfs: left out (mounting overlayfs needs root)", flush=True)
    ours(src)()
    again = []
    for _ in range(repeat):
        started = time.perf_counter()
        bootstrap.install(src, tmp / "vol", "big", "1.0.0")
        again.append(time.perf_counter() - started)
    report(
        "Bootstrap re-install of an installed version (in process)",
        again,
        [0.050] * len(again),
        "50 ms budget",
        "< 1.0",
        lambda r: r < 1.0,
    )


def _report_rates(rates: Mapping[str, list[float]], size_mib: int, report: Report) -> None:
    figure = f"Bootstrap install {size_mib} MiB (checksums verified, fsync'd) throughput"
    mine = rates["ours"]
    for baseline, base_rates in rates.items():
        if baseline == "ours" or "overlayfs" in baseline:
            continue
        report(figure, mine, base_rates, baseline, ">= 0.9", lambda r: r >= 0.9, unit="GiB/s")
    if "ours, source on overlayfs" in rates:
        report(
            f"{figure}, source on overlayfs (as in the serving container)",
            rates["ours, source on overlayfs"],
            rates["cp -r + sync, source on overlayfs"],
            "cp -r + sync from the same overlayfs (durable, no verification)",
            ">= 0.9",
            lambda r: r >= 0.9,
            unit="GiB/s",
        )
