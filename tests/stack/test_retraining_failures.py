"""A retraining run that cannot make a good version makes none, on the real stack:
a trainer that exits non-zero, one that writes no metadata.json, and one whose model
changes the signature within a major each end in one clear line and exit 2, with
nothing registered, nothing deployed, an audit entry and a `retraining-failed`
webhook; a run that works registers as usual."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from nomadml.adapters.model_store import ModelRegistry
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.cli.main import main
from nomadml.errors import ExitCode

TRAINER = 'trainer = ["python3", "-m", "examples.iris.train"]'


def _retrain(spec: Path, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner(env=env).invoke(main, ["retrain", "--spec", str(spec), "--no-auto-deploy"])
    return result.exit_code, result.stdout, result.stderr


def _trainer(*argv: str) -> str:
    return "trainer = " + json.dumps([sys.executable, *argv])


@pytest.mark.parametrize("receiver", [0], indirect=True)
def test_failing_trainers_register_nothing_and_say_why(
    nomad: NomadAPI,
    docker_client: object,
    model_name: str,
    make_spec: Callable[..., Path],
    receiver: Any,
) -> None:
    registry = ModelRegistry(nomad)
    hook = {"NOMADML_WEBHOOK_URL": receiver.url, "NOMADML_WEBHOOK_SECRET": "s3cret"}
    cases = {
        "exits 3": (_trainer("-c", "import sys; sys.exit(3)"), "exited 3: nothing registered"),
        "no metadata": (_trainer("-c", "pass"), "wrote no metadata.json"),
    }
    for name, (trainer, said) in cases.items():
        spec = make_spec({TRAINER: trainer}, file=f"{name.replace(' ', '-')}.toml")
        code, _, err = _retrain(spec, hook)
        assert code == int(ExitCode.BAD_INPUT), (name, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and said in lines[0], (name, err)
        assert registry.versions(model_name) == []

    good = make_spec({TRAINER: _trainer("-m", "examples.iris.train")}, file="good.toml")
    code, out, err = _retrain(good, hook)
    assert code == 0 and "retrain: done: validated" in out, out + err

    petals = _trainer("-m", "examples.iris.train", "--features", "petal_length,petal_width")
    code, _, err = _retrain(make_spec({TRAINER: petals}, file="petals.toml"), hook)
    assert code == int(ExitCode.BAD_INPUT), err
    assert "signature matches no major of this model (newest: 1.0.0)" in err
    assert [v.version for v in registry.versions(model_name)] == ["1.0.0"]
    assert nomad.job(f"{model_name}-v1") is None  # nothing deployed either

    failed = [e for e in registry.audit_log(model_name) if e["action"] == "retrain-failed"]
    assert len(failed) == 3, failed
    events = [json.loads(body)["event"] for _, body in receiver.received]
    assert events.count("retraining-failed") == 3 and "retraining-validated" in events
