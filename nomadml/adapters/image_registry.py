"""Read-only look-ups in the image registry (Docker Registry HTTP API v2): which
digest a model version's tag points at, so jobs can pin images by digest."""

from __future__ import annotations

from nomadml.errors import BadInput, StackError

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)


def resolve_digest(image: str, timeout: float = 5.0) -> str:
    """`host:port/repo:tag` -> `host:port/repo@sha256:...` (already pinned: unchanged)."""
    if "@sha256:" in image:
        return image
    import requests

    host, _, rest = image.partition("/")
    repository, _, tag = rest.rpartition(":")
    if not host or not repository or not tag:
        raise BadInput(f"image {image!r}: expected registry-host:port/repository:tag")
    url = f"http://{host}/v2/{repository}/manifests/{tag}"
    try:
        response = requests.head(url, headers={"Accept": MANIFEST_TYPES}, timeout=timeout)
    except requests.RequestException as err:
        raise StackError(
            f"cannot resolve {image}: image registry {host} unreachable ({type(err).__name__}); "
            "pass the image pinned as repository@sha256:..."
        ) from None
    if response.status_code == 404:
        raise BadInput(f"image {image} not found in registry {host}")
    digest = response.headers.get("Docker-Content-Digest", "")
    if response.status_code != 200 or not digest.startswith("sha256:"):
        raise StackError(f"registry {host} answered HTTP {response.status_code} for {image}")
    return f"{host}/{repository}@{digest}"


def delete_image(pinned: str, timeout: float = 10.0) -> bool:
    """Delete a `repository@sha256:...` manifest from its registry (the registry's
    garbage collection then frees the layers); False if it was already gone."""
    import requests

    host, _, rest = pinned.partition("/")
    repository, _, digest = rest.partition("@")
    if not host or not repository or not digest.startswith("sha256:"):
        raise BadInput(f"image {pinned!r}: expected registry-host:port/repository@sha256:...")
    url = f"http://{host}/v2/{repository}/manifests/{digest}"
    try:
        response = requests.delete(url, timeout=timeout)
    except requests.RequestException as err:
        raise StackError(f"cannot delete {pinned}: registry {host} unreachable ({err})") from None
    if response.status_code == 404:
        return False
    if response.status_code not in (200, 202):
        raise StackError(
            f"registry {host} refused to delete {pinned}: HTTP {response.status_code} "
            "(is deletion enabled in its storage configuration?)"
        )
    return True
