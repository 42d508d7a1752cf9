"""A shadow's answers compared with a numeric tolerance, on the real stack: a version
retrained with C = 1.0001 predicts the same labels with probabilities moved by about
1.5e-4; mirrored to it with tolerance 1e-3 it agrees on every answer, with 1e-5 on
none (exact text would never agree)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from support.router import ask, router_up

from nomadml.adapters.metric_scrape import shadow_readings
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.decide import Action
from nomadml.core.routing import Line, Mirror, RoutingTable, Split, backend_name
from nomadml.core.shadow import ShadowCounts
from nomadml.engine.result import RolloutResult
from nomadml.engine.router import confirm, write_table


def test_a_shadow_agrees_within_its_numeric_tolerance(
    roll: Callable[..., RolloutResult],
    nomad: NomadAPI,
    make_spec: Callable[..., Path],
    ship: Callable[..., str],
    model_name: str,
) -> None:
    spec = make_spec(gates="health")  # the canary waits, healthy, for its promotion
    line = f"{model_name}-v1"
    assert roll(spec, "1.0.0", ship("1.0.0")).action is Action.SUCCEEDED
    canary = roll(spec, "1.1.0", ship("1.1.0", c=1.0001), no_promote=True)
    assert canary.action is Action.AWAIT_PROMOTION, canary.reason
    router = router_up(spec)
    shadow = backend_name(line, "1.1.0")

    def mirrored(tolerance: float) -> ShadowCounts:
        """30 requests with the whole line mirrored under `tolerance`: what was compared."""
        mirror = Mirror("1.1.0", 100, "predictions", tolerance)
        splits = (Split("1.0.0", 100), Split("1.1.0", 0))
        table = RoutingTable(model_name, (Line(line, 1, splits, mirror=mirror),), 1)
        assert confirm(nomad, table, write_table(nomad, table)) == []  # a reload: from zero
        answers = Counter(ask(router) for _ in range(30))
        assert answers == {(200, "1.0.0"): 30}  # clients only ever get stable's answers
        deadline = time.monotonic() + 15
        while True:
            counts = sum(shadow_readings(nomad, model_name, shadow).values(), ShadowCounts())
            if counts.compared + counts.errors + counts.dropped >= 30:
                return counts
            assert time.monotonic() < deadline, counts
            time.sleep(0.1)

    within = mirrored(1e-3)
    print(f"tolerance 1e-3: agreed {within.agreed}, disagreed {within.disagreed}")
    assert (within.agreed, within.disagreed, within.errors) == (30, 0, 0)
    beyond = mirrored(1e-5)
    print(f"tolerance 1e-5: agreed {beyond.agreed}, disagreed {beyond.disagreed}")
    assert (beyond.agreed, beyond.disagreed, beyond.errors) == (0, 30, 0)
