"""Expiry on the real registry and image registry: a rejected version's record stays
for the audit while its model image leaves the image registry; a dry run changes
nothing; what serves or may come back is never touched; a bad duration is one line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import requests
from click.testing import CliRunner

from examples.iris.train import train_iris
from nomadml.adapters.image_registry import MANIFEST_TYPES
from nomadml.adapters.model_store import ModelRegistry
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.cli.main import main
from nomadml.errors import ExitCode


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def _present(image: str) -> bool:
    host, _, rest = image.partition("/")
    repository, _, digest = rest.partition("@")
    url = f"http://{host}/v2/{repository}/manifests/{digest}"
    return requests.head(url, headers={"Accept": MANIFEST_TYPES}, timeout=5).status_code == 200


def test_a_rejected_versions_image_expires_and_its_record_stays(
    nomad: NomadAPI,
    docker_client: object,
    model_name: str,
    make_spec: Callable[..., Path],
    tmp_path: Path,
) -> None:
    spec = str(make_spec(gates="health"))
    for version, c in (("1.0.0", 1.0), ("1.1.0", 0.001)):
        train_iris(tmp_path / version, c=c)
        args = ["model", "register", str(tmp_path / version), "--name", model_name]
        code, _, err = cli(*args, "--version", version)
        assert code == 0, err
    code, out, _ = cli("model", "validate", model_name, "1.1.0", "--spec", spec)
    assert code == int(ExitCode.FAILED) and "rejected" in out
    registry = ModelRegistry(nomad)
    kept, rejected = registry.get(model_name, "1.0.0"), registry.get(model_name, "1.1.0")
    assert kept is not None and rejected is not None
    assert _present(kept.image) and _present(rejected.image)

    code, out, err = cli("model", "expire", model_name, "--after", "3days")
    assert code == int(ExitCode.BAD_INPUT) and len(err.strip().splitlines()) == 1, err
    code, out, _ = cli("model", "expire", model_name, "--after", "0s", "--dry-run")
    assert code == 0 and out.strip() == f"{model_name} 1.1.0 (rejected): would expire"
    assert _present(rejected.image)

    code, out, _ = cli("model", "expire", model_name, "--after", "0s")
    assert code == 0 and out.strip().splitlines()[-1] == f"{model_name} 1.1.0 (rejected): expired"
    assert f"{model_name} 1.1.0 expired (rejected)" in out  # the event, as a webhook sees it
    assert not _present(rejected.image)
    assert _present(kept.image)  # a candidate nothing superseded stays
    record = registry.get(model_name, "1.1.0")
    assert record is not None and record.stage == "rejected" and record.expired_at
    audit = [e for e in registry.audit_log(model_name) if e["action"] == "expire"]
    assert [(e["version"], e["details"]["deleted"]) for e in audit] == [("1.1.0", True)]

    code, out, _ = cli("model", "expire", model_name, "--after", "0s")
    assert code == 0 and out.strip() == f"{model_name}: nothing to expire"
