"""Two writers change one model's routing table at the same time on the real Nomad
agent (as two deploys routing their new majors do): every change is written with
check-and-set against the table's ModifyIndex, a write the agent refuses (409) is
re-read and re-applied, so every change ends in the table and none is lost."""

from __future__ import annotations

import threading
from typing import Any

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.routing import Line, RoutingTable, Split
from nomadml.engine import router
from nomadml.errors import Conflict
from nomadml.events import Event
from nomadml.settings import NomadSettings

PER_WRITER = 8


class Writer(NomadAPI):
    """A writer of its own, as another process would be; counts its table writes and
    those the agent refused (409: the table changed since it was read)."""

    def __init__(self) -> None:
        super().__init__(NomadSettings.from_env())
        self.writes = self.refused = 0

    def put_variable(self, path: str, items: dict[str, str], cas: int | None = None) -> Any:
        self.writes += 1
        try:
            return super().put_variable(path, items, cas)
        except Conflict:
            self.refused += 1
            raise


def test_two_writers_routing_lines_at_once_lose_none(nomad: NomadAPI, model_name: str) -> None:
    first = Line(f"{model_name}-v1", 1, (Split("1.0.0", 100),))
    router.write_table(nomad, RoutingTable(model_name, (first,), 1))
    notes: list[Event] = []
    start = threading.Barrier(2)
    writers = [Writer(), Writer()]

    def write(api: NomadAPI, majors: range) -> None:
        start.wait(timeout=10)
        for major in majors:
            line, version = f"{model_name}-v{major}", f"{major}.0.0"
            router.route_new_line(api, model_name, line, version, notes.append)

    ranges = (range(2, 2 + PER_WRITER), range(20, 20 + PER_WRITER))
    threads = [threading.Thread(target=write, args=a) for a in zip(writers, ranges, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    table = router.read_table(nomad, model_name)
    assert table is not None
    routed = sorted(line.major for line in table.lines)
    writes, refused = sum(w.writes for w in writers), sum(w.refused for w in writers)
    print(f"routed after the race: {routed}; {writes} writes, {refused} refused (409)")
    assert routed == [1, *ranges[0], *ranges[1]], notes
    assert table.default_major == ranges[1][-1]
    assert len(notes) == 2 * PER_WRITER and all(" routed to " in n.message for n in notes), notes
    assert writes == 2 * PER_WRITER + refused  # each refused write re-applied once more
