"""nomadml: deploy machine learning models on HashiCorp Nomad, safely.

The public API, for scripts that drive nomadml without the CLI. Names load on
first use, so `import nomadml` (and `nomadml --version`) stays cheap."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> the module that defines it
_API = {
    "ModelSpec": "nomadml.core.spec",
    "load_spec": "nomadml.core.spec",
    "parse_spec": "nomadml.core.spec",
    "ModelVersion": "nomadml.core.model_version",
    "Action": "nomadml.core.decide",
    "NomadAPI": "nomadml.adapters.nomad_api",
    "ModelRegistry": "nomadml.adapters.model_store",
    "NomadSettings": "nomadml.settings",
    "prepare": "nomadml.engine.prepare",
    "prepare_release": "nomadml.engine.prepare",
    "deploy": "nomadml.engine.deploy",
    "promote": "nomadml.engine.promote",
    "rollback": "nomadml.engine.rollback",
    "register_model": "nomadml.engine.registration",
    "RolloutResult": "nomadml.engine.result",
    "Event": "nomadml.events",
    "ExitCode": "nomadml.errors",
    "NomadMLError": "nomadml.errors",
}
__all__ = ["__version__", *sorted(_API)]


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'nomadml' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value
    return value
