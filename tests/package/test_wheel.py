"""nomadml as an operator installs it: the wheel, built from this tree, installed
into a fresh virtualenv outside the repository (dependencies from the local
wheelhouse that scripts/install-deps fills: no network), run from a temporary
folder with nothing of the repository in reach."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WHEELHOUSE = Path(
    os.environ.get("NOMADML_WHEELHOUSE", Path.home() / ".cache" / "nomadml" / "wheelhouse")
)
DIGEST = "sha256:" + "0" * 64

SPEC = """\
[model]
name = "churn"
registry = "127.0.0.1:5000"

[serving]
image = "127.0.0.1:5000/acme/churn-server@sha256:{zeros}"
""".format(zeros="1" * 64)


def _run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "NOMAD_ADDR": "http://127.0.0.1:9"}
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `nomadml` console script of a fresh virtualenv holding only the wheel."""
    if not any(WHEELHOUSE.glob("*.whl")):
        message = f"no dependency wheels in {WHEELHOUSE}; run scripts/install-deps"
        if os.environ.get("NOMADML_REQUIRE_STACK") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    # Build from a copy: setuptools leaves build/ and *.egg-info beside the sources.
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "nomadml", source / "nomadml", ignore=shutil.ignore_patterns("*.pyc"))
    dist = tmp_path_factory.mktemp("dist")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(dist), str(source)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = dist.glob("nomadml-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "nomadml/templates/model-service.nomad.hcl" in names
    assert "nomadml/policies/viewer.hcl" in names
    assert not [n for n in names if n.startswith(("examples/", "tests/", "jobspecs/"))]
    env_dir = tmp_path_factory.mktemp("venv")
    venv.create(env_dir, with_pip=True)
    pip = _run(
        env_dir / "bin" / "python", "-m", "pip", "install", "-q", "--no-index",
        "--find-links", WHEELHOUSE, str(wheel), cwd=env_dir,
    )  # fmt: skip
    assert pip.returncode == 0, pip.stderr
    return env_dir / "bin" / "nomadml"


def test_help_render_and_validate_work_from_an_installed_wheel(
    installed: Path, tmp_path: Path
) -> None:
    spec = tmp_path / "churn.toml"
    spec.write_text(SPEC)

    shown = _run(installed, "--help", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "deploy" in shown.stdout and "Exit codes:" in shown.stdout

    image = f"127.0.0.1:5000/nomadml/models/churn@{DIGEST}"
    rendered = _run(installed, "render", spec, "--version", "1.2.0", "--image", image, cwd=tmp_path)
    assert rendered.returncode == 0, rendered.stderr
    assert 'job "churn-v1"' in rendered.stdout and image in rendered.stdout

    policy = _run(installed, "policy", "viewer", cwd=tmp_path)
    assert policy.returncode == 0 and 'namespace "default"' in policy.stdout, policy.stderr

    # Offline: the spec and both templates check out; Nomad's own parse is skipped.
    checked = _run(installed, "validate", spec, cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith(f"{spec}: spec and templates ok")


def test_an_operator_template_extends_the_shipped_one_by_its_namespaced_name(
    installed: Path, tmp_path: Path
) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "model-service.nomad.hcl").write_text(
        '[% extends "nomadml/model-service.nomad.hcl" %]\n'
        "[% block group_extra %]    # operator block\n[% endblock %]\n"
    )
    spec = tmp_path / "churn.toml"
    spec.write_text(SPEC + '\n[templates]\npath = ["templates"]\n')
    image = f"127.0.0.1:5000/nomadml/models/churn@{DIGEST}"
    rendered = _run(installed, "render", spec, "--version", "1.2.0", "--image", image, cwd=tmp_path)
    assert rendered.returncode == 0, rendered.stderr
    assert "# operator block" in rendered.stdout


def test_report_without_its_extra_names_the_pip_command(installed: Path, tmp_path: Path) -> None:
    """The wheel's own dependencies leave out matplotlib (the report extra): `nomadml
    report` says so in one line, with its own exit code, before asking Nomad anything."""
    out = tmp_path / "report.html"
    said = _run(installed, "report", "churn-v1", "--output", out, cwd=tmp_path)
    assert said.returncode == 13, said.stderr
    assert said.stdout == "" and said.stderr == (
        "nomadml: error: nomadml report needs matplotlib, which is not installed:"
        " pip install 'nomadml[report]'\n"
    )
    assert not out.exists()
