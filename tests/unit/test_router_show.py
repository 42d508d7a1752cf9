"""`router show` of a model without a router says so (exit 2) instead of printing
nothing with exit 0, which a misspelt model name would also get."""

from __future__ import annotations

from click.testing import CliRunner
from support.fake_nomad import FakeNomad

from nomadml.cli.main import main


def _show(nomad: FakeNomad, model: str) -> tuple[int, str]:
    run = CliRunner().invoke(main, ["--address", nomad.address, "router", "show", model])
    return run.exit_code, run.output


def test_a_model_without_a_router_is_one_line() -> None:
    with FakeNomad() as nomad:
        assert _show(nomad, "iris") == (
            2,
            "nomadml: error: iris has no router (`nomadml router up SPEC` starts one)\n",
        )


def test_a_router_job_without_a_table_or_healthy_address_is_shown_not_refused() -> None:
    with FakeNomad() as nomad:  # e.g. placed a moment ago, or its allocations failing
        nomad.put_job({"ID": "iris-router", "Meta": {"nomadml.model": "iris"}})
        assert _show(nomad, "iris") == (0, "")
