"""The prediction gate through the router, with the sequential judge, on the real stack:
every request reaches the model through the model's router (HAProxy); the reference
server names its predicted labels in the X-Nomadml-Predictions header and the router's
Lua counts them per version and label; the judge's looks read those counts. A canary
that answers every request without error, as fast as stable, but predicts 27/15/3 of
the 45 evaluation rows where stable predicts 15/15/15 is failed on its predictions at
its first canary step and loses its traffic; nobody saw an error. A version trained
alike passes."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

from support.router import RouterLoad, cli, router_image

from nomadml.core.decide import Action
from nomadml.engine.result import RolloutResult
from nomadml.events import Event

EVAL = Path(__file__).resolve().parents[2] / "examples" / "iris" / "data" / "eval.csv"
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
THROUGH_THE_ROUTER = {
    "auto_revert = true": "auto_revert = true\nsteps = [50, 100]",
    "[validation]": (
        "[gates.judge]\nenabled = true\nalpha = 0.01\nerror_increase = 0.2\n"
        'latency = false\ndeadline = "2m"\n\n'
        '[gates.predictions]\nenabled = true\ntest = "sequential"\nalpha = 0.001\n'
        "min_predictions = 500\n\n[validation]"
    ),
}


def _rows() -> dict[str, list[list[float]]]:
    """Every evaluation row in each request: 45 predictions, 15 of each species."""
    with EVAL.open(newline="") as f:
        return {"instances": [[float(r[k]) for k in FEATURES] for r in csv.DictReader(f)]}


def test_a_canary_whose_predictions_shift_is_rolled_back_through_the_router(
    roll: Callable[..., RolloutResult],
    make_spec: Callable[..., Path],
    ship: Callable[..., str],
    model_name: str,
) -> None:
    spec, line = make_spec(THROUGH_THE_ROUTER, gates="fast"), f"{model_name}-v1"
    assert roll(spec, "1.0.0", ship("1.0.0")).action is Action.SUCCEEDED
    code, out, err = cli("router", "up", str(spec), "--image", router_image(), "--count", "1")
    assert code == 0, err
    router = out.split()[1]

    seen: list[Event] = []
    with RouterLoad(router, rows=_rows()) as load:
        result = roll(spec, "1.1.0", ship("1.1.0", c=0.001), emit=seen.append)
    gates = [e.data for e in seen if e.kind == "gate"]
    messages = [e.message for e in seen]
    print(f"answers through the router: {dict(load.answers)}")
    print(f"deciding look: {gates[-1] if gates else None}")
    print("\n".join(m for m in messages if "gate" in m or "router" in m or "judge" in m)[-4000:])
    assert result.action is Action.ROLLED_BACK, (result.reason, messages[-20:])
    assert "predictions shifted against stable (sequential: log e" in result.reason
    assert gates and {g["source"] for g in gates} == {"router"}, gates
    failing = gates[-1]
    assert failing["verdict"] == "fail" and failing["predictions"]["shifted"]
    assert failing["values"]["canary_errors"] == 0  # no error: only the predictions differ
    canary = failing["predictions"]["canary"]
    assert canary["virginica"] > canary["setosa"] > canary["versicolor"], canary
    assert f"router: 1.1.0 takes 0% of {line}, 1.0.0 100%" in messages
    assert sum(n for (status, _), n in load.answers.items() if status != 200) == 0, load.answers
    assert load.answers[(200, "1.1.0")] > 0  # the canary did serve, through the router
    code, out, _ = cli("router", "show", model_name)
    assert f"{line} (default): 1.0.0=100%" in out

    # A version trained alike predicts alike: it passes its 50% step once 500 of its
    # predictions are in, and at 100% (stable serves no one: nothing to compare) it is
    # promoted on the evidence of that step.
    seen.clear()
    with RouterLoad(router, rows=_rows()) as load:
        result = roll(spec, "1.2.0", ship("1.2.0"), emit=seen.append)
    messages = [e.message for e in seen]
    assert result.action is Action.SUCCEEDED, (result.reason, messages[-20:])
    passing = result.gates[-1]  # as the rollout record keeps it: with its step
    print(f"alike: {dict(load.answers)}; passing look: {passing['predictions']}")
    assert passing["verdict"] == "pass" and passing["step"] == 50
    assert not passing["predictions"]["shifted"]
    assert passing["values"]["canary_predictions"] >= 500
    assert any(m.startswith("judge: nothing to compare at 100%") for m in messages), messages
    assert sum(n for (status, _), n in load.answers.items() if status != 200) == 0, load.answers
    cli("router", "down", model_name)
