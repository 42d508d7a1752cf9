"""The model registry, kept in the cluster as Nomad Variables so operators and
retraining jobs share it and every write is check-and-set (two writers never lose
each other's update). Reading needs only Nomad, not Docker.

    nomadml/models/<model>/versions/<version>   one record per version (dots in the
                                                version become "_": Nomad variable
                                                paths allow no dots)
    nomadml/models/<model>/audit/<time>-<id>    append-only audit entries
    nomadml/models/<model>/policy               the model's release policy (approval)
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable
from typing import Any

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.lifecycle import check_transition
from nomadml.core.model_version import ModelVersion
from nomadml.core.spec import parse_version
from nomadml.errors import BadInput, Conflict, NomadAPIError

ROOT = "nomadml/models"
JSON_FIELDS = ("metrics", "signature", "training_data", "files", "gates", "labels", "measured")


def _encode(record: dict[str, Any]) -> dict[str, str]:
    return {
        k: json.dumps(v, sort_keys=True) if k in JSON_FIELDS else str(v)
        for k, v in record.items()
        if v is not None
    }


def _decode(items: dict[str, str]) -> dict[str, Any]:
    return {k: json.loads(v) if k in JSON_FIELDS else v for k, v in items.items()}


def _version(var: dict[str, Any] | None) -> ModelVersion | None:
    if not var:
        return None
    return ModelVersion.from_record(_decode(var.get("Items") or {}), int(var["ModifyIndex"]))


def key(version: str) -> str:
    """A version as a variable path segment; versions never contain "_"."""
    return version.replace(".", "_")


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class ModelRegistry:
    def __init__(self, api: NomadAPI) -> None:
        self.api = api
        self._actor: str | None = None

    # -- reads -----------------------------------------------------------------------

    def get(self, model: str, version: str) -> ModelVersion | None:
        return _version(self.api.get_variable(f"{ROOT}/{model}/versions/{key(version)}"))

    def versions(self, model: str) -> list[ModelVersion]:
        """Every version of `model`, oldest first."""
        out = []
        for meta in self.api.list_variables(f"{ROOT}/{model}/versions/"):
            found = _version(self.api.get_variable(meta["Path"]))
            if found:
                out.append(found)
        return sorted(out, key=lambda r: parse_version(r.version))

    def in_stage(self, model: str, stage: str, major: int | None = None) -> list[ModelVersion]:
        return [
            r
            for r in self.versions(model)
            if r.stage == stage and (major is None or r.major == major)
        ]

    def audit_log(self, model: str) -> list[dict[str, Any]]:
        entries = []
        for meta in self.api.list_variables(f"{ROOT}/{model}/audit/"):
            var = self.api.get_variable(meta["Path"]) or {}
            items = var.get("Items") or {}
            entries.append({k: json.loads(v) if k == "details" else v for k, v in items.items()})
        return sorted(entries, key=lambda e: (e.get("at", ""), e.get("id", "")))

    def requires_approval(self, model: str) -> bool:
        """The model's recorded policy: do deploys and promotions need an approval?"""
        var = self.api.get_variable(f"{ROOT}/{model}/policy") or {}
        return (var.get("Items") or {}).get("require_approval") == "true"

    def record_policy(self, model: str, require_approval: bool) -> None:
        """Record the spec's approval policy. Once on, a spec alone never turns it off
        (an operator with the rights edits the variable, which Nomad audits); a change
        is an audit entry."""
        path = f"{ROOT}/{model}/policy"
        var = self.api.get_variable(path)
        current = ((var or {}).get("Items") or {}).get("require_approval") == "true"
        if current or not require_approval:
            return
        index = int(var["ModifyIndex"]) if var else 0
        try:
            self.api.put_variable(path, {"require_approval": "true"}, cas=index)
        except Conflict:
            return  # someone recorded it meanwhile
        self.audit(model, "policy", "-", {"require_approval": True})

    def models(self) -> list[str]:
        names = {m["Path"].split("/")[2] for m in self.api.list_variables(f"{ROOT}/")}
        return sorted(names)

    # -- writes ----------------------------------------------------------------------

    def create(self, record: dict[str, Any]) -> ModelVersion:
        """Add a new version; refused if that version exists (check-and-set on 0)."""
        path = f"{ROOT}/{record['model']}/versions/{key(record['version'])}"
        try:
            self.api.put_variable(path, _encode(record), cas=0)
        except Conflict:
            raise BadInput(f"{record['model']} {record['version']} is already registered") from None
        self.audit(
            record["model"],
            "register",
            record["version"],
            {"stage": record.get("stage"), "digest": record.get("digest")},
        )
        return ModelVersion.from_record(record)

    def set_stage(
        self, model: str, version: str, stage: str, details: dict[str, Any]
    ) -> ModelVersion:
        """Move a version to `stage` (checked), with an audit entry; CAS on the record."""
        moved: dict[str, str] = {}

        def change(record: dict[str, Any]) -> None:
            check_transition(version, record["stage"], stage)
            moved["from"] = record["stage"]
            record.update(stage=stage, stage_changed_at=now(), stage_changed_by=self.actor())

        record = self._modify(model, version, change)
        self.audit(model, "stage", version, {"from": moved["from"], "to": stage, **details})
        return record

    def update(self, model: str, version: str, fields: dict[str, Any]) -> None:
        self._modify(model, version, lambda record: record.update(fields))

    def _modify(
        self, model: str, version: str, change: Callable[[dict[str, Any]], None]
    ) -> ModelVersion:
        """Read, change, write back with check-and-set; on a lost race, re-read and
        apply `change` again (it re-checks what it depends on)."""
        path = f"{ROOT}/{model}/versions/{key(version)}"
        for _ in range(5):
            current = self.get(model, version)
            if current is None:
                raise BadInput(f"{model} {version} is not registered")
            record = current.as_dict()
            change(record)
            try:
                self.api.put_variable(path, _encode(record), cas=current.index)
            except Conflict:
                continue  # someone else wrote it meanwhile
            return ModelVersion.from_record(record)
        raise Conflict(
            "PUT", f"/v1/var/{path}", 409, "the record kept changing under us; try again"
        )

    def audit(self, model: str, action: str, version: str, details: dict[str, Any]) -> None:
        entry_id = f"{time.time_ns()}-{secrets.token_hex(4)}"
        items = {
            "id": entry_id,
            "at": now(),
            "actor": self.actor(),
            "action": action,
            "version": version,
            "details": json.dumps(details, sort_keys=True),
        }
        # cas=0: an audit entry is only ever created, never overwritten.
        self.api.put_variable(f"{ROOT}/{model}/audit/{entry_id}", items, cas=0)

    def actor(self) -> str:
        """Who acts: the Nomad token's accessor where ACLs are on, else the OS user."""
        if self._actor is None:
            try:
                token = self.api.request("GET", "acl/token/self").body or {}
                self._actor = f"token:{token.get('AccessorID', '?')}" + (
                    f" ({token['Name']})" if token.get("Name") else ""
                )
            except NomadAPIError:
                self._actor = f"user:{os.environ.get('USER') or os.getuid()}"
        return self._actor
