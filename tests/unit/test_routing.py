"""The routing table: what the router may be told. Bad tables are one line each and
never reach the variable; the variable's layout gives the template cumulative
thresholds and backend names; a hand-edited variable that is no table is refused."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from nomadml.core.routing import (
    Across,
    Line,
    RoutingTable,
    Split,
    Sticky,
    check,
    from_variable,
    parse_weights,
    sticky,
)
from nomadml.errors import BadInput


def _table(*lines: Line, default: int = 1) -> RoutingTable:
    return RoutingTable("iris", lines, default)


V1 = Line("iris-v1", 1, (Split("1.0.0", 95), Split("1.1.0", 5)))
V2 = Line("iris-v2", 2, (Split("2.0.0", 100),))


def _v1(*splits: tuple[str, int]) -> RoutingTable:
    return _table(Line("iris-v1", 1, tuple(Split(v, w) for v, w in splits)))


def test_the_variable_lays_the_table_out_for_the_template() -> None:
    items = check(_table(V1, V2, default=2)).as_variable()
    table = json.loads(items["table"])
    assert table["default_major"] == 2
    first = table["lines"][0]["versions"]
    assert [(v["version"], v["until"], v["backend"]) for v in first] == [
        ("1.0.0", 95, "iris_v1_1_0_0"),
        ("1.1.0", 100, "iris_v1_1_1_0"),
    ]
    assert items["known"] == "1 1.0.0 1.1.0 2 2.0.0"
    assert from_variable("iris", items) == _table(V1, V2, default=2)


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        (_v1(("1.0.0", 90), ("1.1.0", 5)), "add up to 95, not 100"),
        (_v1(("2.0.0", 100)), "2.0.0 is not major 1"),
        (_v1(("1.0.0", 50), ("1.0.0", 50)), "appears twice"),
        (_v1(("1.0", 100)), "invalid model version '1.0'"),
        (_v1(("1.0.0", 120), ("1.1.0", -20)), "is 120, not 0..100"),
        (_table(V1, default=3), "no line for default major 3"),
        (_table(), "no lines"),
    ],
)  # fmt: skip
def test_a_table_the_router_could_not_serve_is_refused(table: RoutingTable, problem: str) -> None:
    with pytest.raises(BadInput, match=problem):
        check(table)


AB = Line("iris-v1", 1, (Split("1.1.0", 50), Split("1.2.0", 50), Split("1.0.0", 0)),
          Sticky("header", "X-User"))  # fmt: skip


def test_a_sticky_split_hashes_the_key_and_falls_back_to_the_counter() -> None:
    items = check(_table(AB)).as_variable()
    rules = items["routes"].splitlines()
    seed = AB.seed
    assert rules[:2] == [
        f"  http-request set-var(txn.ab1) req.hdr(X-User),xxh32({seed}),mod(100) "
        "if { req.hdr(X-User) -m len gt 0 }",
        "  http-request set-var(txn.ab1) var(txn.roll) unless { var(txn.ab1) -m found }",
    ]
    for backend, until in (("iris_v1_1_1_0", 50), ("iris_v1_1_2_0", 100)):
        guard = f"{{ nbsrv({backend}) gt 0 }}"
        pick = f"{{ var(txn.ab1) -m int lt {until} }} {guard}"
        assert f"  use_backend {backend} if !versioned {pick}" in rules
    assert not any("txn.roll) -m int" in rule for rule in rules)  # the split follows the key
    assert from_variable("iris", items) == _table(AB)


def test_the_seed_belongs_to_the_experiment_not_to_the_model() -> None:
    assert AB.seed == Line("other-v1", 1, AB.splits, Sticky("cookie", "uid")).seed
    moved = Line("iris-v1", 1, (Split("1.1.0", 60), Split("1.2.0", 40)), AB.sticky)
    assert moved.seed != AB.seed
    assert 0 <= AB.seed < 2**31


def test_a_cookie_key_and_bad_keys() -> None:
    cookie = Line("iris-v1", 1, AB.splits, sticky("cookie", "uid"))
    assert "req.cook(uid),xxh32(" in check(_table(cookie)).as_variable()["routes"]
    with pytest.raises(BadInput, match="the sticky header name is empty"):
        sticky("header", " ")
    with pytest.raises(BadInput, match="sticky header 'X User'"):
        sticky("header", "X User")
    with pytest.raises(BadInput, match="sticky cookie 'a}b'"):
        sticky("cookie", "a}b")


def test_weights_as_typed() -> None:
    assert parse_weights("iris-v1", 1, ["1.0.0=95", "1.1.0=5"]) == V1
    with pytest.raises(BadInput, match=r"'1\.1\.0:5': expected VERSION=PERCENT"):
        parse_weights("iris-v1", 1, ["1.1.0:5"])


def test_a_hand_edited_variable_is_refused() -> None:
    with pytest.raises(BadInput, match="routing variable of iris is not a routing table"):
        from_variable("iris", {"table": "{not json"})
    bad = json.loads(check(_table(V1)).as_variable()["table"])
    bad["lines"][0]["versions"][0]["weight"] = 90
    with pytest.raises(BadInput, match="add up to 95"):
        from_variable("iris", {"table": json.dumps(bad)})
    edited = check(_table(V1)).as_variable()
    edited["routes"] = edited["routes"].replace("lt 95", "lt 50")
    with pytest.raises(BadInput, match="router rules do not match its table"):
        from_variable("iris", edited)


def test_a_weighted_pick_needs_a_server_else_the_line_serves_it() -> None:
    """The race of a render that carries a weight for a version whose backend has no
    usable server yet: the pick applies only while its backend has one; then the
    line's other weighted versions (heaviest first) take it; only if none has a
    server does the heaviest's empty backend answer (the router's 503)."""
    line = Line("iris-v1", 1, (Split("1.0.0", 50), Split("1.1.0", 50), Split("1.2.0", 0)))
    rules = [r.strip() for r in check(_table(line)).as_variable()["routes"].splitlines()]
    use = [r for r in rules if r.startswith("use_backend") and "txn.ver) -m str 1." not in r]
    picked = [r for r in use if "var(txn.ver)" in r]  # a request naming major 1
    assert picked == [
        "use_backend iris_v1_1_0_0 if { var(txn.ver) -m str 1 } "
        "{ var(txn.roll) -m int lt 50 } { nbsrv(iris_v1_1_0_0) gt 0 }",
        "use_backend iris_v1_1_1_0 if { var(txn.ver) -m str 1 } "
        "{ var(txn.roll) -m int lt 100 } { nbsrv(iris_v1_1_1_0) gt 0 }",
        "use_backend iris_v1_1_0_0 if { var(txn.ver) -m str 1 } { nbsrv(iris_v1_1_0_0) gt 0 }",
        "use_backend iris_v1_1_1_0 if { var(txn.ver) -m str 1 } { nbsrv(iris_v1_1_1_0) gt 0 }",
        "use_backend iris_v1_1_0_0 if { var(txn.ver) -m str 1 }",
    ]
    # The same for requests naming nothing (the default line); a weight-0 version (a
    # shadow, a held-back canary) is never a fallback; exact versions are not guarded.
    unversioned = [r for r in use if "!versioned" in r]
    assert [r.replace("!versioned", "{ var(txn.ver) -m str 1 }") for r in unversioned] == picked
    assert not any("iris_v1_1_2_0" in r for r in use)
    assert "use_backend iris_v1_1_1_0 if { var(txn.ver) -m str 1.1.0 }" in rules
    # One weighted version: no other to fall to, its empty backend answers.
    alone = check(_table(V2, default=2)).as_variable()["routes"].splitlines()
    assert alone[-2:] == [
        "  use_backend iris_v2_2_0_0 if { var(txn.ver) -m str 2 }",
        "  use_backend iris_v2_2_0_0 if !versioned",
    ]


def test_a_table_written_before_the_server_guard_is_still_read() -> None:
    old = check(_table(V1)).as_variable(guarded=False)
    assert "nbsrv" not in old["routes"]
    assert from_variable("iris", old) == _table(V1)


ACROSS = _table(
    Line("iris-v1", 1, (Split("1.0.0", 100),)),
    Line("iris-v2", 2, (Split("2.0.0", 90), Split("2.1.0", 10))),
    default=2,
)


def test_an_ab_across_majors_tells_unversioned_requests_a_major() -> None:
    """The requests naming no version get a major by the key's hash (no key: at random,
    the request counter stays the lines' own); an arm whose line has no usable server
    is passed over; then the line's own split applies. On the router's HAProxy 2.6.12:
    400 keys 189 / 211 (v1 / v2, of which 2.1.0 20), a key always on its arm, requests
    naming major 1 all 1.0.0."""
    across = Across(((1, 50), (2, 50)), sticky("header", "X-User"))
    table = replace(ACROSS, across=across)
    items = check(table).as_variable()
    rules = items["routes"].splitlines()
    pick = "!versioned { var(txn.abx) -m int lt 100 }"
    assert rules[:4] == [
        "  http-request set-var(txn.abx) rand(100) if !versioned",
        f"  http-request set-var(txn.abx) req.hdr(X-User),xxh32({across.seed}),mod(100) "
        "if !versioned { req.hdr(X-User) -m len gt 0 }",
        "  http-request set-var(txn.ver) str(1) if !versioned { var(txn.abx) -m int lt 50 } "
        "{ nbsrv(iris_v1_1_0_0) gt 0 }",
        f"  http-request set-var(txn.ver) str(2) if {pick} {{ nbsrv(iris_v2_2_0_0) gt 0 }} "
        f"|| {pick} {{ nbsrv(iris_v2_2_1_0) gt 0 }}",
    ]
    assert from_variable("iris", items) == table
    # A line's weights set again keep the experiment between lines (engine.set_line
    # builds the new table with it); without one, nothing of it is rendered.
    assert "txn.abx" not in check(ACROSS).as_variable()["routes"]


@pytest.mark.parametrize(
    ("arms", "problem"),
    [
        (((1, 50), (3, 50)), "no line for major 3"),
        (((1, 60), (2, 50)), "the shares add up to 110, not 100"),
        (((1, 100),), "needs at least two majors"),
        (((1, 0), (2, 100)), "needs at least two majors, each with a share of 1..100"),
        (((2, 50), (2, 50)), "a major appears twice"),
    ],
)
def test_a_bad_ab_across_majors_is_refused(arms: tuple[tuple[int, int], ...], problem: str) -> None:
    with pytest.raises(BadInput, match=problem):
        check(replace(ACROSS, across=Across(arms, Sticky("header", "X-User"))))
