"""A small declarative checker for nested TOML data: every field has a kind, a
default (or is required) and optional extra checks; every problem is reported as
`field.path: what is wrong`. Pure: no I/O."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

REQUIRED: Any = object()
Check = Callable[[Any], "str | None"]

# ASCII: \d is 0-9 only, not U+0661 and the other Unicode digits.
DURATION = re.compile(r"(?:\d+(?:ms|s|m|h))+", re.ASCII)
_PART = re.compile(r"(\d+)(ms|s|m|h)", re.ASCII)
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def seconds(duration: str) -> float:
    """'1m30s' -> 90.0 (the duration must already be valid)."""
    # float(), not int(): a 5000-digit count is inf, not a ValueError or OverflowError.
    return sum(float(n) * _UNITS[u] for n, u in _PART.findall(duration))


@dataclass(frozen=True)
class Field:
    kind: str  # str, int, float, bool, duration, list[str], dict[str,str], dict[str,float]
    default: Any = REQUIRED
    checks: tuple[Check, ...] = ()


Schema = Mapping[str, "Field | Schema"]


def _describe(value: Any) -> str:
    name = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)
    shown = repr(value) if not isinstance(value, (dict, list)) else ""
    return f"{name} {shown}".strip()


def _check_kind(kind: str, value: Any) -> str | None:
    ok: bool
    if kind == "str":
        ok = isinstance(value, str)
    elif kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "duration":
        # fullmatch: `$` alone lets "30s\n" through.
        if not isinstance(value, str) or not DURATION.fullmatch(value):
            return f'expected a duration such as "30s", "5m" or "1h30m", got {_describe(value)}'
        if seconds(value) > 9_223_372_036:  # Nomad's durations are int64 nanoseconds
            return "must be at most 292 years, the longest duration Nomad can hold"
        return None
    elif kind == "list[str]":
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    elif kind == "list[int]":
        ok = isinstance(value, list) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        )
    elif kind.startswith("dict[str,"):
        inner = kind[len("dict[str,") : -1]
        ok = isinstance(value, dict) and all(_check_kind(inner, v) is None for v in value.values())
    else:  # pragma: no cover - a schema bug, not an input problem
        raise ValueError(f"unknown field kind {kind}")
    if ok:
        return None
    wanted = {
        "str": "a string",
        "int": "an integer",
        "float": "a number",
        "bool": "true or false",
        "list[str]": "a list of strings",
        "list[int]": "a list of integers",
        "dict[str,str]": "a table of strings",
        "dict[str,float]": "a table of numbers",
    }[kind]
    return f"expected {wanted}, got {_describe(value)}"


def check(
    data: Mapping[str, Any], schema: Schema, prefix: str = ""
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Return (data with defaults filled in, [(field path, problem)])."""
    out: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for key in data:
        if key not in schema:
            near = difflib.get_close_matches(key, list(schema), n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            # A quoted TOML key may hold a newline or an escape: never print it raw.
            shown = key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else repr(key)
            problems.append((f"{prefix}{shown}", f"unknown key{hint}"))
    for key, rule in schema.items():
        path = f"{prefix}{key}"
        if not isinstance(rule, Field):  # a nested table
            value = data.get(key, {})
            if not isinstance(value, dict):
                problems.append((path, f"expected a table, got {_describe(value)}"))
                continue
            out[key], nested = check(value, rule, path + ".")
            problems.extend(nested)
            continue
        if key not in data:
            if rule.default is REQUIRED:
                problems.append((path, "required field is missing"))
            else:
                out[key] = rule.default
            continue
        value = data[key]
        problem = _check_kind(rule.kind, value)
        if problem is None:
            for extra in rule.checks:
                problem = extra(value)
                if problem:
                    break
        if problem:
            problems.append((path, problem))
        else:
            out[key] = float(value) if rule.kind == "float" else value
    return out, problems


# -- reusable checks ----------------------------------------------------------------


def between(low: float, high: float) -> Check:
    def _check(value: Any) -> str | None:
        return (
            None if low <= value <= high else f"must be between {low:g} and {high:g}, got {value}"
        )

    return _check


def matches(pattern: str, meaning: str) -> Check:
    compiled = re.compile(pattern)

    def _check(value: Any) -> str | None:
        values = (
            value
            if isinstance(value, list)
            else value.keys()
            if isinstance(value, dict)
            else [value]
        )
        for v in values:
            if not compiled.fullmatch(str(v)):
                return f"{v!r} is not {meaning}"
        return None

    return _check


def one_of(*choices: str) -> Check:
    def _check(value: Any) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}, got {value!r}"

    return _check


def non_empty(value: Any) -> str | None:
    return None if value else "must not be empty"
