"""The public API: every name in `nomadml.__all__` resolves to what its module
defines, and importing the package loads none of them (the CLI's `--version`
stays as fast as Python can start)."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import nomadml


@pytest.mark.parametrize("name", [n for n in nomadml.__all__ if n != "__version__"])
def test_each_public_name_resolves_to_its_definition(name: str) -> None:
    value = getattr(nomadml, name)
    module = importlib.import_module(value.__module__)
    assert getattr(module, name) is value


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'deploy_everything'"):
        nomadml.deploy_everything  # noqa: B018


def test_importing_the_package_loads_no_layer() -> None:
    code = "import sys, nomadml; print(sorted(m for m in sys.modules if m.startswith('nomadml.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
