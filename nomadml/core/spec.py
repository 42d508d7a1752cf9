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
from nomadml.core.prediction_shift import PredictionCheck
from nomadml.core.schema import check
from nomadml.core.spec_schema import NAME, SCHEMA, cross_checks
from nomadml.errors import BadInput, SpecError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

VERSION = re.compile(
    r"(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})"
    # prerelease: dot-separated non-empty identifiers ("rc.1", never "a..b"), 32 chars at most
    r"(-(?=[0-9A-Za-z.]{1,32}$)[0-9A-Za-z]+(?:\.[0-9A-Za-z]+)*)?",
    re.ASCII,  # \d: 0-9 only, not U+0661 and the other Unicode digits
)

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
class Shadow:
    """The shadow phase before the canary steps (share 0: none)."""

    share: int  # percent of the line's requests mirrored to the canary
    min_agreement: float  # share of its answers identical to stable's, 0..1
    min_requests: int  # compared answers before a verdict
    max_latency_ms: float  # the shadow's p95
    timeout: str  # without min_requests by then: inconclusive
    compare: str  # predictions | labels | body: what must be identical
    tolerance: float = 0.0  # numbers agree within it (absolute or relative); 0: exact


@dataclass(frozen=True)
class Update:
    canary: int
    max_parallel: int
    min_healthy_time: str
    healthy_deadline: str
    progress_deadline: str
    auto_promote: bool
    auto_revert: bool
    steps: tuple[int, ...]
    shadow: Shadow


@dataclass(frozen=True)
class Restart:
    attempts: int
    interval: str
    delay: str


@dataclass(frozen=True)
class JudgeSpec:
    enabled: bool
    alpha: float
    error_increase: float
    slow_increase: float
    latency: bool
    deadline: str
    on_inconclusive: str


@dataclass(frozen=True)
class PrometheusSpec:
    url: str
    requests: str
    errors: str
    latency: str


@dataclass(frozen=True)
class ProbeSpec:
    enabled: bool
    instances: str  # a JSON file of sample instances, relative to the spec file
    rate_per_s: float


@dataclass(frozen=True)
class Gates:
    health: bool
    analysis: bool
    source: str
    window: str
    interval: str
    consecutive_passes: int
    min_requests: int
    max_error_rate: float
    max_error_rate_increase: float
    latency_percentile: float
    max_latency_ms: float
    max_latency_ratio: float
    min_latency_increase_ms: float
    judge: JudgeSpec
    predictions: PredictionCheck
    prometheus: PrometheusSpec
    probe: ProbeSpec
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
    expire_after: str


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
    nomadml_image: str
    docker_socket: str
    data_volume: str
    resources: Resources


@dataclass(frozen=True)
class DataChecks:
    min_rows: int
    columns: Mapping[str, str]
    min: Mapping[str, float]
    max: Mapping[str, float]
    max_missing: float
    min_class_share: float
    command: tuple[str, ...]


@dataclass(frozen=True)
class Data:
    train: str
    evaluation: str
    label: str
    checks: DataChecks

    def path(self, which: str, base: Path) -> Path | None:
        """The `train` or `evaluation` file, absolute (relative ones are the spec's)."""
        value = self.train if which == "train" else self.evaluation
        if not value:
            return None
        return Path(value) if Path(value).is_absolute() else base / value


@dataclass(frozen=True)
class Guard:
    bake: str
    compare: str
    on_regression: str
    retrain: bool


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
    data: Data = dc_field(init=False)
    guard: Guard = dc_field(init=False)
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
        problems = cross_checks(data)
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
