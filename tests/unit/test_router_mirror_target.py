"""`router weights ... --mirror VERSION=PERCENT` names a version with no running server:
refused like a weighted one, before the routing table is written (the copies would go to
a backend with no server)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.fake_nomad import FakeNomad

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.routing import Line, Mirror, RoutingTable, Split
from nomadml.engine import router
from nomadml.errors import BadInput
from nomadml.settings import NomadSettings


@pytest.fixture
def line_running_1_0_0(monkeypatch: pytest.MonkeyPatch) -> Iterator[NomadAPI]:
    with FakeNomad() as nomad:  # no router registered: the write needs no confirming
        api = NomadAPI(NomadSettings.from_env({"NOMAD_ADDR": nomad.address}))
        router.write_table(
            api, RoutingTable("iris", (Line("iris-v1", 1, (Split("1.0.0", 100),)),), 1)
        )
        monkeypatch.setattr(router, "_running_versions", lambda _api, _job: {"1.0.0", "1.1.0"})
        yield api


def test_a_mirror_to_a_version_without_a_server_is_refused_before_the_write(
    line_running_1_0_0: NomadAPI,
) -> None:
    api = line_running_1_0_0
    before = api.get_variable("nomadml/routes/iris")
    splits = (Split("1.0.0", 100), Split("1.9.9", 0))
    with pytest.raises(BadInput) as refused:
        router.set_line(api, "iris", Line("iris-v1", 1, splits, mirror=Mirror("1.9.9", 10)))
    assert str(refused.value) == (
        "iris-v1: no running server of 1.9.9 (the mirror) (running: 1.0.0, 1.1.0)"
    )
    assert api.get_variable("nomadml/routes/iris") == before


def test_a_mirror_to_a_running_version_is_written(line_running_1_0_0: NomadAPI) -> None:
    splits = (Split("1.0.0", 100), Split("1.1.0", 0))
    line = Line("iris-v1", 1, splits, mirror=Mirror("1.1.0", 10))
    router.set_line(line_running_1_0_0, "iris", line)
    table = router.read_table(line_running_1_0_0, "iris")
    assert table is not None and table.line(1) == line
