"""A new major deployed beside the old one behind the router, on the real stack: the
deploy adds the new line to the routing table once it serves, as the default for the
requests that name no version; requests naming major 1 keep reaching 1.0.0; not one
request fails at the client, named or unnamed, across the whole deploy. A third major
retires the first (keep_majors = 2): its line leaves the table before its servers stop,
so a request naming it is an unknown version (404), not a route to no server (503)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from support.router import RouterLoad, ask, cli, router_up

from nomadml.core.decide import Action
from nomadml.engine.result import RolloutResult


def test_a_new_major_beside_the_old_takes_unversioned_requests_without_a_failure(
    roll: Callable[..., RolloutResult],
    make_spec: Callable[..., Path],
    ship: Callable[..., str],
    model_name: str,
) -> None:
    spec = make_spec(gates="health")
    old, new = f"{model_name}-v1", f"{model_name}-v2"
    assert roll(spec, "1.0.0", ship("1.0.0")).action is Action.SUCCEEDED
    router = router_up(spec)
    code, out, err = cli("router", "show", model_name)
    assert code == 0 and f"{old} (default): 1.0.0=100%" in out and new not in out, (out, err)
    image = ship("2.0.0", c=0.2)  # built before the load starts: only the deploy is timed

    with RouterLoad(router) as unnamed, RouterLoad(router, header="1") as named:
        deadline = time.monotonic() + 30
        while min(sum(unnamed.answers.values()), sum(named.answers.values())) < 20:
            assert time.monotonic() < deadline, (unnamed.answers, named.answers)
            time.sleep(0.05)
        result = roll(spec, "2.0.0", image)
        assert result.action is Action.SUCCEEDED, result.reason
        # The table is confirmed at the router when deploy returns: at once, every
        # unnamed request reaches the new major, and requests go on through the switch.
        assert {ask(router) for _ in range(10)} == {(200, "2.0.0")}
        switched = unnamed.answers[(200, "2.0.0")]
        deadline = time.monotonic() + 30
        while unnamed.answers[(200, "2.0.0")] < switched + 20:
            assert time.monotonic() < deadline, unnamed.answers
            time.sleep(0.05)
    print(f"unversioned requests across the new major's deploy: {dict(unnamed.answers)}")
    print(f"requests naming major 1 across it: {dict(named.answers)}")
    failed = {a: n for load in (unnamed, named) for a, n in load.answers.items() if a[0] != 200}
    assert failed == {}, (unnamed.answers, named.answers)
    assert set(unnamed.answers) == {(200, "1.0.0"), (200, "2.0.0")}, unnamed.answers
    assert set(named.answers) == {(200, "1.0.0")}, named.answers

    assert {ask(router, "1") for _ in range(10)} == {(200, "1.0.0")}
    assert {ask(router, path="/v1/predict") for _ in range(10)} == {(200, "1.0.0")}
    assert {ask(router, "2") for _ in range(10)} == {(200, "2.0.0")}
    assert {ask(router, path="/v2/predict") for _ in range(10)} == {(200, "2.0.0")}
    code, out, err = cli("router", "show", model_name)
    assert code == 0, err
    assert f"{old}: 1.0.0=100%\n" in out and f"{new} (default): 2.0.0=100%\n" in out, out

    # A third major: keep_majors = 2 retires v1, whose line leaves the table first.
    result = roll(spec, "3.0.0", ship("3.0.0", c=0.3))
    assert result.action is Action.SUCCEEDED, result.reason
    retired = ask(router, "1")
    assert retired[0] == 404 and "unknown model version" in retired[1], retired
    assert {ask(router, "2") for _ in range(10)} == {(200, "2.0.0")}
    assert {ask(router) for _ in range(10)} == {(200, "3.0.0")}
    code, out, err = cli("router", "show", model_name)
    assert code == 0 and old not in out and f"{model_name}-v3 (default): 3.0.0=100%" in out, (
        out,
        err,
    )
