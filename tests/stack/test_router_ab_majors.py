"""An A/B split across majors at the router, on the real stack: the requests that name
no version are split between two lines (majors 1 and 2) by a hash of X-User, each
client kept on its arm; requests naming a major keep their line; per-arm numbers in
`nomadml status`; start and end in the model's audit trail; bad input writes nothing."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from support.router import ask_as as ask
from support.router import cli, router_up

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.decide import Action
from nomadml.engine.result import RolloutResult
from nomadml.errors import ExitCode


def test_unversioned_requests_split_between_majors_sticky_counted_and_recorded(
    roll: Callable[..., RolloutResult],
    nomad: NomadAPI,
    make_spec: Callable[..., Path],
    ship: Callable[..., str],
    model_name: str,
) -> None:
    spec = make_spec(gates="health")
    variable = f"nomadml/routes/{model_name}"
    assert roll(spec, "1.0.0", ship("1.0.0")).action is Action.SUCCEEDED
    assert roll(spec, "2.0.0", ship("2.0.0", c=0.2)).action is Action.SUCCEEDED
    router = router_up(spec)
    assert {ask(router, None) for _ in range(10)} == {(200, "2.0.0")}  # the default line

    before = nomad.get_variable(variable)
    for split, problem in (
        ("1=50,3=50", "no line for major 3"),
        ("1=60,2=50", "add up to 110, not 100"),
        ("1=50,2.0.0=50", "either versions of one major or majors, not both"),
    ):
        code, _, err = cli(
            "router", "ab", model_name, "--split", split, "--sticky-header", "X-User"
        )
        assert code == int(ExitCode.BAD_INPUT) and problem in err and len(err.splitlines()) == 1, (
            err
        )
    after = nomad.get_variable(variable)
    assert before is not None and after is not None
    assert after["ModifyIndex"] == before["ModifyIndex"]

    code, out, err = cli(
        "router", "ab", model_name, "--split", "1=50,2=50", "--sticky-header", "X-User"
    )
    assert code == 0 and "A/B across majors 1=50,2=50, sticky by header X-User" in out, err
    answers = Counter(ask(router, f"user-{n}") for n in range(400))
    print(f"400 distinct keys across majors: {dict(answers)}")
    assert set(answers) == {(200, "1.0.0"), (200, "2.0.0")}
    assert 160 <= answers[(200, "1.0.0")] <= 240, answers  # 50 % +- 10 points (5 sigma)
    seen = Counter(answers)
    for user in ("user-1", "user-2", "user-3"):
        again = Counter(ask(router, user) for _ in range(10))
        assert len(again) == 1, user  # sticky
        seen.update(again)

    code, out, err = cli("status", model_name, "--json")
    assert code == 0, err
    (row,) = [r for r in json.loads(out) if r.get("experiment")]
    arms = {a["version"]: a for a in row["experiment"]["arms"]}
    # Counted since the router's reload for the experiment: every request of each arm.
    assert arms["major 1"]["requests"] == seen[(200, "1.0.0")]
    assert arms["major 2"]["requests"] == seen[(200, "2.0.0")]
    assert arms["major 1"]["errors"] == arms["major 2"]["errors"] == 0

    code, out, err = cli("router", "ab", model_name, "--end")
    assert code == 0 and "across majors" not in out, err
    assert {ask(router, f"user-{n}") for n in range(20)} == {(200, "2.0.0")}
    code, out, err = cli("model", "history", model_name)
    assert code == 0, err
    assert len([x for x in out.splitlines() if " ab-start 1=50,2=50 " in x]) == 1, out
    ended = [x for x in out.splitlines() if " ab-end 1=50,2=50 " in x]
    assert len(ended) == 1 and '"major 1"' in ended[0], out
