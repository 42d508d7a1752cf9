"""The fake Nomad behaves like Nomad where nomadml relies on it, checked through
nomadml's own client: a blocking read returns when what it reads changes (and only
then), and a check-and-set write against a stale index is refused with 409."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import pytest
from support.fake_nomad import FakeNomad

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.errors import Conflict
from nomadml.settings import NomadSettings

DEP = "d0000000-0000-0000-0000-000000000001"


def _api(fake: FakeNomad) -> NomadAPI:
    return NomadAPI(NomadSettings.from_env({"NOMAD_ADDR": fake.address}))


def _later(delay: float, change: Callable[[], object]) -> threading.Timer:
    """Make `change` while the test's read is blocked."""
    timer = threading.Timer(delay, change)
    timer.start()
    return timer


def test_a_blocking_read_returns_on_a_change(fake_nomad: FakeNomad) -> None:
    fake_nomad.put_deployment({"ID": DEP, "JobID": "iris-v1", "Status": "running"})
    api = _api(fake_nomad)
    seen = api.deployment(DEP)
    changed = {"ID": DEP, "JobID": "iris-v1", "Status": "successful"}
    writer = _later(0.3, lambda: fake_nomad.put_deployment(changed))
    started = time.monotonic()
    answer = api.deployment(DEP, index=seen.index, wait=10)
    writer.join()
    assert 0.25 < time.monotonic() - started < 5  # it waited for the change, not the wait
    assert answer.index > seen.index and answer.body["Status"] == "successful"


def test_a_blocking_read_without_a_change_waits_out(fake_nomad: FakeNomad) -> None:
    fake_nomad.put_deployment({"ID": DEP, "JobID": "iris-v1", "Status": "running"})
    api = _api(fake_nomad)
    seen = api.deployment(DEP)
    writer = _later(0.1, lambda: fake_nomad.put_variable("elsewhere", {"k": "v"}))
    started = time.monotonic()
    answer = api.deployment(DEP, index=seen.index, wait=0.6)  # another write: not a change
    writer.join()
    assert time.monotonic() - started >= 0.6
    assert answer.index == seen.index and answer.body["Status"] == "running"


def test_a_stale_check_and_set_write_gets_409(fake_nomad: FakeNomad) -> None:
    api = _api(fake_nomad)
    path = "nomadml/models/iris/1.0.0"
    created = api.put_variable(path, {"state": "new"}, cas=0)  # 0: only if absent
    with pytest.raises(Conflict) as absent_only:
        api.put_variable(path, {"state": "again"}, cas=0)
    assert absent_only.value.status == 409
    updated = api.put_variable(path, {"state": "serving"}, cas=created["ModifyIndex"])
    assert updated["ModifyIndex"] > created["ModifyIndex"]
    with pytest.raises(Conflict) as stale:
        api.put_variable(path, {"state": "lost"}, cas=created["ModifyIndex"])
    assert stale.value.status == 409
    assert json.loads(stale.value.message)["ModifyIndex"] == updated["ModifyIndex"]  # who won
    kept = api.get_variable(path)
    assert kept is not None and kept["Items"] == {"state": "serving"}  # the 409 wrote nothing
