"""Prometheus text exposition (format 0.0.4): parse a scrape, reduce it to the numbers the canary
gates need, and do the counter arithmetic between scrapes.

Part of the pure core: no I/O, standard library only. The scraper fetches `/metrics`; this module
turns the text into a `Snapshot` per allocation, `delta` turns two snapshots of one allocation
into the traffic of the window between them, and `merge` adds allocations together.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "MetricNames",
    "MetricsFormatError",
    "Sample",
    "Snapshot",
    "buckets_from_record",
    "buckets_record",
    "delta",
    "merge",
    "parse",
    "quantile",
    "snapshot",
]

Labels = tuple[tuple[str, str], ...]
Buckets = tuple[tuple[float, float], ...]
Labelled = tuple[tuple[str, float], ...]

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# Unescaped: anything but a quote or backslash; escaped: a backslash and the next character,
# checked afterwards so that an unknown escape gets its own message.
_LABEL_VALUE = re.compile(r'"((?:[^"\\]|\\.)*)"')
_ESCAPE = re.compile(r"\\(.)")
_UNESCAPED = {"\\": "\\", '"': '"', "n": "\n"}
# Spelled out rather than trusting float(): float() also takes "1_000", "infinity" and padding.
_VALUE = re.compile(r"[+-]?(?:inf|nan|(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)", re.IGNORECASE)
_TIMESTAMP = re.compile(r"-?\d+")
_BLANKS = re.compile(r"[ \t]*")
_EXCERPT_CHARS = 60


class MetricsFormatError(ValueError):
    """A scrape is not valid Prometheus text format; `line` is 1-based, or None when the problem
    is not tied to one line (such as a histogram bucket without a usable `le`)."""

    def __init__(self, problem: str, line: int | None = None, excerpt: str = "") -> None:
        self.problem, self.line, self.excerpt = problem, line, excerpt
        where = f"line {line}: " if line is not None else ""
        shown = f": {excerpt!r}" if excerpt else ""
        super().__init__(f"{where}{problem}{shown}")


@dataclass(frozen=True)
class Sample:
    """One exposed value; `labels` are sorted by name so equal series compare equal."""

    name: str
    labels: Labels
    value: float

    def label(self, name: str) -> str | None:
        """The value of label `name`, or None when the series does not carry it."""
        for key, value in self.labels:
            if key == name:
                return value
        return None


# --------------------------------------------------------------------------- parsing


class _LineError(Exception):
    """A problem inside one line; `parse` adds the line number and the excerpt."""


class _Cursor:
    """Walks one line left to right; every `expect_*` consumes what it returns."""

    def __init__(self, text: str) -> None:
        self.text, self.pos = text, 0

    @property
    def done(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self, char: str) -> bool:
        return self.text.startswith(char, self.pos)

    def blanks(self) -> bool:
        """Skip spaces and tabs; True if there were any."""
        end = _BLANKS.match(self.text, self.pos)
        start, self.pos = self.pos, end.end() if end else self.pos
        return self.pos > start

    def expect(self, pattern: re.Pattern[str], what: str) -> str:
        found = pattern.match(self.text, self.pos)
        if not found:
            raise _LineError(f"expected {what}")
        self.pos = found.end()
        return found.group(0)

    def expect_char(self, char: str, what: str) -> None:
        if not self.peek(char):
            raise _LineError(f"expected {what}")
        self.pos += len(char)


def _unescape_one(found: re.Match[str]) -> str:
    char = _UNESCAPED.get(found.group(1))
    if char is None:
        raise _LineError(f"invalid escape {found.group(0)!r} in label value")
    return char


def _unescape(raw: str) -> str:
    # One left-to-right pass, so in "\\q" the first backslash escapes the second, not the q.
    return _ESCAPE.sub(_unescape_one, raw)


def _parse_label_value(cursor: _Cursor) -> str:
    found = _LABEL_VALUE.match(cursor.text, cursor.pos)
    if not found:
        raise _LineError("expected a quoted label value ending in '\"'")
    cursor.pos = found.end()
    return _unescape(found.group(1))


def _parse_labels(cursor: _Cursor) -> Labels:
    cursor.expect_char("{", "'{'")
    pairs: dict[str, str] = {}
    while True:
        cursor.blanks()
        if cursor.peek("}"):
            break
        name = cursor.expect(_LABEL_NAME, "a label name or '}'")
        if name in pairs:
            raise _LineError(f"label {name!r} appears twice")
        cursor.blanks()
        cursor.expect_char("=", f"'=' after label {name!r}")
        cursor.blanks()
        pairs[name] = _parse_label_value(cursor)
        cursor.blanks()
        # The format allows a trailing comma before the closing brace.
        if not cursor.peek(","):
            break
        cursor.pos += 1
    cursor.expect_char("}", "',' or '}' after a label")
    return tuple(sorted(pairs.items()))


def _parse_sample(line: str) -> Sample:
    cursor = _Cursor(line)
    name = cursor.expect(_METRIC_NAME, "a metric name")
    spaced = cursor.blanks()
    labels: Labels = ()
    if cursor.peek("{"):
        labels = _parse_labels(cursor)
        cursor.blanks()
        spaced = True  # after "}" the value may follow at once, as Prometheus accepts
    if not spaced:
        raise _LineError("expected a space before the value")
    value = float(cursor.expect(_VALUE, "a number (or +Inf, -Inf, NaN)"))
    # The timestamp only says when the value was taken; a window is measured between scrapes.
    if cursor.blanks() and not cursor.done:
        cursor.expect(_TIMESTAMP, "an integer timestamp in milliseconds")
        cursor.blanks()
    if not cursor.done:
        raise _LineError("unexpected text after the value")
    return Sample(name, labels, value)


def _excerpt(line: str) -> str:
    return line if len(line) <= _EXCERPT_CHARS else line[: _EXCERPT_CHARS - 3] + "..."


def parse(text: str) -> list[Sample]:
    """Every sample in a scrape, in order; raise MetricsFormatError on the first bad line."""
    samples: list[Sample] = []
    # Only "\n" ends a line in this format; str.splitlines() would also split on characters
    # such as U+2028 that may legally appear inside a label value.
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.removesuffix("\r").strip(" \t")
        if not line or line.startswith("#"):
            continue
        try:
            samples.append(_parse_sample(line))
        except _LineError as err:
            raise MetricsFormatError(str(err), number, _excerpt(line)) from None
    return samples


# --------------------------------------------------------------------------- snapshots


@dataclass(frozen=True)
class MetricNames:
    """Where to find the gate's numbers in a scrape (the spec's `gates.metrics` table)."""

    requests_total: str = "nomadml_requests_total"
    duration_seconds: str = "nomadml_request_duration_seconds"
    path_label: str = "path"
    path: str = "/predict"
    code_label: str = "code"
    # Optional in the serving contract: predictions by predicted label (the prediction gate).
    predictions_total: str = "nomadml_predictions_total"
    prediction_label: str = "label"
    # Optional: nomadml's probe requests counted apart (they are in requests_total too).
    probe_requests_total: str = "nomadml_probe_requests_total"


@dataclass(frozen=True)
class Snapshot:
    """What one scrape (or the difference of two, or a sum of several) says about the path.

    `buckets` are cumulative (upper bound, count) pairs sorted by bound, +Inf last.
    """

    requests: float = 0.0
    errors: float = 0.0
    buckets: Buckets = ()
    count: float = 0.0
    sum: float = 0.0
    predictions: Labelled = ()  # (label, count) sorted by label; () when not exposed
    probes: float = 0.0  # of `requests`, how many were nomadml's probes


def _on_path(samples: list[Sample], names: MetricNames) -> list[Sample]:
    """The series of one metric family that describe the configured path.

    A family none of whose series carries the path label is taken whole: an operator's server
    that serves only the model need not label by path at all.
    """
    if not any(s.label(names.path_label) is not None for s in samples):
        return samples
    return [s for s in samples if s.label(names.path_label) == names.path]


def _family(samples: Iterable[Sample], name: str, names: MetricNames) -> list[Sample]:
    # A NaN counter carries no information, and would turn every sum it touches into NaN.
    chosen = [s for s in samples if s.name == name and not math.isnan(s.value)]
    return _on_path(chosen, names)


def _bound(sample: Sample) -> float:
    le = sample.label("le")
    if le is None or not _VALUE.fullmatch(le) or math.isnan(float(le)):
        raise MetricsFormatError(f"histogram bucket {sample.name} has no numeric 'le' label")
    return float(le)


def _histogram(bucket_samples: list[Sample], count: float) -> Buckets:
    totals: dict[float, float] = {}
    for sample in bucket_samples:
        bound = _bound(sample)
        totals[bound] = totals.get(bound, 0.0) + sample.value
    # Every histogram must expose +Inf; if a server forgets it, _count holds the same number.
    if totals and math.inf not in totals:
        totals[math.inf] = count
    return tuple(sorted(totals.items()))


def snapshot(samples: Iterable[Sample], names: MetricNames) -> Snapshot:
    """Reduce one scrape to the configured path's counters and latency histogram.

    Series that are not exposed yet count as zero: a freshly started server may only create
    them on its first request. Raise MetricsFormatError for a bucket without a numeric `le`.
    """
    samples = list(samples)
    requests = _family(samples, names.requests_total, names)
    errors = [s for s in requests if (s.label(names.code_label) or "").startswith("5")]
    base = names.duration_seconds
    count = sum(s.value for s in _family(samples, f"{base}_count", names))
    predicted: dict[str, float] = {}
    for s in _family(samples, names.predictions_total, names):  # a router's: by path too
        label = s.label(names.prediction_label) or ""
        predicted[label] = predicted.get(label, 0.0) + s.value
    return Snapshot(
        requests=sum(s.value for s in requests),
        errors=sum(s.value for s in errors),
        buckets=_histogram(_family(samples, f"{base}_bucket", names), count),
        count=count,
        sum=sum(s.value for s in _family(samples, f"{base}_sum", names)),
        predictions=tuple(sorted(predicted.items())),
        probes=sum(s.value for s in _family(samples, names.probe_requests_total, names)),
    )


# --------------------------------------------------------------------------- arithmetic


def _cumulative_at(buckets: Buckets, bound: float) -> float:
    """The cumulative count at `bound`, for a histogram that may not have that bound.

    Without the bound we carry the count of the next lower bound this histogram does have (0
    below its first). That under-counts observations that fall between the two bounds, which
    can only push a computed latency up: a canary may look slower than it is, never faster.
    """
    index = bisect.bisect_right([b for b, _ in buckets], bound)
    return buckets[index - 1][1] if index else 0.0


def _restarted(before: Snapshot, after: Snapshot) -> bool:
    if (
        after.requests < before.requests
        or after.errors < before.errors
        or after.count < before.count
        or after.sum < before.sum
        or after.probes < before.probes
    ):
        return True
    # Bucket bounds are fixed for a process's lifetime, so a new layout is a new process.
    if before.buckets and [b for b, _ in before.buckets] != [b for b, _ in after.buckets]:
        return True
    earlier = dict(before.buckets)
    if any(n < earlier.get(b, 0.0) for b, n in after.buckets):
        return True
    predicted = dict(before.predictions)
    return any(n < predicted.get(label, 0.0) for label, n in after.predictions)


def delta(before: Snapshot, after: Snapshot) -> Snapshot:
    """The traffic between two scrapes of the same allocation.

    Counters only grow while a process lives, so any value that went down (or a changed bucket
    layout) means the server restarted in between; then, as Prometheus does for a counter reset,
    everything `after` counted happened inside the window. (A restart that already caught up
    with the old counts cannot be detected, by Prometheus either.)
    """
    if _restarted(before, after):
        return after
    # Equal layouts (or none yet before): bucket counts subtract bound by bound.
    earlier = dict(before.buckets)
    predicted = dict(before.predictions)
    return Snapshot(
        requests=after.requests - before.requests,
        errors=after.errors - before.errors,
        buckets=tuple((b, n - earlier.get(b, 0.0)) for b, n in after.buckets),
        count=after.count - before.count,
        sum=after.sum - before.sum,
        predictions=tuple((k, n - predicted.get(k, 0.0)) for k, n in after.predictions),
        probes=after.probes - before.probes,
    )


def merge(snapshots: Iterable[Snapshot]) -> Snapshot:
    """Add several allocations together (for example every canary of one deployment).

    The histogram gets the union of all bucket bounds; a snapshot lacking one of them
    contributes its count at its next lower bound (see `_cumulative_at` for why).
    """
    parts = list(snapshots)
    bounds = sorted({b for part in parts for b, _ in part.buckets})
    return Snapshot(
        requests=sum(p.requests for p in parts),
        errors=sum(p.errors for p in parts),
        buckets=tuple((b, sum(_cumulative_at(p.buckets, b) for p in parts)) for b in bounds),
        count=sum(p.count for p in parts),
        sum=sum(p.sum for p in parts),
        predictions=_add_labelled(p.predictions for p in parts),
        probes=sum(p.probes for p in parts),
    )


def _add_labelled(parts: Iterable[Labelled]) -> Labelled:
    total: dict[str, float] = {}
    for part in parts:
        for label, n in part:
            total[label] = total.get(label, 0.0) + n
    return tuple(sorted(total.items()))


def _monotonic(counts: list[float]) -> list[float]:
    # Scrapes of different buckets are not atomic in every client library, and a merge across a
    # restart can dip; Prometheus also forces cumulative counts to be non-decreasing.
    out: list[float] = []
    for n in counts:
        out.append(max(n, out[-1]) if out else n)
    return out


def quantile(buckets: Buckets, q: float) -> float | None:
    """The q-quantile (0 <= q <= 1) of a cumulative histogram, like PromQL histogram_quantile.

    Observations are assumed spread evenly inside their bucket (linear interpolation from the
    previous bound, or from 0 for the first bucket). A quantile that lands in the +Inf bucket
    is reported as the highest finite bound, since nothing more precise is known. None when
    there are no observations, or no finite bound to report.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be between 0 and 1, got {q}")
    bounds = [b for b, _ in buckets]
    counts = _monotonic([n for _, n in buckets])
    if not counts or counts[-1] <= 0:
        return None
    rank = q * counts[-1]
    index = bisect.bisect_left(counts, rank)
    if bounds[index] == math.inf:
        return bounds[index - 1] if index > 0 else None
    if index == 0 and bounds[0] <= 0:
        return bounds[0]
    start = bounds[index - 1] if index > 0 else 0.0
    below = counts[index - 1] if index > 0 else 0.0
    inside = counts[index] - below
    if inside <= 0:
        return start
    return start + (bounds[index] - start) * (rank - below) / inside


# --------------------------------------------------------------------------- records


def _json_count(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def buckets_record(buckets: Buckets) -> list[list[float | int | str]]:
    """A cumulative histogram as compact JSON for a record (a Nomad Variable holds at most
    64 KiB): [[bound, count], ...], the last bound "+Inf". A finite bound whose count equals
    the counts on both sides (the first: 0 and the next) is left out: no quantile, and no
    count at or above any bound, changes without it, so the usual histogram of a fast
    server (everything in two or three buckets) keeps four or five pairs of eleven."""
    out: list[list[float | int | str]] = []
    for index, (bound, count) in enumerate(buckets):
        before = buckets[index - 1][1] if index else 0.0
        after = buckets[index + 1][1] if index + 1 < len(buckets) else None
        if math.isfinite(bound) and before == count == after:
            continue
        out.append(["+Inf" if math.isinf(bound) else bound, _json_count(count)])
    return out


def buckets_from_record(data: object) -> Buckets:
    """The histogram `buckets_record` wrote; ValueError when `data` is not one (bounds
    rising, the last +Inf, counts not falling)."""
    if not isinstance(data, list):
        raise ValueError("a histogram is a list of [bound, count] pairs")
    pairs: list[tuple[float, float]] = []
    for item in data:
        if not isinstance(item, list | tuple) or len(item) != 2:
            raise ValueError(f"not a [bound, count] pair: {item!r}")
        bound = math.inf if item[0] == "+Inf" else float(item[0])
        count = float(item[1])
        if math.isnan(bound) or not 0.0 <= count < math.inf:
            raise ValueError(f"not a [bound, count] pair: {item!r}")
        if pairs and (bound <= pairs[-1][0] or count < pairs[-1][1]):
            raise ValueError("histogram bounds must rise and counts must not fall")
        pairs.append((bound, count))
    if pairs and not math.isinf(pairs[-1][0]):
        raise ValueError('a histogram ends with the "+Inf" bound')
    return tuple(pairs)
