"""What the router's stack tests share: the CLI runner, the router image (the local
stack's, or built from the unpacked HAProxy), one prediction's rows, one prediction
through the router, and predictions sent through it while a rollout runs."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

from click.testing import CliRunner

from nomadml import __version__
from nomadml.adapters.image_registry import resolve_digest
from nomadml.adapters.images import build_router_image
from nomadml.cli.main import main
from nomadml.errors import NomadMLError

ROWS = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
ROUTER_ROOT = Path.home() / ".cache" / "nomadml" / "router-root"


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def router_image() -> str:
    try:
        return resolve_digest(f"127.0.0.1:5000/nomadml/router:{__version__}")
    except NomadMLError:
        return build_router_image(ROUTER_ROOT).pinned


def router_up(spec: Path, count: int = 1) -> str:
    """`nomadml router up SPEC` as an operator runs it; the first router's address."""
    code, out, err = cli(
        "router", "up", str(spec), "--image", router_image(), "--count", str(count)
    )
    assert code == 0 and out.startswith("router http://"), (out, err)
    return out.split()[1]


def ask(
    router: str, header: str | None = None, path: str = "/predict", rows: object = ROWS
) -> tuple[int, str]:
    """One prediction through the router: (status, the answering version or the error)."""
    request = urllib.request.Request(
        router + path,
        data=json.dumps(rows).encode(),
        headers={
            "Content-Type": "application/json",
            **({"X-Model-Version": header} if header else {}),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, str(json.load(response).get("version"))
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except OSError as err:  # a connection the router closed: never expected
        return 0, f"{type(err).__name__}: {err}"


def ask_as(router: str, user: str | None) -> tuple[int, str]:
    """One prediction through `router` as `user` (its X-User header, the sticky key of
    the A/B tests): (status, the answering version)."""
    headers = {"Content-Type": "application/json", **({"X-User": user} if user else {})}
    request = urllib.request.Request(
        router + "/predict", data=json.dumps(ROWS).encode(), headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, str(json.load(response).get("version"))
    except OSError as err:  # HTTPError included: never expected here
        return 0, f"{type(err).__name__}: {err}"


class RouterLoad:
    """Predictions sent through the router from a thread while a rollout runs:
    answers counted per version, failures kept."""

    def __init__(self, router: str, rows: object = ROWS, header: str | None = None) -> None:
        self.router, self.answers = router, Counter[tuple[int, str]]()
        self.rows = rows  # what each request asks about
        self.header = header  # the X-Model-Version each request names (None: none)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RouterLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        deadline = time.monotonic() + 240
        while not self._stop.is_set() and time.monotonic() < deadline:
            self.answers[ask(self.router, self.header, rows=self.rows)] += 1
            self._stop.wait(0.03)
