"""The nomadml image: nomadml itself and its run-time dependencies on the project's
base image, so a Nomad job can run `nomadml retrain` in a container (after the
operator's trainer ran in its own image).

Built offline: the dependencies are the wheels scripts/install-deps keeps in the
wheelhouse ($NOMADML_WHEELHOUSE, ~/.cache/nomadml/wheelhouse), unpacked on the host
(the base image has no pip); nomadml is the installed package's own files. The tag
says what went in (nomadml's version + a hash of the files and wheels), and jobs
take the image by digest."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from nomadml import __version__
from nomadml.adapters.images import DEFAULT_BASE_IMAGE, ImageRef, build_and_push
from nomadml.adapters.wheels import unpack_wheels
from nomadml.errors import BadInput, StackError

PROJECT_IMAGE = "nomadml"  # retraining.nomadml_image: the image this module builds
REPOSITORY = "nomadml/nomadml"
SITE = "/opt/nomadml/site-packages"
ENTRY = b"#!/usr/bin/python3\nfrom nomadml.entry import run\n\nrun()\n"


def wheelhouse() -> Path:
    default = Path.home() / ".cache" / "nomadml" / "wheelhouse"
    return Path(os.environ.get("NOMADML_WHEELHOUSE") or default)


def runtime_wheels(where: Path) -> list[Path]:
    """One wheel per distribution (the last by file name), or StackError."""
    newest: dict[str, Path] = {}
    for wheel in sorted(where.glob("*.whl")):
        newest[wheel.name.split("-", 1)[0].lower()] = wheel
    if "python_nomad" not in newest or "click" not in newest:
        raise StackError(
            f"no wheels of nomadml's run-time dependencies in {where}: run scripts/install-deps"
        )
    return [newest[name] for name in sorted(newest)]


def package_files() -> list[tuple[str, Path]]:
    """nomadml's own files as installed (sources, templates, policies, bundled)."""
    root = Path(__file__).resolve().parents[1]
    return [
        (path.relative_to(root.parent).as_posix(), path)
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    ]


def dockerfile(base_image: str) -> bytes:
    return (
        f"FROM {base_image}\n"
        f"COPY site-packages/ {SITE}/\n"
        "COPY nomadml-entry /usr/local/bin/nomadml\n"
        f"RUN python3 -m compileall -q {SITE} && chmod 0755 /usr/local/bin/nomadml\n"
        f"ENV PYTHONPATH={SITE}\n"
        # The build fails, and nothing is pushed, if nomadml cannot start.
        'RUN ["nomadml", "--help"]\n'
        'CMD ["nomadml", "--help"]\n'
    ).encode()


def content_tag(wheels: list[Path], files: list[tuple[str, Path]], base_image: str) -> str:
    digest = hashlib.sha256(dockerfile(base_image) + ENTRY)
    for wheel in wheels:
        digest.update(wheel.name.encode())
    for name, path in files:
        digest.update(name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return f"{__version__}-{digest.hexdigest()[:12]}"


def build_nomadml_image(
    registry: str, *, base_image: str = DEFAULT_BASE_IMAGE, where: Path | None = None
) -> ImageRef:
    """Build (from the local engine's base image, nothing pulled) and push."""
    where = where or wheelhouse()
    wheels, files = runtime_wheels(where), package_files()
    tag = content_tag(wheels, files, base_image)
    wheel_key = hashlib.sha256("\n".join(w.name for w in wheels).encode()).hexdigest()[:12]
    site = unpack_wheels(wheels, where / f".site-packages-{wheel_key}")

    def context() -> Iterator[tuple[str, Path | bytes]]:
        yield "Dockerfile", dockerfile(base_image)
        yield "nomadml-entry", ENTRY
        for path in sorted(site.rglob("*")):
            if path.is_file() and not path.name.endswith(".pyc"):
                yield f"site-packages/{path.relative_to(site).as_posix()}", path
        for name, path in files:
            yield f"site-packages/{name}", path

    labels = {"io.nomadml.kind": "nomadml", "io.nomadml.version": __version__}
    return build_and_push(context(), f"{registry}/{REPOSITORY}", tag, labels)


def nomadml_image(setting: str, registry: str) -> str:
    """retraining.nomadml_image pinned by digest: the project's image ("nomadml"),
    pushed to `registry` first if it lacks this build's tag, or the operator's own."""
    from nomadml.adapters.image_registry import resolve_digest

    if setting != PROJECT_IMAGE:
        return resolve_digest(setting)
    tag = content_tag(runtime_wheels(wheelhouse()), package_files(), DEFAULT_BASE_IMAGE)
    try:
        return resolve_digest(f"{registry}/{REPOSITORY}:{tag}")
    except BadInput:  # not pushed yet
        return build_nomadml_image(registry).pinned
