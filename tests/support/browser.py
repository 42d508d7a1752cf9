"""Headless Chromium (Debian's `chromium`) driven over the DevTools protocol on a pipe
(`--remote-debugging-pipe`: JSON messages ended by a NUL byte, read by Chromium on file
descriptor 3, written on 4), with the standard library only: open a page, list every
request it made, read text from its DOM, take a screenshot.

Chromium runs with a fresh profile and the flags that keep it from calling home (no
background networking, component updates, sync or QUIC), so whatever request shows up
came from the page."""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("NOMADML_CHROMIUM", "/usr/bin/chromium")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
)


class BrowserError(RuntimeError):
    pass


@dataclass
class PageVisit:
    """What opening a page showed: its URL, every request made, the text of the DOM
    elements asked for, and a PNG screenshot of the whole page."""

    url: str
    requests: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    screenshot: bytes = b""

    def outside_requests(self) -> list[str]:
        """Every request but the one for the page itself."""
        return [u for u in self.requests if u != self.url]


class _Pipe:
    def __init__(self, write_fd: int, read_fd: int, deadline: float) -> None:
        self.write_fd, self.read_fd, self.deadline = write_fd, read_fd, deadline
        self.buffer = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def _message(self) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise BrowserError("chromium did not answer in time")
            ready, _, _ = select.select([self.read_fd], [], [], left)
            if ready:
                chunk = os.read(self.read_fd, 1 << 16)
                if not chunk:
                    raise BrowserError("chromium closed the DevTools pipe")
                self.buffer += chunk
        raw, _, self.buffer = self.buffer.partition(b"\0")
        message: dict[str, Any] = json.loads(raw)
        return message

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        ask: dict[str, Any] = {"id": self.next_id, "method": method, "params": params}
        if session:
            ask["sessionId"] = session
        os.write(self.write_fd, json.dumps(ask).encode() + b"\0")
        while True:
            message = self._message()
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result") or {}
                return result
            self.events.append(message)

    def wait_for(self, method: str, session: str) -> None:
        seen = 0
        while True:
            for event in self.events[seen:]:
                if event.get("method") == method and event.get("sessionId") == session:
                    return
            seen = len(self.events)
            self.events.append(self._message())


def visit(page: Path, selector: str = "svg text", timeout_s: float = 90.0) -> PageVisit:
    """Open `page` in a fresh headless Chromium; the text of every `selector` element."""
    if not Path(CHROMIUM).exists():
        raise BrowserError(f"no {CHROMIUM}: apt-get install chromium (scripts/install-deps)")
    url = page.resolve().as_uri()
    to_chrome_r, to_chrome_w = os.pipe()
    from_chrome_r, from_chrome_w = os.pipe()
    profile = tempfile.mkdtemp(prefix="nomadml-chromium-")
    # bash places the pipe ends on 3 and 4, where Chromium expects them.
    command = f'exec "$0" "$@" 3<&{to_chrome_r} 4>&{from_chrome_w}'
    proc = subprocess.Popen(
        ["bash", "-c", command, CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        pass_fds=(to_chrome_r, from_chrome_w),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(to_chrome_r)
    os.close(from_chrome_w)
    pipe = _Pipe(to_chrome_w, from_chrome_r, time.monotonic() + timeout_s)
    visit = PageVisit(url)
    try:
        target = pipe.call("Target.createTarget", url="about:blank")["targetId"]
        session = pipe.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        pipe.call("Network.enable", session)
        pipe.call("Page.enable", session)
        pipe.call("Page.navigate", session, url=url)
        pipe.wait_for("Page.loadEventFired", session)
        expression = (
            f"JSON.stringify(Array.from(document.querySelectorAll({json.dumps(selector)}))"
            ".map(e => e.textContent))"
        )
        found = pipe.call("Runtime.evaluate", session, expression=expression, returnByValue=True)
        visit.texts = json.loads(found["result"]["value"])
        shot = pipe.call(
            "Page.captureScreenshot", session, format="png", captureBeyondViewport=True
        )
        visit.screenshot = base64.b64decode(shot["data"])
        visit.requests = [
            e["params"]["request"]["url"]
            for e in pipe.events
            if e.get("method") == "Network.requestWillBeSent"
        ]
        pipe.call("Browser.close")
    finally:
        os.close(to_chrome_w)
        os.close(from_chrome_r)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
        shutil.rmtree(profile, ignore_errors=True)
    return visit


def distinct_colours(png: bytes) -> int:
    """How many different colours a PNG has (a blank page has one)."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 24)
    return len(colours or ())
