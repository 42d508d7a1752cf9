"""The rollout report as one self-contained HTML page: the charts are inline SVG drawn by
matplotlib (text kept as text, so titles are in the page), the styles inline, no script,
no font, no image and no link to fetch: the page opens the same offline.

matplotlib is the `report` extra (`pip install 'nomadml[report]'`): `check_plotting`
says so in one line before anything else is done."""

from __future__ import annotations

import html
import io
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from nomadml.core.report import RolloutReport
from nomadml.core.rollout_series import Arm, Look
from nomadml.errors import MissingExtra

if TYPE_CHECKING:
    from matplotlib.axes import Axes

ERROR_TITLE = "Error rate: canary vs stable"
CANARY, STABLE = "#d95f02", "#1b6ca8"
VERDICT_COLOURS = {
    "fail": "#c62828",
    "pass": "#2e7d32",
    "inconclusive-at-deadline": "#6a1b9a",
    "inconclusive": "#9e9e9e",
    "insufficient": "#bdbdbd",
}


def latency_title(percentile: float | None) -> str:
    name = f"p{percentile * 100:g}" if percentile is not None else "percentile"
    return f"Latency ({name}): canary vs stable"


def check_plotting() -> None:
    """Raise MissingExtra (one line with the pip command) when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise MissingExtra("nomadml report", "report", "matplotlib") from None


def _rate(arm: Arm | None) -> float | None:
    rate = None if arm is None else arm.error_rate
    return None if rate is None else rate * 100.0


def _latency(arm: Arm | None) -> float | None:
    return None if arm is None else arm.latency_ms


def _line(
    ax: Axes, looks: Sequence[Look], value: Callable[[Look], float | None], **kw: Any
) -> None:
    points = [(look.at, v) for look in looks if (v := value(look)) is not None]
    if points:
        ax.plot([x for x, _ in points], [y for _, y in points], marker="o", markersize=3, **kw)


def _verdicts(ax: Axes, looks: Sequence[Look]) -> None:
    """Every look's verdict as a coloured tick along the top of the chart."""
    from matplotlib.transforms import blended_transform_factory

    top = blended_transform_factory(ax.transData, ax.transAxes)
    for verdict in sorted({look.verdict for look in looks}):
        xs = [look.at for look in looks if look.verdict == verdict]
        ax.scatter(
            xs, [1.0] * len(xs), transform=top, marker="v", s=36, clip_on=False, zorder=5,
            color=VERDICT_COLOURS.get(verdict, "#455a64"), label=f"verdict: {verdict}",
        )  # fmt: skip


def _steps(ax: Axes, steps: Sequence[tuple[float, int]]) -> None:
    """Where each canary step (the canary's share at the router) began."""
    from matplotlib.transforms import blended_transform_factory

    at_top = blended_transform_factory(ax.transData, ax.transAxes)
    for n, (at, share) in enumerate(steps):
        label = "canary step" if n == 0 else None
        ax.axvline(at, color="#8d6e63", linestyle=":", linewidth=1, label=label)
        ax.text(at, 0.94, f" canary {share}%", transform=at_top, fontsize=8, color="#5d4037")


def _chart(
    title: str,
    ylabel: str,
    looks: Sequence[Look],
    value: Callable[[Arm | None], float | None],
    salt: str,
    decided_at: float | None,
    steps: Sequence[tuple[float, int]] = (),
) -> str:
    """One chart as an inline <svg> element (no XML prolog, ids unique to this chart)."""
    import matplotlib
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.4), dpi=96)
    ax = fig.add_subplot()
    # stable first, so that the canary (what the rollout is about) is drawn on top
    _line(ax, looks, lambda look: value(look.stable), color=STABLE, label="stable")
    _line(ax, looks, lambda look: value(look.canary), color=CANARY, label="canary")
    _verdicts(ax, looks)
    if decided_at is not None:
        ax.axvline(decided_at, color="#424242", linestyle="--", linewidth=1, label="decision")
    _steps(ax, steps)
    if looks:
        first, last = looks[0].at, looks[-1].at
        pad = max(1.0, (last - first) * 0.03)
        ax.set_xlim(first - pad, last + pad)  # both charts over the same span
    arms = [value(look.canary) for look in looks] + [value(look.stable) for look in looks]
    measured = [v for v in arms if v is not None]
    if not measured:
        empty = "no gate looks were recorded" if not looks else "not recorded at these looks"
        ax.text(0.5, 0.5, empty, ha="center", transform=ax.transAxes, color="#616161")
    ax.set_title(title, pad=14)
    ax.set_xlabel("seconds since the canaries turned healthy")
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    if looks:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    out = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        fig.savefig(out, format="svg", metadata={"Date": None})
    svg = out.getvalue()
    return svg[svg.index("<svg") :]


def _cell(value: object) -> str:
    return f"<td>{html.escape(str(value))}</td>"


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    thead = f"<thead><tr>{head}</tr></thead>" if header else ""
    return f"<table>{thead}<tbody>{body}</tbody></table>"


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "∞ (beyond a float)" if unit == "e" else "n/a"
    if unit == "e":
        return f"{value:.3g}"
    return f"{value:g}{unit}"


def _summary(r: RolloutReport) -> str:
    rows: list[tuple[str, object]] = [
        ("line", r.line),
        ("model", r.model),
        ("operation", r.operation),
        ("model version", r.model_version),
        ("ran before", r.previous_version or "none recorded"),
        ("job version", r.job_version),
        ("deployment", r.deployment),
        ("outcome", r.outcome),
        ("reason", r.reason or "-"),
        ("took", "n/a" if r.seconds is None else f"{r.seconds:.1f} s"),
        ("recorded at", r.recorded_at),
    ]
    return _table((), rows)


def _evidence(r: RolloutReport) -> str:
    if r.judge is None:
        if not r.limits:
            return "<p>No metric gates ran: Nomad's health checks alone decided.</p>"
        intro = "<p>Threshold gates decided (no sequential judge). Their limits:</p>"
        return intro + _table(("limit", "value"), [(k, f"{v:g}") for k, v in r.limits])
    j = r.judge
    intro = (
        f"<p>The sequential judge decided <strong>{html.escape(j.decision)}</strong>"
        f"{' on ' + html.escape(j.signal) if j.signal else ''} after {j.looks}"
        f" look{'' if j.looks == 1 else 's'}, at a"
        f" false-alarm rate &alpha; = {j.alpha:g}"
        f"{f'; slow means slower than {j.slow_above_ms:g} ms' if j.slow_above_ms else ''}."
        " Each signal runs two anytime-valid tests on the counts since the canaries turned"
        " healthy: the canary fails when the fail test's e-value reaches its threshold (1/&alpha;,"
        " shared between the signals), and passes when every pass test's does.</p>"
    )
    rows = [
        (
            t.signal,
            f"{t.canary_bad:g} / {t.canary_requests:g}",
            f"{t.stable_bad:g} / {t.stable_requests:g}",
            f"{t.tolerance * 100:g} pt",
            f"{t.effect_bound * 100:g} pt",
            f"{_fmt(t.e_fail, 'e')} (fails at ≥ {t.fail_threshold:g})",
            f"{_fmt(t.e_pass, 'e')} (passes at ≥ {t.pass_threshold:g})",
        )
        for t in j.tests
    ]
    header = (
        "signal",
        "canary bad / requests",
        "stable bad / requests",
        "tolerance",
        "effect bound",
        "statistic e (fail test)",
        "statistic e (pass test)",
    )
    return intro + _table(header, rows)


def _shadow(r: RolloutReport) -> str:
    """The shadow phase (before any canary step): the canary served no one; the router
    replayed a share of the line's requests to it and compared its answers."""
    if not r.shadow:
        return ""
    last = r.shadow[-1]
    intro = (
        "<h2>Shadow phase</h2><p>Before its first step the canary served no one: the router "
        "replayed a share of the line's requests to it, compared each answer with the one "
        f"the client got from stable and discarded it. Last look: <strong>"
        f"{html.escape(last.verdict)}</strong>, agreed on {last.agreed} of {last.compared} "
        f"compared answers ({_fmt(None if last.agreement is None else 100 * last.agreement, '%')})"
        f"{'. ' + html.escape(last.reason) if last.reason else ''}.</p>"
    )
    rows = [
        (
            f"{k.at:g}",
            k.verdict,
            f"{k.agreed} / {k.compared}",
            _fmt(None if k.agreement is None else 100 * k.agreement, "%"),
            k.errors,
            k.dropped,
            _fmt(k.latency_ms, " ms"),
        )
        for k in r.shadow
    ]
    header = ("s", "verdict", "agreed / compared", "agreement", "errors", "dropped", "p95")
    return intro + _table(header, rows)


def _versions(r: RolloutReport) -> str:
    parts = []
    for v in r.versions:
        stage = v.stage or "not in the model registry (deployed --unregistered)"
        since = f", since {v.stage_changed_at}" if v.stage_changed_at else ""
        parts.append(
            f"<h3>{html.escape(v.version)} ({html.escape(v.role)}): stage"
            f" <strong>{html.escape(stage)}</strong>{html.escape(since)}</h3>"
        )
        rows = [(e.at, e.action, e.actor, e.details) for e in v.audit]
        parts.append(
            _table(("at", "action", "by", "details"), rows) if rows else "<p>No audit entries.</p>"
        )
    return "".join(parts)


def _looks(r: RolloutReport) -> str:
    def arm(a: Arm | None) -> str:
        if a is None:
            return "-"
        lat = "" if a.latency_ms is None else f", {a.latency_ms:g} ms"
        return f"{a.errors:g} / {a.requests:g}{lat}"

    rows = [(f"{k.at:g}", k.verdict, arm(k.canary), arm(k.stable), k.merged) for k in r.looks]
    header = ("s", "verdict", "canary errors / requests", "stable errors / requests", "looks")
    return f"<details><summary>Every look ({len(rows)})</summary>{_table(header, rows)}</details>"


STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 75em; color: #212121; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f5f5f5; }
td { overflow-wrap: anywhere; max-width: 60em; }
.outcome { font-size: 1.2em; }
svg { max-width: 100%; height: auto; }
"""


def render_page(r: RolloutReport) -> str:
    """The whole page, as text."""
    check_plotting()
    decided_at = r.looks[-1].at if r.looks and r.outcome != "running" else None
    counted = (
        "traffic since the previous look"
        if r.counts == "interval"
        else "traffic in the gates' last window"
    )
    error_chart = _chart(ERROR_TITLE, "errors (%)", r.looks, _rate, "errors", decided_at, r.steps)
    latency_chart = _chart(
        latency_title(r.percentile), "latency (ms)", r.looks, _latency, "latency", decided_at,
        r.steps,
    )  # fmt: skip
    title = f"Rollout of {r.model_version} on {r.line}: {r.outcome}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>{html.escape(title)}</title><style>{STYLE}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p class="outcome">{html.escape(r.reason)}</p>
<h2>Rollout</h2>{_summary(r)}
{_shadow(r)}
<h2>Canary vs stable over time</h2>
<p>Each point is one look of the gates ({html.escape(counted)}); the triangles along the top
mark every look's verdict, the dashed line the decision.</p>
<figure>{error_chart}</figure>
<figure>{latency_chart}</figure>
{_looks(r)}
<h2>Evidence</h2>{_evidence(r)}
<h2>Model versions in the registry</h2>{_versions(r)}
</body></html>
"""
