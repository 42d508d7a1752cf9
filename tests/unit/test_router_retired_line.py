"""A retiring major's line leaves the model's routing table before its servers stop:
a request naming it is then an unknown version (the router's 404), never a route to a
line with no server (503). An A/B experiment across majors naming it ends with it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.fake_nomad import FakeNomad

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.routing import Across, Line, RoutingTable, Split, Sticky, without_lines
from nomadml.engine import router
from nomadml.events import Event
from nomadml.settings import NomadSettings

V1 = Line("iris-v1", 1, (Split("1.0.0", 100),))
V2 = Line("iris-v2", 2, (Split("2.0.0", 100),))
V3 = Line("iris-v3", 3, (Split("3.0.0", 90), Split("3.1.0", 10)))


def test_a_retired_line_leaves_and_the_default_stays_the_newest() -> None:
    table = RoutingTable("iris", (V1, V2, V3), 3)
    assert without_lines(table, ["iris-v1"]) == RoutingTable("iris", (V2, V3), 3)
    assert without_lines(table, ["iris-v1", "iris-v2"]) == RoutingTable("iris", (V3,), 3)


def test_a_default_that_retires_moves_to_the_newest_kept_major() -> None:
    table = RoutingTable("iris", (V1, V2, V3), 3)
    assert without_lines(table, ["iris-v3"]) == RoutingTable("iris", (V1, V2), 2)


def test_an_experiment_across_a_retired_major_ends_one_across_kept_majors_stays() -> None:
    sticky = Sticky("header", "X-User")
    across_old = Across(((1, 50), (3, 50)), sticky)
    table = RoutingTable("iris", (V1, V2, V3), 3, across_old)
    assert without_lines(table, ["iris-v1"]) == RoutingTable("iris", (V2, V3), 3)
    across_kept = Across(((2, 50), (3, 50)), sticky)
    table = RoutingTable("iris", (V1, V2, V3), 3, across_kept)
    assert without_lines(table, ["iris-v1"]).across == across_kept


def test_unknown_lines_or_all_lines_leave_the_table_as_it_is() -> None:
    table = RoutingTable("iris", (V1, V2), 2)
    assert without_lines(table, ["other-v1"]) is table
    assert without_lines(table, ["iris-v1", "iris-v2"]) is table  # a table keeps a line


@pytest.fixture()
def api() -> Iterator[NomadAPI]:
    with FakeNomad() as nomad:  # no router registered: the write needs no confirming
        yield NomadAPI(NomadSettings.from_env({"NOMAD_ADDR": nomad.address}))


def test_retiring_lines_are_unrouted_once(api: NomadAPI) -> None:
    router.write_table(api, RoutingTable("iris", (V1, V2), 2))
    events: list[Event] = []
    router.unroute_lines(api, "iris", ["iris-v1"], events.append)
    assert router.read_table(api, "iris") == RoutingTable("iris", (V2,), 2)
    assert [e.message for e in events] == ["router: iris-v1 no longer routed"]
    written = api.get_variable("nomadml/routes/iris")
    router.unroute_lines(api, "iris", ["iris-v1"], events.append)  # again: no write
    assert api.get_variable("nomadml/routes/iris") == written and len(events) == 1


def test_without_a_router_table_nothing_is_written(api: NomadAPI) -> None:
    events: list[Event] = []
    router.unroute_lines(api, "iris", ["iris-v1"], events.append)
    assert api.get_variable("nomadml/routes/iris") is None and events == []
