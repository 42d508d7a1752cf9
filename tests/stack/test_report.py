"""`nomadml report` on the real stack: two registered versions of a model, a judged canary
rollout under real traffic through `nomadml deploy`, then `nomadml report` through the CLI,
and the page opened in headless Chromium (Debian's): the charts' titles are in the DOM, the
screenshot is not blank, and the page made no request but for itself. Bad input: a rollout
nomadml did not run, a model instead of a line, a line Nomad does not have."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner
from support.browser import distinct_colours, visit
from support.router import RouterLoad, router_image
from support.router import cli as router_cli

from examples.iris.train import train_iris
from nomadml.adapters import rollout_records
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.cli.main import main
from nomadml.core.decide import Action
from nomadml.engine.report_page import ERROR_TITLE, latency_title
from nomadml.engine.result import RolloutResult
from nomadml.engine.traffic import Traffic
from nomadml.errors import ExitCode

# The judge on, fast looks, errors only, a wide effect bound: a good canary passes within
# the test's time (as in test_judge_rollout.py).
JUDGED = {
    'window = "20s"': 'window = "4s"',
    'interval = "5s"': 'interval = "2s"',
    "[validation]": (
        "[gates.judge]\nenabled = true\nalpha = 0.01\nerror_increase = 0.2\n"
        'latency = false\ndeadline = "3m"\n\n[validation]'
    ),
}


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def _release(tmp_path: Path, spec: str, model: str, version: str, c: float) -> None:
    """Train, register and validate one version (the registry's own path to a deploy)."""
    model_dir = tmp_path / version
    train_iris(model_dir, c=c)
    code, out, err = cli("model", "register", str(model_dir), "--name", model, "--version", version)
    assert code == 0, out + err
    code, out, err = cli("model", "validate", model, version, "--spec", spec)
    assert code == 0 and f"{model} {version}: validated" in out, out + err


def test_a_judged_rollout_reads_as_one_page_that_fetches_nothing(
    nomad: NomadAPI,
    docker_client: object,
    model_name: str,
    make_spec: Callable[..., Path],
    tmp_path: Path,
    serving_image: str,
    ship: Callable[..., str],
) -> None:
    spec, line = str(make_spec(JUDGED)), f"{model_name}-v1"
    _release(tmp_path, spec, model_name, "1.0.0", c=1.0)
    code, out, err = cli("deploy", spec, "--version", "1.0.0", "--serving-image", serving_image)
    assert code == 0, out + err
    _release(tmp_path, spec, model_name, "1.1.0", c=0.7)
    with Traffic(nomad, line, rate_per_s=20, max_seconds=240) as traffic:
        code, out, err = cli("deploy", spec, "--version", "1.1.0", "--serving-image", serving_image)
    assert code == 0, out + err
    assert traffic.report.failed == 0, traffic.report.summary()

    records = rollout_records.records(nomad, line)
    latest = records[max(records)]
    assert latest["model_version"] == "1.1.0" and latest["outcome"] == "succeeded"
    looks = latest["series"]["looks"]
    assert looks and looks[-1][7] == "pass"  # the last look is the judge's pass
    assert any(row[3] is not None and row[6] is not None for row in looks)  # latency, both arms

    page = tmp_path / "out" / "report.html"
    page.parent.mkdir()
    code, out, err = cli("report", line, "--output", str(page))
    assert code == 0, out + err
    deployment = str(latest["deployment"])
    assert out.strip() == (
        f"wrote {page}: deploy of 1.1.0 on {line} (deployment {deployment[:8]}): succeeded"
    )
    assert [p.name for p in page.parent.iterdir()] == ["report.html"]  # no temporary left
    text = page.read_text()
    assert "passes at ≥ 100" in text  # the judge's evidence: e against 1/alpha
    assert "1.1.0 (canary): stage <strong>production</strong>" in text
    assert "1.0.0 (stable): stage <strong>archived</strong>" in text

    seen = visit(page)
    assert seen.outside_requests() == [], seen.outside_requests()
    assert ERROR_TITLE in seen.texts and latency_title(0.95) in seen.texts, seen.texts[:20]
    colours = distinct_colours(seen.screenshot)
    assert colours > 50, colours  # two charts' lines, markers and text, not a blank page

    # The first rollout is reported by its deployment id; the page says no gates ran.
    first = records[min(records)]
    short = str(first["deployment"])[:8]
    first_page = page.with_name("first.html")
    code, out, err = cli("report", line, "--deployment", short, "--output", str(first_page))
    assert code == 0 and f"deploy of 1.0.0 on {line} (deployment {short})" in out, out + err
    assert "Nomad's health checks alone decided" in first_page.read_text()

    # A canary that fails half its requests, outside the registry: the judge fails it, the
    # page marks the failing look and shows the evidence; the version has no registry stage.
    bad = ship("1.2.0", serving={"error_rate": 0.5})
    with Traffic(nomad, line, rate_per_s=20, max_seconds=240) as traffic:
        code, out, err = cli(
            "deploy", spec, "--version", "1.2.0", "--image", bad,
            "--serving-image", serving_image, "--unregistered",
        )  # fmt: skip
    assert code == int(ExitCode.ROLLED_BACK), out + err
    assert traffic.report.failed_by_version["1.1.0"] == 0, traffic.report.summary()
    failed_page = page.with_name("failed.html")
    code, out, err = cli("report", line, "--output", str(failed_page))
    assert code == 0 and f"deploy of 1.2.0 on {line}" in out and "rolled-back" in out, out + err
    seen = visit(failed_page)
    assert seen.outside_requests() == []
    assert "verdict: fail" in seen.texts  # the failing look's marker, in the legend
    text = failed_page.read_text()
    assert "The sequential judge decided <strong>fail</strong> on errors" in text
    assert "1.2.0 (canary): stage <strong>not in the model registry" in text
    assert "1.1.0 (stable): stage <strong>production</strong>" in text

    # Bad input: one line, exit 2, no file written.
    other = tmp_path / "not-written.html"
    for args, said in [
        ([line, "--deployment", "ffffffff"], "--deployment ffffffff: not a rollout nomadml ran"),
        ([model_name], f"{model_name} is a model: name one of its lines ({line})"),
        ([f"{model_name}-v9"], f"{model_name}-v9: no model line nomadml manages in Nomad"),
    ]:  # fmt: skip
        code, out, err = cli("report", *args, "--output", str(other))
        assert code == int(ExitCode.BAD_INPUT), out + err
        assert out == "" and err.startswith(f"nomadml: error: {said}"), err
        assert len(err.strip().splitlines()) == 1
        assert not other.exists()


def test_a_threshold_gated_rollout_reads_with_its_windows_and_limits(
    stable_line: Callable[..., tuple[Path, str]],
    roll: Callable[..., RolloutResult],
    ship: Callable[..., str],
    nomad: NomadAPI,
    tmp_path: Path,
) -> None:
    """The default gates (thresholds over windows): each look's window with its latency,
    every verdict, and the limits the gates applied."""
    spec, line = stable_line(gates="fast")
    with Traffic(nomad, line, rate_per_s=20, max_seconds=240):
        result = roll(spec, "1.1.0", ship("1.1.0", c=0.5))
    assert result.action is Action.SUCCEEDED, result.reason
    page = tmp_path / "thresholds.html"
    code, out, err = cli("report", line, "--output", str(page))
    assert code == 0 and "deploy of 1.1.0" in out and "succeeded" in out, out + err
    text = page.read_text()
    assert "Threshold gates decided" in text and "max_latency_ms" in text
    assert "traffic in the gates&#x27; last window" in text  # what a look's numbers cover
    seen = visit(page)
    assert seen.outside_requests() == []
    assert ERROR_TITLE in seen.texts and latency_title(0.95) in seen.texts
    assert "verdict: pass" in seen.texts
    assert distinct_colours(seen.screenshot) > 50

    # Without nomadml's rollout records (deleted by hand) the line has no rollout to report.
    for var in nomad.list_variables(f"nomadml/rollouts/{line}/"):
        nomad.request("DELETE", f"var/{var['Path']}")
    gone = tmp_path / "gone.html"
    code, out, err = cli("report", line, "--output", str(gone))
    assert code == int(ExitCode.BAD_INPUT) and out == "", out + err
    assert (
        err
        == f"nomadml: error: {line}: nomadml has run no rollout on this line (no rollout record)\n"
    )
    assert not gone.exists()


def test_canary_steps_through_the_router_are_marked_on_the_page(
    roll: Callable[..., RolloutResult],
    make_spec: Callable[..., Path],
    ship: Callable[..., str],
    model_name: str,
    tmp_path: Path,
) -> None:
    spec = make_spec({"auto_revert = true": "auto_revert = true\nsteps = [20, 100]"}, gates="fast")
    line = f"{model_name}-v1"
    assert roll(spec, "1.0.0", ship("1.0.0")).action is Action.SUCCEEDED
    code, out, err = router_cli(
        "router", "up", str(spec), "--image", router_image(), "--count", "1"
    )
    assert code == 0, err
    with RouterLoad(out.split()[1]) as load:
        result = roll(spec, "1.1.0", ship("1.1.0", c=0.5))
    assert result.action is Action.SUCCEEDED, result.reason
    assert {status for status, _ in load.answers} == {200}, load.answers
    page = tmp_path / "steps.html"
    code, out, err = cli("report", line, "--output", str(page))
    assert code == 0, out + err
    seen = visit(page)
    assert seen.outside_requests() == []
    marks = [t.strip() for t in seen.texts if t.strip().startswith("canary ") and "%" in t]
    assert marks == ["canary 20%", "canary 100%"] * 2, marks  # on both charts
