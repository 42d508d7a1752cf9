"""The command line's contract: help on every option, one exit-code enum shown in
--help, one-line errors, and offline commands that need no cluster."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from helpers import all_commands

from nomadml import __version__
from nomadml.cli.main import COMMANDS, main
from nomadml.errors import ExitCode

SPEC = Path(__file__).resolve().parents[2] / "examples" / "iris" / "iris.toml"
NOWHERE = "http://127.0.0.1:1"  # nothing listens on port 1


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_version_and_help() -> None:
    code, out, _ = run("--version")
    assert (code, out.strip()) == (0, f"nomadml, version {__version__}")
    code, out, _ = run("--help")
    assert code == 0
    for member in ExitCode:
        assert f"{member.value:>3}  {member.name.lower().replace('_', ' ')}" in out


def test_every_command_and_option_has_help() -> None:
    commands = all_commands()
    assert len(commands) == len(COMMANDS) >= 12
    for name, command in commands.items():
        assert command.help, f"command {name} has no docstring"
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"{name} {param.opts} has no help text"


def test_each_command_resolves_to_itself() -> None:
    for name, command in all_commands().items():
        assert command.name == name, COMMANDS[name]


def nomadml_modules_after(*args: str) -> set[str]:
    """The nomadml modules a fresh interpreter imports to answer ``nomadml ARGS``."""
    code = (
        "import sys\n"
        "from nomadml.cli.main import main\n"
        "try:\n"
        f"    main({list(args)!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(' '.join(m for m in sys.modules if m.startswith('nomadml')))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return set(proc.stdout.strip().splitlines()[-1].split())


def test_a_command_loads_only_its_own_module() -> None:
    """`nomadml status --help` must not pay for the other commands' modules."""
    loaded = nomadml_modules_after("status", "--help")
    assert "nomadml.cli.lines" in loaded
    assert not loaded & {
        "nomadml.cli.release",
        "nomadml.cli.retraining",
        "nomadml.cli.model",
        "nomadml.cli.report",
    }
    heavy = {
        "nomadml.adapters.nomad_api",
        "nomadml.engine.deploy",
        "nomadml.engine.watch",
        "nomadml.core.spec",
        "nomadml.engine.interrupts",
    }
    assert not loaded & heavy, loaded
    everything = nomadml_modules_after("--help")  # the command list needs all of them
    commands = {"nomadml.cli.release", "nomadml.cli.retraining", "nomadml.cli.model"}
    assert commands | {"nomadml.cli.report"} <= everything
    # ... but not what a command needs only when it runs (the report's plotting).
    assert "nomadml.engine.report_page" not in everything


@pytest.mark.parametrize("version", ["1.2", "../../etc", "1.2.3; rm -rf /", "v1.0.0"])
def test_bad_version_offline_is_one_line(version: str) -> None:
    code, out, err = run("render", str(SPEC), "--version", version)
    assert code == int(ExitCode.BAD_INPUT)
    assert out == "" and len(err.strip().splitlines()) == 1
    assert "invalid model version" in err


def test_render_is_offline_with_a_pinned_image() -> None:
    image = "127.0.0.1:5000/nomadml/models/iris@sha256:" + "e" * 64
    code, out, err = run(
        "--address", NOWHERE, "render", str(SPEC), "--version", "2.0.1", "--image", image
    )
    assert code == 0, err
    assert out.startswith('job "iris-v2"') and image in out


def test_validate_without_nomad_says_what_it_skipped() -> None:
    code, out, _ = run("--address", NOWHERE, "validate", str(SPEC))
    assert code == 0
    assert "spec and templates ok" in out
    assert "Nomad checks skipped: cannot reach Nomad at http://127.0.0.1:1" in out


def test_plan_without_nomad_is_exit_3(tmp_path: Path) -> None:
    image = "127.0.0.1:5000/nomadml/models/iris@sha256:" + "e" * 64
    code, _, err = run(
        "--address",
        NOWHERE,
        "plan",
        str(SPEC),
        "--version",
        "1.0.0",
        "--image",
        image,
        "--serving-image",
        image.replace("models/iris", "serve"),
    )
    assert code == int(ExitCode.NOMAD_UNREACHABLE)
    assert err.startswith("nomadml: error: cannot reach Nomad at http://127.0.0.1:1")


def test_missing_spec_file_is_one_line(tmp_path: Path) -> None:
    code, _, err = run("validate", str(tmp_path / "nope.toml"))
    assert code == int(ExitCode.BAD_INPUT)
    assert "nope.toml: cannot read spec: No such file or directory" in err


def test_an_unexpected_exception_is_one_line_and_exit_70(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> str:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr("nomadml.engine.prepare.render_service", broken)
    image = "127.0.0.1:5000/nomadml/models/iris@sha256:" + "e" * 64
    args = ["render", str(SPEC), "--version", "1.0.0", "--image", image]
    code, _, err = run("--address", NOWHERE, *args)
    assert code == ExitCode.INTERNAL
    assert int(ExitCode.INTERNAL) == 70
    assert err.splitlines() == [
        "nomadml: error: internal error: ZeroDivisionError: division by zero; "
        "rerun with --debug for the traceback"
    ]
    # --debug shows the real exception instead.
    result = CliRunner().invoke(main, ["--debug", "--address", NOWHERE, *args])
    assert isinstance(result.exception, ZeroDivisionError)


def test_the_bundled_installers_errors_keep_their_meaning() -> None:
    from nomadml.bundled.bootstrap import BootstrapError, IntegrityError
    from nomadml.errors import BadInput, ModelIntegrityError, as_operator_error

    integrity = as_operator_error(IntegrityError("model.json: sha256 mismatch"))
    assert isinstance(integrity, ModelIntegrityError) and integrity.exit_code == 11
    assert isinstance(as_operator_error(BootstrapError("bad name")), BadInput)
    assert as_operator_error(KeyError("x")).exit_code == ExitCode.INTERNAL
