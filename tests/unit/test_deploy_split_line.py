"""A stepped (or shadowed) deploy onto a line the router splits between versions (an
A/B test, weights set by hand): no one stable version keeps the rest. A shadow phase
is refused before anything is registered, one line naming the split and the way out;
steps alone fall back to the canary count with a note that says why."""

from __future__ import annotations

from pathlib import Path

import pytest

from nomadml.core.routing import Line, RoutingTable, Split
from nomadml.core.spec import load_spec
from nomadml.engine import deploy, router
from nomadml.engine.prepare import Prepared, prepare
from nomadml.engine.steps import SteppedGates
from nomadml.errors import BadInput
from nomadml.events import Event

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "iris" / "iris.toml"
IMAGE = "127.0.0.1:5000/nomadml/models/iris@sha256:" + "a" * 64
SERVING = "127.0.0.1:5000/nomadml/serve@sha256:" + "b" * 64


def _prepared(tmp_path: Path, shadow: bool) -> Prepared:
    text = EXAMPLE.read_text().replace(
        "auto_revert = true", "auto_revert = true\nsteps = [50, 100]", 1
    )
    if shadow:
        text += "\n[update.shadow]\nshare = 20\n"
    spec = tmp_path / "iris.toml"
    spec.write_text(text)
    return prepare(load_spec(spec), "1.2.0", model_image=IMAGE, serving_image=SERVING)


@pytest.fixture
def split_line(monkeypatch: pytest.MonkeyPatch) -> None:
    line = Line("iris-v1", 1, (Split("1.0.0", 50), Split("1.1.0", 50)))
    table = RoutingTable("iris", (line,), 1)
    monkeypatch.setattr(router, "read_table", lambda _api, _model: table)


@pytest.mark.usefixtures("split_line")
def test_a_shadow_onto_a_split_line_is_refused_naming_the_split(tmp_path: Path) -> None:
    prepared = _prepared(tmp_path, shadow=True)
    with pytest.raises(BadInput) as refused:
        deploy.gate_runner(prepared, None, lambda _event: None)  # type: ignore[arg-type]
    said = str(refused.value)
    assert "\n" not in said
    assert "update.shadow: the router splits iris-v1 (1.0.0=50% 1.1.0=50%)" in said, said
    assert "nomadml router weights iris iris-v1 VERSION=100" in said, said


@pytest.mark.usefixtures("split_line")
def test_steps_onto_a_split_line_fall_back_to_the_canary_count_saying_why(
    tmp_path: Path,
) -> None:
    seen: list[Event] = []
    gates = deploy.gate_runner(_prepared(tmp_path, shadow=False), None, seen.append)  # type: ignore[arg-type]
    assert not isinstance(gates, SteppedGates)
    assert [e.message for e in seen] == [
        "update.steps: the router splits this line (1.0.0=50% 1.1.0=50%); the canary count "
        "decides the canary's share"
    ]
