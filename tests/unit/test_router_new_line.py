"""A new major's line joins the model's routing table when its deploy succeeds: the
default for unversioned requests when it is the newest major; a line or major the
table already routes keeps the operator's split; no router table, nothing written."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.fake_nomad import FakeNomad

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.routing import Line, RoutingTable, Split, with_new_line
from nomadml.engine import router
from nomadml.events import Event
from nomadml.settings import NomadSettings

V1 = Line("iris-v1", 1, (Split("1.0.0", 90), Split("1.1.0", 10)))
V3 = Line("iris-v3", 3, (Split("3.0.0", 100),))
V2 = Line("iris-v2", 2, (Split("2.0.0", 100),))


def test_the_newest_major_joins_as_the_default_an_older_one_beside_it() -> None:
    table = RoutingTable("iris", (V1,), 1)
    assert with_new_line(table, V2) == RoutingTable("iris", (V1, V2), 2)
    newer = RoutingTable("iris", (V1, V3), 3)
    assert with_new_line(newer, V2) == RoutingTable("iris", (V1, V2, V3), 3)


def test_a_line_or_major_already_routed_keeps_its_split() -> None:
    table = RoutingTable("iris", (V1,), 1)
    assert with_new_line(table, Line("iris-v1", 1, (Split("1.1.0", 100),))) is table
    assert with_new_line(table, Line("other-v1", 1, (Split("1.2.0", 100),))) is table


@pytest.fixture()
def api() -> Iterator[NomadAPI]:
    with FakeNomad() as nomad:  # no router registered: the write needs no confirming
        yield NomadAPI(NomadSettings.from_env({"NOMAD_ADDR": nomad.address}))


def test_a_deployed_new_major_is_written_into_the_table(api: NomadAPI) -> None:
    router.write_table(api, RoutingTable("iris", (V1,), 1))
    events: list[Event] = []
    router.route_new_line(api, "iris", "iris-v2", "2.0.0", events.append)
    assert router.read_table(api, "iris") == RoutingTable("iris", (V1, V2), 2)
    assert [e.message for e in events] == [
        "router: iris-v2 routed to 2.0.0, the default for unversioned requests"
    ]
    written = api.get_variable("nomadml/routes/iris")
    router.route_new_line(api, "iris", "iris-v2", "2.0.0", events.append)  # again: no write
    assert api.get_variable("nomadml/routes/iris") == written and len(events) == 1


def test_without_a_router_table_nothing_is_written(api: NomadAPI) -> None:
    events: list[Event] = []
    router.route_new_line(api, "iris", "iris-v2", "2.0.0", events.append)
    assert api.get_variable("nomadml/routes/iris") is None and events == []
