"""The tables `status` and `history` print for people (--json prints the rows)."""

from __future__ import annotations

import time
from typing import Any

from nomadml.core.router_metrics import unserved_text


def format_status(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return ["no nomadml model lines in Nomad"]
    out = [f"{'LINE':<24} {'MODEL VERSION':<14} {'JOB V':>5} {'RUNNING':>7}  DEPLOYMENT"]
    for r in rows:
        dep = r["deployment"] or {}
        where = ", ".join(f"v{k} x{n}" for k, n in sorted(r["running_by_job_version"].items()))
        deployment = f"{dep.get('status', '-')}: {dep.get('description', '')}" if dep else "-"
        out.append(
            f"{r['job']:<24} {r['version'] or '?':<14} {r['job_version']:>5} "
            f"{r['running']:>7}  {deployment}" + (f"  [{where}]" if where else "")
        )
        if r.get("experiment"):
            out.extend(_experiment(r["experiment"]))
        if r.get("shadow"):
            out.append(_shadow(r["shadow"]))
        for version, count in (r.get("router_unserved") or {}).items():
            out.append(f"  router: {unserved_text(version, count)}")
    return out


def _experiment(ab: dict[str, Any]) -> list[str]:
    """A running A/B split, its arms as the routers counted them."""
    since = ab.get("counting_since")
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(since)) if since else "(no router)"
    across = f" across majors {ab['across']}" if ab.get("across") else ""
    head = (
        f"  A/B{across} sticky by {ab['sticky']}, {ab['path']} counted by {ab['routers']} router(s)"
    )
    return [f"{head} since {when}:", *(f"    {arm}" for arm in ab["shown"])]


def _shadow(v: dict[str, Any]) -> str:
    """A running shadow: what the routers compared so far (since their last reload)."""
    return (
        f"  shadow {v['version']} ({v['share']}% mirrored, answers discarded): agreed "
        f"{v['shadow_agreed']}/{v['shadow_compared']} ({_pct(v['shadow_agreement'])}), "
        f"{v['shadow_errors']} errors, {v['shadow_dropped']} dropped, "
        f"p-lat {_ms(v['shadow_latency_ms'])}"
    )


def format_history(job_id: str, rows: list[dict[str, Any]]) -> list[str]:
    out = [
        f"{job_id}:",
        f"{'JOB V':>5} {'MODEL':<12} {'TAG':<12} {'STABLE':<6} {'OUTCOME':<12} DETAILS",
    ]
    for r in rows:
        gate = r["last_gate"]
        gate_text = ""
        if gate and gate.get("phase") != "shadow":  # a shadow's own words follow
            v = gate.get("values", {})
            gate_text = (
                f" | gate {gate.get('verdict')}: canary err "
                f"{_pct(v.get('canary_error_rate'))} p-lat {_ms(v.get('canary_latency_ms'))}"
                f" vs stable err {_pct(v.get('stable_error_rate'))} p-lat "
                f"{_ms(v.get('stable_latency_ms'))}"
            )
        shadow = r.get("shadow")
        if shadow:
            v = shadow.get("values", {})
            gate_text += (
                f" | shadow {shadow.get('verdict')}: agreed {v.get('shadow_agreed')}/"
                f"{v.get('shadow_compared')} ({_pct(v.get('shadow_agreement'))}), "
                f"{v.get('shadow_errors')} errors, p-lat {_ms(v.get('shadow_latency_ms'))}"
            )
        outcome = r["outcome"] or r["deployment_status"] or "-"
        out.append(
            f"{r['job_version']:>5} {r['model_version'] or '?':<12} {r['tag'] or '-':<12} "
            f"{'yes' if r['stable'] else 'no':<6} {outcome:<12} "
            f"{r['reason'] or r['description'] or ''}{gate_text}"
        )
    return out


def _pct(v: Any) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def _ms(v: Any) -> str:
    return "n/a" if v is None else f"{v:.0f}ms"
