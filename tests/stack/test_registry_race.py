"""Registry writes racing each other on the real agent: Nomad Variables'
check-and-set decides, and nobody's update is lost.

- the same version registered twice at once: one record, one audit entry, the
  other writer told "already registered";
- promote and reject of one version at once: exactly one wins; the loser re-reads
  and is refused by the stage rules, so a rejected version is never promoted;
- two writers updating different fields of one record: both fields survive.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest

from nomadml.adapters.model_store import ModelRegistry
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.model_version import ModelVersion
from nomadml.errors import BadInput

ROUNDS = 10


@pytest.fixture()
def model(model_name: str) -> str:
    return model_name  # its variables go with it (conftest's model_name)


def _at_once(*writes: Callable[[], Any]) -> list[Any]:
    """Run each write in its own thread and client, released together."""
    barrier = threading.Barrier(len(writes), timeout=30)
    outcomes: list[Any] = [None] * len(writes)

    def run(i: int) -> None:
        barrier.wait()
        try:
            outcomes[i] = writes[i]()
        except BadInput as err:
            outcomes[i] = err

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(writes))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return outcomes


def _record(model: str, version: str) -> dict[str, Any]:
    return {
        "model": model,
        "version": version,
        "stage": "candidate",
        "digest": "sha256:" + "a" * 64,
    }


def _registry(nomad: NomadAPI) -> ModelRegistry:
    return ModelRegistry(NomadAPI(nomad.settings))


# Each writer has its own client, as two operators (or a retraining job) would.
def _create(nomad: NomadAPI, model: str, version: str) -> None:
    _registry(nomad).create(_record(model, version))


def _move(nomad: NomadAPI, model: str, version: str, stage: str) -> ModelVersion:
    return _registry(nomad).set_stage(model, version, stage, {})


def _update(nomad: NomadAPI, model: str, fields: dict[str, Any]) -> None:
    _registry(nomad).update(model, "3.0.0", fields)


def test_one_version_registered_twice_at_once(nomad: NomadAPI, model: str) -> None:
    for i in range(ROUNDS):
        version = f"1.{i}.0"
        outcomes = _at_once(
            partial(_create, nomad, model, version),
            partial(_create, nomad, model, version),
        )
        refused = [o for o in outcomes if isinstance(o, BadInput)]
        assert len(refused) == 1, outcomes
        assert "is already registered" in str(refused[0])
    registry = ModelRegistry(nomad)
    assert [r.version for r in registry.versions(model)] == [f"1.{i}.0" for i in range(ROUNDS)]
    registrations = [e for e in registry.audit_log(model) if e["action"] == "register"]
    assert len(registrations) == ROUNDS


def test_promote_and_reject_at_once_never_both(nomad: NomadAPI, model: str) -> None:
    registry = ModelRegistry(nomad)
    winners = []
    for i in range(ROUNDS):
        version = f"2.{i}.0"
        registry.create(_record(model, version))
        registry.set_stage(model, version, "validated", {})
        outcomes = _at_once(
            partial(_move, nomad, model, version, "production"),
            partial(_move, nomad, model, version, "rejected"),
        )
        won = [o.stage for o in outcomes if isinstance(o, ModelVersion)]
        lost = [o for o in outcomes if isinstance(o, BadInput)]
        assert len(won) == 1 and len(lost) == 1, outcomes
        assert "can move to" in str(lost[0])
        record = registry.get(model, version)
        assert record is not None and record.stage == won[0]
        moves = [
            e["details"]["to"]
            for e in registry.audit_log(model)
            if e["action"] == "stage" and e["version"] == version
        ]
        assert moves == ["validated", won[0]]  # the loser left no trace
        winners.append(won[0])
    print("winners:", winners)


def test_two_updates_of_one_record_both_survive(nomad: NomadAPI, model: str) -> None:
    registry = ModelRegistry(nomad)
    registry.create(_record(model, "3.0.0"))
    for i in range(ROUNDS):
        _at_once(
            partial(_update, nomad, model, {"left": str(i)}),
            partial(_update, nomad, model, {"right": str(i)}),
        )
        record = registry.get(model, "3.0.0")
        assert record is not None
        assert (record.record.get("left"), record.record.get("right")) == (str(i), str(i)), record
