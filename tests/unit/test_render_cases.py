"""Render tests as data: one folder per case under tests/render_cases/.

A case folder holds
  case.toml            what to render:
                         template = "service" | "retraining" | "retraining-dispatch"
                         version, model_image     (service only) the release
                         serving_image            optional Release.serving_image
                         templates = ["tpl"]      optional extra template folders
                                                  (like --templates), relative to the case
                         spec = "spec.toml"       optional spec path, relative to the case
                         error_kind = "..."       error cases only: one of ERROR_KINDS
  spec.toml            the model spec (plus any template folders the case needs)
  expected.hcl         the exact rendered job; the reference serving image tag
                       (it hashes nomadml/bundled/serve.py) is written <reference-tag>
or
  expected_error.txt   one line: str() of the NomadMLError raised, with the case
                       folder written <case> and the shipped template folder <shipped>

The expected files are the specification. `NOMADML_UPDATE_GOLDEN=1 pytest
tests/unit/test_render_cases.py` rewrites them from the current output: read every
changed file before keeping it.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from nomadml import __version__
from nomadml.core.jobs import Release, reference_serving_tag, render_retraining, render_service
from nomadml.core.render import shipped_templates
from nomadml.core.schema import REQUIRED, Field, Schema
from nomadml.core.spec import load_spec
from nomadml.core.spec_schema import SCHEMA
from nomadml.errors import BadInput, NomadMLError, SpecError, TemplateError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CASES_DIR = Path(__file__).resolve().parent.parent / "render_cases"
CASES = sorted(p.name for p in CASES_DIR.iterdir() if p.is_dir())
UPDATE = os.environ.get("NOMADML_UPDATE_GOLDEN") == "1"
CASE_KEYS = {"template", "version", "model_image", "serving_image", "templates", "spec"}
TAG = "<reference-tag>"

# Every kind of error the render path can report: the exception class and a pattern
# the one-line message must match. Each kind needs at least one case.
ERROR_KINDS: dict[str, tuple[type[NomadMLError], str]] = {
    "missing-field": (SpecError, r"^<case>/\S+: [\w.]+: required field is missing$"),
    "wrong-type": (SpecError, r"^<case>/\S+: [\w.]+: expected an? [\w ]+, got "),
    "unknown-key": (SpecError, r"^<case>/\S+: \w+\.[\w.]+: unknown key \(did you mean '\w+'\?\)$"),
    "unknown-section": (SpecError, r"^<case>/\S+: \w+: unknown key"),
    "invalid-toml": (SpecError, r"^<case>/\S+: not valid TOML: .+\(at line \d+, column \d+\)$"),
    "invalid-model-name": (SpecError, r"^<case>/\S+: model\.name: '.*' is not a model name"),
    "invalid-version": (BadInput, r"^--version: invalid model version '.*': expected MAJOR"),
    "image-not-pinned": (BadInput, r"^model image '.*': expected repository@sha256:<64 hex>$"),
    "bad-duration": (SpecError, r"^<case>/\S+: [\w.]+: expected a duration such as"),
    "deadline-order": (SpecError, r"^<case>/\S+: update\.\w+: must be shorter than update\.\w+$"),
    "auto-promote-no-canary": (SpecError, r": update\.auto_promote: needs update\.canary >= 1$"),
    "static-port-shared": (SpecError, r": serving\.port: a static port cannot be shared"),
    "exec-with-image": (SpecError, r": serving\.image: the exec driver runs a command"),
    "reserved-env": (SpecError, r": serving\.env: '[A-Z_]+' is not an environment variable name"),
    "retraining-no-trainer": (SpecError, r": retraining\.trainer: required when retraining"),
    "bad-cron": (SpecError, r": retraining\.schedule: '.*' is not a cron expression"),
    "bake-below-interval": (SpecError, r": guard\.bake: \w+ is shorter than one evaluation"),
    "prediction-gate-source": (SpecError, r": gates\.predictions: the Prometheus source has no"),
    "prediction-gate-test": (SpecError, r": gates\.predictions\.test: with gates\.judge the check"),
    "probe-without-instances": (SpecError, r": gates\.probe\.instances: name a JSON file"),
    "shadow-share": (SpecError, r": update\.shadow\.share: must be between 0 and 100, got "),
    "shadow-agreement": (SpecError, r": update\.shadow\.min_agreement: must be between 0 and 1"),
    "shadow-tolerance": (SpecError, r": update\.shadow\.tolerance: must be between 0 and 1"),
    "shadow-without-steps": (SpecError, r": update\.shadow\.share: a shadow phase runs at"),
    "judge-steps-start-at-100": (SpecError, r": update\.steps: \[100\] with gates\.judge: at 100%"),
    "steps-without-canary": (SpecError, r": update\.steps: the steps set a canary's share"),
    "steps-without-analysis": (SpecError, r": update\.steps: each step is judged by the canary"),
    "template-syntax": (TemplateError, r"^<case>/\S+\.hcl:\d+: .+ \(in: .+\)$"),
    "template-undefined": (TemplateError, r"^<case>/\S+\.hcl:\d+: .*undefined.* \(in: .+\)$"),
    "template-sandbox": (TemplateError, r"^<case>/\S+\.hcl:\d+: .* is unsafe\. \(in: .+\)$"),
    "template-runtime": (TemplateError, r"^<case>/\S+\.hcl:\d+: .+ \(in: .+\)$"),
    "template-extends-itself": (
        TemplateError,
        r"^model-service\.nomad\.hcl: a template extends or includes itself; to extend the "
        r'shipped template, write \[% extends "nomadml/model-service\.nomad\.hcl" %\]',
    ),
    "template-not-found": (TemplateError, r"^[\w.-]+: template not found in .*<shipped>$"),
    "template-include-not-found": (
        TemplateError,
        r"^<case>/\S+\.hcl:\d+: template '.+' not found in .*<shipped> \(in: .+\)$",
    ),
}
# The versions an operator might plausibly type or an attacker try: each needs a case.
BAD_VERSIONS = {"1.2", "../../etc", "1.2.3; rm -rf /", "v1.2.3"}


def read_toml(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    return data


def case_config(case_dir: Path) -> dict[str, Any]:
    config = read_toml(case_dir / "case.toml")
    unknown = set(config) - CASE_KEYS - {"error_kind"}
    assert not unknown, f"{case_dir.name}/case.toml: unknown keys {sorted(unknown)}"
    templates = ("service", "retraining", "retraining-dispatch")
    assert config.get("template") in templates, f"template: {'|'.join(templates)}"
    return config


def render_case(case_dir: Path, config: dict[str, Any]) -> str:
    spec = load_spec(case_dir / config.get("spec", "spec.toml"))
    extra = [case_dir / p for p in config.get("templates", [])]
    if config["template"] in ("retraining", "retraining-dispatch"):
        return render_retraining(spec, extra, dispatch=config["template"] != "retraining")
    release = Release(
        version=config["version"],
        model_image=config["model_image"],
        serving_image=config.get("serving_image", ""),
    )
    return render_service(spec, release, extra)


def stable_text(output: str, case_dir: Path, config: dict[str, Any]) -> str:
    """Golden files must not churn with things they do not specify: the reference
    server's content tag, the spec hash (it covers every default), the tool version and
    where the checkout is (the spec's folder)."""
    spec = load_spec(case_dir / config.get("spec", "spec.toml"))
    output = output.replace(reference_serving_tag(), TAG)
    output = output.replace(f'"{spec.directory}"', '"<spec-dir>"')
    output = output.replace(f'"{spec.spec_hash}"', '"<spec-hash>"')
    return output.replace(
        f'"nomadml.tool_version" = "{__version__}"', '"nomadml.tool_version" = "<tool-version>"'
    )


def portable(message: str, case_dir: Path) -> str:
    return message.replace(str(case_dir), "<case>").replace(str(shipped_templates()), "<shipped>")


@pytest.mark.parametrize("case", CASES)
def test_render_case(case: str) -> None:
    case_dir = CASES_DIR / case
    config = case_config(case_dir)
    expected_hcl = case_dir / "expected.hcl"
    expected_error = case_dir / "expected_error.txt"
    is_error = "error_kind" in config
    assert not (expected_hcl.exists() and expected_error.exists()), "one expected file only"
    assert not (is_error and expected_hcl.exists()), "an error case has no expected.hcl"
    assert is_error or not expected_error.exists(), "an error case needs case.toml error_kind"

    if not is_error:
        output = stable_text(render_case(case_dir, config), case_dir, config)
        if UPDATE:
            expected_hcl.write_text(output, encoding="utf-8")
        assert output == expected_hcl.read_text(encoding="utf-8")
        return

    kind = config["error_kind"]
    assert kind in ERROR_KINDS, f"unknown error_kind {kind!r}; known: {sorted(ERROR_KINDS)}"
    cls, pattern = ERROR_KINDS[kind]
    with pytest.raises(NomadMLError) as caught:
        render_case(case_dir, config)
    message = portable(str(caught.value), case_dir)
    assert "\n" not in message, "an error is one line"
    assert isinstance(caught.value, cls), f"{kind}: expected {cls.__name__}"
    assert re.search(pattern, message), f"{kind}: {message!r} does not match {pattern!r}"
    assert "Traceback" not in message and "<class" not in message
    if UPDATE:
        expected_error.write_text(message + "\n", encoding="utf-8")
    lines = expected_error.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1, "expected_error.txt holds exactly one line"
    assert message == lines[0]


# -- the cases themselves are checked: enough of them, and every option and error ----


def _leaves(schema: Schema, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Field]]:
    out: list[tuple[tuple[str, ...], Field]] = []
    for key, rule in schema.items():
        if isinstance(rule, Field):
            out.append(((*prefix, key), rule))
        else:
            out.extend(_leaves(rule, (*prefix, key)))
    return out


def _lookup(data: dict[str, Any], path: tuple[str, ...]) -> tuple[bool, Any]:
    node: Any = data
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return False, None
        node = node[key]
    return True, node


def _configs() -> dict[str, dict[str, Any]]:
    return {case: case_config(CASES_DIR / case) for case in CASES}


def test_cases_cover_enough_and_every_error_kind() -> None:
    configs = _configs()
    assert len(CASES) >= 15
    ok = [c for c, cfg in configs.items() if "error_kind" not in cfg]
    assert len(ok) >= 10, "success cases"
    for case in ok:
        assert (CASES_DIR / case / "expected.hcl").is_file(), f"{case}: no expected.hcl"
    kinds = {cfg["error_kind"] for cfg in configs.values() if "error_kind" in cfg}
    assert sorted(set(ERROR_KINDS) - kinds) == [], "error kinds without a case"
    for case, cfg in configs.items():
        if "error_kind" in cfg:
            assert (CASES_DIR / case / "expected_error.txt").is_file(), f"{case}: no expected"
    bad_versions = {
        cfg["version"] for cfg in configs.values() if cfg.get("error_kind") == "invalid-version"
    }
    assert bad_versions >= BAD_VERSIONS


def test_success_cases_set_every_spec_option() -> None:
    """Every leaf of the schema is given a non-default value by some success case."""
    specs = [
        read_toml(CASES_DIR / case / cfg.get("spec", "spec.toml"))
        for case, cfg in _configs().items()
        if "error_kind" not in cfg
    ]
    unset = []
    for path, rule in _leaves(SCHEMA):
        values = [v for found, v in (_lookup(s, path) for s in specs) if found]
        if not any(rule.default is REQUIRED or v != rule.default for v in values):
            unset.append(".".join(path))
    assert unset == [], "spec options no success case changes from the default"


def test_nomad_template_syntax_passes_through() -> None:
    """Nomad's {{ }} and HCL's ${ } in operator templates reach the job unchanged."""
    outputs = [(CASES_DIR / c / "expected.hcl") for c in CASES]
    texts = [p.read_text(encoding="utf-8") for p in outputs if p.is_file()]
    for needle in ('{{ key "x" }}', '{{ with secret "a/b" }}', "${NOMAD_ALLOC_DIR}"):
        assert any(needle in t for t in texts), needle
    # ...while the same text in operator *data* is escaped.
    assert any('"$${NOMAD_ALLOC_DIR}/x"' in t for t in texts)
