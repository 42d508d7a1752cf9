"""Events form a closed set of kinds: what a webhook receiver or a `--json` reader
may see is listed once, and nothing else can be emitted."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nomadml.events import EVENT_KINDS, Event

PACKAGE = Path(__file__).resolve().parents[2] / "nomadml"


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown event kind 'promoted'"):
        Event("promoted", "iris-v1", "typo")  # type: ignore[arg-type]


def test_every_kind_the_product_emits_is_listed_and_every_listed_kind_is_emitted() -> None:
    emitted: set[str] = set()
    for source in PACKAGE.rglob("*.py"):
        text = source.read_text(encoding="utf-8")
        emitted |= set(re.findall(r'\bEvent\(\s*"([a-z-]+)"', text))
    assert emitted <= EVENT_KINDS
    assert EVENT_KINDS - emitted == set(), "a listed kind nothing emits"
