"""The serving contract, clause by clause: what nomadml needs from any serving image
(README "The serving contract"). Each check is a pure function of what was observed
and returns the problem in one line, or None."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nomadml.core.metrics import MetricNames, MetricsFormatError, parse, snapshot


@dataclass(frozen=True)
class Clause:
    """One clause's verdict: `problem` is None when the image keeps it."""

    name: str
    problem: str | None = None

    @property
    def kept(self) -> bool:
        return self.problem is None

    def line(self) -> str:
        return f"ok    {self.name}" if self.kept else f"FAIL  {self.name}: {self.problem}"


def sample_instances(metadata: dict[str, Any]) -> list[Any]:
    """Instances to send: the model's own `examples` from metadata.json, else one row
    of zeros shaped like its declared input signature."""
    examples = metadata.get("examples")
    if isinstance(examples, list) and examples:
        return examples[:10]
    inputs = (metadata.get("signature") or {}).get("inputs") or []
    return [[0.0 for _ in inputs]] if inputs else [[0.0]]


def check_health(status: int | None, waited_s: float) -> str | None:
    if status == 200:
        return None
    said = "no answer" if status is None else f"HTTP {status}"
    return f"GET health: {said} after {waited_s:.0f} s (want 200 once ready)"


def check_predict(status: int, body: bytes, instances: Sequence[Any], version: str) -> str | None:
    if status != 200:
        return f"POST predict with {len(instances)} sample instance(s): HTTP {status} (want 200)"
    try:
        answer = json.loads(body)
    except ValueError:
        return "POST predict: the answer is not JSON"
    if not isinstance(answer, dict):
        return "POST predict: the answer is not a JSON object"
    predictions = answer.get("predictions")
    if not isinstance(predictions, list) or len(predictions) != len(instances):
        got = len(predictions) if isinstance(predictions, list) else "no"
        return f'POST predict: want a "predictions" list of {len(instances)}, got {got}'
    if answer.get("version") != version:
        return f'POST predict: "version" is {answer.get("version")!r}, want {version!r}'
    return None


def check_bad_input(status: int) -> str | None:
    if 400 <= status < 500:
        return None
    return f"POST predict with a body that is not JSON: HTTP {status} (want 4xx, never 5xx)"


def check_metrics(status: int, text: str, names: MetricNames, sent: int) -> str | None:
    if status != 200:
        return f"GET metrics: HTTP {status} (want 200)"
    try:
        counted = snapshot(parse(text), names)
    except MetricsFormatError as err:
        return f"GET metrics: not Prometheus text: {err}"
    if counted.requests < sent:
        return (
            f'GET metrics: {names.requests_total}{{{names.path_label}="{names.path}"}} counts '
            f"{counted.requests:g} request(s), {sent} were sent"
        )
    if counted.count < sent or not counted.buckets:
        return (
            f"GET metrics: no {names.duration_seconds} histogram counting the "
            f"{sent} request(s) on {names.path}"
        )
    return None


def check_user(uid: int | None) -> str | None:
    if uid is None:
        return "cannot tell which user the server runs as"
    return "runs as root (uid 0); serving images run as a non-root user" if uid == 0 else None


def check_shutdown(
    draining_status: int | None, exit_code: int | None, kill_timeout_s: float
) -> str | None:
    if exit_code is None:
        return f"still running {kill_timeout_s:.0f} s after SIGTERM (want a drained exit)"
    if exit_code != 0:
        return f"exited {exit_code} after SIGTERM (want 0)"
    if draining_status not in (None, 503):
        return f"GET health right after SIGTERM: HTTP {draining_status} (want 503, or closed)"
    return None
