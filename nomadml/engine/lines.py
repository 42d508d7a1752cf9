"""What runs, and what happened: the data behind `nomadml status` and `history`.
Gathering does the reads; the row builders and formatters are pure."""

from __future__ import annotations

from typing import Any

from nomadml.adapters import rollout_records as history
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.errors import BadInput


def managed_jobs(api: NomadAPI, model: str | None = None) -> list[dict[str, Any]]:
    """nomadml's service jobs (one per model line and major), sorted by id."""
    jobs = api.request("GET", "jobs", params={"meta": "true"}).body or []
    out = [
        j
        for j in jobs
        if (j.get("Meta") or {}).get("nomadml.managed") == "true"
        and (j.get("Meta") or {}).get("nomadml.role") not in ("retraining", "guard")
        and (model is None or j["Meta"].get("nomadml.model") == model or j["ID"] == model)
    ]
    return sorted(out, key=lambda j: j["ID"])


def status_row(
    job: dict[str, Any], deployment: dict[str, Any] | None, allocs: list[dict[str, Any]]
) -> dict[str, Any]:
    """One model line's state. Pure."""
    meta = job.get("Meta") or {}
    running = [a for a in allocs if a.get("ClientStatus") == "running"]
    versions: dict[str, int] = {}
    for a in running:
        key = str(a.get("JobVersion"))
        versions[key] = versions.get(key, 0) + 1
    dep = deployment or {}
    return {
        "job": job["ID"],
        "model": meta.get("nomadml.model"),
        "major": meta.get("nomadml.major"),
        "version": meta.get("nomadml.version"),
        "job_version": job.get("Version"),
        "status": job.get("Status"),
        "running": len(running),
        "running_by_job_version": versions,
        "deployment": {
            "id": dep.get("ID"),
            "job_version": dep.get("JobVersion"),
            "status": dep.get("Status"),
            "description": dep.get("StatusDescription"),
        }
        if dep
        else None,
        "in_flight": dep.get("Status") in ("running", "paused"),
    }


def status(api: NomadAPI, line: str | None = None) -> list[dict[str, Any]]:
    jobs = managed_jobs(api, line)
    if line and not jobs:
        raise BadInput(f"no nomadml model line or model named {line!r} in Nomad")
    rows = []
    for stub in jobs:
        job = api.job(stub["ID"]) or stub
        rows.append(
            status_row(job, api.latest_deployment(stub["ID"]), api.job_allocations(stub["ID"]))
        )
    from nomadml.engine.experiment import annotate  # it reads the router, which reads lines

    annotate(api, rows)
    return rows


def history_rows(api: NomadAPI, job_id: str) -> list[dict[str, Any]]:
    """Model version <-> job version <-> deployment <-> outcome <-> gate values."""
    job = api.job(job_id)
    if job is None:
        raise BadInput(f"no job {job_id} in Nomad")
    deployments = {
        int(d["JobVersion"]): d
        for d in reversed(api.request("GET", f"job/{job_id}/deployments").body or [])
    }
    records = history.records(api, job_id)
    rows = []
    for v in api.job_versions(job_id):
        n = int(v["Version"])
        dep = deployments.get(n) or {}
        rec = records.get(n, {})
        gates = rec.get("gates") or []
        rows.append(
            {
                "job_version": n,
                "model_version": (v.get("Meta") or {}).get("nomadml.version"),
                "stable": bool(v.get("Stable")),
                "tag": (v.get("VersionTag") or {}).get("Name"),
                "kind": rec.get("kind", "nomad"),  # no record: Nomad made it (auto-revert)
                "deployment": dep.get("ID"),
                "deployment_status": dep.get("Status"),
                "description": dep.get("StatusDescription"),
                "outcome": rec.get("outcome"),
                "reason": rec.get("reason"),
                "seconds": rec.get("seconds"),
                "last_gate": gates[-1] if gates else None,
                # The shadow phase's last word (mirrored traffic, before any step).
                "shadow": next((g for g in reversed(gates) if g.get("phase") == "shadow"), None),
                "submitted": v.get("SubmitTime"),
            }
        )
    return rows


def line_histories(api: NomadAPI, line: str) -> dict[str, list[dict[str, Any]]]:
    """History rows per job: LINE is a job (iris-v1) or a model (iris: all its majors)."""
    jobs = [line] if api.job(line) else [j["ID"] for j in managed_jobs(api, line)]
    if not jobs:
        raise BadInput(f"no nomadml model line or model named {line!r} in Nomad")
    return {job_id: history_rows(api, job_id) for job_id in jobs}
