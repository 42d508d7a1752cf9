"""`nomadml volume prune` on the real stack: a sysbatch job runs the line's own
bootstrap on the node and removes the versions Nomad can no longer run there."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from examples.iris.train import train_iris
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.bundled import bootstrap
from nomadml.cli.main import main
from nomadml.core.decide import Action
from nomadml.engine.result import RolloutResult
from nomadml.errors import ExitCode


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def names(volume: Path, model: str) -> list[str]:
    return sorted(p.name for p in (volume / model).iterdir() if not p.name.startswith("."))


def test_prune_removes_only_what_no_kept_job_version_runs(
    nomad: NomadAPI,
    roll: Callable[..., RolloutResult],
    model_name: str,
    make_spec: Callable[..., Path],
    ship: Callable[..., str],
    models_volume: Path,
    tmp_path: Path,
) -> None:
    spec, line = make_spec(gates="health"), f"{model_name}-v1"
    assert roll(spec, "1.0.0", ship("1.0.0")).action is Action.SUCCEEDED
    # Versions of earlier lives of this line, which no job version Nomad keeps names
    # (as after a purge, or past Nomad's job-version limit), another major, and a
    # directory bootstrap did not make.
    for version in ("1.0.5", "1.0.6", "2.0.0"):
        source = tmp_path / version
        source.mkdir()
        (source / "model.json").write_text(f'{{"version": "{version}"}}')
        bootstrap.write_manifest(source, bootstrap.build_manifest(source, model_name, version))
        bootstrap.install(source, models_volume, model_name, version)
    (models_volume / model_name / "1.0.7").mkdir()
    before = names(models_volume, model_name)
    assert before == ["1.0.0", "1.0.5", "1.0.6", "1.0.7", "2.0.0"]

    code, out, err = cli("volume", "prune", line, "--dry-run")
    assert code == 0, err
    assert f"{line}: keeping 1.0.0 of {model_name} major 1 on 1 node(s)" in out
    assert f"would remove {model_name} 1.0.5" in out and f"would remove {model_name} 1.0.6" in out
    assert names(models_volume, model_name) == before

    code, out, err = cli("volume", "prune", line)
    assert code == 0, err
    assert "removed 2 versions" in out, out
    assert names(models_volume, model_name) == ["1.0.0", "1.0.7", "2.0.0"]
    assert nomad.job(f"{line}-volume-prune") is None  # the one-shot job is purged

    # The line still serves from its kept version; a second prune finds nothing to do.
    code, out, err = cli("volume", "prune", line)
    assert code == 0 and "removed 0 versions" in out, (out, err)


def test_prune_of_a_line_that_does_not_exist_submits_nothing(nomad: NomadAPI) -> None:
    code, _out, err = cli("volume", "prune", "nosuchmodel-v1")
    assert code == ExitCode.BAD_INPUT
    assert err.strip().splitlines() == [
        "nomadml: error: line 'nosuchmodel-v1': no such job in Nomad (see `nomadml status`)"
    ]
    assert nomad.job("nosuchmodel-v1-volume-prune") is None


def test_expiry_prunes_the_volumes_of_the_lines_concerned(
    nomad: NomadAPI,
    roll: Callable[..., RolloutResult],
    model_name: str,
    make_spec: Callable[..., Path],
    ship: Callable[..., str],
    models_volume: Path,
    tmp_path: Path,
) -> None:
    spec = make_spec(gates="health")
    for version, c in (("1.0.0", 1.0), ("1.1.0", 0.001)):
        train_iris(tmp_path / version, c=c)
        code, _, err = cli(
            "model", "register", str(tmp_path / version), "--name", model_name, "--version", version
        )
        assert code == 0, err
    code, out, _ = cli("model", "validate", model_name, "1.1.0", "--spec", str(spec))
    assert code == int(ExitCode.FAILED) and "rejected" in out
    assert roll(spec, "1.0.0", ship("1.0.0")).action is Action.SUCCEEDED
    # The rejected version's copy on the node, as its canary left it once Nomad has
    # forgotten the job version that ran it.
    source = tmp_path / "1.1.0"
    bootstrap.write_manifest(source, bootstrap.build_manifest(source, model_name, "1.1.0"))
    bootstrap.install(source, models_volume, model_name, "1.1.0")

    code, out, err = cli("model", "expire", model_name, "--after", "0s")
    assert code == 0, err
    assert f"{model_name} 1.1.0 (rejected): expired" in out
    assert f"{model_name}-v1 " in out and f"removed {model_name} 1.1.0" in out, out
    assert names(models_volume, model_name) == ["1.0.0"]
