"""The routing table of a model's router: which versions of each line (major) take
which share of the line's traffic, and which line answers a request that names no
version. nomadml writes it to a Nomad Variable; the router's template reads it with
the model's services from Nomad's catalog. Pure: build, check, serialise.

A request reaches a version by
- naming an exact version (`X-Model-Version: 1.1.0`): that version's servers;
- naming a major (`X-Model-Version: 1`, or a path prefix `/v1/`): the line's split;
- naming nothing: the default line's split (the newest major);
- naming a version the table does not have: a 404 from the router, never a 5xx.

A line's split is exact over every 100 requests (a request counter picks). A sticky
split (an A/B experiment) picks by a hash of a header or cookie instead, so the same
key reaches the same version every time, at every router and across reloads; a
request without the key falls back to the counter. Over distinct keys the split is as
even as the hash makes it (binomial: about ±1.6 points at 1,000 keys for 50/50).

A line may mirror a share of its requests (by the same counter) to a version that
takes none of its traffic (a shadow): the client gets the line's answer; the router
replays the request to the shadow in the background and counts how often its answer
agrees (router_metrics.lua)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from nomadml.core.spec import parse_version
from nomadml.errors import BadInput


@dataclass(frozen=True)
class Split:
    """One version's share of its line's traffic, in percent."""

    version: str
    weight: int


@dataclass(frozen=True)
class Sticky:
    """What keeps a client on one arm of an A/B split: a header's or a cookie's value."""

    kind: Literal["header", "cookie"]
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


@dataclass(frozen=True)
class Mirror:
    """A shadow: `share` percent of the line's requests replayed to `version`, whose
    answers are compared with what the client got, then discarded."""

    version: str
    share: int
    # What of the two answers must be identical: from the "predictions" key on, the
    # predicted labels only ("label" fields, in order), or the whole body.
    compare: str = "predictions"  # one of COMPARE
    # Numbers in the compared parts agree within this, absolute or relative (JSON
    # strings, e.g. labels, and the rest of the text stay exact); 0: exact text.
    tolerance: float = 0.0


@dataclass(frozen=True)
class Line:
    job: str  # e.g. iris-v1
    major: int
    splits: tuple[Split, ...]
    sticky: Sticky | None = None  # an A/B experiment: the arm follows the key
    mirror: Mirror | None = None  # a shadow of the line's traffic

    @property
    def seed(self) -> int:
        """The sticky hash's seed: the same experiment (line and split) hashes a key to
        the same arm at every router; a new split is a new experiment."""
        split = " ".join(f"{s.version}={s.weight}" for s in self.splits)
        return int(hashlib.sha256(f"{self.major} {split}".encode()).hexdigest()[:8], 16) >> 1


@dataclass(frozen=True)
class Across:
    """An A/B experiment across majors: the requests that name no version are split
    between lines (majors) by a sticky key's hash (no key: the request counter); each
    line's own split (its canary steps, its A/B) applies within its share. Requests that
    name a major or a version keep their routes."""

    arms: tuple[tuple[int, int], ...]  # (major, percent of the unversioned requests)
    sticky: Sticky

    @property
    def seed(self) -> int:
        split = " ".join(f"{major}={weight}" for major, weight in self.arms)
        return int(hashlib.sha256(f"across {split}".encode()).hexdigest()[:8], 16) >> 1

    def __str__(self) -> str:
        return ",".join(f"{major}={weight}" for major, weight in self.arms)


@dataclass(frozen=True)
class RoutingTable:
    model: str
    lines: tuple[Line, ...]
    default_major: int
    across: Across | None = None  # an A/B experiment between lines (unversioned requests)

    def line(self, major: int) -> Line | None:
        return next((line for line in self.lines if line.major == major), None)

    def as_variable(self, guarded: bool = True) -> dict[str, str]:
        """The Nomad Variable's items: the table as JSON, laid out for the router's
        template (backend names, cumulative thresholds for the weighted pick).
        `guarded=False`: the rules nomadml wrote before weighted picks were guarded by
        their backend's servers (a table written then is still read as valid)."""
        lines = []
        for line in self.lines:
            until, versions = 0, []
            for split in line.splits:
                until += split.weight
                versions.append(
                    {
                        "version": split.version,
                        "weight": split.weight,
                        "until": until,
                        "backend": backend_name(line.job, split.version),
                    }
                )
            entry: dict[str, Any] = {"job": line.job, "major": line.major, "versions": versions}
            if line.sticky is not None:
                entry["sticky"] = {"kind": line.sticky.kind, "name": line.sticky.name}
            if line.mirror is not None:
                entry["mirror"] = {
                    "version": line.mirror.version,
                    "share": line.mirror.share,
                    "compare": line.mirror.compare,
                    "backend": backend_name(line.job, line.mirror.version),
                }
                if line.mirror.tolerance:
                    entry["mirror"]["tolerance"] = line.mirror.tolerance
            lines.append(entry)
        table = {"model": self.model, "default_major": self.default_major, "lines": lines}
        if self.across is not None:
            table["across"] = {
                "arms": [{"major": m, "weight": w} for m, w in self.across.arms],
                "sticky": {"kind": self.across.sticky.kind, "name": self.across.sticky.name},
            }
        known = " ".join(
            sorted(
                {str(line.major) for line in self.lines}
                | {split.version for line in self.lines for split in line.splits}
            )
        )
        typed = {line.major: line for line in self.lines}
        routes, backends = self._haproxy(lines, typed, guarded)
        return {
            "table": json.dumps(table, sort_keys=True),
            "known": known,
            "routes": routes,
            "backends": backends,
            # The router renders only a table whose parts match this digest; anything
            # else (a hand edit) renders a file HAProxy refuses, so it keeps the last good.
            "check": hashlib.sha256(f"{known}\n{routes}\n{backends}".encode()).hexdigest(),
        }

    def _haproxy(
        self, lines: list[dict[str, Any]], typed: dict[int, Line], guarded: bool
    ) -> tuple[str, str]:
        """The frontend's routing rules and the backends (name job version; ...).

        The table comes from the variable and the servers from Nomad's catalog, and a
        render can carry a weight for a version whose backend has no usable server (not
        in the catalog yet, or all down): a weighted pick applies only while its backend
        has one (`nbsrv`), else the request falls through to the line's other weighted
        versions, heaviest first, so the router never answers 503 for a share it could
        serve. A request naming an exact version goes to that version or gets the
        router's 503 (counted apart from the version's own answers, see the Lua)."""
        keys, exact, split, backends = _across_rules(self.across, typed), [], [], []
        for line in lines:
            previous, roll = 0, "txn.roll"
            sticky = typed[line["major"]].sticky
            if sticky is not None:
                roll = f"txn.ab{line['major']}"
                fetch = f"req.{'hdr' if sticky.kind == 'header' else 'cook'}({sticky.name})"
                seed = typed[line["major"]].seed
                keys += [
                    f"  http-request set-var({roll}) {fetch},xxh32({seed}),mod(100) "
                    f"if {{ {fetch} -m len gt 0 }}",
                    # No key: the request counter, as for any split.
                    f"  http-request set-var({roll}) var(txn.roll) "
                    f"unless {{ var({roll}) -m found }}",
                ]
            for v in line["versions"]:
                use = f"  use_backend {v['backend']} if"
                backends.append(f"{v['backend']} {line['job']} {v['version']}")
                exact.append(f"{use} {{ var(txn.ver) -m str {v['version']} }}")
                if v["until"] == previous:
                    continue  # weight 0: reached by naming it only
                pick = f"{{ var({roll}) -m int lt {v['until']} }}"
                if guarded:
                    pick += f" {{ nbsrv({v['backend']}) gt 0 }}"
                split += _line_rules(use, line["major"], pick, line["major"] == self.default_major)
                previous = v["until"]
            if guarded:
                split += _fallbacks(line, line["major"] == self.default_major)
            keys += _mirror_rules(line, line["major"] == self.default_major)
        if any("mirror" in line for line in lines):
            keys += MIRROR_CAPTURE
        return "\n".join(keys + exact + split), ";".join(backends)


def _across_rules(across: Across | None, typed: dict[int, Line]) -> list[str]:
    """A request naming no version is told a major (as if it had named it) by the
    experiment's sticky hash (no key: at random, so that the request counter stays
    independent for the line's own split); an arm whose line has no usable server is
    passed over (then the next arm, or the default line, takes the request)."""
    if across is None:
        return []
    fetch = f"req.{'hdr' if across.sticky.kind == 'header' else 'cook'}({across.sticky.name})"
    rules = [  # no key: a random pick (the request counter stays the lines' own picks')
        "  http-request set-var(txn.abx) rand(100) if !versioned",
        f"  http-request set-var(txn.abx) {fetch},xxh32({across.seed}),mod(100) "
        f"if !versioned {{ {fetch} -m len gt 0 }}",
    ]
    until = 0
    for major, weight in across.arms:
        until += weight
        pick = f"!versioned {{ var(txn.abx) -m int lt {until} }}"
        usable = " || ".join(  # HAProxy has no parentheses: (pick and a) or (pick and b)
            f"{pick} {{ nbsrv({backend_name(typed[major].job, s.version)}) gt 0 }}"
            for s in typed[major].splits
            if s.weight
        )
        rules.append(f"  http-request set-var(txn.ver) str({major}) if {usable}")
    return rules


def _line_rules(use: str, major: int, condition: str, default: bool) -> list[str]:
    """`use` for the line's requests: those naming its major, and those naming nothing
    when it is the default line."""
    rules = [f"{use} {{ var(txn.ver) -m str {major} }} {condition}"]
    return rules + ([f"{use} !versioned {condition}"] if default else [])


def _fallbacks(line: dict[str, Any], default: bool) -> list[str]:
    """After the weighted picks: a request whose pick had no usable server goes to the
    line's weighted versions that have one, heaviest first (a version of weight 0, a
    shadow or a canary held back, never serves); if none has, to the heaviest anyway,
    whose empty backend answers the router's 503 (counted as the router's, not the
    version's)."""
    weighted = sorted((v for v in line["versions"] if v["weight"]), key=lambda v: -v["weight"])
    rules = []
    for v in weighted if len(weighted) > 1 else []:
        use = f"  use_backend {v['backend']} if"
        rules += _line_rules(use, line["major"], f"{{ nbsrv({v['backend']}) gt 0 }}", default)
    last = f"  use_backend {weighted[0]['backend']} if"
    rules.append(f"{last} {{ var(txn.ver) -m str {line['major']} }}")
    return rules + ([f"{last} !versioned"] if default else [])


# A mirrored request: its body is read whole (at most 1 s) and kept; a 2xx answer is
# read whole too and handed, with the request, to the router's background replay. The
# client's answer goes on at once: the replay never delays or fails it.
MIRROR_CAPTURE = [
    "  http-request wait-for-body time 1s if { var(txn.mirror) -m found }",
    "  http-request lua.nomadml_capture if { var(txn.mirror) -m found }",
    "  http-response wait-for-body time 1s if { var(txn.mirror) -m found } { status 200:299 }",
    "  http-response lua.nomadml_mirror if { var(txn.mirror) -m found } { status 200:299 }",
]


def _mirror_rules(line: dict[str, Any], default: bool) -> list[str]:
    """The requests of the line the request counter picks for its shadow: those that
    name the major, and those that name nothing when it is the default line."""
    mirror = line.get("mirror")
    if mirror is None:
        return []
    mark = f"  http-request set-var(txn.mirror) str({mirror['backend']}) if"
    pick = f"{{ var(txn.roll) -m int lt {mirror['share']} }}"
    rules = [f"{mark} {{ var(txn.ver) -m str {line['major']} }} {pick}"]
    rules += [f"{mark} !versioned {pick}"] if default else []
    told = f"if {{ var(txn.mirror) -m str {mirror['backend']} }}"
    if mirror["compare"] != "predictions":  # what the replay compares (Lua's default)
        rules.append(f"  http-request set-var(txn.mirror_compare) str({mirror['compare']}) {told}")
    if mirror.get("tolerance"):  # numbers within it agree (Lua's default: exact text)
        rules.append(
            f"  http-request set-var(txn.mirror_tolerance) str({mirror['tolerance']:g}) {told}"
        )
    return rules


def line_major(job: str) -> int:
    """The major a model line's job serves (`iris-v2` -> 2)."""
    return int(job.rpartition("-v")[2])


def backend_name(job: str, version: str) -> str:
    return f"{job}_{version}".replace(".", "_").replace("-", "_")


def check(table: RoutingTable) -> RoutingTable:
    """Refuse a table the router could not serve: one line naming what is wrong."""
    if not table.lines:
        raise BadInput(f"routing table of {table.model}: no lines")
    majors = [line.major for line in table.lines]
    if len(set(majors)) != len(majors):
        raise BadInput(f"routing table of {table.model}: a major appears twice")
    if table.default_major not in majors:
        raise BadInput(
            f"routing table of {table.model}: no line for default major {table.default_major}"
        )
    for line in table.lines:
        where = f"routing table of {table.model}: {line.job}"
        if not line.splits:
            raise BadInput(f"{where}: no versions")
        seen = set()
        for split in line.splits:
            if parse_version(split.version, f"{where}: version")[0] != line.major:
                raise BadInput(f"{where}: {split.version} is not major {line.major}")
            if split.version in seen:
                raise BadInput(f"{where}: {split.version} appears twice")
            seen.add(split.version)
            if not 0 <= split.weight <= 100:
                raise BadInput(f"{where}: weight of {split.version} is {split.weight}, not 0..100")
        total = sum(s.weight for s in line.splits)
        if total != 100:
            shown = ", ".join(f"{s.version}={s.weight}" for s in line.splits)
            raise BadInput(f"{where}: weights {shown} add up to {total}, not 100")
        if line.mirror is not None:
            _check_mirror(where, line, line.mirror)
    if table.across is not None:
        _check_across(table, table.across)
    return table


def _check_across(table: RoutingTable, across: Across) -> None:
    where = f"routing table of {table.model}: A/B across majors {across}"
    majors = [major for major, _ in across.arms]
    if len(set(majors)) != len(majors):
        raise BadInput(f"{where}: a major appears twice")
    if len(majors) < 2 or any(not 0 < weight <= 100 for _, weight in across.arms):
        raise BadInput(f"{where}: needs at least two majors, each with a share of 1..100")
    if sum(weight for _, weight in across.arms) != 100:
        raise BadInput(f"{where}: the shares add up to "
                       f"{sum(w for _, w in across.arms)}, not 100")  # fmt: skip
    missing = [str(major) for major in majors if table.line(major) is None]
    if missing:
        raise BadInput(f"{where}: no line for major {', '.join(missing)}")


COMPARE = ("predictions", "labels", "body")


def _check_mirror(where: str, line: Line, mirror: Mirror) -> None:
    if mirror.compare not in COMPARE:
        raise BadInput(f"{where}: mirror compare {mirror.compare!r} is not one of {COMPARE}")
    if not 0 <= mirror.tolerance <= 1:
        raise BadInput(f"{where}: mirror tolerance {mirror.tolerance:g} is not 0..1")
    if not 0 < mirror.share <= 100:
        raise BadInput(f"{where}: mirror share of {mirror.version} is {mirror.share}%, not 1..100")
    weight = {s.version: s.weight for s in line.splits}.get(mirror.version)
    if weight is None:
        raise BadInput(f"{where}: mirror to {mirror.version}, which is not a version of the line")
    if weight:
        raise BadInput(
            f"{where}: mirror to {mirror.version}, which takes {weight}% of the traffic "
            "(a shadow takes none: its answers are discarded)"
        )


STICKY_NAME = {
    "header": re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}", re.ASCII),
    "cookie": re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}", re.ASCII),
}


def sticky(kind: Literal["header", "cookie"], name: str) -> Sticky:
    """A sticky key as typed; an empty or unusual name is refused (it goes into the
    router's configuration)."""
    if not name.strip():
        raise BadInput(f"the sticky {kind} name is empty: name the {kind} whose value keeps "
                       "a client on one arm (e.g. X-User)")  # fmt: skip
    if not STICKY_NAME[kind].fullmatch(name):
        raise BadInput(f"sticky {kind} {name!r}: expected letters, digits and '-' (at most 64)")
    return Sticky(kind, name)


WEIGHT = re.compile(r"(?P<version>[^=\s]+)=(?P<weight>\d{1,3})", re.ASCII)


def parse_weights(job: str, major: int, words: list[str], mirror: str | None = None) -> Line:
    """`1.0.0=95 1.1.0=5` as typed on the command line; `mirror` as `1.1.0=10`."""
    splits = []
    for word in words:
        found = WEIGHT.fullmatch(word)
        if not found:
            raise BadInput(f"{word!r}: expected VERSION=PERCENT such as 1.1.0=5")
        splits.append(Split(found["version"], int(found["weight"])))
    shadow = None
    if mirror is not None:
        found = WEIGHT.fullmatch(mirror)
        if not found:
            raise BadInput(f"--mirror {mirror!r}: expected VERSION=PERCENT such as 1.1.0=10")
        shadow = Mirror(found["version"], int(found["weight"]))
    return Line(job, major, tuple(splits), mirror=shadow)


def _mirror(raw: Mapping[str, Any]) -> Mirror:
    compare = str(raw.get("compare", "predictions"))
    return Mirror(str(raw["version"]), int(raw["share"]), compare, float(raw.get("tolerance", 0)))


def from_variable(model: str, items: Mapping[str, Any]) -> RoutingTable:
    """The table back from its variable; an invalid one (edited by hand) is refused."""
    try:
        raw = json.loads(str(items["table"]))
        lines = tuple(
            Line(
                str(line["job"]),
                int(line["major"]),
                tuple(Split(str(v["version"]), int(v["weight"])) for v in line["versions"]),
                sticky(line["sticky"]["kind"], str(line["sticky"]["name"]))
                if line.get("sticky")
                else None,
                _mirror(line["mirror"]) if line.get("mirror") else None,
            )
            for line in raw["lines"]
        )
        across = raw.get("across")
        table = RoutingTable(
            model,
            lines,
            int(raw["default_major"]),
            Across(
                tuple((int(a["major"]), int(a["weight"])) for a in across["arms"]),
                sticky(across["sticky"]["kind"], str(across["sticky"]["name"])),
            )
            if across
            else None,
        )
    except (KeyError, TypeError, ValueError) as err:
        raise BadInput(f"routing variable of {model} is not a routing table: {err}") from None
    check(table)
    keys = ("known", "routes", "backends", "check")
    if all(
        any(items.get(key) != expected[key] for key in keys)
        for expected in (table.as_variable(), table.as_variable(guarded=False))
    ):
        raise BadInput(
            f"routing variable of {model}: its router rules do not match its table (edited by "
            "hand?); the router keeps its last good configuration; write weights again"
        )
    return table


def without_lines(table: RoutingTable, jobs: Collection[str]) -> RoutingTable:
    """`table` without the lines of `jobs` (retired majors): a request naming their
    major is then an unknown version (404), not a route to no server (503). An A/B
    experiment across majors that names a removed line ends with it. The table keeps at
    least one line: removing every line returns it as it is."""
    gone = {line.major for line in table.lines if line.job in jobs}
    kept = tuple(line for line in table.lines if line.job not in jobs)
    if not gone or not kept:
        return table
    across = table.across
    if across is not None and any(major in gone for major, _ in across.arms):
        across = None
    default = table.default_major
    if default in gone:
        default = max(line.major for line in kept)
    return check(RoutingTable(table.model, kept, default, across))


def with_new_line(table: RoutingTable, line: Line) -> RoutingTable:
    """`table` with a line it does not route yet (a new major, healthy beside the
    others): requests naming its major reach it, and it is the default when it is the
    newest major (as in a table built from what runs). A table that already routes the
    line or its major is returned as it is (its split is the operator's)."""
    if any(known.job == line.job or known.major == line.major for known in table.lines):
        return table
    lines = tuple(sorted((*table.lines, line), key=lambda known: known.major))
    default = max(table.default_major, line.major)
    return check(RoutingTable(table.model, lines, default, table.across))
