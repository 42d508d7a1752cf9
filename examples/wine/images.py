"""The wine example's serving image: onnxruntime + numpy + serve_onnx.py on
nomadml's Python base image, built with the docker SDK and pushed to the image
registry as `<registry>/examples/wine-serve:<content tag>`.

The base image has no pip and nothing can be pulled from the internet inside a
build, so the wheels are fetched on the host (`pip download` for the base image's
Python and platform, cached in ~/.cache/nomadml/wheels-wine), unpacked there into
one site-packages folder (a wheel is a zip file), and that folder goes into the
build context. The build itself checks, as the serving user, that onnxruntime
imports; a build that fails that check is never pushed.

    python3 -m examples.wine.images            # print the pinned image, building it if missing
    python3 -m examples.wine.images --rebuild  # build and push even if the registry has it
    python3 -m examples.wine.images --check    # and run it once: does onnxruntime import?
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from nomadml.adapters.images import (
    DEFAULT_BASE_IMAGE,
    DEFAULT_REGISTRY,
    ImageRef,
    build_and_push,
)
from nomadml.adapters.wheels import unpack_wheels
from nomadml.errors import BadInput, StackError

HERE = Path(__file__).resolve().parent
SERVER = HERE / "serve_onnx.py"
REPOSITORY = "examples/wine-serve"
# Every wheel pinned, dependencies included: the same pins and server give the same tag.
# onnxruntime 1.28: from 1.29 on, Linux builds carry a telemetry uploader (off here
# anyway: ORT_DISABLE_TELEMETRY=1 below and in serve_onnx.py); this one has none.
REQUIREMENTS = (
    "onnxruntime==1.28.0",
    "numpy==2.4.6",
    "flatbuffers==25.12.19",
    "packaging==26.4",
    "protobuf==7.36.2",
)
# The base image: Debian bookworm's CPython 3.11 on glibc 2.36, x86-64. pip does not
# widen a --platform to older manylinux tags by itself, so every tag it may take is listed.
PYTHON_VERSION = "3.11"
ABI = "cp311"
GLIBC_MINOR = 36
ARCH = "x86_64"
PLATFORMS = (
    *(f"manylinux_2_{minor}_{ARCH}" for minor in range(GLIBC_MINOR, 16, -1)),
    f"manylinux2014_{ARCH}",
)
IMPORT_CHECK = (
    "import numpy, onnxruntime; "
    "print('onnxruntime', onnxruntime.__version__, 'numpy', numpy.__version__, "
    "onnxruntime.get_available_providers())"
)
DEFAULT_CACHE = Path.home() / ".cache" / "nomadml" / "wheels-wine"


def dockerfile(base_image: str = DEFAULT_BASE_IMAGE) -> bytes:
    return (
        f"FROM {base_image}\n"
        "COPY site-packages/ /opt/wine/site-packages/\n"
        "COPY serve_onnx.py /opt/wine/serve_onnx.py\n"
        # Compiled once here, as root: the serving user could not write __pycache__.
        "RUN python3 -m compileall -q /opt/wine/site-packages /opt/wine/serve_onnx.py\n"
        "ENV PYTHONPATH=/opt/wine/site-packages PYTHONDONTWRITEBYTECODE=1 "
        "ORT_DISABLE_TELEMETRY=1\n"
        "USER 10001:10001\n"
        f'RUN ["python3", "-c", "{IMPORT_CHECK}"]\n'
        'CMD ["python3", "/opt/wine/serve_onnx.py"]\n'
    ).encode()


def content_tag(base_image: str = DEFAULT_BASE_IMAGE) -> str:
    """What the image is made of: base, Dockerfile, wheel pins and platform, server."""
    digest = hashlib.sha256()
    for part in (dockerfile(base_image), "\n".join((*REQUIREMENTS, *PLATFORMS)).encode()):
        digest.update(hashlib.sha256(part).digest())
    digest.update(hashlib.sha256(SERVER.read_bytes()).digest())
    runtime = REQUIREMENTS[0].partition("==")[2]
    return f"ort{runtime}-{digest.hexdigest()[:12]}"


def cached_wheels(cache: Path = DEFAULT_CACHE) -> list[Path] | None:
    """One cached wheel per requirement, or None if any is missing."""
    wheels = []
    for requirement in REQUIREMENTS:
        name, _, version = requirement.partition("==")
        found = sorted(cache.glob(f"{name}-{version}-*.whl"))
        if not found:
            return None
        wheels.append(found[-1])
    return wheels


def download_wheels(cache: Path = DEFAULT_CACHE, *, fetch: bool = False) -> list[Path]:
    """The pinned wheels for the base image's Python. Building uses the cache only
    (tests talk to nothing but loopback); `fetch` (scripts/install-deps, a set-up
    step) downloads what is missing from the package index with pip."""
    cached = cached_wheels(cache)
    if cached is not None:
        return cached
    if not fetch:
        raise StackError(
            f"the wine server's wheels are not in {cache}: run scripts/install-deps "
            "(python3 -m examples.wine.images --fetch-wheels)"
        )
    cache.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",  # all dependencies are pinned in REQUIREMENTS
        "--only-binary=:all:",
        "--python-version",
        PYTHON_VERSION,
        "--implementation",
        "cp",
        "--abi",
        ABI,
        "--abi",
        "abi3",
        "--abi",
        "none",
        *(arg for platform in PLATFORMS for arg in ("--platform", platform)),
        "--dest",
        str(cache),
        *REQUIREMENTS,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise StackError(f"pip download failed: {(done.stderr or done.stdout).strip()[-500:]}")
    wheels = []
    for requirement in REQUIREMENTS:
        name, _, version = requirement.partition("==")
        found = sorted(cache.glob(f"{name}-{version}-*.whl"))
        if not found:
            raise StackError(f"pip download left no wheel for {requirement} in {cache}")
        wheels.append(found[-1])
    return wheels


def _context(site_packages: Path, base_image: str) -> Iterator[tuple[str, Path | bytes]]:
    yield "Dockerfile", dockerfile(base_image)
    yield "serve_onnx.py", SERVER.read_bytes()
    for path in sorted(site_packages.rglob("*")):
        if path.is_file():
            yield f"site-packages/{path.relative_to(site_packages).as_posix()}", path


def build_serving_image(
    *,
    registry: str = DEFAULT_REGISTRY,
    base_image: str = DEFAULT_BASE_IMAGE,
    cache: Path = DEFAULT_CACHE,
) -> ImageRef:
    """Download and unpack the wheels, build FROM the base image, push; the
    returned reference's `.pinned` is repository@sha256:…."""
    tag = content_tag(base_image)
    site_packages = unpack_wheels(download_wheels(cache), cache / f"site-packages-{tag}")
    labels = {"io.nomadml.kind": "serving", "io.nomadml.example": "wine-onnx"}
    return build_and_push(
        _context(site_packages, base_image), f"{registry}/{REPOSITORY}", tag, labels
    )


def serving_image(
    *,
    registry: str = DEFAULT_REGISTRY,
    base_image: str = DEFAULT_BASE_IMAGE,
    cache: Path = DEFAULT_CACHE,
) -> str:
    """The pinned serving image; built and pushed only when the registry lacks its tag."""
    from nomadml.adapters.image_registry import resolve_digest

    try:
        return resolve_digest(f"{registry}/{REPOSITORY}:{content_tag(base_image)}")
    except BadInput:  # not in the registry yet
        return build_serving_image(registry=registry, base_image=base_image, cache=cache).pinned


def check_image(image: str) -> str:
    """Run the image once the way Nomad will (host network, its own user) and
    import onnxruntime; returns what it printed. Raises StackError if it cannot."""
    import docker
    import docker.errors

    try:
        output = docker.from_env(timeout=120).containers.run(
            image, ["python3", "-c", IMPORT_CHECK], network_mode="host", remove=True
        )
    except docker.errors.DockerException as err:
        raise StackError(f"{image} cannot import onnxruntime: {err}") from None
    return bytes(output).decode().strip()


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="examples.wine.images", description=__doc__)
    parser.add_argument("--registry", default=DEFAULT_REGISTRY)
    parser.add_argument("--base-image", default=DEFAULT_BASE_IMAGE)
    parser.add_argument("--rebuild", action="store_true", help="Build even if already pushed.")
    parser.add_argument("--check", action="store_true", help="Also run it: import onnxruntime.")
    parser.add_argument(
        "--fetch-wheels", action="store_true", help="Only download the wheels (set-up)."
    )
    args = parser.parse_args(argv)
    try:
        if args.fetch_wheels:
            for wheel in download_wheels(fetch=True):
                print(wheel)
            return 0
        if args.rebuild:
            image = build_serving_image(registry=args.registry, base_image=args.base_image).pinned
        else:
            image = serving_image(registry=args.registry, base_image=args.base_image)
        if args.check:
            print(check_image(image), file=sys.stderr)
    except (StackError, BadInput) as err:
        print(f"images: {err}", file=sys.stderr)
        return 1
    print(image)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
