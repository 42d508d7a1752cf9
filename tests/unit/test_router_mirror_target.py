"""`router weights ... --mirror VERSION=PERCENT` names a version with no running server:
refused like a weighted one, before the routing table is written (the copies would go to
a backend with no server)."""

from __future__ import annotations

from typing import Any

import pytest

from nomadml.core.routing import Line, Mirror, RoutingTable, Split
from nomadml.engine import router
from nomadml.errors import BadInput


@pytest.fixture
def line_running_1_0_0(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    table = RoutingTable("iris", (Line("iris-v1", 1, (Split("1.0.0", 100),)),), 1)
    monkeypatch.setattr(router, "read_table", lambda _api, _model: table)
    monkeypatch.setattr(router, "_running_versions", lambda _api, _job: {"1.0.0", "1.1.0"})
    written: list[Any] = []

    def write_table(_api: object, table: RoutingTable) -> str:
        written.append(table)
        return "x"

    monkeypatch.setattr(router, "write_table", write_table)
    monkeypatch.setattr(router, "confirm", lambda _api, _table, _serving: [])
    return written


def test_a_mirror_to_a_version_without_a_server_is_refused_before_the_write(
    line_running_1_0_0: list[Any],
) -> None:
    splits = (Split("1.0.0", 100), Split("1.9.9", 0))
    with pytest.raises(BadInput) as refused:
        router.set_line(None, "iris", Line("iris-v1", 1, splits, mirror=Mirror("1.9.9", 10)))  # type: ignore[arg-type]
    assert str(refused.value) == (
        "iris-v1: no running server of 1.9.9 (the mirror) (running: 1.0.0, 1.1.0)"
    )
    assert line_running_1_0_0 == []


def test_a_mirror_to_a_running_version_is_written(line_running_1_0_0: list[Any]) -> None:
    splits = (Split("1.0.0", 100), Split("1.1.0", 0))
    line = Line("iris-v1", 1, splits, mirror=Mirror("1.1.0", 10))
    router.set_line(None, "iris", line)  # type: ignore[arg-type]
    assert [t.line(1) for t in line_running_1_0_0] == [line]
