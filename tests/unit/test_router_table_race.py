"""Two writers change one model's routing table at once (an operator's `router weights`
while a deploy moves its canary steps, a new major routed while an old one retires):
each change is written with check-and-set, so one that another write got in before is
re-applied to that write's table, never lost; a table that keeps changing under every
attempt is one line and exit 5, with nothing of this change written."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from click.testing import CliRunner
from support.fake_nomad import FakeNomad

from nomadml.adapters.model_store import ModelRegistry
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.cli.main import main
from nomadml.core.routing import Across, Line, RoutingTable, Split, Sticky
from nomadml.engine import experiment, router
from nomadml.errors import ExitCode
from nomadml.events import Event
from nomadml.settings import NomadSettings

V1 = Line("iris-v1", 1, (Split("1.0.0", 100),))
V2 = Line("iris-v2", 2, (Split("2.0.0", 100),))
PATH = "nomadml/routes/iris"


@pytest.fixture()
def nomad() -> Iterator[FakeNomad]:
    with FakeNomad() as fake:  # no router registered: a write needs no confirming
        yield fake


def _api(nomad: FakeNomad) -> NomadAPI:
    return NomadAPI(NomadSettings.from_env({"NOMAD_ADDR": nomad.address}))


def _other_writer_after_reads(
    monkeypatch: pytest.MonkeyPatch,
    api: NomadAPI,
    other: NomadAPI,
    change: Callable[[RoutingTable], RoutingTable],
    times: int,
) -> list[int]:
    """After each of `api`'s first `times` reads of the table, `other` writes `change`
    of what it finds (between that read and `api`'s write). Returns the reads' count."""
    reads = [0]
    read = api.get_variable

    def read_then_other_writes(path: str) -> Any:
        found = read(path)
        reads[0] += path == PATH
        if path == PATH and reads[0] <= times:
            current = router.read_table(other, "iris")
            assert current is not None
            router.write_table(other, change(current))
        return found

    monkeypatch.setattr(api, "get_variable", read_then_other_writes)
    return reads


def _two_lines(nomad: FakeNomad, monkeypatch: pytest.MonkeyPatch) -> tuple[NomadAPI, NomadAPI]:
    """Two writers of a table routing V1 and V2; 1.0.0 and 1.1.0 run."""
    api, other = _api(nomad), _api(nomad)
    router.write_table(api, RoutingTable("iris", (V1, V2), 2))
    monkeypatch.setattr(router, "_running_versions", lambda _api, _job: {"1.0.0", "1.1.0"})
    return api, other


def _put_answers(nomad: FakeNomad) -> int:
    return sum(1 for r in nomad.requests if r.method == "PUT" and r.path == f"/v1/var/{PATH}")


def test_weights_set_while_another_line_changes_keep_both(
    nomad: FakeNomad, monkeypatch: pytest.MonkeyPatch
) -> None:
    api, other = _two_lines(nomad, monkeypatch)
    canary = Line("iris-v2", 2, (Split("2.0.0", 90), Split("2.1.0", 10)))

    def canary_step(table: RoutingTable) -> RoutingTable:
        return RoutingTable("iris", (table.lines[0], canary), 2)

    reads = _other_writer_after_reads(monkeypatch, api, other, canary_step, times=1)
    weights = Line("iris-v1", 1, (Split("1.0.0", 50), Split("1.1.0", 50)))
    written = router.set_line(api, "iris", weights)
    assert written == RoutingTable("iris", (weights, canary), 2)
    assert router.read_table(other, "iris") == written
    assert reads[0] == 2  # the write refused (409), read again, applied again


def test_a_new_major_routed_while_weights_change_keeps_both(
    nomad: FakeNomad, monkeypatch: pytest.MonkeyPatch
) -> None:
    api, other = _api(nomad), _api(nomad)
    router.write_table(api, RoutingTable("iris", (V1,), 1))
    weights = Line("iris-v1", 1, (Split("1.0.0", 95), Split("1.1.0", 5)))
    reads = _other_writer_after_reads(
        monkeypatch, api, other, lambda t: RoutingTable("iris", (weights,), 1), times=2
    )
    events: list[Event] = []
    router.route_new_line(api, "iris", "iris-v2", "2.0.0", events.append)
    assert router.read_table(other, "iris") == RoutingTable("iris", (weights, V2), 2)
    assert reads[0] == 3
    assert [e.message for e in events] == [
        "router: iris-v2 routed to 2.0.0, the default for unversioned requests"
    ]


def test_a_line_unrouted_while_weights_change_keeps_the_weights(
    nomad: FakeNomad, monkeypatch: pytest.MonkeyPatch
) -> None:
    api, other = _api(nomad), _api(nomad)
    router.write_table(api, RoutingTable("iris", (V1, V2), 2))
    canary = Line("iris-v2", 2, (Split("2.0.0", 90), Split("2.1.0", 10)))
    _other_writer_after_reads(
        monkeypatch, api, other, lambda t: RoutingTable("iris", (t.lines[0], canary), 2), 1
    )
    router.unroute_lines(api, "iris", ["iris-v1"], lambda _event: None)
    assert router.read_table(other, "iris") == RoutingTable("iris", (canary,), 2)


def test_a_table_that_keeps_changing_is_one_line_and_nothing_of_this_change_is_written(
    nomad: FakeNomad, monkeypatch: pytest.MonkeyPatch
) -> None:
    api, other = _two_lines(nomad, monkeypatch)
    shares = iter(range(1, 100))

    def another_step(table: RoutingTable) -> RoutingTable:
        share = next(shares)
        line = Line("iris-v2", 2, (Split("2.0.0", 100 - share), Split("2.1.0", share)))
        return RoutingTable("iris", (table.lines[0], line), 2)

    _other_writer_after_reads(monkeypatch, api, other, another_step, times=router.ATTEMPTS)
    before = _put_answers(nomad)
    with pytest.raises(router.TableContended) as refused:
        router.set_line(api, "iris", Line("iris-v1", 1, (Split("1.1.0", 100),)))
    assert str(refused.value) == (
        f"iris: the routing table {PATH} was changed by another writer before each of "
        f"{router.ATTEMPTS} writes; nothing written, try again"
    )
    assert refused.value.exit_code == ExitCode.CONFLICT
    table = router.read_table(other, "iris")
    assert table is not None and table.lines[0] == V1  # this change: not written
    assert table.lines[1].splits[1] == Split("2.1.0", router.ATTEMPTS)  # theirs: all kept
    assert _put_answers(nomad) - before == 2 * router.ATTEMPTS  # theirs and each refused one


def test_an_ab_across_majors_started_then_ended_while_a_line_changes_keeps_the_line(
    nomad: FakeNomad, monkeypatch: pytest.MonkeyPatch
) -> None:
    api, other = _two_lines(nomad, monkeypatch)
    monkeypatch.setattr(router, "running_versions", lambda _api, _job: {"1.0.0", "2.0.0"})
    canary = Line("iris-v2", 2, (Split("2.0.0", 90), Split("2.1.0", 10)))

    def canary_step(table: RoutingTable) -> RoutingTable:
        return replace(table, lines=(table.lines[0], canary))

    reads = _other_writer_after_reads(monkeypatch, api, other, canary_step, times=1)
    sticky = Sticky("header", "X-User")
    started = experiment.start_across(api, "iris", "1=50,2=50", sticky)
    assert started == RoutingTable("iris", (V1, canary), 2, Across(((1, 50), (2, 50)), sticky))
    assert router.read_table(other, "iris") == started and reads[0] == 2

    steps = iter([Split("2.1.0", 20), Split("2.1.0", 30)])

    def next_step(table: RoutingTable) -> RoutingTable:
        share = next(steps).weight
        line = Line("iris-v2", 2, (Split("2.0.0", 100 - share), Split("2.1.0", share)))
        return replace(table, lines=(table.lines[0], line))

    reads = _other_writer_after_reads(monkeypatch, api, other, next_step, times=2)
    ended = experiment.end_across(api, "iris")
    stepped = Line("iris-v2", 2, (Split("2.0.0", 70), Split("2.1.0", 30)))
    assert ended == RoutingTable("iris", (V1, stepped), 2)
    assert router.read_table(other, "iris") == ended
    actions = [e["action"] for e in ModelRegistry(other).audit_log("iris")]
    assert sorted(actions) == ["ab-end", "ab-start"]


def test_router_weights_on_a_table_that_keeps_changing_is_one_line_exit_5(
    nomad: FakeNomad, monkeypatch: pytest.MonkeyPatch
) -> None:
    for version in ("1.0.0", "1.1.0"):
        tags = [f"version={version}"]
        nomad.put_service({"ID": version, "ServiceName": "iris", "JobID": "iris-v1", "Tags": tags})
    router.write_table(_api(nomad), RoutingTable("iris", (V1, V2), 2))
    read = NomadAPI.get_variable
    shares = iter(range(1, 100))

    def read_then_a_deploy_steps(self: NomadAPI, path: str) -> Any:
        found = read(self, path)
        if path == PATH:  # every read: another canary step lands before the write
            share = next(shares)
            line = Line("iris-v2", 2, (Split("2.0.0", 100 - share), Split("2.1.0", share)))
            items = RoutingTable("iris", (V1, line), 2).as_variable()
            nomad.put_variable(PATH, {**items, "written": str(share)})
        return found

    monkeypatch.setattr(NomadAPI, "get_variable", read_then_a_deploy_steps)
    args = ["--address", nomad.address, "router", "weights", "iris", "iris-v1"]
    run = CliRunner().invoke(main, [*args, "1.0.0=50", "1.1.0=50"])
    assert (run.exit_code, run.output) == (
        ExitCode.CONFLICT,
        f"nomadml: error: iris: the routing table {PATH} was changed by another writer "
        f"before each of {router.ATTEMPTS} writes; nothing written, try again\n",
    )
    monkeypatch.setattr(NomadAPI, "get_variable", read)
    assert router.read_table(_api(nomad), "iris") == RoutingTable(
        "iris",
        (
            V1,
            Line(
                "iris-v2",
                2,
                (Split("2.0.0", 100 - router.ATTEMPTS), Split("2.1.0", router.ATTEMPTS)),
            ),
        ),
        2,
    )
