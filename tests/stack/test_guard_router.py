"""The guard through the router, on the real stack: every request reaches the model
through the model's router; a version good for its first requests passes its canary
steps, takes all of the line, then degrades; the guard (reading the router, as the gates
did: errors and latency against stable's router histogram) rolls the line back and the
router's table follows (the earlier version takes all of the line as soon as it is
healthy, before the regressed allocations stop). Counted at the client: every failed
request is the regressed version's own injected fault — no 502/503 from the switch,
none from the stable version."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from support.router import ROWS, cli, router_image

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.decide import Action
from nomadml.engine.guard import bake
from nomadml.engine.result import RolloutResult
from nomadml.events import Event

GOOD_FOR = 1200  # predictions per allocation before 1.1.0 degrades (after its steps)


class ThroughTheRouter:
    """Predictions through the router from a thread: (status, version or error) counted."""

    def __init__(self, router: str) -> None:
        self.router, self.answers = router, Counter[tuple[int, str]]()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ThroughTheRouter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _ask(self) -> tuple[int, str]:
        request = urllib.request.Request(
            self.router + "/predict",
            data=json.dumps(ROWS).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, str(json.load(response).get("version"))
        except urllib.error.HTTPError as err:
            return err.code, str(json.loads(err.read() or b"{}").get("error", ""))[:40]
        except (OSError, ValueError) as err:
            return 0, type(err).__name__

    def _run(self) -> None:
        deadline = time.monotonic() + 400
        while not self._stop.is_set() and time.monotonic() < deadline:
            self.answers[self._ask()] += 1
            time.sleep(0.03)


def test_the_guard_rolls_back_through_the_router(
    roll: Callable[..., RolloutResult],
    nomad: NomadAPI,
    make_spec: Callable[..., Path],
    ship: Callable[..., str],
    model_name: str,
) -> None:
    edits = {
        "auto_revert = true": "auto_revert = true\nsteps = [50, 100]",
        # A few-millisecond p95 under load is noise at 1.5x: this test is about the guard.
        "max_latency_ratio = 1.5": "max_latency_ratio = 20.0",
        "[validation]": '[guard]\nbake = "4m"\n\n[validation]',
    }
    spec, line = make_spec(edits, gates="fast"), f"{model_name}-v1"
    assert roll(spec, "1.0.0", ship("1.0.0")).action is Action.SUCCEEDED
    code, out, err = cli("router", "up", str(spec), "--image", router_image(), "--count", "1")
    assert code == 0, err
    router = out.split()[1]
    late = ship("1.1.0", serving={"error_rate": 0.5, "error_after": GOOD_FOR})
    said: list[str] = []

    def keep(event: Event) -> None:
        said.append(event.message)

    with ThroughTheRouter(router) as load:
        promoted = roll(spec, "1.1.0", late)
        assert promoted.action is Action.SUCCEEDED, (promoted.reason, load.answers)
        before = dict(load.answers)
        result = bake(nomad, line, keep)
        # The line goes on answering through the router, from the stable version.
        settled = load.answers[(200, "1.0.0")] + 50
        deadline = time.monotonic() + 60
        while load.answers[(200, "1.0.0")] < settled and time.monotonic() < deadline:
            time.sleep(0.2)  # polls the client's own counter; the load runs meanwhile
    print(f"through the router: before the bake {before}; in all {dict(load.answers)}")
    print("\n".join(m for m in said if "router" in m or "guard" in m))
    assert result.outcome == "rolled-back", result.reason
    # Judged at the router, guarded at the router: errors and latency on the router's
    # numbers, stable's baseline the router's histogram from the rollout.
    assert any("(judge at the router, look every" in m for m in said), said
    signals = result.evidence["signals"]
    print(f"guard's signals at the router: {signals}")
    assert signals["latency"]["requests"] == signals["errors"]["requests"] > 0, signals
    assert signals["latency"]["baseline_rate"] is not None, signals
    assert f"router: {line} -> 1.0.0 100%, 1.1.0 0%" in said, said
    assert f"router: {line} -> 1.0.0 100%" in said, said
    code, out, _ = cli("router", "show", model_name)
    assert f"{line} (default): 1.0.0=100%" in out, out

    failed = {key: n for key, n in load.answers.items() if key[0] != 200}
    assert all(key == (500, "injected fault (model.json serving.error") for key in failed), failed
    assert sum(failed.values()) > 0  # it really degraded, and the guard saw it
    assert all(status == 200 for status, _ in before), before  # nothing failed before
    assert load.answers[(200, "1.0.0")] >= settled, load.answers
