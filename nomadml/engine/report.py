"""`nomadml report LINE`: one rollout as one self-contained HTML page. Gathering reads the
line's rollout records, its job versions and the model registry; choosing the rollout and
building the report are pure (core/report.py); the page is engine/report_page.py; the file
is written atomically (a temporary file beside it, then renamed), so a failed write leaves
nothing half-written."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from nomadml.adapters import rollout_records as history
from nomadml.adapters.model_store import ModelRegistry
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.model_version import ModelVersion
from nomadml.core.report import RolloutReport, assemble, choose_rollout, versions_involved
from nomadml.engine.lines import managed_jobs
from nomadml.errors import BadInput


def gather(api: NomadAPI, line: str, deployment: str | None = None) -> RolloutReport:
    """The report of the rollout `deployment` names on LINE, or of its latest one."""
    job = api.job(line)
    meta = (job or {}).get("Meta") or {}
    if job is None or meta.get("nomadml.managed") != "true":
        lines = [j["ID"] for j in managed_jobs(api, line)]
        if lines:
            raise BadInput(f"{line} is a model: name one of its lines ({', '.join(lines)})")
        raise BadInput(f"{line}: no model line nomadml manages in Nomad")
    job_version, record = choose_rollout(line, history.records(api, line), deployment)
    model = str(meta.get("nomadml.model") or line.rpartition("-v")[0])
    job_versions = api.job_versions(line)
    registry = ModelRegistry(api)
    wanted = [v for v in versions_involved(job_version, record, job_versions) if v]
    registered: dict[str, ModelVersion | None] = {v: registry.get(model, v) for v in wanted}
    audit = registry.audit_log(model) if any(registered.values()) else []
    return assemble(line, model, job_version, record, job_versions, registered, audit)


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` whole or not at all (BadInput naming the path otherwise)."""
    try:
        fd, temporary = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=".partial", dir=path.parent
        )
    except OSError as err:
        raise BadInput(f"--output {path}: cannot write there: {err.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise BadInput(f"--output {path}: cannot write there: {err.strerror}") from None


def write_report(
    api: NomadAPI, line: str, deployment: str | None = None, output: Path | None = None
) -> tuple[Path, RolloutReport]:
    """Write the report of a rollout on LINE; returns where, and the report. Checks that
    the plotting extra is installed before reading anything."""
    from nomadml.engine.report_page import check_plotting, render_page

    check_plotting()
    report = gather(api, line, deployment)
    path = output or Path(f"{line}-{report.job_version}-report.html")
    write_atomically(path, render_page(report))
    return path, report
