"""The retraining job with the trainer in its own image and nomadml's steps in the
nomadml image: what the spec accepts, how a trainer task's end is read, and what
`nomadml retrain --trained` refuses before it asks Nomad anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from nomadml.adapters.nomadml_image import content_tag, runtime_wheels
from nomadml.cli.main import main
from nomadml.core.spec import parse_spec
from nomadml.core.task_state import trainer_exit_code
from nomadml.errors import ExitCode, SpecError, StackError

SPEC = """\
[model]
name = "churn"

[retraining]
enabled = true
driver = "{driver}"
trainer = ["python3", "/opt/train.py"]
nomadml_image = "nomadml"
"""


def test_nomadml_image_needs_the_docker_driver() -> None:
    assert parse_spec(SPEC.format(driver="docker"), "s.toml").retraining.nomadml_image == "nomadml"
    with pytest.raises(SpecError) as err:
        parse_spec(SPEC.format(driver="raw_exec"), "s.toml")
    assert str(err.value) == (
        's.toml: retraining.nomadml_image: needs retraining.driver = "docker" '
        "(not 'raw_exec'): the trainer and nomadml's steps run in two images"
    )


@pytest.mark.parametrize(
    ("events", "code"),
    [
        ([{"Type": "Started"}, {"Type": "Terminated", "ExitCode": 3}], 3),
        ([{"Type": "Terminated", "ExitCode": 0}, {"Type": "Not Restarting"}], 0),
        ([{"Type": "Started"}, {"Type": "Killed"}], None),
        ([], None),
    ],
)
def test_the_trainer_exit_code_is_its_last_termination(events: list[object], code: int) -> None:
    assert trainer_exit_code({"Events": events}) == code


def test_trainer_task_outside_nomad_is_one_line(tmp_path: Path) -> None:
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC.format(driver="docker"))
    result = CliRunner().invoke(
        main,
        ["retrain", "--spec", str(spec), "--trained", str(tmp_path), "--trainer-task", "train"],
        env={"NOMAD_ALLOC_ID": "", "NOMAD_ADDR": "http://127.0.0.1:9"},
    )
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert "--trainer-task needs $NOMAD_ALLOC_ID" in result.output + result.stderr


def test_the_image_tag_follows_the_wheels(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="run scripts/install-deps"):
        runtime_wheels(tmp_path)
    for name in ("click-8.1.0-py3-none-any.whl", "python_nomad-2.1.0-py3-none-any.whl"):
        (tmp_path / name).write_bytes(b"")
    wheels = runtime_wheels(tmp_path)
    first = content_tag(wheels, [], "base:1")
    (tmp_path / "click-8.2.0-py3-none-any.whl").write_bytes(b"")
    newer = runtime_wheels(tmp_path)
    assert newer[0].name == "click-8.2.0-py3-none-any.whl"
    assert content_tag(newer, [], "base:1") != first != content_tag(wheels, [], "base:2")


def test_a_model_image_holds_only_plain_files_for_older_pythons() -> None:
    import tarfile

    from nomadml.adapters.images import _plain

    ok = tarfile.TarInfo("model.json")
    ok.mode = 0o4755
    assert _plain(ok, "img").mode == 0o755
    for name, kind in (
        ("../x", tarfile.REGTYPE),
        ("/etc/x", tarfile.REGTYPE),
        ("l", tarfile.SYMTYPE),
    ):
        bad = tarfile.TarInfo(name)
        bad.type = kind
        with pytest.raises(StackError, match="not a plain file or folder"):
            _plain(bad, "img")


def test_a_data_volume_takes_relative_data_paths() -> None:
    text = SPEC.format(driver="docker") + 'data_volume = "d"\n\n[data]\ntrain = "/srv/t.csv"\n'
    with pytest.raises(SpecError) as err:
        parse_spec(text, "s.toml")
    assert str(err.value) == (
        "s.toml: data.train: must be relative to retraining.data_volume (mounted at /data)"
    )


def test_auto_deploy_from_the_nomadml_image_is_refused_before_anything_is_scheduled() -> None:
    with pytest.raises(SpecError) as err:
        parse_spec(SPEC.format(driver="docker") + "auto_deploy = true\n", "s.toml")
    assert str(err.value).startswith(
        "s.toml: retraining.auto_deploy: not with retraining.nomadml_image yet: Nomad refuses"
    )
