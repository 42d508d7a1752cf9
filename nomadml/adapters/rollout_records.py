"""Rollout records: what each deploy, promotion and rollback did and measured,
kept in Nomad Variables next to the job (`nomadml/rollouts/<job>/<job version>`),
so `nomadml history` and the Nomad UI's variables page tell the same story."""

from __future__ import annotations

import json
import time
from typing import Any

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.errors import Conflict, NomadAPIError

PREFIX = "nomadml/rollouts"


def record(api: NomadAPI, job_id: str, job_version: int, fields: dict[str, Any]) -> None:
    """Add `fields` to the record of one job version's rollout (check-and-set, so two
    writers never drop each other's fields)."""
    path = f"{PREFIX}/{job_id}/{job_version}"
    new = {k: v if isinstance(v, str) else json.dumps(v, sort_keys=True) for k, v in fields.items()}
    new["recorded_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for _ in range(5):
        current = api.get_variable(path) or {}
        items = {**(current.get("Items") or {}), **new}
        try:
            api.put_variable(path, items, cas=int(current.get("ModifyIndex") or 0))
            return
        except Conflict:
            continue
    raise Conflict("PUT", f"/v1/var/{path}", 409, "rollout record kept changing; gave up")


def records(api: NomadAPI, job_id: str) -> dict[int, dict[str, Any]]:
    """Every rollout record of a job, by job version."""
    out: dict[int, dict[str, Any]] = {}
    try:
        metas = api.list_variables(f"{PREFIX}/{job_id}/")
    except NomadAPIError:
        return out
    for meta in metas:
        version = meta["Path"].rsplit("/", 1)[-1]
        if not version.isdigit():
            continue
        var = api.get_variable(meta["Path"]) or {}
        items = var.get("Items") or {}
        out[int(version)] = {k: _load(v) for k, v in items.items()}
    return out


def _load(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def read(api: NomadAPI, job_id: str, job_version: int) -> tuple[dict[str, Any], int]:
    """One rollout record (its fields decoded) and its ModifyIndex; ({}, 0) if none."""
    var = api.get_variable(f"{PREFIX}/{job_id}/{job_version}") or {}
    items = var.get("Items") or {}
    return {k: _load(v) for k, v in items.items()}, int(var.get("ModifyIndex") or 0)


def replace_field(
    api: NomadAPI, job_id: str, job_version: int, name: str, value: Any, modify_index: int
) -> bool:
    """Set one field only if the record is still at `modify_index` (check-and-set): False
    when another writer got there first (the caller re-reads and decides again)."""
    path = f"{PREFIX}/{job_id}/{job_version}"
    current = api.get_variable(path) or {}
    if int(current.get("ModifyIndex") or 0) != modify_index:
        return False
    items = {**(current.get("Items") or {}), name: json.dumps(value, sort_keys=True)}
    try:
        api.put_variable(path, items, cas=modify_index)
    except Conflict:
        return False
    return True
