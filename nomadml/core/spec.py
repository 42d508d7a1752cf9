"""Model specs: one TOML file per model line (see `examples/iris/iris.toml`).

TOML because operators edit these by hand and review them in pull requests: it
has comments, no significant indentation, real types (a port is an integer, a
flag a boolean) and parses with the standard library. Loading checks every field
and reports `file: field.path: what is wrong`. Pure apart from reading the file.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass
from dataclasses import field as dc_field
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar, get_type_hints

from nomadml.core.metrics import MetricNames
from nomadml.core.schema import (
    REQUIRED,
    Field,
    Schema,
    between,
    check,
    matches,
    non_empty,
    one_of,
    seconds,
)
from nomadml.errors import BadInput, SpecError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

NAME = r"[a-z][a-z0-9-]{0,39}"
IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
ENV_KEY = r"(?!NOMADML_|NOMAD_)[A-Za-z_][A-Za-z0-9_]*"
VERSION = re.compile(
    r"(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})"
    # prerelease: dot-separated non-empty identifiers ("rc.1", never "a..b"), 32 chars at most
    r"(-(?=[0-9A-Za-z.]{1,32}$)[0-9A-Za-z]+(?:\.[0-9A-Za-z]+)*)?",
    re.ASCII,  # \d: 0-9 only, not U+0661 and the other Unicode digits
)
REFERENCE_SERVER = "reference"


def _cron(value: str) -> str | None:
    fields = value.split()
    if len(fields) not in (5, 6) or not all(re.fullmatch(r"[0-9*/,\-A-Za-z?]+", f) for f in fields):
        return f'{value!r} is not a cron expression (5 fields, e.g. "0 3 * * *")'
    return None


def _path(value: str) -> str | None:
    return (
        None
        if value.startswith("/") and " " not in value
        else f"{value!r} must be an absolute URL path"
    )


RESOURCES: Schema = {
    "cpu": Field("int", 200, (between(10, 100_000),)),
    "memory": Field("int", 256, (between(16, 1_000_000),)),
}

SCHEMA: Schema = {
    "model": {
        "name": Field(
            "str", REQUIRED, (matches(NAME, "a model name (lowercase letters, digits, '-')"),)
        ),
        "description": Field("str", ""),
        "registry": Field(
            "str", "127.0.0.1:5000", (matches(r"[A-Za-z0-9.\-]+(:\d+)?", "a registry host[:port]"),)
        ),
    },
    "serving": {
        "driver": Field("str", "docker", (one_of("docker", "exec"),)),
        "image": Field("str", REFERENCE_SERVER, (non_empty,)),
        "command": Field("str", "python3", (non_empty,)),
        "args": Field("list[str]", ["/opt/nomadml/serve.py"]),
        "port": Field("int", 0, (between(0, 65535),)),
        "health_path": Field("str", "/health", (_path,)),
        "metrics_path": Field("str", "/metrics", (_path,)),
        "count": Field("int", 1, (between(1, 100),)),
        "env": Field(
            "dict[str,str]",
            {},
            (matches(ENV_KEY, "an environment variable name (NOMAD_/NOMADML_ are reserved)"),),
        ),
        "shutdown_delay": Field("duration", "5s"),
        "kill_timeout": Field("duration", "10s"),
        "resources": {**RESOURCES},
    },
    "bootstrap": {
        "resources": {
            "cpu": Field("int", 100, (between(10, 100_000),)),
            "memory": Field("int", 128, (between(16, 1_000_000),)),
        },
    },
    "placement": {
        "datacenters": Field("list[str]", ["*"], (non_empty,)),
        "namespace": Field(
            "str", "default", (matches(r"[a-zA-Z0-9-]{1,128}", "a namespace name"),)
        ),
        "region": Field("str", "global", (matches(r"[a-zA-Z0-9-]{1,128}", "a region name"),)),
    },
    "volume": {
        "name": Field("str", "models", (matches(r"[A-Za-z0-9_\-]{1,64}", "a host volume name"),)),
    },
    "update": {
        "canary": Field("int", 1, (between(0, 100),)),
        "max_parallel": Field("int", 1, (between(1, 100),)),
        "min_healthy_time": Field("duration", "10s"),
        "healthy_deadline": Field("duration", "3m"),
        "progress_deadline": Field("duration", "10m"),
        "auto_promote": Field("bool", False),
        "auto_revert": Field("bool", True),
    },
    "restart": {
        "attempts": Field("int", 1, (between(0, 100),)),
        "interval": Field("duration", "5m"),
        "delay": Field("duration", "5s"),
    },
    "gates": {
        "health": Field("bool", True),
        # false: promote on Nomad health alone, no canary-vs-stable metric analysis
        "analysis": Field("bool", True),
        "window": Field("duration", "30s"),
        "interval": Field("duration", "5s"),
        "consecutive_passes": Field("int", 3, (between(1, 100),)),
        "min_requests": Field("int", 20, (between(0, 1_000_000),)),
        "max_error_rate": Field("float", 0.01, (between(0, 1),)),
        "max_error_rate_increase": Field("float", 0.01, (between(0, 1),)),
        "latency_percentile": Field("float", 0.95, (between(0.5, 0.999),)),
        "max_latency_ms": Field("float", 500.0, (between(1, 600_000),)),
        "max_latency_ratio": Field("float", 1.5, (between(1, 100),)),
        "metrics": {
            # The reference server's names (MetricNames' defaults).
            "requests_total": Field(
                "str", MetricNames.requests_total, (matches(IDENT, "a metric name"),)
            ),
            "duration_seconds": Field(
                "str", MetricNames.duration_seconds, (matches(IDENT, "a metric name"),)
            ),
            "path_label": Field("str", MetricNames.path_label, (matches(IDENT, "a label name"),)),
            "path": Field("str", MetricNames.path),
            "code_label": Field("str", MetricNames.code_label, (matches(IDENT, "a label name"),)),
        },
    },
    "validation": {
        "min_metrics": Field("dict[str,float]", {}),
        "max_regression": Field("dict[str,float]", {}),
        "max_size_mb": Field("float", 1024.0, (between(0.001, 1_000_000),)),
        "require_approval": Field("bool", False),
    },
    "lifecycle": {
        "keep_majors": Field("int", 2, (between(1, 20),)),
        "purge_retired": Field("bool", False),
    },
    "retraining": {
        "enabled": Field("bool", False),
        "schedule": Field("str", "0 3 * * *", (_cron,)),
        "time_zone": Field(
            "str", "UTC", (matches(r"[A-Za-z_]+(/[A-Za-z_+\-0-9]+)*", "a time zone name"),)
        ),
        "auto_deploy": Field("bool", False),
        "driver": Field("str", "docker", (one_of("docker", "exec", "raw_exec"),)),
        "image": Field("str", REFERENCE_SERVER, (non_empty,)),
        # The task's command: nomadml's own run, which calls the trainer.
        "command": Field("list[str]", ["nomadml", "retrain"], (non_empty,)),
        # The operator's trainer: writes model files + metadata.json to $NOMADML_OUTPUT_DIR.
        "trainer": Field("list[str]", []),
        "args": Field("list[str]", []),
        "resources": {
            "cpu": Field("int", 500, (between(10, 100_000),)),
            "memory": Field("int", 512, (between(16, 1_000_000),)),
        },
    },
    "notify": {
        # Rollout events go to this URL as signed JSON (NOMADML_WEBHOOK_URL overrides).
        "webhook_url": Field("str", "", (matches(r"(https?://\S+)?", "an http(s) URL"),)),
        # The environment variable holding the HMAC secret: never the secret itself.
        "secret_env": Field("str", "NOMADML_WEBHOOK_SECRET", (matches(IDENT, "a variable name"),)),
    },
    "templates": {
        "service": Field("str", "model-service.nomad.hcl", (non_empty,)),
        "retraining": Field("str", "retraining.nomad.hcl", (non_empty,)),
        "path": Field("list[str]", []),
    },
}


def schema_default(dotted: str) -> Any:
    """The default of one spec field, e.g. `gates.window`: defined once, in SCHEMA."""
    node: Any = SCHEMA
    for key in dotted.split("."):
        node = node[key]
    if not isinstance(node, Field):
        raise KeyError(f"{dotted} is a table, not a field")
    return node.default


def _cross_checks(data: dict[str, Any]) -> list[tuple[str, str]]:
    """Rules that span fields (Nomad enforces the deadline order at submit time)."""
    problems: list[tuple[str, str]] = []
    up = data["update"]
    if seconds(up["min_healthy_time"]) >= seconds(up["healthy_deadline"]):
        problems.append(("update.min_healthy_time", "must be shorter than update.healthy_deadline"))
    if seconds(up["healthy_deadline"]) >= seconds(up["progress_deadline"]):
        problems.append(
            ("update.healthy_deadline", "must be shorter than update.progress_deadline")
        )
    if up["auto_promote"] and up["canary"] == 0:
        problems.append(("update.auto_promote", "needs update.canary >= 1"))
    srv = data["serving"]
    if srv["driver"] == "exec" and srv["image"] != REFERENCE_SERVER:
        problems.append(
            ("serving.image", "the exec driver runs a command, not an image; remove serving.image")
        )
    if srv["port"] and (up["canary"] or srv["count"] > 1):
        problems.append(
            (
                "serving.port",
                "a static port cannot be shared by canaries or several "
                "allocations on one node; use 0 (dynamic)",
            )
        )
    gates = data["gates"]
    if seconds(gates["interval"]) > seconds(gates["window"]):
        problems.append(("gates.interval", "must not be longer than gates.window"))
    if data["retraining"]["enabled"] and not data["retraining"]["trainer"]:
        problems.append(
            (
                "retraining.trainer",
                "required when retraining.enabled is true (your training command)",
            )
        )
    return problems


# ---------------------------------------------------------------- the typed spec
# One frozen dataclass per table, built once from the checked table by `_build`;
# the defaults live in SCHEMA only. Lists become tuples, nested tables nested
# dataclasses; `gates.metrics` is the MetricNames the scraper reads.


@dataclass(frozen=True)
class Resources:
    cpu: int
    memory: int


@dataclass(frozen=True)
class ModelInfo:
    name: str
    description: str
    registry: str


@dataclass(frozen=True)
class Serving:
    driver: str
    image: str
    command: str
    args: tuple[str, ...]
    port: int
    health_path: str
    metrics_path: str
    count: int
    env: Mapping[str, str]
    shutdown_delay: str
    kill_timeout: str
    resources: Resources


@dataclass(frozen=True)
class Bootstrap:
    resources: Resources


@dataclass(frozen=True)
class Placement:
    datacenters: tuple[str, ...]
    namespace: str
    region: str


@dataclass(frozen=True)
class Volume:
    name: str


@dataclass(frozen=True)
class Update:
    canary: int
    max_parallel: int
    min_healthy_time: str
    healthy_deadline: str
    progress_deadline: str
    auto_promote: bool
    auto_revert: bool


@dataclass(frozen=True)
class Restart:
    attempts: int
    interval: str
    delay: str


@dataclass(frozen=True)
class Gates:
    health: bool
    analysis: bool
    window: str
    interval: str
    consecutive_passes: int
    min_requests: int
    max_error_rate: float
    max_error_rate_increase: float
    latency_percentile: float
    max_latency_ms: float
    max_latency_ratio: float
    metrics: MetricNames


@dataclass(frozen=True)
class Validation:
    min_metrics: Mapping[str, float]
    max_regression: Mapping[str, float]
    max_size_mb: float
    require_approval: bool


@dataclass(frozen=True)
class Lifecycle:
    keep_majors: int
    purge_retired: bool


@dataclass(frozen=True)
class Retraining:
    enabled: bool
    schedule: str
    time_zone: str
    auto_deploy: bool
    driver: str
    image: str
    command: tuple[str, ...]
    trainer: tuple[str, ...]
    args: tuple[str, ...]
    resources: Resources


@dataclass(frozen=True)
class Notify:
    webhook_url: str
    secret_env: str


@dataclass(frozen=True)
class Templates:
    service: str
    retraining: str
    path: tuple[str, ...]


T = TypeVar("T")


def _build(cls: type[T], table: Mapping[str, Any]) -> T:
    """A section dataclass from its checked table (every key present, types right)."""
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        raw, kind = table[f.name], hints[f.name]
        if isinstance(kind, type) and is_dataclass(kind):
            values[f.name] = _build(kind, raw)
        elif isinstance(raw, list):
            values[f.name] = tuple(raw)
        elif isinstance(raw, dict):
            values[f.name] = MappingProxyType(dict(raw))
        else:
            values[f.name] = raw
    return cls(**values)


@dataclass(frozen=True)
class ModelSpec:
    """A validated model spec, typed: one attribute per table. `table` keeps the
    checked TOML table (defaults filled in) for the templates and the spec hash."""

    source: str
    table: dict[str, Any]
    text: str = ""  # the file as written (the retraining job carries it)
    model: ModelInfo = dc_field(init=False)
    serving: Serving = dc_field(init=False)
    bootstrap: Bootstrap = dc_field(init=False)
    placement: Placement = dc_field(init=False)
    volume: Volume = dc_field(init=False)
    update: Update = dc_field(init=False)
    restart: Restart = dc_field(init=False)
    gates: Gates = dc_field(init=False)
    validation: Validation = dc_field(init=False)
    lifecycle: Lifecycle = dc_field(init=False)
    retraining: Retraining = dc_field(init=False)
    notify: Notify = dc_field(init=False)
    templates: Templates = dc_field(init=False)

    def __post_init__(self) -> None:
        hints = get_type_hints(ModelSpec)
        for f in fields(self):
            if not f.init:
                object.__setattr__(self, f.name, _build(hints[f.name], self.table[f.name]))

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def spec_hash(self) -> str:
        canonical = json.dumps(self.table, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @property
    def directory(self) -> Path:
        return Path(self.source).resolve().parent

    def job_id(self, version: str) -> str:
        """One Nomad job per model line and major version: iris-v1."""
        return f"{self.name}-v{parse_version(version, self.source)[0]}"


def check_name(name: str, where: str = "name") -> str:
    """A model name; it goes into job IDs and registry paths, so nothing else may."""
    if not isinstance(name, str) or not re.fullmatch(NAME, name):
        raise BadInput(
            f"{where}: {name!r} is not a model name "
            "(lowercase letters, digits and '-', starting with a letter)"
        )
    return name


def parse_version(version: str, where: str = "version") -> tuple[int, int, int]:
    """Strict MAJOR.MINOR.PATCH[-prerelease]; nothing else reaches a path or a job."""
    m = VERSION.fullmatch(version) if isinstance(version, str) else None
    if not m:
        raise BadInput(
            f"{where}: invalid model version {version!r}: expected MAJOR.MINOR.PATCH such as 1.2.0"
        )
    return int(m[1]), int(m[2]), int(m[3])


def parse_spec(text: str, source: str) -> ModelSpec:
    """Check a spec's text; raise SpecError naming the first problem (and counting the rest)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SpecError(source, "", f"not valid TOML: {err}") from None
    except ValueError:  # an integer literal past Python's int-from-text limit (4300 digits)
        raise SpecError(source, "", "not valid TOML: a number has too many digits") from None
    except RecursionError:
        raise SpecError(source, "", "not valid TOML: arrays or tables nested too deeply") from None
    data, problems = check(raw, SCHEMA)
    if not problems:
        problems = _cross_checks(data)
    if problems:
        field, problem = problems[0]
        rest = len(problems) - 1
        more = f" (and {rest} more problem{'s' if rest > 1 else ''})" if rest else ""
        raise SpecError(source, field, problem + more, problems)
    return ModelSpec(source, data, text)


def load_spec(path: str | Path) -> ModelSpec:
    """Read and check a spec file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError(
            str(p), "", f"cannot read spec: {getattr(err, 'strerror', None) or err}"
        ) from None
    return parse_spec(text, str(p))
