"""A model version as the registry records it: typed fields for the code, and the
stored record itself (what `model show` and `model list --json` print)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from nomadml.core.spec import parse_version


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model. `record` keeps every stored field as stored
    (numbers the registry keeps as text stay text there); `index` is the record's
    modify index in Nomad, for check-and-set writes."""

    model: str
    version: str
    stage: str
    image: str = ""
    digest: str = ""
    content_digest: str = ""
    size_bytes: int = 0
    metrics: Mapping[str, Any] = field(default_factory=dict)
    signature: Any = None
    signature_hash: str = ""
    created_at: str = ""
    created_by: str = ""
    approved_by: str = ""
    stage_changed_at: str = ""
    expired_at: str = ""
    record: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    index: int = field(default=0, compare=False)

    @classmethod
    def from_record(cls, record: Mapping[str, Any], index: int = 0) -> ModelVersion:
        """From a stored (decoded) record; unknown fields stay in `record`."""
        return cls(
            model=str(record["model"]),
            version=str(record["version"]),
            stage=str(record["stage"]),
            image=str(record.get("image") or ""),
            digest=str(record.get("digest") or ""),
            content_digest=str(record.get("content_digest") or ""),
            size_bytes=int(record.get("size_bytes") or 0),
            metrics=MappingProxyType(dict(record.get("metrics") or {})),
            signature=record.get("signature"),
            signature_hash=str(record.get("signature_hash") or ""),
            created_at=str(record.get("created_at") or ""),
            created_by=str(record.get("created_by") or ""),
            approved_by=str(record.get("approved_by") or ""),
            stage_changed_at=str(record.get("stage_changed_at") or ""),
            expired_at=str(record.get("expired_at") or ""),
            record=MappingProxyType(dict(record)),
            index=index,
        )

    @property
    def major(self) -> int:
        return parse_version(self.version)[0]

    def as_dict(self) -> dict[str, Any]:
        """The stored record, as the registry's JSON views show it."""
        return dict(self.record)
