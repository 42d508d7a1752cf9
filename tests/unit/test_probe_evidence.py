"""Probe requests in the numbers the gates judge, and the probe file (pure / local)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nomadml.core.gates import GateConfig, evaluate, stats
from nomadml.core.metrics import MetricNames, delta, merge, parse, snapshot
from nomadml.core.spec import load_spec
from nomadml.engine.probes import load_instances
from nomadml.errors import BadInput

SCRAPE = """
nomadml_requests_total{path="/predict",code="200"} %d
nomadml_probe_requests_total{path="/predict",code="200"} %d
nomadml_probe_requests_total{path="/health",code="200"} 7
"""


def test_probes_are_part_of_the_requests_and_counted_apart() -> None:
    names = MetricNames()
    before, after = (snapshot(parse(SCRAPE % v), names) for v in ((10, 4), (40, 30)))
    assert (after.requests, after.probes) == (40, 30)  # only the gated path's probes
    window = delta(before, after)
    assert (window.requests, window.probes) == (30, 26)
    assert merge([window, window]).probes == 52
    restarted = snapshot(parse(SCRAPE % (45, 3)), names)  # probes went down: a restart
    assert delta(after, restarted).probes == 3


def test_the_gate_says_how_much_was_probes() -> None:
    names = MetricNames()
    canary = stats(snapshot(parse(SCRAPE % (30, 30)), names), 0.95)
    stable = stats(snapshot(parse(SCRAPE % (30, 10)), names), 0.95)
    values = evaluate(canary, stable, GateConfig(min_requests=10)).values
    assert (values["canary_probe_requests"], values["stable_probe_requests"]) == (30, 10)
    quiet = stats(snapshot(parse(SCRAPE % (30, 0)), names), 0.95)
    assert "canary_probe_requests" not in evaluate(quiet, quiet, GateConfig()).values


def _spec(tmp_path: Path, probe_file: str | None) -> Path:
    if probe_file is not None:
        (tmp_path / "probe.json").write_text(probe_file)
    spec = tmp_path / "spec.toml"
    spec.write_text(
        '[model]\nname = "m"\n\n[gates.probe]\nenabled = true\ninstances = "probe.json"\n'
    )
    return spec


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, r"gates\.probe\.instances: cannot read .*probe\.json"),
        ("{nope", r"gates\.probe\.instances: .*probe\.json is not JSON"),
        ('{"instances": []}', r"must hold a non-empty list of instances"),
        ('"text"', r"must hold a non-empty list of instances"),
    ],
)
def test_an_unusable_probe_file_is_one_line(
    tmp_path: Path, content: str | None, message: str
) -> None:
    with pytest.raises(BadInput, match=message):
        load_instances(load_spec(_spec(tmp_path, content)))


@pytest.mark.parametrize("content", ['{"instances": [[1, 2]]}', "[[1, 2], [3, 4]]"])
def test_a_probe_file_is_a_list_or_an_instances_document(tmp_path: Path, content: str) -> None:
    body = load_instances(load_spec(_spec(tmp_path, content)))
    assert body.startswith(b'{"instances": [[1, 2]')
