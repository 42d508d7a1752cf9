"""The rollout's time series: at every look of the gates (or the judge), canary and stable
traffic (requests, errors, a latency percentile) and the verdict of that look, built from
the gate entries the runners record. It is stored in the rollout record, so `nomadml report`
can draw the rollout afterwards.

Part of the pure core: no I/O, standard library only. The record lives in a Nomad Variable,
whose size is limited (64 KiB), so a series holds at most `cap` looks: when full, adjacent
looks are merged pairwise (requests and errors add up exactly, the latency kept is the higher
one, the verdict kept is the weightier one: fail > pass > the rest), halving the resolution
of the older part instead of dropping any traffic.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CAP",
    "GATES_BUDGET_BYTES",
    "Arm",
    "Look",
    "downsample",
    "fit_gates",
    "looks_from_gates",
    "looks_from_record",
    "series_record",
    "steps_from_gates",
    "steps_from_record",
]

CAP = 240  # looks kept: 20 minutes at one look per 5 s before any merging
# The rollout record's `gates` list (every look's full verdict) gets at most this many bytes
# of JSON: the newest entries are kept (the last one carries the evidence of the decision).
GATES_BUDGET_BYTES = 24 * 1024

# How much a verdict says, for merging: a merged look shows the weightiest verdict inside it.
_WEIGHT = {"fail": 4, "pass": 3, "inconclusive-at-deadline": 2, "inconclusive": 1}


@dataclass(frozen=True)
class Arm:
    """One arm's traffic in one interval."""

    requests: float
    errors: float
    latency_ms: float | None  # at the series' percentile; None without observations

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests > 0 else None


@dataclass(frozen=True)
class Look:
    """One look of the gates: `at` seconds after the first look; `merged` looks in one."""

    at: float
    canary: Arm
    stable: Arm | None
    verdict: str
    merged: int = 1


def _merge_pair(a: Look, b: Look) -> Look:
    def arms(x: Arm | None, y: Arm | None) -> Arm | None:
        if x is None or y is None:
            return x or y
        lat = [v for v in (x.latency_ms, y.latency_ms) if v is not None]
        return Arm(x.requests + y.requests, x.errors + y.errors, max(lat) if lat else None)

    verdict = max(a.verdict, b.verdict, key=lambda v: _WEIGHT.get(v, 0))
    canary = arms(a.canary, b.canary)
    assert canary is not None
    return Look(b.at, canary, arms(a.stable, b.stable), verdict, a.merged + b.merged)


def downsample(looks: Sequence[Look], cap: int) -> tuple[Look, ...]:
    """At most `cap` looks: merge adjacent pairs, oldest first, until they fit (the newest
    looks keep their resolution longest)."""
    out = list(looks)
    while len(out) > cap:
        pairs = min(len(out) - cap, len(out) // 2)
        head = [_merge_pair(out[i], out[i + 1]) for i in range(0, 2 * pairs, 2)]
        out = head + out[2 * pairs :]
    return tuple(out)


def _count(values: Mapping[str, Any], key: str) -> float | None:
    value = values.get(key)
    return None if value is None or isinstance(value, bool) else float(value)


def _on_one_clock(
    gates: Sequence[Mapping[str, Any]],
) -> list[tuple[float, bool, Mapping[str, Any]]]:
    """(seconds, a new canary step starts here, entry) for every gate entry. Each canary
    step's gates have their own clock, starting at 0: the steps follow each other."""
    out = []
    offset, last_t, last_step = 0.0, None, None
    for entry in gates:
        t, step = float(entry.get("t") or 0.0), entry.get("step")
        restarted = last_t is not None and t < last_t
        offset += last_t if restarted and last_t is not None else 0.0
        out.append((round(offset + t, 1), restarted or step != last_step, entry))
        last_t, last_step = t, step
    return out


def steps_from_gates(gates: Sequence[Mapping[str, Any]]) -> tuple[tuple[float, int], ...]:
    """(seconds, the canary's share in %) where each canary step began (router steps)."""
    return tuple(
        (at, int(entry["step"]))
        for at, new, entry in _on_one_clock(gates)
        if new and isinstance(entry.get("step"), int)
    )


def looks_from_gates(gates: Sequence[Mapping[str, Any]]) -> tuple[Look, ...]:
    """The looks of a rollout from its gate entries (what the gates and the judge record
    at every look). Threshold gates record each look's last window; the judge records
    counts since the canaries turned healthy, which become the traffic since the previous
    look. Canary steps restart both the clock and the counts: the steps follow each other."""
    looks: list[Look] = []
    before: tuple[float, float, float, float] | None = None
    for at, new_step, entry in _on_one_clock(gates):
        values = entry.get("values") or {}
        if new_step:
            before = None
        c_req, c_err = _count(values, "canary_requests"), _count(values, "canary_errors")
        s_req, s_err = _count(values, "stable_requests"), _count(values, "stable_errors")
        if c_req is None:
            continue
        if "judge" in entry:
            now = (c_req, c_err or 0.0, s_req or 0.0, s_err or 0.0)
            if before is not None and all(n >= b for n, b in zip(now, before, strict=True)):
                c_req, c_err, s_req, s_err = (n - b for n, b in zip(now, before, strict=True))
            before = now
        looks.append(
            Look(
                at,
                Arm(c_req, c_err or 0.0, _count(values, "canary_latency_ms")),
                None
                if s_req is None
                else Arm(s_req, s_err or 0.0, _count(values, "stable_latency_ms")),
                str(entry.get("verdict") or ""),
            )
        )
    return tuple(looks)


def series_record(gates: Sequence[Mapping[str, Any]], cap: int = CAP) -> dict[str, Any]:
    """The series of a rollout for its record: compact (one short list per look) and at
    most `cap` looks. `counts` says what a look's numbers cover: the judge's traffic since
    the previous look, or the threshold gates' last window."""
    looks = downsample(looks_from_gates(gates), cap)
    judged = any("judge" in entry for entry in gates)
    percentiles = ((e.get("values") or {}).get("latency_percentile") for e in gates)
    percentile = next((p for p in percentiles if p is not None), None)
    return {
        "counts": "interval" if judged else "window",
        "percentile": percentile,
        "columns": list(_COLUMNS),
        "looks": [_row(look) for look in looks],
        "steps": [list(step) for step in steps_from_gates(gates)],
    }


_COLUMNS = (
    "at",
    "canary_requests",
    "canary_errors",
    "canary_latency_ms",
    "stable_requests",
    "stable_errors",
    "stable_latency_ms",
    "verdict",
    "merged",
)


def _num(value: float | None, digits: int = 1) -> float | int | None:
    if value is None:
        return None
    rounded = round(value, digits)
    return int(rounded) if float(rounded).is_integer() else rounded


def _row(look: Look) -> list[Any]:
    s = look.stable
    return [
        _num(look.at),
        _num(look.canary.requests),
        _num(look.canary.errors),
        _num(look.canary.latency_ms),
        None if s is None else _num(s.requests),
        None if s is None else _num(s.errors),
        None if s is None else _num(s.latency_ms),
        look.verdict,
        look.merged,
    ]


def _float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{value!r} is not a number")
    return float(value)


def _optional(value: Any) -> float | None:
    return None if value is None else _float(value)


def looks_from_record(data: Any) -> tuple[Look, ...]:
    """The looks of a stored series (`Series.as_record`); () for a record without one or
    with one this version cannot read (a report is drawn from what there is)."""
    if not isinstance(data, Mapping) or not isinstance(data.get("looks"), list):
        return ()
    out = []
    try:
        for row in data["looks"]:
            at, c_req, c_err, c_lat, s_req, s_err, s_lat, verdict, merged = row
            stable = None if s_req is None else Arm(_float(s_req), _float(s_err), _optional(s_lat))
            out.append(
                Look(
                    _float(at),
                    Arm(_float(c_req), _float(c_err), _optional(c_lat)),
                    stable,
                    str(verdict),
                    int(merged),
                )
            )
    except (TypeError, ValueError):
        return ()
    return tuple(out)


def steps_from_record(data: Any) -> tuple[tuple[float, int], ...]:
    """Where each canary step began, from a stored series; () when it has none."""
    rows = data.get("steps") if isinstance(data, Mapping) else None
    try:
        return tuple((_float(at), int(share)) for at, share in rows or ())
    except (TypeError, ValueError):
        return ()


def fit_gates(gates: Sequence[Mapping[str, Any]], budget: int = GATES_BUDGET_BYTES) -> list[Any]:
    """The newest gate entries whose JSON fits in `budget` bytes (at least the last one)."""
    kept: list[Any] = []
    used = 2
    for entry in reversed(gates):
        size = len(json.dumps(entry, sort_keys=True)) + 2
        if kept and used + size > budget:
            break
        kept.append(dict(entry))
        used += size
    return kept[::-1]
