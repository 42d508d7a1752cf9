"""Where a model line answers: its Nomad service registrations, with each
allocation's check result, so clients and load balancers only get live addresses."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.errors import BadInput, NomadAPIError


@dataclass(frozen=True)
class Endpoint:
    line: str
    major: str
    version: str
    url: str
    alloc_id: str
    healthy: bool
    canary: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def tag_value(tags: list[str], key: str) -> str:
    return next((t.split("=", 1)[1] for t in tags if t.startswith(f"{key}=")), "")


def endpoints(api: NomadAPI, line: str, check_health: bool = True) -> list[Endpoint]:
    """Every registration of `line`'s service; `healthy` from Nomad's own checks."""
    out = []
    for reg in api.service(line):
        healthy = True
        if check_health:
            try:
                checks = api.request("GET", f"client/allocation/{reg['AllocID']}/checks").body
            except NomadAPIError:
                checks = {}
            healthy = bool(checks) and all(c.get("Status") == "success" for c in checks.values())
        tags = list(reg.get("Tags") or [])
        out.append(
            Endpoint(
                line,
                tag_value(tags, "major"),
                tag_value(tags, "version"),
                f"http://{reg['Address']}:{reg['Port']}",
                str(reg["AllocID"]),
                healthy,
                "canary" in tags,
            )
        )
    return sorted(out, key=lambda e: (e.line, e.version, e.url))


def model_endpoints(
    api: NomadAPI, model: str, major: int | None = None, include_unhealthy: bool = False
) -> list[Endpoint]:
    """The endpoints of MODEL's lines (or of one major's), healthy ones unless asked."""
    from nomadml.engine.lines import managed_jobs

    lines = [
        j
        for j in managed_jobs(api, model)
        if j["Meta"].get("nomadml.model") == model
        and (major is None or j["Meta"].get("nomadml.major") == str(major))
    ]
    if not lines:
        raise BadInput(f"no running line of model {model!r}" + (f" major {major}" if major else ""))
    return [e for j in lines for e in endpoints(api, j["ID"]) if e.healthy or include_unhealthy]
