"""Shadow traffic: the routing table's mirror (what the router is told, what it refuses)
and the shadow phase's verdict from what the routers counted."""

from __future__ import annotations

from typing import Any

import pytest

from nomadml.core.metrics import parse
from nomadml.core.routing import Line, Mirror, RoutingTable, Split, check, from_variable
from nomadml.core.shadow import (
    ShadowCounts,
    carried,
    judge_shadow,
    shadow_counts,
    shadow_values,
)
from nomadml.core.spec import Shadow
from nomadml.engine.shadow import ShadowPhase
from nomadml.engine.steps import SteppedGates
from nomadml.errors import BadInput

RULE = Shadow(20, min_agreement=0.95, min_requests=100, max_latency_ms=50.0, timeout="2m",
              compare="predictions")  # fmt: skip


def _line(mirror: Mirror, weight: int = 0) -> RoutingTable:
    splits = (Split("1.0.0", 100 - weight), Split("1.1.0", weight))
    return RoutingTable("iris", (Line("iris-v1", 1, splits, mirror=mirror),), 1)


def test_a_mirror_marks_the_lines_requests_and_captures_them() -> None:
    items = check(_line(Mirror("1.1.0", 20))).as_variable()
    routes = items["routes"].splitlines()
    mark = "  http-request set-var(txn.mirror) str(iris_v1_1_1_0) if"
    assert f"{mark} {{ var(txn.ver) -m str 1 }} {{ var(txn.roll) -m int lt 20 }}" in routes
    assert f"{mark} !versioned {{ var(txn.roll) -m int lt 20 }}" in routes
    assert any("lua.nomadml_capture" in r for r in routes)
    assert any("lua.nomadml_mirror" in r and "status 200:299" in r for r in routes)
    # Marked before any use_backend (HAProxy runs http-request rules before them anyway).
    first_use = next(i for i, r in enumerate(routes) if "use_backend" in r)
    assert max(i for i, r in enumerate(routes) if "txn.mirror" in r and "set-var" in r) < first_use
    back = from_variable("iris", items)
    assert back.lines[0].mirror == Mirror("1.1.0", 20)
    plain = RoutingTable("iris", (Line("iris-v1", 1, (Split("1.0.0", 100),)),), 1)
    assert "txn.mirror" not in check(plain).as_variable()["routes"]


@pytest.mark.parametrize(
    ("mirror", "weight", "problem"),
    [
        (Mirror("1.1.0", 150), 0, "mirror share of 1.1.0 is 150%, not 1..100"),
        (Mirror("1.1.0", 0), 0, "mirror share of 1.1.0 is 0%, not 1..100"),
        (Mirror("1.9.0", 10), 0, "mirror to 1.9.0, which is not a version of the line"),
        (Mirror("1.1.0", 10), 5, "mirror to 1.1.0, which takes 5% of the traffic"),
    ],
)
def test_a_mirror_the_router_should_not_serve_is_refused(
    mirror: Mirror, weight: int, problem: str
) -> None:
    with pytest.raises(BadInput, match=problem):
        check(_line(mirror, weight))


def test_what_the_replay_compares_is_told_by_the_table() -> None:
    labels = check(_line(Mirror("1.1.0", 20, "labels"))).as_variable()
    told = "  http-request set-var(txn.mirror_compare) str(labels) if"
    assert f"{told} {{ var(txn.mirror) -m str iris_v1_1_1_0 }}" in labels["routes"].splitlines()
    assert from_variable("iris", labels).lines[0].mirror == Mirror("1.1.0", 20, "labels")
    default = check(_line(Mirror("1.1.0", 20))).as_variable()["routes"]
    assert "mirror_compare" not in default  # the replay's default: from "predictions" on
    with pytest.raises(BadInput, match="mirror compare 'labels; x' is not one of"):
        check(_line(Mirror("1.1.0", 20, "labels; x")))


def test_a_numeric_tolerance_is_told_by_the_table() -> None:
    """[update.shadow] tolerance: the replay compares numbers within it (absolute or
    relative; JSON strings such as labels stay exact; checked on the router's HAProxy
    2.6.12: 0.123456789 vs 0.123456790 agree at 1e-6 and disagree at 0; 0.1234 vs
    0.1235 disagree; class_1 vs class_10 disagree)."""
    mirror = Mirror("1.1.0", 20, "predictions", 1e-6)
    items = check(_line(mirror)).as_variable()
    told = "  http-request set-var(txn.mirror_tolerance) str(1e-06) if"
    assert f"{told} {{ var(txn.mirror) -m str iris_v1_1_1_0 }}" in items["routes"].splitlines()
    assert from_variable("iris", items).lines[0].mirror == mirror
    assert "mirror_tolerance" not in check(_line(Mirror("1.1.0", 20))).as_variable()["routes"]
    with pytest.raises(BadInput, match=r"mirror tolerance 2 is not 0\.\.1"):
        check(_line(Mirror("1.1.0", 20, "predictions", 2.0)))
    assert RULE.tolerance == 0.0  # exact text unless the spec says otherwise


def test_a_hand_edited_mirror_is_refused() -> None:
    items = check(_line(Mirror("1.1.0", 20))).as_variable()
    items["routes"] = items["routes"].replace("lt 20", "lt 90")
    with pytest.raises(BadInput, match="do not match its table"):
        from_variable("iris", items)


SCRAPE = """
nomadml_router_shadow_requests_total{backend="iris_v1_1_1_0",outcome="agree"} 97
nomadml_router_shadow_requests_total{backend="iris_v1_1_1_0",outcome="disagree"} 2
nomadml_router_shadow_requests_total{backend="iris_v1_1_1_0",outcome="error"} 1
nomadml_router_shadow_requests_total{backend="iris_v1_1_1_0",outcome="dropped"} 4
nomadml_router_shadow_requests_total{backend="other",outcome="agree"} 1000
nomadml_router_shadow_duration_seconds_bucket{backend="iris_v1_1_1_0",le="0.005"} 50
nomadml_router_shadow_duration_seconds_bucket{backend="iris_v1_1_1_0",le="0.01"} 100
nomadml_router_shadow_duration_seconds_bucket{backend="iris_v1_1_1_0",le="+Inf"} 100
"""


def test_counts_from_a_scrape_and_the_verdicts() -> None:
    counts = shadow_counts(parse(SCRAPE), "iris_v1_1_1_0")
    assert (counts.agreed, counts.disagreed, counts.errors, counts.dropped) == (97, 2, 1, 4)
    assert counts.compared == 100
    passed = judge_shadow(counts, RULE, 30, 120)
    assert passed.state == "passed", passed.reason
    assert passed.values["shadow_agreement"] == 0.97
    assert 9 <= passed.values["shadow_latency_ms"] <= 10

    strict = judge_shadow(counts, Shadow(20, 0.99, 100, 50.0, "2m", "predictions"), 30, 120)
    assert strict.state == "failed" and strict.verdict == "fail"
    assert strict.reason == "shadow agreed with stable on 97 of 100 answers (97.0%), need 99%"
    slow = judge_shadow(counts, Shadow(20, 0.9, 100, 5.0, "2m", "labels"), 30, 120)
    assert slow.state == "failed" and "shadow p95 10 ms > 5 ms" in slow.reason

    few = ShadowCounts(agreed=40)
    assert judge_shadow(few, RULE, 30, 120).state == "pending"
    quiet = judge_shadow(few, RULE, 121, 120)
    assert quiet.state == "inconclusive"
    assert quiet.reason == "after 121 s: 40 shadow answers compared, need 100"


def test_a_router_reload_does_not_lose_what_it_counted() -> None:
    before = ShadowCounts(agreed=60, errors=1)
    after_reload = ShadowCounts(agreed=3)
    banked = carried(ShadowCounts(), before, after_reload)
    assert banked + after_reload == ShadowCounts(agreed=63, errors=1)
    assert carried(ShadowCounts(), before, ShadowCounts(agreed=61, errors=1)) == ShadowCounts()


def test_status_and_history_show_the_shadow() -> None:
    from nomadml.cli.tables import format_history, format_status

    values = shadow_values(ShadowCounts(agreed=45, disagreed=3, dropped=1))
    row = {
        "job": "iris-v1", "version": "1.0.0", "job_version": 3, "running": 3,
        "deployment": None, "running_by_job_version": {3: 3},
        "shadow": {"version": "1.1.0", "share": 20, **values},
    }  # fmt: skip
    shown = format_status([row])[-1]
    assert shown == (
        "  shadow 1.1.0 (20% mirrored, answers discarded): agreed 45/48 (93.8%), "
        "0 errors, 1 dropped, p-lat n/a"
    )
    failed = {"phase": "shadow", "verdict": "fail", "values": values}
    history = {
        "job_version": 4, "model_version": "1.1.0", "tag": None, "stable": False,
        "outcome": "rolled-back", "deployment_status": "failed", "reason": "gate failed",
        "description": "", "last_gate": failed, "shadow": failed,
    }  # fmt: skip
    assert (
        "| shadow fail: agreed 45/48 (93.8%), 0 errors" in format_history("iris-v1", [history])[-1]
    )
    assert "canary err" not in format_history("iris-v1", [history])[-1]


def _shadow_run(
    monkeypatch: pytest.MonkeyPatch, looks: list[ShadowCounts]
) -> tuple[list[Line], list[tuple[str, str]], SteppedGates]:
    """SteppedGates with a shadow phase, the router's counts scripted look by look."""
    from nomadml.engine import router
    from nomadml.engine import shadow as shadow_module

    lines: list[Line] = []
    monkeypatch.setattr(router, "set_line", lambda api, model, line: lines.append(line))
    script = iter(looks)
    monkeypatch.setattr(
        shadow_module, "shadow_readings", lambda api, model, backend: {"r1": next(script)}
    )
    api: Any = None  # the router calls are replaced above
    phase = ShadowPhase(api, "iris", "iris-v1", "1.0.0", "1.1.0", RULE, interval_s=0)
    steps = iter([ScriptedGates()])
    gates = SteppedGates(
        api, "iris", "iris-v1", "1.0.0", "1.1.0", (20, 100), lambda: next(steps), phase
    )
    states = [gates.step("iris-v1", ["c1"], lambda event: None) for _ in looks]
    return lines, states, gates


class ScriptedGates:
    active, next_sample = False, 0.0

    def step(self, job_id: str, canary_ids: list[str], emit: Any) -> tuple[str, str]:
        return "pending", ""

    def history(self) -> list[dict[str, Any]]:
        return []

    def restart(self) -> None:
        pass


def test_the_shadow_phase_mirrors_then_steps_or_rolls_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 60 agreed, then the router reloads (its counters restart) and counts 45 more.
    lines, states, gates = _shadow_run(
        monkeypatch, [ShadowCounts(agreed=60), ShadowCounts(agreed=45)]
    )
    assert lines[0].mirror == Mirror("1.1.0", 20) and lines[0].splits[1].weight == 0
    assert lines[1].mirror is None and lines[1].splits[1].weight == 20  # the first step
    assert states == [("pending", ""), ("pending", "")]
    shadow = [r for r in gates.history() if r.get("phase") == "shadow"]
    assert [r["values"]["shadow_agreed"] for r in shadow] == [60, 105]
    assert [r["verdict"] for r in shadow] == ["pending", "pass"]

    lines, states, _ = _shadow_run(monkeypatch, [ShadowCounts(agreed=80, disagreed=20)])
    assert [(x.mirror, x.splits[1].weight) for x in lines] == [(Mirror("1.1.0", 20), 0), (None, 0)]
    assert states[-1] == (
        "failed",
        "in the shadow phase: shadow agreed with stable on 80 of 100 answers (80.0%), need 95%",
    )


def test_a_mirror_as_typed() -> None:
    from nomadml.core.routing import parse_weights

    line = parse_weights("iris-v1", 1, ["1.0.0=100", "1.1.0=0"], "1.1.0=20")
    assert line.mirror == Mirror("1.1.0", 20)
    with pytest.raises(BadInput, match=r"--mirror '1\.1\.0': expected VERSION=PERCENT"):
        parse_weights("iris-v1", 1, ["1.0.0=100"], "1.1.0")
