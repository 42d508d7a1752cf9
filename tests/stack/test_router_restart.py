"""No request fails through the router across reloads and a router allocation's
restart, counted at the client on the real stack. Two router allocations: while one
restarts, the other serves; a client that knows both (the catalog's two addresses, one
retry at the other on a refused connection) sees no failure, and the restarted
router's own window (refused connections at its address) is measured."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from support.router import ROWS, cli, router_image

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.decide import Action
from nomadml.engine.result import RolloutResult


def ask(router: str) -> int:
    """One prediction through `router`: its status, 0 when the connection fails."""
    request = urllib.request.Request(
        router + "/predict", data=json.dumps(ROWS).encode(),
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)
    except OSError:
        return 0


class Client(threading.Thread):
    """Sends predictions until stopped: to `routers[0]` only, or, with two, to each in
    turn and once more at the other when a connection fails. Failures kept with their
    times (monotonic)."""

    def __init__(self, routers: list[str]) -> None:
        super().__init__(daemon=True)
        self.routers, self.sent, self.failed = routers, 0, list[tuple[float, int]]()
        self.stop = threading.Event()

    def run(self) -> None:
        turn = 0
        while not self.stop.is_set():
            first = self.routers[turn % len(self.routers)]
            status = ask(first)
            if status == 0 and len(self.routers) > 1:
                status = ask(self.routers[(turn + 1) % len(self.routers)])
            self.sent += 1
            if status != 200:
                self.failed.append((time.monotonic(), status))
            turn += 1
            time.sleep(0.01)


def _restarted(nomad: NomadAPI, alloc: str, since_ns: int) -> bool:
    """The router task started again after `since_ns` (Nomad's task events)."""
    state = (nomad.request("GET", f"allocation/{alloc}").body or {}).get("TaskStates") or {}
    events = (state.get("haproxy") or {}).get("Events") or []
    return any(e["Type"] == "Started" and int(e["Time"]) > since_ns for e in events)


def test_no_request_fails_across_router_reloads_and_a_router_restart(
    roll: Callable[..., RolloutResult],
    nomad: NomadAPI,
    make_spec: Callable[..., Path],
    ship: Callable[..., str],
    model_name: str,
) -> None:
    spec = make_spec(gates="health")
    line = f"{model_name}-v1"
    assert roll(spec, "1.0.0", ship("1.0.0")).action is Action.SUCCEEDED
    canary = roll(spec, "1.1.0", ship("1.1.0", c=0.5), no_promote=True)
    assert canary.action is Action.AWAIT_PROMOTION, canary.reason
    clients: list[Client] = []
    try:
        code, out, err = cli("router", "up", str(spec), "--image", router_image())
        assert code == 0, err
        routers = [word for word in out.split() if word.startswith("http://")]
        assert len(routers) == 2, out
        only_a, only_b, both = clients = [Client(routers[:1]), Client(routers[1:]), Client(routers)]
        for client in clients:
            client.start()

        # Reloads: ten routing changes under load, every router reloading each time.
        for flip in range(10):
            share = (30, 70)[flip % 2]
            code, _, err = cli(
                "router", "weights", model_name, line, f"1.0.0={100 - share}", f"1.1.0={share}"
            )
            assert code == 0, err
        reloaded = {name: (c.sent, list(c.failed)) for name, c in
                    (("a", only_a), ("b", only_b), ("both", both))}  # fmt: skip
        print(f"across 10 reloads (sent, failed): {reloaded}")
        assert all(not failed for _, failed in reloaded.values()), reloaded

        # A restart of router a's allocation.
        alloc = next(
            r["AllocID"] for r in nomad.service(f"{model_name}-router")
            if f"http://{r['Address']}:{r['Port']}" == routers[0]
        )  # fmt: skip
        sent_before = only_a.sent
        since = time.time_ns()
        # The call returns when the task has restarted (it may outlast the client's
        # read timeout): made from a thread; the test waits on the task's events.
        threading.Thread(
            target=lambda: nomad.request("PUT", f"client/allocation/{alloc}/restart", body={}),
            daemon=True,
        ).start()
        deadline = time.monotonic() + 60
        while not (_restarted(nomad, alloc, since) and ask(routers[0]) == 200):
            assert time.monotonic() < deadline, "router a never came back"
        settled = only_a.sent
        while only_a.sent < settled + 20:  # a's client sees it answer again
            assert time.monotonic() < deadline, "router a's client never got through"
    finally:
        for client in clients:
            client.stop.set()
            client.join(timeout=10)
        nomad.request("DELETE", f"var/nomadml/routes/{model_name}")
    window = only_a.failed[-1][0] - only_a.failed[0][0] if only_a.failed else 0.0
    print(
        f"router a restart: {len(only_a.failed)} of {only_a.sent - sent_before} requests to a "
        f"failed, over {window:.2f} s; router b: {len(only_b.failed)} of {only_b.sent} failed; "
        f"the client using both: {len(both.failed)} of {both.sent} failed"
    )
    assert not only_b.failed and not both.failed, (only_b.failed, both.failed)
    assert {status for _, status in only_a.failed} <= {0}, only_a.failed  # refused, never 5xx
    assert window < 10.0, only_a.failed
