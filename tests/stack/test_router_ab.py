"""An A/B split at the router, on the real stack: two versions of one line share its
traffic 50/50, each client kept on one arm by a hash of its X-User header, at both
router allocations; per-arm numbers counted by the routers in `nomadml status`, the
experiment's start and end in the model's audit trail; bad input is one line and
writes nothing."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from support.router import ask_as as ask
from support.router import cli, router_image

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.decide import Action
from nomadml.engine.result import RolloutResult
from nomadml.errors import ExitCode


def arms(model: str) -> dict[str, dict[str, Any]]:
    code, out, err = cli("status", model, "--json")
    assert code == 0, err
    (row,) = [r for r in json.loads(out) if r.get("experiment")]
    return {arm["version"]: arm for arm in row["experiment"]["arms"]}


def test_an_ab_split_is_even_sticky_counted_and_recorded(
    roll: Callable[..., RolloutResult],
    nomad: NomadAPI,
    make_spec: Callable[..., Path],
    ship: Callable[..., str],
    model_name: str,
) -> None:
    spec = make_spec(gates="health")  # the canary waits, healthy, beside the stable
    line = f"{model_name}-v1"
    variable = f"nomadml/routes/{model_name}"
    assert roll(spec, "1.0.0", ship("1.0.0")).action is Action.SUCCEEDED
    canary = roll(spec, "1.1.0", ship("1.1.0", c=0.5), no_promote=True)
    assert canary.action is Action.AWAIT_PROMOTION, canary.reason
    try:
        code, out, err = cli("router", "up", str(spec), "--image", router_image())
        assert code == 0, err
        routers = [word for word in out.split() if word.startswith("http://")]
        assert len(routers) == 2, out

        # Bad input: one line each, exit 2, the routing variable untouched.
        before = nomad.get_variable(variable)
        for args, said in [
            (["--split", "1.0.0=60,1.1.0=50", "--sticky-header", "X-User"], "add up to 110"),
            (["--split", "1.0.0=50,1.3.0=50", "--sticky-header", "X-User"],
             "no running server of 1.3.0"),
            (["--split", "1.0.0=50,1.1.0=50", "--sticky-header", ""],
             "the sticky header name is empty"),
            (["--split", "1.0.0=50,1.1.0=50"], "one of --sticky-header or --sticky-cookie"),
            (["--split", "1.0.0=100", "--sticky-cookie", "uid"], "at least two arms"),
        ]:  # fmt: skip
            code, _, err = cli("router", "ab", model_name, *args)
            assert code == int(ExitCode.BAD_INPUT) and said in err, (args, err)
            assert len(err.strip().splitlines()) == 1, err
        after = nomad.get_variable(variable)
        assert before is not None and after is not None
        assert after["ModifyIndex"] == before["ModifyIndex"]

        code, out, err = cli(
            "router", "ab", model_name, "--split", "1.0.0=50,1.1.0=50", "--sticky-header", "X-User"
        )
        assert code == 0, err
        assert f"{line} (default): 1.0.0=50% 1.1.0=50% (A/B, sticky by header X-User)" in out
        for router in routers:  # both routers on the new table (1.1.0 had no share before)
            deadline = time.monotonic() + 15
            while ask(router, None) != (200, "1.1.0"):
                assert time.monotonic() < deadline, f"{router} never took the A/B table"
        counted_before = arms(model_name)

        # 1,000 distinct users, alternating between the two routers.
        arm_of: dict[str, str] = {}
        for i in range(1000):
            user = f"user-{i}"
            status, version = ask(routers[i % 2], user)
            assert status == 200, version
            arm_of[user] = version
        split = Counter(arm_of.values())
        share = 100 * split["1.1.0"] / 1000
        print(f"A/B split over 1,000 distinct keys: {dict(split)}")
        assert split["1.0.0"] + split["1.1.0"] == 1000
        assert 48 <= share <= 52, split

        # Sticky: the same key, at the other router, three more times: the same arm.
        again = 0
        for i in range(0, 1000, 5):
            user = f"user-{i}"
            for _ in range(3):
                assert ask(routers[(i + 1) % 2], user) == (200, arm_of[user]), user
                again += 1

        # Per-arm numbers from the routers: every request above, and nothing else.
        counted = arms(model_name)
        for version in ("1.0.0", "1.1.0"):
            sent = split[version] + 3 * sum(
                1 for i in range(0, 1000, 5) if arm_of[f"user-{i}"] == version
            )
            got = counted[version]["requests"] - counted_before[version]["requests"]
            assert got == sent, (version, got, sent)
            assert counted[version]["errors"] == 0
            assert counted[version]["latency_p95_ms"] is not None
        code, out, _ = cli("status", model_name)
        assert "A/B sticky by header X-User" in out and "1.1.0 50%: " in out, out
        print(out)

        # The experiment ends when the line's weights are set again: recorded with its numbers.
        code, _, err = cli("router", "weights", model_name, line, "1.1.0=100", "1.0.0=0")
        assert code == 0, err
        code, out, err = cli("model", "history", model_name)
        assert code == 0, err
        started = [x for x in out.splitlines() if " ab-start 1.0.0=50,1.1.0=50 " in x]
        ended = [x for x in out.splitlines() if " ab-end 1.0.0=50,1.1.0=50 " in x]
        assert len(started) == 1 and '"sticky": "header X-User"' in started[0], out
        assert len(ended) == 1, out
        recorded = json.loads(ended[0].split(" ab-end 1.0.0=50,1.1.0=50 ", 1)[1])
        total = sum(arm["requests"] for arm in recorded["arms"])
        assert total >= 1000 + again, recorded
    finally:
        nomad.request("DELETE", f"var/{variable}")
