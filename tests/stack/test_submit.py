"""Check-and-set on the real agent: of two writers planned at the same index, one wins.

Nomad's EnforceIndex alone lets both win now and then (its check reads a snapshot
before the raft apply); register_exclusively adds a variable lock decided in the FSM.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from nomadml.adapters.job_lock import lock_path, register_exclusively
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.errors import Conflict, ExitCode

ROUNDS = 25


def _job(job_id: str, mark: str) -> dict[str, Any]:
    return {
        "ID": job_id,
        "Name": job_id,
        "Type": "batch",
        "Datacenters": ["*"],
        "Meta": {"mark": mark},
        "TaskGroups": [
            {
                "Name": "g",
                "Count": 0,
                "Tasks": [{"Name": "t", "Driver": "raw_exec", "Config": {"command": "/bin/true"}}],
            }
        ],
    }


@pytest.fixture()
def job_id(model_name: str) -> str:
    return f"{model_name}-cas"  # purged with the model's other jobs


def _race(nomad: NomadAPI, job_id: str, round_: int) -> list[object]:
    index = int((nomad.job(job_id) or {}).get("JobModifyIndex", 0))
    barrier = threading.Barrier(2, timeout=30)
    outcomes: list[object] = []

    def write(mark: str) -> None:
        api = NomadAPI(nomad.settings)
        barrier.wait()
        try:
            outcomes.append(register_exclusively(api, _job(job_id, mark), enforce_index=index))
        except Conflict as err:
            outcomes.append(err)

    threads = [threading.Thread(target=write, args=(f"{round_}-{k}",)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return outcomes


def test_concurrent_writers_at_one_index_never_both_win(nomad: NomadAPI, job_id: str) -> None:
    register_exclusively(nomad, _job(job_id, "start"), enforce_index=0)
    for round_ in range(ROUNDS):
        before = int((nomad.job(job_id) or {})["Version"])
        outcomes = _race(nomad, job_id, round_)
        wins = [o for o in outcomes if isinstance(o, dict)]
        losses = [o for o in outcomes if isinstance(o, Conflict)]
        assert len(wins) == 1 and len(losses) == 1, (round_, outcomes)
        assert losses[0].exit_code is ExitCode.CONFLICT
        assert "changed since it was planned" in str(losses[0])
        assert "\n" not in str(losses[0])
        assert int((nomad.job(job_id) or {})["Version"]) == before + 1  # one new version only


def test_a_held_lock_names_its_holder_and_nothing_is_registered(
    nomad: NomadAPI, job_id: str
) -> None:
    register_exclusively(nomad, _job(job_id, "start"), enforce_index=0)
    job = nomad.job(job_id) or {}
    lock = nomad.acquire_lock(lock_path(job_id), "30s", {"holder": "ops@bastion pid 7"})
    try:
        with pytest.raises(Conflict, match="being registered by ops@bastion pid 7"):
            register_exclusively(
                nomad, _job(job_id, "late"), enforce_index=int(job["JobModifyIndex"])
            )
    finally:
        nomad.release_lock(lock_path(job_id), lock)
    assert (nomad.job(job_id) or {})["Version"] == job["Version"]
    # released: the same write now goes through
    register_exclusively(nomad, _job(job_id, "late"), enforce_index=int(job["JobModifyIndex"]))
    assert (nomad.job(job_id) or {})["Meta"]["mark"] == "late"


def test_a_stale_plan_is_refused_before_nomad_sees_it(nomad: NomadAPI, job_id: str) -> None:
    register_exclusively(nomad, _job(job_id, "start"), enforce_index=0)
    planned = int((nomad.job(job_id) or {})["JobModifyIndex"])
    register_exclusively(nomad, _job(job_id, "other"), enforce_index=planned)
    with pytest.raises(Conflict, match=r"planned at job modify index \d+, it is now \d+"):
        register_exclusively(nomad, _job(job_id, "mine"), enforce_index=planned)
    assert (nomad.job(job_id) or {})["Meta"]["mark"] == "other"
