"""A stepped canary promoted by hand, through the router, on the real stack: a deploy
with --no-promote stops after its steps with the line routed back to stable; the
operator's `nomadml promote` then routes the line to the canary before Nomad replaces
stable, so no request fails while stable's allocations stop."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from support.router import RouterLoad, cli, router_up

from nomadml.core.decide import Action
from nomadml.engine.result import RolloutResult

STEPS = {
    "auto_revert = true": "auto_revert = true\nsteps = [50, 100]",
    "max_latency_ratio = 1.5": "max_latency_ratio = 100.0",  # see test_router.py
}


def test_a_canary_promoted_by_hand_takes_the_line_at_the_router_without_a_failure(
    roll: Callable[..., RolloutResult],
    make_spec: Callable[..., Path],
    ship: Callable[..., str],
    model_name: str,
) -> None:
    spec = make_spec(STEPS, gates="fast")
    line = f"{model_name}-v1"
    assert roll(spec, "1.0.0", ship("1.0.0")).action is Action.SUCCEEDED
    router = router_up(spec)

    with RouterLoad(router) as load:
        waiting = roll(spec, "1.1.0", ship("1.1.0", c=0.5), no_promote=True)
        assert waiting.action is Action.AWAIT_PROMOTION, waiting.reason
        code, out, _ = cli("router", "show", model_name)
        assert f"{line} (default): 1.0.0=100%" in out, out  # back to stable while it waits
        code, out, err = cli("promote", line)
        assert code == 0, (out, err)
        code, out, _ = cli("router", "show", model_name)
        assert f"{line} (default): 1.1.0=100%" in out, out
    print(f"clients across the promotion: {dict(load.answers)}")
    failed = {answer: n for answer, n in load.answers.items() if answer[0] != 200}
    assert failed == {}, load.answers
    assert load.answers[(200, "1.1.0")] > 0
