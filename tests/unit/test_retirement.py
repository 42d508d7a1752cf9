"""Which old major lines retire once a new major is healthy
(nomadml.core.retirement.to_retire, the spec's lifecycle.keep_majors)."""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass

import pytest

from nomadml.core.retirement import to_retire

THREE = {"iris-v1": 1, "iris-v2": 2, "iris-v3": 3}


@dataclass(frozen=True)
class Case:
    lines: dict[str, int]  # job id -> major, as majors.py reads them from Nomad
    deployed: str
    keep: int
    retired: tuple[str, ...]  # highest major first


CASES: dict[str, Case] = {
    "keep 2 of 3: the oldest retires": Case(THREE, "iris-v3", 2, ("iris-v1",)),
    "keep 1 of 3: both older retire, highest first": Case(
        THREE, "iris-v3", 1, ("iris-v2", "iris-v1")
    ),
    "keep exactly as many as there are": Case(THREE, "iris-v3", 3, ()),
    "keep more than there are": Case(THREE, "iris-v3", 10, ()),
    "one line only": Case({"iris-v1": 1}, "iris-v1", 1, ()),
    "no lines listed": Case({}, "iris-v1", 2, ()),
    "deployed an older major, keep 1: it stays beside the highest": Case(
        THREE, "iris-v1", 1, ("iris-v2",)
    ),
    "deployed an older major, keep 2: nothing retires": Case(THREE, "iris-v1", 2, ()),
    "deployed the middle major, keep 1": Case(THREE, "iris-v2", 1, ("iris-v1",)),
    "majors rank as numbers, not as job ids": Case(
        {"iris-v9": 9, "iris-v10": 10, "iris-v11": 11}, "iris-v11", 2, ("iris-v9",)
    ),
    "gaps between majors": Case(
        {"iris-v1": 1, "iris-v4": 4, "iris-v7": 7}, "iris-v7", 1, ("iris-v4", "iris-v1")
    ),
    "listed in any order": Case(
        {"iris-v2": 2, "iris-v4": 4, "iris-v1": 1, "iris-v3": 3},
        "iris-v4",
        2,
        ("iris-v2", "iris-v1"),
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_to_retire(case: Case) -> None:
    """Retired: every line outside the `keep` highest majors except the deployed one,
    highest major first; the input mapping is left unchanged."""
    lines = copy.deepcopy(case.lines)
    assert to_retire(lines, case.deployed, case.keep) == list(case.retired)
    assert lines == case.lines


FIVE = {f"iris-v{m}": m for m in range(1, 6)}


@pytest.mark.parametrize("keep", range(1, 7))
@pytest.mark.parametrize("deployed", sorted(FIVE))
def test_deployed_never_retires_and_keep_lines_stay(deployed: str, keep: int) -> None:
    """For any deployed line and keep: the deployed line is never retired, the `keep`
    highest majors are never retired, and every other line is."""
    retired = to_retire(FIVE, deployed, keep)
    highest = {job for job, major in FIVE.items() if major > len(FIVE) - keep}
    assert deployed not in retired
    assert set(retired) == set(FIVE) - highest - {deployed}
    assert retired == sorted(retired, key=lambda job: FIVE[job], reverse=True)


@pytest.mark.parametrize("order", list(itertools.permutations(THREE)))
def test_order_of_lines_does_not_matter(order: tuple[str, ...]) -> None:
    """The answer depends on the majors, not on the order Nomad listed the jobs in."""
    lines = {job: THREE[job] for job in order}
    assert to_retire(lines, "iris-v3", 1) == ["iris-v2", "iris-v1"]
