"""Specs and templates against the real agent: every shipped template's output for
every example spec parses and validates; plan exit codes; bad input sends nothing."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from examples.iris import quickstart
from examples.iris.train import train_iris
from nomadml.adapters.images import build_model_image
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.bundled.bootstrap import build_manifest, write_manifest
from nomadml.cli.main import main
from nomadml.core.spec import load_spec
from nomadml.errors import ExitCode

JOBSPECS = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*/*.toml"))


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("spec", JOBSPECS, ids=[p.stem for p in JOBSPECS])
def test_every_example_spec_parses_and_validates_on_nomad(nomad: NomadAPI, spec: Path) -> None:
    code, out, err = cli("validate", str(spec))
    assert code == 0, err
    assert "Nomad parses and validates the service job" in out
    if load_spec(spec).retraining.enabled:
        assert "retraining job" in out.splitlines()[-1]


def _push_version(name: str, version: str, c: float) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp)
        train_iris(model_dir, c=c)
        write_manifest(model_dir, build_manifest(model_dir, name, version))
        return build_model_image(model_dir, name, version, labels={}).pinned


def test_plan_exit_codes_unchanged_vs_new_version(
    nomad: NomadAPI, docker_client: object, model_name: str, make_spec: Callable[..., Path]
) -> None:
    spec_path = make_spec()
    deployed = quickstart.run(nomad, load_spec(spec_path))
    job = nomad.job(deployed.job_id)
    assert job is not None
    serving_image = job["TaskGroups"][0]["Tasks"][1]["Config"]["image"]

    # Same version, same images: nothing to do, exit 0.
    code, out, err = cli(
        "plan", str(spec_path), "--version", quickstart.VERSION, "--serving-image", serving_image
    )
    assert (code, err) == (0, ""), out
    assert out.startswith(f"job {deployed.job_id}: no changes")

    # A new minor version: a destructive update rolled out as one canary, exit 1.
    _push_version(model_name, "1.1.0", c=0.5)
    code, out, err = cli(
        "plan", str(spec_path), "--version", "1.1.0", "--serving-image", serving_image
    )
    assert code == int(ExitCode.CHANGES), err
    assert "1 canary" in out.splitlines()[0]
    assert "'1.0.0' => '1.1.0'" in out
    # Planning registered nothing: the job is still at its first version.
    assert nomad.job(deployed.job_id)["Version"] == job["Version"]  # type: ignore[index]


def test_plan_refuses_a_job_nomadml_does_not_own(
    nomad: NomadAPI, docker_client: object, model_name: str, make_spec: Callable[..., Path]
) -> None:
    foreign = nomad.parse_hcl(
        f'job "{model_name}-v1" {{\n group "g" {{\n task "t" {{\n driver = "raw_exec"\n'
        ' config {\n command = "/bin/sleep"\n args = ["600"]\n }\n }\n }\n}\n'
    )
    nomad.register(foreign, enforce_index=0)
    image = _push_version(model_name, "1.0.0", c=1.0)
    code, _out, err = cli("plan", str(make_spec()), "--version", "1.0.0", "--image", image)
    assert code == int(ExitCode.NOT_OWNED)
    assert err.strip().splitlines() == [
        f"nomadml: error: job {model_name}-v1 exists but was not created by nomadml "
        "(no nomadml.managed meta); refusing to overwrite it"
    ]


BAD_SPECS = {
    "missing field": ({'name = "': '# name = "'}, "model.name: required field is missing"),
    "wrong type": ({"count = 2": 'count = "two"'}, "serving.count: expected an integer"),
    "unknown key": ({"count = 2": "count = 2\ncuont = 3"}, "serving.cuont: unknown key"),
}
BAD_VERSIONS = ["1.2", "../../etc", "1.2.3; rm -rf /", "v1.0.0", ""]


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
@pytest.mark.parametrize("command", ["plan", "render", "validate"])
def test_bad_spec_is_one_line_and_sends_nothing(
    nomad: NomadAPI, model_name: str, make_spec: Callable[..., Path], case: str, command: str
) -> None:
    replace, expected = BAD_SPECS[case]
    spec = make_spec(replace)
    before = nomad.request("GET", "jobs").index
    args = [command, str(spec)] + ([] if command == "validate" else ["--version", "1.0.0"])
    code, out, err = cli(*args)
    assert code == int(ExitCode.BAD_INPUT)
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and str(spec) in lines[0]
    assert nomad.request("GET", "jobs").index == before  # nothing was written to Nomad
    assert nomad.request("GET", "jobs", params={"prefix": model_name}).body == []


@pytest.mark.parametrize("version", BAD_VERSIONS)
def test_bad_version_is_one_line_and_sends_nothing(
    nomad: NomadAPI, model_name: str, make_spec: Callable[..., Path], version: str
) -> None:
    before = nomad.request("GET", "jobs").index
    code, _out, err = cli("plan", str(make_spec()), "--version", version)
    assert code == int(ExitCode.BAD_INPUT)
    assert len(err.strip().splitlines()) == 1
    assert "invalid model version" in err and "Traceback" not in err
    assert nomad.request("GET", "jobs").index == before


def test_render_json_prints_the_job_as_nomad_parses_it(
    nomad: NomadAPI, model_name: str, make_spec: Callable[..., Path]
) -> None:
    import json

    image = f"127.0.0.1:5000/nomadml/models/{model_name}@sha256:{'ab' * 32}"
    code, out, err = cli(
        "render",
        str(make_spec()),
        "--version",
        "3.1.4",
        "--image",
        image,
        "--serving-image",
        "127.0.0.1:5000/nomadml/serve@sha256:" + "cd" * 32,
    )
    assert code == 0, err
    assert out.startswith(f'job "{model_name}-v3"')
    code, out, err = cli(
        "render",
        str(make_spec()),
        "--version",
        "3.1.4",
        "--image",
        image,
        "--serving-image",
        "127.0.0.1:5000/nomadml/serve@sha256:" + "cd" * 32,
        "--json",
    )
    assert code == 0, err
    job = json.loads(out)
    assert job["ID"] == f"{model_name}-v3"
    assert job["Meta"]["nomadml.version"] == "3.1.4"
    assert job["TaskGroups"][0]["Update"]["Canary"] == 1
    assert job["TaskGroups"][0]["Tasks"][0]["Lifecycle"]["Hook"] == "prestart"
