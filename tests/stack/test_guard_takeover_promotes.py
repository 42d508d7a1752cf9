"""A guard that stopped mid-rollback, on the real stack: the state it leaves is built
as it would be (the regression claimed `rolling-back` over 30 s ago; the rollback to
1.0.0 registered without auto-promote, its canaries healthy and waiting for nomadml's
promotion). `nomadml guard LINE` takes the claim over: the router's table moves the
line to 1.0.0, then one promotion; no second rollback is registered, and no request
through the router fails."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from support.router import RouterLoad, cli, router_up

from nomadml.adapters import rollout_records as history
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.decide import Action
from nomadml.core.rollback_plan import all_at_once, choose_target
from nomadml.engine import guard_record
from nomadml.engine.job_version import register_version
from nomadml.engine.result import RolloutResult
from nomadml.events import discard


def _registered_unpromoted_rollback(nomad: NomadAPI, line: str) -> int:
    """What a guard's roll_back does before its watch: the earlier job version placed
    beside 1.1.0, not auto-promoted. Returns its job version once its canaries are
    healthy (blocking queries, with a deadline)."""
    job = nomad.job(line) or {}
    target = choose_target(job, nomad.job_versions(line), None)
    answer, version = register_version(
        nomad,
        all_at_once(target, "1.1.0", auto_promote=False),
        enforce_index=int(job["JobModifyIndex"]),
        source=None,
        model_version="1.0.0",
        record={"kind": "rollback", "from": "1.1.0", "outcome": "running"},
        why="a guard's rollback from 1.1.0 to 1.0.0 (it stopped after registering it)",
        emit=discard,
    )
    deadline, index = time.monotonic() + 90, int(answer.get("JobModifyIndex") or 0)
    while time.monotonic() < deadline:
        reply = nomad.get(f"job/{line}/deployment", index, wait=5)
        dep: dict[str, Any] = reply.body or {}
        groups = (
            list((dep.get("TaskGroups") or {}).values()) if dep.get("JobVersion") == version else []
        )
        if groups and all(
            g["HealthyAllocs"] >= g["DesiredCanaries"] > 0 and not g["Promoted"] for g in groups
        ):
            return version
        index = max(reply.index, 1)
    raise AssertionError(f"{line}: the rollback's canaries not healthy within 90 s")


def test_the_next_guard_promotes_a_registered_rollback_once(
    roll: Callable[..., RolloutResult],
    nomad: NomadAPI,
    make_spec: Callable[..., Path],
    ship: Callable[..., str],
    model_name: str,
) -> None:
    edits = {
        "auto_revert = true": "auto_revert = true\nsteps = [50, 100]",  # through the router
        "max_latency_ratio = 1.5": "max_latency_ratio = 20.0",  # this test is about the guard
        "[validation]": '[guard]\nbake = "4m"\n\n[validation]',
    }
    spec = make_spec(edits, gates="fast")
    line = f"{model_name}-v1"
    assert roll(spec, "1.0.0", ship("1.0.0")).action is Action.SUCCEEDED
    router = router_up(spec)
    with RouterLoad(router) as load:
        promoted = roll(spec, "1.1.0", ship("1.1.0"))
        assert promoted.action is Action.SUCCEEDED, promoted.reason
        baked = int(promoted.job_version or 0)
        claimed = guard_record.claim(
            nomad,
            line,
            baked,
            "rolling-back",
            {"reason": "regression: built by the test", "detected_at": time.time() - 60},
        )
        assert claimed is not None
        rollback = _registered_unpromoted_rollback(nomad, line)
        started = time.monotonic()
        code, out, err = cli("--address", nomad.settings.address, "guard", line)
        took = time.monotonic() - started
        before = dict(load.answers)
        # The line goes on answering through the router, from 1.0.0 alone.
        settled, deadline = load.answers[(200, "1.0.0")] + 50, time.monotonic() + 60
        while load.answers[(200, "1.0.0")] < settled and time.monotonic() < deadline:
            time.sleep(0.2)  # polls the client's own counter; the load runs meanwhile
    print(
        f"guard took {took:.1f} s; through the router: {dict(load.answers)}; "
        f"when the guard ended: {before}\n{out}{err}"
    )
    assert code == 6, (out, err)
    job = nomad.job(line) or {}
    assert int(job["Version"]) == rollback  # no second rollback registered
    assert job["Meta"]["nomadml.version"] == "1.0.0"
    dep = nomad.latest_deployment(line) or {}
    assert dep["JobVersion"] == rollback and dep["Status"] == "successful", dep
    assert all(g["Promoted"] for g in dep["TaskGroups"].values()), dep
    kinds = [r.get("kind") for r in history.records(nomad, line).values()]
    assert kinds.count("rollback") == 1, kinds
    assert guard_record.record_of(nomad, line, baked)["status"] == "rolled-back"
    code, shown, _ = cli("router", "show", model_name)
    assert f"{line} (default): 1.0.0=100%" in shown, shown
    failed = {key: n for key, n in load.answers.items() if key[0] != 200}
    assert not failed, failed
    assert load.answers[(200, "1.0.0")] >= settled, load.answers
    after = {key: n - before.get(key, 0) for key, n in load.answers.items()}
    assert after.get((200, "1.1.0"), 0) == 0, after  # the table moved off 1.1.0
