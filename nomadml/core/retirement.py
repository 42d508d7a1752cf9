"""Which old major lines retire when a new major is healthy (the spec's keep_majors)."""

from __future__ import annotations


def to_retire(lines: dict[str, int], deployed: str, keep: int) -> list[str]:
    """Job ids to retire: all but the `keep` highest majors; never `deployed`. Pure."""
    ranked = sorted(lines, key=lambda job: lines[job], reverse=True)
    kept = set(ranked[:keep]) | {deployed}
    return [job for job in ranked if job not in kept]
