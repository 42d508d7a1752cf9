"""Rollback, decided (nomadml.core.rollback_plan): which earlier job version to return
to, and how that version is re-registered so it comes back all at once.

The job and version dicts below are shaped like Nomad's answers to
`GET /v1/job/:id` and `GET /v1/job/:id/versions` (versions newest first)."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

import pytest

from nomadml.core.rollback_plan import SERVER_FIELDS, all_at_once, choose_target
from nomadml.errors import BadInput

JOB_ID = "iris-v1"


def job_version(
    version: int,
    model: str | None,
    *,
    stable: bool = True,
    counts: tuple[int | None, ...] = (2,),
    group_update: bool = True,
    job_update: bool = True,
) -> dict[str, Any]:
    """One job version as Nomad reports it: server-owned fields, the nomadml meta
    (None: a job version without nomadml.version), task groups with Count and Update,
    and the job-level Update."""
    meta: dict[str, str] = {"nomadml.model": "iris", "nomadml.major": "1"}
    if model is not None:
        meta["nomadml.version"] = model
    update = {
        "Stagger": 30_000_000_000,
        "MaxParallel": 1,
        "HealthCheck": "checks",
        "MinHealthyTime": 10_000_000_000,
        "HealthyDeadline": 180_000_000_000,
        "ProgressDeadline": 600_000_000_000,
        "AutoRevert": True,
        "AutoPromote": False,
        "Canary": 1,
    }
    return {
        "ID": JOB_ID,
        "Name": JOB_ID,
        "Namespace": "default",
        "Region": "global",
        "Type": "service",
        "Priority": 50,
        "Datacenters": ["*"],
        "Stop": False,
        "Version": version,
        "Stable": stable,
        "Status": "running",
        "StatusDescription": "",
        "SubmitTime": 1_700_000_000_000_000_000 + version,
        "CreateIndex": 10,
        "ModifyIndex": 100 + version,
        "JobModifyIndex": 100 + version,
        "VersionTag": None,
        "Meta": meta,
        "TaskGroups": [
            {
                "Name": f"model-{i}",
                "Count": count,
                "Update": copy.deepcopy(update) if group_update else None,
                "Tasks": [{"Name": "server", "Driver": "docker"}],
            }
            for i, count in enumerate(counts)
        ],
        "Update": copy.deepcopy(update) if job_update else None,
    }


History = tuple[tuple[int, str | None, bool], ...]


def versions(history: History) -> list[dict[str, Any]]:
    """Nomad's version list from (Version, model version, Stable), newest first."""
    return [job_version(v, model, stable=stable) for v, model, stable in history]


# ------------------------------------------------------------------ choose_target


@dataclass(frozen=True)
class Target:
    current: tuple[int, str | None]  # the job now: (Version, model version)
    history: History  # what /versions answers, newest first
    to: str | None
    expected: int  # the job Version chosen


TARGETS: dict[str, Target] = {
    "the previous stable release": Target(
        (3, "1.2.0"), ((3, "1.2.0", False), (2, "1.1.0", True), (1, "1.0.0", True)), None, 2
    ),
    "an unstable earlier version is skipped": Target(
        (3, "1.2.0"), ((3, "1.2.0", False), (2, "1.1.0", False), (1, "1.0.0", True)), None, 1
    ),
    "earlier job versions running the current model version are skipped": Target(
        (4, "1.2.0"),
        ((4, "1.2.0", True), (3, "1.2.0", True), (2, "1.1.0", True), (1, "1.0.0", True)),
        None,
        2,
    ),
    "versions newer than the job's own are not earlier": Target(
        (3, "1.2.0"),
        ((5, "1.4.0", True), (4, "1.3.0", True), (3, "1.2.0", True), (2, "1.1.0", True)),
        None,
        2,
    ),
    "the job's own version never counts, even if it ran another model": Target(
        (3, "1.2.0"), ((3, "1.1.0", True), (2, "1.0.0", True)), None, 2
    ),
    "a current job without nomadml.version returns to one that has it": Target(
        (3, None), ((3, None, True), (2, None, True), (1, "1.0.0", True)), None, 1
    ),
    "to: the newest earlier version running it": Target(
        (4, "1.2.0"),
        ((4, "1.2.0", True), (3, "1.0.0", True), (2, "1.1.0", True), (1, "1.0.0", True)),
        "1.0.0",
        3,
    ),
    "to: a stable version is preferred over a newer unstable one": Target(
        (4, "1.2.0"),
        ((4, "1.2.0", True), (3, "1.0.0", False), (2, "1.0.0", True), (1, "1.1.0", True)),
        "1.0.0",
        2,
    ),
    "to: with no stable version running it, the newest unstable one": Target(
        (4, "1.2.0"),
        ((4, "1.2.0", True), (3, "1.0.0", False), (2, "1.0.0", False), (1, "1.1.0", True)),
        "1.0.0",
        3,
    ),
    "to: skips a newer stable version running another model": Target(
        (3, "1.2.0"), ((3, "1.2.0", True), (2, "1.1.0", True), (1, "1.0.0", True)), "1.0.0", 1
    ),
    "to: versions newer than the job's own are not earlier": Target(
        (2, "1.2.0"), ((3, "1.0.0", True), (2, "1.2.0", True), (1, "1.0.0", False)), "1.0.0", 1
    ),
    "to: may name the current model version, at an earlier job version": Target(
        (3, "1.2.0"), ((3, "1.2.0", False), (2, "1.2.0", True), (1, "1.1.0", True)), "1.2.0", 2
    ),
}


@pytest.mark.parametrize("case", TARGETS.values(), ids=TARGETS.keys())
def test_choose_target(case: Target) -> None:
    """The chosen job version: without `to`, the newest stable earlier version whose
    model version differs from the running one; with `to`, the newest earlier version
    running `to`, a stable one first. The very dict from Nomad's list is returned."""
    job = job_version(*case.current)
    listed = versions(case.history)
    target = choose_target(job, listed, case.to)
    assert target["Version"] == case.expected
    assert any(target is v for v in listed)


@dataclass(frozen=True)
class Refusal:
    current: tuple[int, str | None]
    history: History
    to: str | None
    message: str  # the whole error, matched as a regex


NO_TARGET = re.escape(
    f"{JOB_ID}: no earlier stable job version with another model version to roll back to"
)


def not_kept(to: str, kept: str) -> str:
    return re.escape(
        f"{JOB_ID}: model version {to} is not among the job versions Nomad kept (kept: {kept})"
    )


REFUSALS: dict[str, Refusal] = {
    "only the current job version": Refusal((1, "1.0.0"), ((1, "1.0.0", True),), None, NO_TARGET),
    "no versions at all": Refusal((1, "1.0.0"), (), None, NO_TARGET),
    "every earlier version ran the same model": Refusal(
        (3, "1.2.0"), ((3, "1.2.0", True), (2, "1.2.0", True), (1, "1.2.0", True)), None, NO_TARGET
    ),
    "the only other model version never became stable": Refusal(
        (2, "1.2.0"), ((2, "1.2.0", True), (1, "1.1.0", False)), None, NO_TARGET
    ),
    "another model version only in a newer job version": Refusal(
        (2, "1.2.0"), ((3, "1.3.0", True), (2, "1.2.0", True)), None, NO_TARGET
    ),
    "to: not kept; the kept ones listed sorted, once each": Refusal(
        (4, "1.2.0"),
        ((4, "1.2.0", True), (3, "1.1.0", True), (2, "1.0.0", True), (1, "1.1.0", False)),
        "0.9.0",
        not_kept("0.9.0", "1.0.0, 1.1.0"),
    ),
    "to: many kept, listed sorted whatever Nomad's order": Refusal(
        (6, "1.5.0"),
        (
            (6, "1.5.0", True),
            (5, "1.3.0", True),
            (4, "1.0.0", True),
            (3, "1.4.0", False),
            (2, "0.9.0", True),
            (1, "1.2.0", True),
        ),
        "2.0.0",
        not_kept("2.0.0", "0.9.0, 1.0.0, 1.2.0, 1.3.0, 1.4.0"),
    ),
    "to: nothing earlier kept": Refusal(
        (1, "1.0.0"), ((1, "1.0.0", True),), "0.9.0", not_kept("0.9.0", "none")
    ),
    "to: only in a newer job version, which is not listed as kept": Refusal(
        (2, "1.2.0"),
        ((3, "1.3.0", True), (2, "1.2.0", True), (1, "1.1.0", True)),
        "1.3.0",
        not_kept("1.3.0", "1.1.0"),
    ),
    "to: an earlier version without nomadml.version is listed as ?": Refusal(
        (3, "1.2.0"),
        ((3, "1.2.0", True), (2, None, True), (1, "1.0.0", True)),
        "0.9.0",
        not_kept("0.9.0", "1.0.0, ?"),
    ),
}


@pytest.mark.parametrize("case", REFUSALS.values(), ids=REFUSALS.keys())
def test_choose_target_refuses(case: Refusal) -> None:
    """With nothing to return to, a BadInput naming the job; with `to`, it also says
    which model versions the earlier job versions Nomad kept were running."""
    job = job_version(*case.current)
    with pytest.raises(BadInput, match=f"^{case.message}$"):
        choose_target(job, versions(case.history), case.to)


def test_choose_target_does_not_mutate() -> None:
    """Choosing reads the job and its versions and changes neither."""
    job = job_version(3, "1.2.0")
    listed = versions(((3, "1.2.0", True), (2, "1.1.0", True), (1, "1.0.0", False)))
    before = copy.deepcopy((job, listed))
    choose_target(job, listed, None)
    choose_target(job, listed, "1.0.0")
    assert (job, listed) == before


# -------------------------------------------------------------------- all_at_once


def test_server_fields_are_exactly_nomads() -> None:
    """The fields Nomad owns (and refuses or ignores on register) are these."""
    assert SERVER_FIELDS == (
        "Version",
        "JobModifyIndex",
        "ModifyIndex",
        "CreateIndex",
        "SubmitTime",
        "Stable",
        "Status",
        "StatusDescription",
        "VersionTag",
    )


def test_all_at_once_drops_server_fields_and_keeps_the_rest() -> None:
    """Every server-owned field is dropped; every other top-level field stays, with
    its value unchanged apart from Stop, Meta, TaskGroups' and Update's canary."""
    target = job_version(2, "1.1.0")
    new = all_at_once(target, "1.2.0")
    assert set(new) == set(target) - set(SERVER_FIELDS)
    untouched = set(target) - set(SERVER_FIELDS) - {"Stop", "Meta", "TaskGroups", "Update"}
    assert untouched == {"ID", "Name", "Namespace", "Region", "Type", "Priority", "Datacenters"}
    assert {k: new[k] for k in untouched} == {k: target[k] for k in untouched}


@pytest.mark.parametrize("stop", [True, False])
def test_all_at_once_is_not_stopped(stop: bool) -> None:
    """The new version runs: Stop is False even when the target version was stopped."""
    target = job_version(2, "1.1.0")
    target["Stop"] = stop
    assert all_at_once(target, "1.2.0")["Stop"] is False


@dataclass(frozen=True)
class Placement:
    counts: tuple[int | None, ...]  # one task group per count
    group_update: bool
    job_update: bool
    groups: tuple[tuple[int, bool] | None, ...]  # (Canary, AutoPromote) per group; None: no Update
    job: tuple[int, bool] | None  # the job-level (Canary, AutoPromote); None: no Update


PLACEMENTS: dict[str, Placement] = {
    "one group": Placement((2,), True, True, ((2, True),), (2, True)),
    "one allocation": Placement((1,), True, True, ((1, True),), (1, True)),
    "several groups: each its count, the job the largest": Placement(
        (2, 5, 3), True, True, ((2, True), (5, True), (3, True)), (5, True)
    ),
    "a group scaled to zero: no canary, no auto-promote": Placement(
        (0, 3), True, True, ((0, False), (3, True)), (3, True)
    ),
    "every group at zero": Placement((0,), True, True, ((0, False),), (0, False)),
    "a group without Count counts as zero": Placement(
        (None, 2), True, True, ((0, False), (2, True)), (2, True)
    ),
    "groups without Update stay without": Placement((2,), False, True, (None,), (2, True)),
    "no job-level Update: none added": Placement((2,), True, False, ((2, True),), None),
    "no Update anywhere": Placement((4,), False, False, (None,), None),
    "no task groups: the job-level canary is zero": Placement((), True, True, (), (0, False)),
}


@pytest.mark.parametrize("case", PLACEMENTS.values(), ids=PLACEMENTS.keys())
def test_all_at_once_places_every_allocation_as_a_canary(case: Placement) -> None:
    """Canary = Count and AutoPromote = (Count > 0) in every group with an Update, and
    at job level canary = the largest group count; the other Update fields stay."""
    target = job_version(
        2, "1.1.0", counts=case.counts, group_update=case.group_update, job_update=case.job_update
    )
    new = all_at_once(target, "1.2.0")
    assert len(new["TaskGroups"]) == len(case.counts)
    for tg, old, expected in zip(new["TaskGroups"], target["TaskGroups"], case.groups, strict=True):
        if expected is None:
            assert tg["Update"] is None
        else:
            assert (tg["Update"]["Canary"], tg["Update"]["AutoPromote"]) == expected
            assert tg["Update"] == {
                **old["Update"],
                "Canary": expected[0],
                "AutoPromote": expected[1],
            }
        assert {k: v for k, v in tg.items() if k != "Update"} == {
            k: v for k, v in old.items() if k != "Update"
        }
    if case.job is None:
        assert new["Update"] is None
    else:
        assert new["Update"] == {
            **target["Update"],
            "Canary": case.job[0],
            "AutoPromote": case.job[1],
        }


@dataclass(frozen=True)
class MetaCase:
    meta: dict[str, str] | None
    expected: dict[str, str]


METAS: dict[str, MetaCase] = {
    "added beside the existing meta": MetaCase(
        {"nomadml.version": "1.1.0", "nomadml.model": "iris"},
        {"nomadml.version": "1.1.0", "nomadml.model": "iris", "nomadml.rolled_back_from": "1.2.0"},
    ),
    "an earlier rollback's mark is replaced": MetaCase(
        {"nomadml.version": "1.1.0", "nomadml.rolled_back_from": "1.0.0"},
        {"nomadml.version": "1.1.0", "nomadml.rolled_back_from": "1.2.0"},
    ),
    "no meta at all": MetaCase(None, {"nomadml.rolled_back_from": "1.2.0"}),
    "empty meta": MetaCase({}, {"nomadml.rolled_back_from": "1.2.0"}),
}


@pytest.mark.parametrize("case", METAS.values(), ids=METAS.keys())
def test_all_at_once_marks_where_it_rolled_back_from(case: MetaCase) -> None:
    """Meta gains nomadml.rolled_back_from = the model version rolled back from; the
    rest of the target's meta (its nomadml.version above all) is kept."""
    target = job_version(2, "1.1.0")
    target["Meta"] = case.meta
    assert all_at_once(target, "1.2.0")["Meta"] == case.expected


@pytest.mark.parametrize("job_update", [True, False])
def test_all_at_once_does_not_mutate_its_input(job_update: bool) -> None:
    """The target (an entry of Nomad's version list) is left as it was, and the new
    job shares no mutable part with it."""
    target = job_version(2, "1.1.0", counts=(2, 0), job_update=job_update)
    target["Stop"] = True
    before = copy.deepcopy(target)
    new = all_at_once(target, "1.2.0")
    assert target == before
    new["Meta"]["x"] = "y"
    new["TaskGroups"][0]["Update"]["Canary"] = 99
    new["TaskGroups"][0]["Tasks"].append({"Name": "extra"})
    new["Datacenters"].append("dc9")
    if job_update:
        new["Update"]["MaxParallel"] = 99
    assert target == before


def test_a_rollback_the_caller_promotes_is_not_auto_promoted() -> None:
    """Where a router routes the line the guard's rollback is promoted by nomadml after it
    saw the canaries healthy (the router's table moves first): Nomad must not promote on
    its own; the canary count stays the group's count, all at once as before."""
    held = all_at_once(job_version(2, "1.1.0"), "1.2.0", auto_promote=False)
    assert [tg["Update"]["AutoPromote"] for tg in held["TaskGroups"]] == [False]
    assert [tg["Update"]["Canary"] for tg in held["TaskGroups"]] == [2]
    assert held["Update"]["AutoPromote"] is False
    auto = all_at_once(job_version(2, "1.1.0"), "1.2.0")
    assert auto["Update"]["AutoPromote"] is True
    assert [tg["Update"]["AutoPromote"] for tg in auto["TaskGroups"]] == [True]
