"""The model registry on the real stack: register -> validate -> deploy -> promote,
signature rules, rejected versions, idempotent registration, the audit trail, and
bad input that leaves the registry unchanged."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from examples.iris.train import train_iris
from nomadml.adapters.model_store import ModelRegistry
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.cli.main import main
from nomadml.errors import ExitCode


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def _model_dir(tmp_path: Path, name: str, **training: object) -> Path:
    path = tmp_path / name
    train_iris(path, **training)  # type: ignore[arg-type]
    return path


def _registry_state(nomad: NomadAPI, model: str) -> list[tuple[str, int]]:
    return [(v["Path"], v["ModifyIndex"]) for v in nomad.list_variables(f"nomadml/models/{model}/")]


def test_register_validate_deploy_promote(
    nomad: NomadAPI,
    docker_client: object,
    model_name: str,
    make_spec: Callable[..., Path],
    tmp_path: Path,
    serving_image: str,
) -> None:
    spec = str(make_spec(gates="health"))
    first = _model_dir(tmp_path, "m1")
    code, out, err = cli("model", "register", str(first), "--name", model_name, "--bump", "major")
    assert code == 0, err
    assert f"{model_name} 1.0.0 registered: stage candidate" in out

    # The same artifact again registers nothing new.
    code, out, err = cli("model", "register", str(first), "--name", model_name, "--bump", "minor")
    assert code == 0, err
    assert f"{model_name} 1.0.0 unchanged" in out

    # The registry decides: a candidate does not deploy; nothing reaches Nomad.
    code, out, err = cli("deploy", spec, "--version", "1.0.0", "--serving-image", serving_image)
    assert code == int(ExitCode.BAD_INPUT), out + err
    assert f"{model_name} 1.0.0 is candidate in the model registry: validate it first" in err
    assert len(err.strip().splitlines()) == 1
    assert nomad.job(f"{model_name}-v1") is None

    code, out, err = cli("model", "validate", model_name, "1.0.0", "--spec", spec)
    assert code == 0, out + err
    assert "accuracy = 1" in out and f"{model_name} 1.0.0: validated" in out
    assert "measured = True" in out  # served and scored on the spec's evaluation file

    code, out, err = cli("deploy", spec, "--version", "1.0.0", "--serving-image", serving_image)
    assert code == 0, out + err
    assert f"{model_name} 1.0.0 -> production" in out  # a successful rollout settles it
    record = ModelRegistry(nomad).get(model_name, "1.0.0")
    assert record is not None and record.stage == "production"
    job = nomad.job(f"{model_name}-v1")
    assert job is not None
    assert job["TaskGroups"][0]["Tasks"][0]["Config"]["image"] == record.image
    assert "@sha256:" in record.image

    # Promoting what a rollout already made production changes nothing.
    code, out, err = cli("model", "promote", model_name, "1.0.0", "--spec", spec)
    assert code == 0, err
    promoted = ModelRegistry(nomad).get(model_name, "1.0.0")
    assert promoted is not None and promoted.stage == "production"
    time.sleep(1.1)  # audit times have one-second resolution
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    # A retrained model with a worse accuracy is rejected by the spec's gates ...
    worse = _model_dir(tmp_path, "m2", c=0.001)
    code, out, err = cli("model", "register", str(worse), "--name", model_name, "--bump", "minor")
    assert code == 0, err
    code, out, err = cli("model", "validate", model_name, "1.1.0", "--spec", spec)
    assert code == int(ExitCode.FAILED)
    assert "failed: accuracy" in out and f"{model_name} 1.1.0: rejected" in out
    # ... and a rejected version can never be deployed or promoted.
    before = nomad.job(f"{model_name}-v1")["Version"]  # type: ignore[index]
    code, out, err = cli("deploy", spec, "--version", "1.1.0", "--serving-image", serving_image)
    assert code == int(ExitCode.BAD_INPUT)
    assert "rejected in the model registry" in err
    assert nomad.job(f"{model_name}-v1")["Version"] == before  # type: ignore[index]
    # --force needs a reason; a bare image outside the registry needs --unregistered.
    code, _, err = cli("deploy", spec, "--version", "1.1.0", "--force")
    assert code == int(ExitCode.BAD_INPUT) and "--force needs --reason" in err
    code, _, err = cli("deploy", spec, "--version", "9.0.0", "--serving-image", serving_image)
    assert code == int(ExitCode.BAD_INPUT) and "is not in the model registry" in err
    assert "--unregistered" in err
    assert nomad.job(f"{model_name}-v1")["Version"] == before  # type: ignore[index]
    code, _, err = cli("model", "promote", model_name, "1.1.0")
    assert code == int(ExitCode.BAD_INPUT) and "rejected" in err

    # A changed signature needs a major bump.
    petals = _model_dir(tmp_path, "m3", features=["petal_length", "petal_width"])
    code, _, err = cli("model", "register", str(petals), "--name", model_name, "--bump", "minor")
    assert code == int(ExitCode.BAD_INPUT)
    assert "needs a major bump" in err
    code, out, err = cli("model", "register", str(petals), "--name", model_name, "--bump", "major")
    assert code == 0 and f"{model_name} 2.0.0 registered" in out, err

    # Audit trail and time travel.
    code, out, _ = cli("model", "history", model_name, "--at", now)
    assert out.strip() == f"{model_name} in production at {now}: 1.0.0"
    code, out, _ = cli("model", "history", model_name, "--at", "2000-01-01T00:00:00Z")
    assert out.strip().endswith(": none")
    code, out, _ = cli("model", "list", model_name)
    stages = {line.split()[1]: line.split()[2] for line in out.splitlines()}
    assert stages == {"1.0.0": "production", "1.1.0": "rejected", "2.0.0": "candidate"}


@pytest.mark.parametrize(
    "problem",
    [
        "missing metadata",
        "invalid metadata",
        "symlink outside",
        "existing version",
        "not a directory",
    ],
)
def test_bad_registration_leaves_the_registry_unchanged(
    nomad: NomadAPI, docker_client: object, model_name: str, tmp_path: Path, problem: str
) -> None:
    good = _model_dir(tmp_path, "good")
    code, _, err = cli("model", "register", str(good), "--name", model_name, "--version", "1.0.0")
    assert code == 0, err
    before = _registry_state(nomad, model_name)
    bad = _model_dir(tmp_path, "bad", c=0.5)
    args = ["model", "register", str(bad), "--name", model_name, "--version", "1.1.0"]
    if problem == "missing metadata":
        (bad / "metadata.json").unlink()
    elif problem == "invalid metadata":
        (bad / "metadata.json").write_text(json.dumps({"metrics": {"accuracy": "high"}}))
    elif problem == "symlink outside":
        (bad / "secrets").symlink_to("/etc/passwd")
    elif problem == "existing version":
        args[-1] = "1.0.0"
    elif problem == "not a directory":
        args[2] = str(bad / "model.json")
    code, out, err = cli(*args)
    assert code == int(ExitCode.BAD_INPUT), out + err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert _registry_state(nomad, model_name) == before


def test_registry_down_is_a_clear_error(tmp_path: Path) -> None:
    model_dir = _model_dir(tmp_path, "m")
    result = CliRunner().invoke(
        main,
        [
            "--address",
            "http://127.0.0.1:1",
            "model",
            "register",
            str(model_dir),
            "--name",
            "nowhere",
            "--bump",
            "major",
        ],
    )
    assert result.exit_code == int(ExitCode.NOMAD_UNREACHABLE)
    assert result.stderr.startswith("nomadml: error: cannot reach Nomad at http://127.0.0.1:1")


def test_approval_follows_the_recorded_policy_whatever_the_flags(
    nomad: NomadAPI,
    docker_client: object,
    model_name: str,
    make_spec: Callable[..., Path],
    tmp_path: Path,
) -> None:
    """A spec that requires approval records the policy in the registry; from then on
    a promotion without an approval is refused (no spec, no flag needed to enforce it),
    and a deploy of the unapproved version is refused before Nomad sees anything."""
    spec = str(make_spec({"require_approval = false": "require_approval = true"}, gates="health"))
    first = _model_dir(tmp_path, "m1")
    assert cli("model", "register", str(first), "--name", model_name, "--version", "1.0.0")[0] == 0
    code, out, err = cli("model", "validate", model_name, "1.0.0", "--spec", spec)
    assert code == 0, out + err
    assert ModelRegistry(nomad).requires_approval(model_name)

    code, _, err = cli("model", "promote", model_name, "1.0.0")  # no --spec, no flag
    assert code == int(ExitCode.BAD_INPUT) and "needs approval" in err, err
    code, _, err = cli("deploy", spec, "--version", "1.0.0")
    assert code == int(ExitCode.BAD_INPUT) and "needs approval" in err, err
    assert nomad.job(f"{model_name}-v1") is None

    code, out, err = cli("model", "approve", model_name, "1.0.0", "--reason", "risk review 7")
    assert code == 0 and "approved by" in out, err
    code, out, err = cli("model", "promote", model_name, "1.0.0")
    assert code == 0 and f"{model_name} 1.0.0: production" in out, err
    approvals = [e for e in ModelRegistry(nomad).audit_log(model_name) if e["action"] == "approve"]
    assert [e["details"]["reason"] for e in approvals] == ["risk review 7"]
