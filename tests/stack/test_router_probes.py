"""Quiet hours with a router, on the real stack: with no real traffic, deploy's probes
go through the model's router (X-Model-Version names each side's exact version, and
X-Nomadml-Probe marks them), the router counts them apart, and the gates that read the
router's numbers decide on them: a good canary passes its steps and is promoted."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from support.router import router_up

from nomadml.core.decide import Action
from nomadml.engine.result import RolloutResult
from nomadml.events import Event

PROBES = {
    "[gates]\n": '[gates.probe]\nenabled = true\ninstances = "probe.json"\n\n[gates]\n',
    "auto_revert = true": "auto_revert = true\nsteps = [50, 100]",
    "max_latency_ratio = 1.5": "max_latency_ratio = 100.0",  # see test_router.py
}
ROWS = {"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}


def test_without_traffic_probes_go_through_the_router_and_are_counted_apart(
    roll: Callable[..., RolloutResult],
    make_spec: Callable[..., Path],
    ship: Callable[..., str],
    model_name: str,
) -> None:
    spec = make_spec(PROBES, gates="fast")
    (spec.parent / "probe.json").write_text(json.dumps(ROWS))
    assert roll(spec, "1.0.0", ship("1.0.0")).action is Action.SUCCEEDED
    router_up(spec)

    seen: list[Event] = []
    result = roll(spec, "1.1.0", ship("1.1.0", c=0.5), emit=seen.append)  # nobody else asks
    assert result.action is Action.SUCCEEDED, result.reason
    gates = [e.data for e in seen if e.kind == "gate"]
    assert gates and {g["source"] for g in gates} == {"router"}, gates
    passing = [g["values"] for g in gates if g["verdict"] == "pass"]
    assert passing, gates
    # Every request the gates judged was a probe: the router counted them apart
    # (nomadml_router_probe_requests_total per version; a reload restarts it).
    for values in passing:
        assert values["canary_requests"] > 0
        assert values["canary_probe_requests"] == values["canary_requests"], values
        assert values["stable_probe_requests"] == values["stable_requests"], values
    print(f"gates on probes through the router: {passing[-1]}")
