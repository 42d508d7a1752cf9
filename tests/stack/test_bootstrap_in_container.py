"""The bootstrap as Nomad runs it: inside the model's image (the source is the image's
/model on the container's overlayfs), installing into a bind-mounted host directory
(ext4 here), with the task's default memory limit (128 MiB, which a buffered copy of a
bigger model would fill with dirty pages). Real dockerd and registry; no Nomad needed
for the container half, which is what this file checks."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nomadml.adapters.images import build_model_image
from nomadml.bundled import bootstrap

VERSION = "1.0.0"
CHUNK = bootstrap.CHUNK_SIZE
# Several chunks and a tail under one block (written direct, then through the page
# cache), a file under one block, an empty one.
FILES = {
    "weights.bin": os.urandom(5 * CHUNK + 4097),
    "vocab/small.txt": b"a b c\n",
    "vocab/empty.txt": b"",
}


@pytest.fixture()
def images(docker_client: Any) -> Iterator[list[str]]:
    built: list[str] = []
    yield built
    for image in built:
        docker_client.images.remove(image, force=True)


def model_image(
    tmp_path: Path, name: str, images: list[str], tamper: bool = False, chunked: bool = True
) -> str:
    source = tmp_path / "model"
    for rel, data in FILES.items():
        (source / rel).parent.mkdir(parents=True, exist_ok=True)
        (source / rel).write_bytes(data)
    manifest = bootstrap.build_manifest(source, name, VERSION)
    if not chunked:  # as images built before chunk hashes have it
        del manifest["chunk_size"]
        for entry in manifest["files"]:
            del entry["chunks"]
    if tamper:  # the image's file differs from its manifest in one byte of chunk 3
        bad = bytearray(FILES["weights.bin"])
        bad[3 * CHUNK + 11] ^= 0x20
        (source / "weights.bin").write_bytes(bytes(bad))
    ref = build_model_image(source, name, VERSION, labels={}, manifest=manifest)
    images.append(f"{ref.repository}:{ref.tag}")
    return ref.pinned


def run_bootstrap(docker_client: Any, image: str, volume: Path, name: str) -> tuple[int, str]:
    """The prestart task's command, with its default memory limit."""
    container = docker_client.containers.run(
        image,
        command=[
            *("python3", "/opt/nomadml/bootstrap.py", "install"),
            *("--source", "/model", "--volume", "/models", "--model", name),
            *("--version", VERSION),
        ],
        volumes={str(volume): {"bind": "/models", "mode": "rw"}},
        mem_limit="128m",
        network_mode="none",
        detach=True,
    )
    try:
        code = int(container.wait(timeout=120)["StatusCode"])
        return code, container.logs(stdout=True, stderr=True).decode()
    finally:
        container.remove(force=True)


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "whole-file"])
def test_the_image_installs_byte_for_byte_into_the_host_volume(
    tmp_path: Path, docker_client: Any, images: list[str], chunked: bool
) -> None:
    name = f"tb{os.urandom(4).hex()}"
    image = model_image(tmp_path, name, images, chunked=chunked)
    volume = tmp_path / "volume"
    volume.mkdir()

    code, output = run_bootstrap(docker_client, image, volume, name)

    assert code == 0, output
    assert output == (
        f"installed {name} {VERSION} into /models/{name}/{VERSION} (3 files, 40.0 MiB)\n"
    )
    installed = volume / name / VERSION
    for rel, data in FILES.items():
        got = (installed / rel).read_bytes()
        assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest(), rel
    assert bootstrap.verify(volume, name, VERSION) == len(FILES)
    manifest = json.loads((installed / "manifest.json").read_text())
    assert ("chunk_size" in manifest) is chunked

    # Idempotent: the second run finds the marker and copies nothing.
    assert run_bootstrap(docker_client, image, volume, name) == (
        0,
        f"{name} {VERSION} already installed at /models/{name}/{VERSION}\n",
    )


def test_a_tampered_image_installs_nothing_and_names_the_bytes(
    tmp_path: Path, docker_client: Any, images: list[str]
) -> None:
    name = f"tb{os.urandom(4).hex()}"
    image = model_image(tmp_path, name, images, tamper=True)
    volume = tmp_path / "volume"
    volume.mkdir()

    code, output = run_bootstrap(docker_client, image, volume, name)

    expected = hashlib.sha256(FILES["weights.bin"][3 * CHUNK : 4 * CHUNK]).hexdigest()
    assert (code, output) == (
        bootstrap.EXIT_INTEGRITY,
        f"bootstrap: checksum mismatch for {name} {VERSION}: weights.bin: bytes "
        f"{3 * CHUNK}..{4 * CHUNK - 1} (chunk 3) do not match their sha256 {expected[:12]}…\n",
    )
    assert sorted(p.name for p in (volume / name).iterdir()) == [f".{VERSION}.lock"]
