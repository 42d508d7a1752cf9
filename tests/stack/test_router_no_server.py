"""The router's race between its two sources, on the real stack: its configuration is
rendered from the routing variable (weights) and Nomad's catalog (servers), so a render
can carry a weight for a version that has no server in the catalog yet. That share must
be served by the line (never the router's 503), a request naming the version gets a
clear 503, and what the router answered itself is counted apart from the version's own
answers: no gate can blame a canary for the router's lack of a server."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from support.router import RouterLoad, ask, cli, router_up

from nomadml.adapters.metric_scrape import router_counts
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.decide import Action
from nomadml.core.metrics import Snapshot
from nomadml.core.routing import Line, RoutingTable, Split, backend_name
from nomadml.engine.result import RolloutResult
from nomadml.engine.router import confirm, write_table


def test_a_weight_for_a_version_without_a_server_is_served_by_the_line_and_blamed_on_no_one(
    roll: Callable[..., RolloutResult],
    nomad: NomadAPI,
    make_spec: Callable[..., Path],
    ship: Callable[..., str],
    model_name: str,
) -> None:
    spec = make_spec(gates="health")  # a canary waits, healthy, for its promotion
    line = f"{model_name}-v1"
    assert roll(spec, "1.0.0", ship("1.0.0")).action is Action.SUCCEEDED
    router = router_up(spec)

    # The variable says 50 % to 1.1.0 before any server of 1.1.0 is in the catalog (as
    # a render between a weight change and the catalog's update can).
    table = RoutingTable(model_name, (Line(line, 1, (Split("1.0.0", 50), Split("1.1.0", 50))),), 1)
    assert confirm(nomad, table, write_table(nomad, table)) == []
    answers = Counter(ask(router) for _ in range(200))
    print(f"weight 50 % for a version with no server, 200 requests: {dict(answers)}")
    assert answers == {(200, "1.0.0"): 200}
    status, said = ask(router, "1.1.0")
    assert (status, json.loads(said)) == (
        503,
        {"error": "the router reached no server of model version 1.1.0"},
    )
    counts = router_counts(nomad, model_name, "/predict")
    canary = counts.backends.get(backend_name(line, "1.1.0"), Snapshot())
    assert (canary.requests, canary.errors) == (0, 0)  # nothing for a gate to blame
    assert counts.unserved == {backend_name(line, "1.1.0"): 1}
    code, out, err = cli("router", "show", model_name)
    assert code == 0 and "1 request(s) for 1.1.0 answered 503 by the router itself" in out, err
    code, out, err = cli("status", model_name)
    assert code == 0 and "router: 1 request(s) for 1.1.0 answered 503" in out, err

    # Its server comes: the router takes it from the catalog and the 50 % applies,
    # under load, without a failed request.
    with RouterLoad(router) as load:
        canary_roll = roll(spec, "1.1.0", ship("1.1.0"), no_promote=True)
        assert canary_roll.action is Action.AWAIT_PROMOTION, canary_roll.reason
        deadline = time.monotonic() + 30
        while load.answers[(200, "1.1.0")] < 20:
            assert time.monotonic() < deadline, f"1.1.0 never took its share: {load.answers}"
            time.sleep(0.1)
    print(f"while 1.1.0's server came: {dict(load.answers)}")
    assert {status for status, _ in load.answers} == {200}, load.answers
    counts = router_counts(nomad, model_name, "/predict")
    canary = counts.backends.get(backend_name(line, "1.1.0"), Snapshot())
    print(f"1.1.0 at the router: {canary.requests:g} requests, {canary.errors:g} errors")
    assert canary.requests >= 20 and canary.errors == 0
