"""The Docker adapter: build model and serving images with the docker SDK and push
them to the image registry. Jobs reference what is returned here by digest, never
by a mutable tag."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from nomadml import __version__
from nomadml.bundled import bundled_program
from nomadml.errors import StackError

DEFAULT_BASE_IMAGE = "nomadml/python-base:3.11.2-bookworm-1"
DEFAULT_REGISTRY = "127.0.0.1:5000"


@dataclass(frozen=True)
class ImageRef:
    repository: str  # e.g. 127.0.0.1:5000/nomadml/models/iris
    tag: str
    digest: str  # sha256:...

    @property
    def pinned(self) -> str:
        """The reference jobs use: repository@digest."""
        return f"{self.repository}@{self.digest}"


def docker_client() -> Any:
    """The local Docker engine's client, or a clear StackError."""
    import docker
    import docker.errors

    try:
        client = docker.from_env(timeout=300)
        client.ping()
    except docker.errors.DockerException as err:
        raise StackError(f"cannot reach the Docker engine: {err}") from None
    return client


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0
    tar.addfile(info, io.BytesIO(data))


def build_and_push(
    context: Iterator[tuple[str, Path | bytes]],
    repository: str,
    tag: str,
    labels: Mapping[str, str],
) -> ImageRef:
    """Build from (name in context, file or bytes) pairs (a Dockerfile among them,
    FROM an image on the local engine: nothing is pulled), push, return the digest."""
    import docker.errors

    client = docker_client()
    with tempfile.TemporaryFile() as buf:
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, item in context:
                if isinstance(item, bytes):
                    _add_bytes(tar, name, item)
                else:
                    tar.add(str(item), arcname=name, recursive=False)
        buf.seek(0)
        try:
            client.images.build(
                fileobj=buf,
                custom_context=True,
                tag=f"{repository}:{tag}",
                labels=dict(labels),
                network_mode="host",
                rm=True,
                pull=False,
            )
        except docker.errors.BuildError as err:
            log = "".join(str(x.get("stream", x.get("error", ""))) for x in err.build_log)
            raise StackError(f"building {repository}:{tag} failed: {log.strip()[-300:]}") from None
    digest = ""
    for line in client.images.push(repository, tag=tag, stream=True, decode=True):
        if "error" in line:
            problem = str(line["error"])
            if "auth" in problem.lower() or "unauthorized" in problem.lower():
                problem += f" (run `docker login {repository.split('/', 1)[0]}`)"
            raise StackError(f"pushing {repository}:{tag} failed: {problem}")
        digest = line.get("aux", {}).get("Digest", digest)
    if not digest:
        raise StackError(f"pushing {repository}:{tag} returned no digest")
    return ImageRef(repository, tag, digest)


def build_model_image(
    model_dir: Path,
    name: str,
    version: str,
    *,
    labels: Mapping[str, str],
    registry: str = DEFAULT_REGISTRY,
    base_image: str = DEFAULT_BASE_IMAGE,
    manifest: dict[str, Any] | None = None,
) -> ImageRef:
    """A model image: the files listed in the manifest (given, or model_dir's
    manifest.json) under /model, plus the bootstrap installer for the host volume."""
    if manifest is None:
        manifest = json.loads((model_dir / "manifest.json").read_text(encoding="utf-8"))
    manifest_bytes = json.dumps(manifest, indent=1, sort_keys=True).encode() + b"\n"
    dockerfile = (
        f"FROM {base_image}\nCOPY model/ /model/\nCOPY bootstrap.py /opt/nomadml/bootstrap.py\n"
    ).encode()

    def context() -> Iterator[tuple[str, Path | bytes]]:
        yield "Dockerfile", dockerfile
        yield "bootstrap.py", bundled_program("bootstrap.py")
        yield "model/manifest.json", manifest_bytes
        for entry in manifest["files"]:
            yield f"model/{entry['path']}", model_dir / entry["path"]

    return build_and_push(context(), f"{registry}/nomadml/models/{name}", version, labels)


def build_serving_image(
    *, registry: str = DEFAULT_REGISTRY, base_image: str = DEFAULT_BASE_IMAGE
) -> ImageRef:
    """The reference serving image, tagged by nomadml version + server content."""
    server = (bundled_program("serve.py")).read_bytes()
    tag = f"{__version__}-{hashlib.sha256(server).hexdigest()[:12]}"
    dockerfile = (
        f"FROM {base_image}\n"
        "COPY serve.py /opt/nomadml/serve.py\n"
        "USER 10001:10001\n"
        'CMD ["python3", "/opt/nomadml/serve.py"]\n'
    ).encode()
    context = iter([("Dockerfile", dockerfile), ("serve.py", server)])
    labels = {"io.nomadml.kind": "serving", "io.nomadml.version": __version__}
    return build_and_push(context, f"{registry}/nomadml/serve", tag, labels)


def export_model(image: str, dest: Path) -> None:
    """Copy a model image's /model (files + manifest.json) into `dest`, pulling the
    image from its registry if the local engine lacks it."""
    import docker.errors

    client = docker_client()
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        repository, _, digest = image.partition("@")
        try:
            client.images.pull(repository, tag=digest or None)
        except docker.errors.APIError as err:
            raise StackError(f"cannot pull {image}: {err.explanation or err}") from None
    container = client.containers.create(image, command=["true"])
    try:
        stream, _ = container.get_archive("/model")
        with tempfile.TemporaryFile() as buf:
            for chunk in stream:
                buf.write(chunk)
            buf.seek(0)
            with tarfile.open(fileobj=buf) as tar:
                members = [m for m in tar.getmembers() if m.name.startswith("model/")]
                for member in members:
                    member.name = member.name.removeprefix("model/")
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(dest, members=members, filter="data")
                else:  # Python before 3.11.4 (bookworm's 3.11.2: the nomadml image)
                    tar.extractall(dest, members=[_plain(m, image) for m in members])
    finally:
        container.remove(force=True)


def _plain(member: tarfile.TarInfo, image: str) -> tarfile.TarInfo:
    """What tarfile's "data" filter lets through from a model image: files and folders
    inside the destination, without set-id bits; anything else is refused."""
    parts = PurePosixPath(member.name).parts
    if not (member.isfile() or member.isdir()) or member.name.startswith("/") or ".." in parts:
        raise StackError(f"{image}: /model holds {member.name!r}, not a plain file or folder")
    member.mode &= 0o755
    return member


def build_router_image(
    haproxy_root: Path, *, registry: str = DEFAULT_REGISTRY, base_image: str = DEFAULT_BASE_IMAGE
) -> ImageRef:
    """The router image: Debian's HAProxy (the binary and the libraries the base image
    lacks, unpacked from its packages into `haproxy_root`) on the base image."""
    binary = haproxy_root / "usr" / "sbin" / "haproxy"
    libs = haproxy_root / "usr" / "lib" / "x86_64-linux-gnu"
    if not binary.is_file():
        raise StackError(f"no HAProxy in {haproxy_root}: run scripts/install-deps")
    files = sorted(p for p in libs.iterdir() if p.is_file() or p.is_symlink())
    digest = hashlib.sha256(binary.read_bytes())
    for lib in files:
        digest.update(lib.name.encode())
    dockerfile = (
        f"FROM {base_image}\n"
        "COPY haproxy /opt/router/haproxy\n"
        "COPY lib/ /opt/router/lib/\n"
        "ENV LD_LIBRARY_PATH=/opt/router/lib\n"
        'RUN ["/opt/router/haproxy", "-v"]\n'
        "USER 10001:10001\n"
    ).encode()

    def context() -> Iterator[tuple[str, Path | bytes]]:
        yield "Dockerfile", dockerfile
        yield "haproxy", binary
        for lib in files:
            yield f"lib/{lib.name}", lib.resolve()

    # One tag per nomadml version: `nomadml router up` finds it there by default.
    tag = __version__
    labels = {
        "io.nomadml.kind": "router",
        "io.nomadml.version": __version__,
        "io.nomadml.content": digest.hexdigest()[:12],
    }
    return build_and_push(context(), f"{registry}/nomadml/router", tag, labels)
