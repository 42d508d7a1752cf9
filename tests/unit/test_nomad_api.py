"""The Nomad adapter against a fake Nomad on loopback: reads retried on transient
failures, writes never retried, Nomad's refusals mapped to one line."""

from __future__ import annotations

import pytest
from support.fake_nomad import FakeNomad

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.errors import Conflict, NomadAPIError
from nomadml.settings import NomadSettings


def api(fake: FakeNomad) -> NomadAPI:
    return NomadAPI(NomadSettings.from_env({"NOMAD_ADDR": fake.address}))


def test_reads_are_retried_on_transient_errors(fake_nomad: FakeNomad) -> None:
    fake_nomad.script("GET", "/v1/status/leader", 503, b"busy")
    fake_nomad.script("GET", "/v1/status/leader", 500, b"rpc error: no leader")
    assert api(fake_nomad).leader() == "127.0.0.1:4647"  # the third try: the agent's answer
    assert len(fake_nomad.requests) == 3


def test_reads_give_up_after_three_tries(fake_nomad: FakeNomad) -> None:
    fake_nomad.script("GET", "/v1/status/leader", 503, b"busy", times=3)
    with pytest.raises(NomadAPIError, match="HTTP 503"):
        api(fake_nomad).leader()  # a fourth try would have had the leader
    assert len(fake_nomad.requests) == 3


def test_writes_are_not_retried(fake_nomad: FakeNomad) -> None:
    fake_nomad.script("PUT", "/v1/job/x", 503, b"busy")
    with pytest.raises(NomadAPIError):
        api(fake_nomad).register({"ID": "x"}, enforce_index=0)
    assert [(r.method, r.path, r.query) for r in fake_nomad.requests] == [("PUT", "/v1/job/x", {})]
    assert fake_nomad.put_job({"ID": "x"})["Version"] == 0  # and no retry registered it


def test_lost_race_is_a_conflict_and_not_retried(fake_nomad: FakeNomad) -> None:
    stale = fake_nomad.put_job({"ID": "x"})["JobModifyIndex"]
    fake_nomad.put_job({"ID": "x"})  # someone else registered it since
    with pytest.raises(Conflict, match="conflicting job modify index"):
        api(fake_nomad).register({"ID": "x"}, enforce_index=stale)
    assert len(fake_nomad.requests) == 1


def test_a_job_that_appeared_or_vanished_since_the_plan_is_a_lost_race(
    fake_nomad: FakeNomad,
) -> None:
    """Planned as new but registered meanwhile, or planned as existing but purged
    meanwhile: Nomad says so with HTTP 500; nomadml reports a conflict (exit 5)."""
    fake_nomad.put_job({"ID": "x"})
    with pytest.raises(Conflict, match="job already exists"):
        api(fake_nomad).register({"ID": "x"}, enforce_index=0)
    with pytest.raises(Conflict, match="job does not exist"):
        api(fake_nomad).register({"ID": "gone"}, enforce_index=7)


def test_not_found_is_not_retried(fake_nomad: FakeNomad) -> None:
    assert api(fake_nomad).job("nope") is None
    assert len(fake_nomad.requests) == 1
