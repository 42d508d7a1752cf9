"""Look-ups and deletions in an image registry (Docker Registry HTTP API v2): which
digest a model version's tag points at, so jobs can pin images by digest, and the
deletion of an expired version's manifest.

A registry is reached the way the docker engine reaches it, so an operator's
`docker login` and CA set-up serve nomadml too:
- TLS: with the CA in `/etc/docker/certs.d/<host>/ca.crt` when there is one (the
  engine's own place for a private CA), else the system's CAs; plain HTTP only for a
  registry on loopback without such a CA (as the engine allows it);
- credentials: those `docker login` keeps in `$DOCKER_CONFIG/config.json` (default
  `~/.docker/config.json`), sent as HTTP Basic, or exchanged for a bearer token where
  the registry asks for one (`WWW-Authenticate: Bearer realm=...`)."""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import re
from pathlib import Path
from typing import Any

from nomadml.errors import BadInput, StackError

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


def certs_dir() -> Path:
    return Path(os.environ.get("NOMADML_DOCKER_CERTS_D") or "/etc/docker/certs.d")


def docker_config() -> Path:
    return Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"


def _on_loopback(host: str) -> bool:
    if host.startswith("[") and "]" in host:
        name = host[1 : host.index("]")]
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def endpoint(host: str) -> tuple[str, bool | str]:
    """(base URL, what `requests` verifies TLS with) for a registry host."""
    ca = certs_dir() / host / "ca.crt"
    if ca.is_file():
        return f"https://{host}", str(ca)
    if _on_loopback(host):
        return f"http://{host}", True
    return f"https://{host}", True


def credentials(host: str) -> tuple[str, str] | None:
    """The (user, password) `docker login HOST` stored, if any."""
    try:
        config = json.loads(docker_config().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    auths = config.get("auths") or {}
    entry = auths.get(host) or auths.get(f"https://{host}") or {}
    encoded = entry.get("auth") if isinstance(entry, dict) else None
    if not isinstance(encoded, str) or not encoded:
        return None
    try:
        user, _, password = base64.b64decode(encoded).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return (user, password) if user else None


def _login_hint(host: str) -> str:
    return f"run `docker login {host}` (credential helpers are not read)"


def request(method: str, host: str, path: str, timeout: float, **kwargs: Any) -> Any:
    """One registry API call with TLS and, when the registry asks, authentication."""
    import requests

    base, verify = endpoint(host)
    url = f"{base}{path}"
    creds = credentials(host)
    try:
        response = requests.request(method, url, verify=verify, timeout=timeout, **kwargs)
        if response.status_code == 401:
            challenge = response.headers.get("WWW-Authenticate", "")
            if creds is None:
                raise StackError(f"registry {host} wants credentials: {_login_hint(host)}")
            headers = dict(kwargs.pop("headers", None) or {})
            if challenge.lower().startswith("bearer"):
                headers["Authorization"] = f"Bearer {_token(challenge, creds, verify, timeout)}"
                response = requests.request(
                    method, url, verify=verify, timeout=timeout, headers=headers, **kwargs
                )
            else:
                response = requests.request(
                    method,
                    url,
                    verify=verify,
                    timeout=timeout,
                    headers=headers,
                    auth=creds,
                    **kwargs,
                )
            if response.status_code == 401:
                raise StackError(
                    f"registry {host} refused the credentials of {creds[0]!r}: {_login_hint(host)}"
                )
    except requests.exceptions.SSLError as err:
        raise StackError(
            f"registry {host}: TLS verification failed ({_first_line(err)}); put its CA in "
            f"{certs_dir() / host / 'ca.crt'}"
        ) from None
    except requests.RequestException as err:
        raise StackError(
            f"image registry {host} unreachable at {base} ({type(err).__name__})"
        ) from None
    return response


def _first_line(err: BaseException) -> str:
    return " ".join(str(err).split())[:160]


def _token(challenge: str, creds: tuple[str, str], verify: bool | str, timeout: float) -> str:
    """A bearer token from the realm the registry named (the token-auth flow)."""
    import requests

    params = dict(_CHALLENGE_PARAM.findall(challenge))
    realm = params.pop("realm", "")
    if not realm:
        raise StackError(f"registry asked for a bearer token without a realm: {challenge!r}")
    answer = requests.get(realm, params=params, auth=creds, verify=verify, timeout=timeout)
    body = answer.json() if answer.status_code == 200 else {}
    token = body.get("token") or body.get("access_token")
    if not token:
        raise StackError(f"token service {realm} refused {creds[0]!r} (HTTP {answer.status_code})")
    return str(token)


def resolve_digest(image: str, timeout: float = 5.0) -> str:
    """`host:port/repo:tag` -> `host:port/repo@sha256:...` (already pinned: unchanged)."""
    if "@sha256:" in image:
        return image
    host, _, rest = image.partition("/")
    repository, _, tag = rest.rpartition(":")
    if not host or not repository or not tag:
        raise BadInput(f"image {image!r}: expected registry-host:port/repository:tag")
    try:
        response = request(
            "HEAD",
            host,
            f"/v2/{repository}/manifests/{tag}",
            timeout,
            headers={"Accept": MANIFEST_TYPES},
        )
    except StackError as err:
        raise StackError(
            f"cannot resolve {image}: {err} — or pass the image pinned as repository@sha256:..."
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
    host, _, rest = pinned.partition("/")
    repository, _, digest = rest.partition("@")
    if not host or not repository or not digest.startswith("sha256:"):
        raise BadInput(f"image {pinned!r}: expected registry-host:port/repository@sha256:...")
    try:
        response = request("DELETE", host, f"/v2/{repository}/manifests/{digest}", timeout)
    except StackError as err:
        raise StackError(f"cannot delete {pinned}: {err}") from None
    if response.status_code == 404:
        return False
    if response.status_code not in (200, 202):
        raise StackError(
            f"registry {host} refused to delete {pinned}: HTTP {response.status_code} "
            "(is deletion enabled in its storage configuration?)"
        )
    return True
