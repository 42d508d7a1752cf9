"""Shadow traffic at the router, on the real stack, driven as an operator would: a
rollout with `[update.shadow]` first gives the canary no traffic but a mirrored share
of its line's requests, whose answers the router compares with stable's and discards.
A candidate that answers differently is rolled back having served no one (counted at
the clients: every answer from stable, none failed); one that answers alike goes on to
its canary steps and is promoted. Bad input is one line and writes nothing."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from support.router import RouterLoad, ask, cli, router_up

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.decide import Action
from nomadml.engine.result import RolloutResult
from nomadml.errors import ExitCode

SHADOW = {
    "auto_revert = true": "auto_revert = true\nsteps = [50, 100]",
    "[restart]\n": (
        "[update.shadow]\nshare = 50\nmin_requests = 30\nmin_agreement = 0.99\n"
        'max_latency_ms = 250.0\ntimeout = "90s"\n\n[restart]\n'
    ),
    # Router-measured p95s of a few dozen requests are noisy on this shared machine
    # (see test_router.py); this test is about the shadow phase.
    "max_latency_ratio = 1.5": "max_latency_ratio = 100.0",
}


class TimedLoad(RouterLoad):
    """Predictions through the router, faster, each one timed at the client."""

    def __init__(self, router: str) -> None:
        super().__init__(router)
        self.seconds: list[float] = []

    def _run(self) -> None:
        deadline = time.monotonic() + 240
        while not self._stop.is_set() and time.monotonic() < deadline:
            started = time.perf_counter()
            self.answers[ask(self.router)] += 1
            self.seconds.append(time.perf_counter() - started)
            self._stop.wait(0.01)


def _deploy(spec: Path, version: str, image: str, serving_image: str) -> tuple[int, list[Any], str]:
    """`nomadml deploy ... --json`: the exit code, the events and what went to stderr."""
    code, out, err = cli(
        "deploy", str(spec), "--version", version, "--image", image,
        "--serving-image", serving_image, "--unregistered", "--json",
    )  # fmt: skip
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return code, events, err


def _shadow_records(events: list[Any]) -> list[dict[str, Any]]:
    return [e["data"] for e in events if e["kind"] == "gate" and e["data"].get("phase") == "shadow"]


def test_a_shadow_that_answers_differently_serves_no_one_and_one_alike_is_promoted(
    roll: Callable[..., RolloutResult],
    nomad: NomadAPI,
    make_spec: Callable[..., Path],
    ship: Callable[..., str],
    model_name: str,
    serving_image: str,
) -> None:
    spec = make_spec(SHADOW, gates="fast")
    line = f"{model_name}-v1"
    assert roll(spec, "1.0.0", ship("1.0.0")).action is Action.SUCCEEDED
    unlike, alike = ship("1.1.0", c=0.001), ship("1.2.0")  # 1.2.0: trained as 1.0.0 was

    # Without a router there is nothing to mirror with: one line, nothing submitted.
    versions = len(nomad.job_versions(line))
    code, events, err = _deploy(spec, "1.1.0", unlike, serving_image)
    assert code == int(ExitCode.BAD_INPUT), (events, err)
    assert err.count("\n") == 1 and f"update.shadow: no router routes {line}" in err, err
    assert len(nomad.job_versions(line)) == versions

    router = router_up(spec)

    # A mirror share over 100 % by hand: one line, the routing variable untouched.
    before = nomad.get_variable(f"nomadml/routes/{model_name}")
    code, _, err = cli(
        "router", "weights", model_name, line, "1.0.0=100", "--mirror", "1.0.0=150"
    )  # fmt: skip
    assert code == int(ExitCode.BAD_INPUT), err
    assert "mirror share of 1.0.0 is 150%, not 1..100" in err, err
    after = nomad.get_variable(f"nomadml/routes/{model_name}")
    assert before is not None and after is not None
    assert after["ModifyIndex"] == before["ModifyIndex"]

    # 1.1.0 predicts otherwise (C = 0.001): it fails its shadow phase and is rolled back;
    # every client answer came from 1.0.0, none failed.
    with RouterLoad(router) as load:
        code, events, err = _deploy(spec, "1.1.0", unlike, serving_image)
    assert code == int(ExitCode.ROLLED_BACK), (events, err)
    messages = [e["message"] for e in events]
    assert any(f"router: 1.1.0 shadows 50% of {line}" in m for m in messages), messages
    failing = [r for r in _shadow_records(events) if r["verdict"] == "fail"]
    assert failing, messages
    values = failing[-1]["values"]
    assert values["shadow_compared"] >= 30 and values["shadow_agreement"] < 0.99, values
    assert not any("takes 50%" in m for m in messages), messages  # it never took a step
    print(f"unlike shadow: {values}; clients: {dict(load.answers)}")
    assert set(load.answers) == {(200, "1.0.0")}, load.answers
    assert sum(load.answers.values()) >= 30

    code, out, _ = cli("router", "show", model_name)
    assert f"{line} (default): 1.0.0=100%" in out and "shadow" not in out, out
    code, out, _ = cli("history", line)
    assert "shadow fail: agreed" in out, out

    # A mirror added to the variable by hand (its rules no longer match its check):
    # reported, and the router keeps serving its last good table, mirrorless.
    path = f"nomadml/routes/{model_name}"
    items = dict((nomad.get_variable(path) or {})["Items"])
    items["routes"] += "\n  http-request set-var(txn.mirror) str(x) if TRUE"
    nomad.put_variable(path, items)
    code, out, _ = cli("router", "show", model_name)
    assert code == 7 and "routing table: INVALID" in out, out
    assert {ask(router) for _ in range(20)} == {(200, "1.0.0")}
    code, _, err = cli("router", "weights", model_name, line, "1.0.0=100")  # written anew
    assert code == 0, err

    # 1.2.0 answers as 1.0.0 does: it passes its shadow phase, then its steps.
    with RouterLoad(router) as load:
        code, events, err = _deploy(spec, "1.2.0", alike, serving_image)
    messages = [e["message"] for e in events]
    assert code == 0, (messages, err)
    passing = [r for r in _shadow_records(events) if r["verdict"] == "pass"]
    assert passing and passing[-1]["values"]["shadow_agreement"] == 1.0, messages
    assert passing[-1]["values"]["shadow_errors"] == 0
    shadow_ends = next(i for i, m in enumerate(messages) if m.startswith("shadow phase passed"))
    first_step = next(i for i, m in enumerate(messages) if "1.2.0 takes 50%" in m)
    assert shadow_ends < first_step, messages
    print(f"alike shadow: {passing[-1]['values']}; clients: {dict(load.answers)}")
    assert {status for status, _ in load.answers} == {200}, load.answers
    code, out, _ = cli("router", "show", model_name)
    assert f"{line} (default): 1.2.0=100%" in out, out

    # 1.3.0 (C = 0.5) predicts the same labels with other probabilities, 300 ms late; the
    # whole line is mirrored to it and only labels are compared: it agrees on every
    # answer and fails on its latency; the clients never wait for it (their answers come
    # as fast as before); the copies its 4 replay workers cannot take are dropped.
    whole = {
        **SHADOW,
        "share = 50\nmin_requests = 30": 'share = 100\nmin_requests = 100\ncompare = "labels"',
    }
    slow = make_spec(whole, file="slow.toml", gates="fast")
    timed = TimedLoad(router)
    with timed:
        code, events, err = _deploy(
            slow, "1.3.0", ship("1.3.0", c=0.5, serving={"extra_latency_ms": 300}), serving_image
        )
    assert code == int(ExitCode.ROLLED_BACK), (events, err)
    failing = [r for r in _shadow_records(events) if r["verdict"] == "fail"]
    assert failing and "shadow p95" in failing[-1]["reasons"][0], failing
    values = failing[-1]["values"]
    assert values["shadow_agreement"] == 1.0 and values["shadow_latency_ms"] >= 250, values
    p50, p95 = statistics.median(timed.seconds), statistics.quantiles(timed.seconds, n=20)[-1]
    print(f"slow shadow: {values}; clients: {dict(timed.answers)}, p50 {1000 * p50:.1f} ms, "
          f"p95 {1000 * p95:.1f} ms")  # fmt: skip
    assert set(timed.answers) == {(200, "1.2.0")}, timed.answers
    assert p50 < 0.1 and p95 < 0.3, (p50, p95)
    assert values["shadow_dropped"] > 0, values  # the bounded queue was full, not the clients
