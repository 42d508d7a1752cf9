"""The headless-Chromium check the report's stack test relies on (tests/support/browser.py)
must see what a page fetches: a page with an external script (on loopback: nothing leaves
the machine) shows the request; a self-contained page shows none but its own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support.browser import CHROMIUM, distinct_colours, visit


@pytest.fixture(autouse=True)
def _chromium() -> None:
    if not Path(CHROMIUM).exists():
        message = f"no {CHROMIUM}: scripts/install-deps installs Debian's chromium"
        if os.environ.get("NOMADML_REQUIRE_STACK") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


def test_an_external_script_is_seen(tmp_path: Path) -> None:
    page = tmp_path / "external.html"
    page.write_text(
        '<!DOCTYPE html><html><head><script src="http://127.0.0.1:9/plot.js"></script></head>'
        '<body><svg><text>Error rate</text></svg><img src="http://localhost:9/x.png"></body></html>'
    )
    seen = visit(page)
    assert seen.requests[0] == page.resolve().as_uri()
    assert set(seen.outside_requests()) == {
        "http://127.0.0.1:9/plot.js",
        "http://localhost:9/x.png",
    }
    assert seen.texts == ["Error rate"]


def test_a_self_contained_page_fetches_nothing_else(tmp_path: Path) -> None:
    page = tmp_path / "inline.html"
    page.write_text(
        "<!DOCTYPE html><html><body style='background:#fff'><h1>Title</h1>"
        "<svg width='200' height='100'><rect width='100' height='50' fill='#d95f02'/>"
        "<text x='10' y='80'>Latency</text></svg></body></html>"
    )
    seen = visit(page)
    assert seen.outside_requests() == []
    assert seen.texts == ["Latency"]
    assert distinct_colours(seen.screenshot) > 2  # white, orange, and the text's shades
