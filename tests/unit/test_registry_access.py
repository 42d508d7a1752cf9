"""How nomadml reaches an image registry: TLS and credentials as the engine does."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from nomadml.adapters import image_registry


@pytest.fixture(autouse=True)
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NOMADML_DOCKER_CERTS_D", str(tmp_path / "certs.d"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    (tmp_path / "docker").mkdir()
    return tmp_path


@pytest.mark.parametrize(
    ("host", "with_ca", "expected"),
    [
        ("127.0.0.1:5000", False, ("http://127.0.0.1:5000", True)),
        ("localhost:5000", False, ("http://localhost:5000", True)),
        ("[::1]:5000", False, ("http://[::1]:5000", True)),
        ("registry.example:443", False, ("https://registry.example:443", True)),
        ("10.0.0.5:5000", False, ("https://10.0.0.5:5000", True)),
        ("127.0.0.1:5443", True, ("https://127.0.0.1:5443", "CA")),
    ],
)
def test_endpoint(places: Path, host: str, with_ca: bool, expected: tuple[str, object]) -> None:
    if with_ca:
        (places / "certs.d" / host).mkdir(parents=True)
        (places / "certs.d" / host / "ca.crt").write_text("x")
    base, verify = image_registry.endpoint(host)
    want = str(places / "certs.d" / host / "ca.crt") if expected[1] == "CA" else expected[1]
    assert (base, verify) == (expected[0], want)


def _login(places: Path, auths: dict[str, object]) -> None:
    (places / "docker" / "config.json").write_text(json.dumps({"auths": auths}))


def test_credentials_from_docker_login(places: Path) -> None:
    token = base64.b64encode(b"nomadml:s3cr:et").decode()
    _login(places, {"127.0.0.1:5443": {"auth": token}, "https://r.example": {"auth": token}})
    assert image_registry.credentials("127.0.0.1:5443") == ("nomadml", "s3cr:et")
    assert image_registry.credentials("r.example") == ("nomadml", "s3cr:et")
    assert image_registry.credentials("other:5000") is None


@pytest.mark.parametrize(
    "auths",
    [{"h:1": {"auth": "!!not base64"}}, {"h:1": {"auth": ""}}, {"h:1": "x"}, {"h:1": {}}],
)
def test_unusable_entries_are_no_credentials(places: Path, auths: dict[str, object]) -> None:
    _login(places, auths)
    assert image_registry.credentials("h:1") is None


def test_no_config_file_is_no_credentials() -> None:
    assert image_registry.credentials("h:1") is None
