"""`nomadml report` without a cluster: the page (inline SVG charts whose titles are text,
no reference to anything outside the page), the command against the fake Nomad, and its
bad input: a rollout nomadml did not run, an unwritable --output, a missing extra."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from support.fake_nomad import FakeNomad

from nomadml.adapters import rollout_records
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.cli.main import main
from nomadml.core.decide import Action
from nomadml.core.report import assemble
from nomadml.engine.report import write_atomically
from nomadml.engine.report_page import ERROR_TITLE, latency_title, render_page
from nomadml.engine.result import RolloutResult
from nomadml.errors import BadInput, ExitCode
from nomadml.settings import NomadSettings

NOWHERE = "http://127.0.0.1:1"
DEPLOYMENT = "0123abcd-4567-89ef-0123-456789abcdef"
# Any attribute or CSS reference to something to fetch: a scheme (http:, https:, ftp:, file:,
# ...) or a protocol-relative //host; data: and #fragments stay inside the page.
EXTERNAL = re.compile(
    r"""(?:\b(?:src|href|xlink:href|action|poster|srcset)\s*=\s*["']?|url\(\s*["']?|@import\s+["']?)"""
    r"""\s*(?!data:|#)(?:[a-z][a-z0-9+.-]*:|//)""",
    re.IGNORECASE,
)


def external_references(page: str) -> list[str]:
    """Everything the page would fetch from outside itself (static check)."""
    references = [m.group(0) for m in EXTERNAL.finditer(page)]
    return references + re.findall(r"<script\b[^>]*\bsrc\b", page, re.IGNORECASE)


def test_the_static_check_catches_external_references() -> None:
    assert external_references('<script src="https://cdn.example/plot.js"></script>')
    assert external_references("<link rel=stylesheet href=//fonts.example/css>")
    assert external_references("<style>@font-face { src: url(http://127.0.0.1:9/f.woff) }</style>")
    assert external_references('<img src="file:///etc/hosts">')
    assert not external_references('<a href="#top">top</a><img src="data:image/png;base64,AA">')


def _judge_gate(t: float, verdict: str, c: int, ce: int) -> dict[str, Any]:
    test = {
        "signal": "errors",
        "canary": {"requests": c, "bad": ce},
        "stable": {"requests": 2 * c, "bad": 0},
        "tolerance": 0.0,
        "effect_bound": 0.2,
        "e_fail": 150.0,
        "fail_threshold": 100.0,
        "e_pass": 0.02,
        "pass_threshold": 100.0,
        "log_e_fail": 5.0,
        "log_e_pass": -3.9,
        "state": {"fail": [5.0], "pass": [-3.9]},
    }
    judge = {
        "decision": verdict,
        "signal": "errors" if verdict == "fail" else None,
        "alpha": 0.01,
        "slow_above_s": None,
        "looks": int(t / 2) + 1,
        "tests": [test],
    }
    values = {
        "canary_requests": c,
        "canary_errors": ce,
        "stable_requests": 2 * c,
        "stable_errors": 0,
        "canary_latency_ms": 12.0,
        "stable_latency_ms": 11.0,
    }
    return {"t": t, "verdict": verdict, "values": values, "judge": judge}


GATES = [
    _judge_gate(2.0 * i, "fail" if i == 9 else "inconclusive", 40 * (i + 1), 9 * i)
    for i in range(10)
]


def _result() -> RolloutResult:
    return RolloutResult(
        Action.ROLLED_BACK,
        "iris-v1",
        "1.1.0",
        "gate failed: judge fail",
        1,
        DEPLOYMENT,
        GATES,
        42.0,
    )


def test_the_page_has_both_charts_as_text_and_nothing_to_fetch() -> None:
    record = {"kind": "deploy", **_result().as_record()}
    report = assemble("iris-v1", "iris", 1, record, [], {}, [])
    page = render_page(report)
    assert page.startswith("<!DOCTYPE html>")
    for title in (ERROR_TITLE, latency_title(None)):
        assert re.search(rf"<text[^>]*>{re.escape(title)}</text>", page), title
    assert page.count("<svg") == 2 and "<script" not in page
    assert external_references(page) == []
    assert "verdict: fail" in page and "verdict: inconclusive" in page  # every verdict marked
    assert "150 (fails at ≥ 100)" in page  # the judge's statistic and its threshold


@pytest.fixture()
def line(fake_nomad: FakeNomad) -> NomadAPI:
    """A managed line in the fake Nomad with one rollout record written as deploy writes it."""
    meta = {"nomadml.managed": "true", "nomadml.model": "iris", "nomadml.version": "1.0.0"}
    fake_nomad.put_job({"ID": "iris-v1", "Meta": meta, "Stable": True})
    fake_nomad.put_job({"ID": "iris-v1", "Meta": {**meta, "nomadml.version": "1.1.0"}})
    fake_nomad.put_job({"ID": "iris-v2", "Meta": {**meta, "nomadml.version": "2.0.0"}})
    api = NomadAPI(NomadSettings.from_env({"NOMAD_ADDR": fake_nomad.address}))
    rollout_records.record(api, "iris-v1", 1, {"kind": "deploy", **_result().as_record()})
    return api


def _report(fake: FakeNomad, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["--address", fake.address, "report", *args])
    return result.exit_code, result.stdout, result.stderr


def test_report_writes_the_latest_rollout(
    line: NomadAPI, fake_nomad: FakeNomad, tmp_path: Path
) -> None:
    out = tmp_path / "r.html"
    code, said, err = _report(fake_nomad, "iris-v1", "--output", str(out))
    assert code == 0, err
    assert (
        said.strip()
        == f"wrote {out}: deploy of 1.1.0 on iris-v1 (deployment 0123abcd): rolled-back"
    )
    assert ERROR_TITLE in out.read_text()
    code, _, err = _report(fake_nomad, "iris-v1", "--deployment", "0123abcd", "--output", str(out))
    assert code == 0, err


def test_by_default_the_page_is_named_after_the_line_and_job_version(
    line: NomadAPI, fake_nomad: FakeNomad, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, said, err = _report(fake_nomad, "iris-v1")
    assert code == 0, err
    assert said.startswith("wrote iris-v1-1-report.html: ")
    assert [p.name for p in tmp_path.iterdir()] == ["iris-v1-1-report.html"]


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (
            ["iris-v1", "--deployment", "ffffffff"],
            "--deployment ffffffff: not a rollout nomadml ran on iris-v1",
        ),
        (["iris-v1", "--deployment", "0123"], "--deployment 0123: give at least 8 characters"),
        (["iris-v2"], "iris-v2: nomadml has run no rollout on this line"),
    ],
)
def test_a_rollout_nomadml_did_not_run_is_one_line_and_no_file(
    line: NomadAPI, fake_nomad: FakeNomad, tmp_path: Path, args: list[str], said: str
) -> None:
    out = tmp_path / "r.html"
    code, printed, err = _report(fake_nomad, *args, "--output", str(out))
    assert code == int(ExitCode.BAD_INPUT)
    assert printed == "" and err.strip().splitlines() == [
        f"nomadml: error: {said} "[:0] + err.strip()
    ]
    assert said in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_output_is_one_line_and_leaves_nothing(
    line: NomadAPI, fake_nomad: FakeNomad, tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("x")
    before = sorted(tmp_path.rglob("*"))
    code, printed, err = _report(
        fake_nomad, "iris-v1", "--output", str(tmp_path / "a-file" / "r.html")
    )
    assert code == int(ExitCode.BAD_INPUT)
    assert f"--output {tmp_path / 'a-file' / 'r.html'}: cannot write there" in err
    assert printed == "" and len(err.strip().splitlines()) == 1
    assert sorted(tmp_path.rglob("*")) == before


def test_a_failed_write_leaves_no_partial_file(tmp_path: Path) -> None:
    """The rename is the last step: when it fails, the temporary file goes too, and a
    page already there is left as it was."""
    target = tmp_path / "taken"
    target.mkdir()
    (target / "inside").write_text("keep")
    with pytest.raises(BadInput, match="cannot write there"):
        write_atomically(target, "<html></html>")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
    old = tmp_path / "old.html"
    old.write_text("old page")
    write_atomically(old, "new page")
    assert old.read_text() == "new page" and sorted(p.name for p in tmp_path.iterdir()) == [
        "old.html",
        "taken",
    ]


def test_without_the_report_extra_one_line_names_the_pip_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Checked before anything else: Nomad is not even asked (it is unreachable here)."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    out = tmp_path / "r.html"
    result = CliRunner().invoke(
        main, ["--address", NOWHERE, "report", "iris-v1", "--output", str(out)]
    )
    assert result.exit_code == int(ExitCode.MISSING_EXTRA) == 13
    assert result.stderr.strip() == (
        "nomadml: error: nomadml report needs matplotlib, which is not installed:"
        " pip install 'nomadml[report]'"
    )
    assert not out.exists()


def test_canary_steps_are_marked_on_both_charts() -> None:
    steps = [{**g, "step": 20 if i < 5 else 100} for i, g in enumerate(GATES)]
    stepped = [{**g, "t": g["t"] - 10.0} if i >= 5 else g for i, g in enumerate(steps)]
    result = _result()
    result.gates = stepped
    report = assemble("iris-v1", "iris", 1, {"kind": "deploy", **result.as_record()}, [], {}, [])
    assert report.steps == ((0, 20), (8, 100))
    page = render_page(report)
    for share in (20, 100):
        assert page.count(f"> canary {share}%</text>") == 2  # on both charts


def test_the_shadow_phase_has_its_own_section() -> None:
    def shadow(t: float, verdict: str, agreed: int, compared: int) -> dict[str, Any]:
        values = {
            "shadow_compared": compared, "shadow_agreed": agreed, "shadow_errors": 1,
            "shadow_dropped": 2, "shadow_agreement": agreed / compared, "shadow_latency_ms": 4.5,
        }  # fmt: skip
        reasons = ["in the shadow phase: agreed on too few"] if verdict == "fail" else []
        return {"t": t, "phase": "shadow", "verdict": verdict, "values": values,
                "reasons": reasons, "source": "router"}  # fmt: skip

    result = _result()
    result.gates = [shadow(5.0, "pending", 30, 40), shadow(10.0, "fail", 40, 50)]
    report = assemble("iris-v1", "iris", 1, {"kind": "deploy", **result.as_record()}, [], {}, [])
    assert [(k.at, k.verdict, k.agreed, k.compared, k.dropped) for k in report.shadow] == [
        (5.0, "pending", 30, 40, 2),
        (10.0, "fail", 40, 50, 2),
    ]
    assert report.looks == ()  # the shadow's looks are not canary-vs-stable looks
    page = render_page(report)
    assert "<h2>Shadow phase</h2>" in page
    assert "Last look: <strong>fail</strong>, agreed on 40 of 50 compared answers (80%)" in page
    assert "<td>30 / 40</td><td>75%</td><td>1</td><td>2</td><td>4.5 ms</td>" in page
    plain = assemble("iris-v1", "iris", 1, {"kind": "deploy", **_result().as_record()}, [], {}, [])
    assert "Shadow phase" not in render_page(plain)
