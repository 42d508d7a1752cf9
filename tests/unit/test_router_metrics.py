"""The router's own metrics (what its Lua serves at /nomadml-router/metrics) read into
one Snapshot per backend, i.e. per version of a line; the path the gates look at only."""

from __future__ import annotations

import pytest

from nomadml.core.metrics import Snapshot, parse
from nomadml.core.router_metrics import (
    per_backend,
    router_names,
    unserved,
    unserved_text,
    unserved_versions,
)
from nomadml.core.routing import Line, Split, backend_name

SCRAPE = """\
# TYPE nomadml_router_requests_total counter
nomadml_router_requests_total{backend="iris_v1_1_0_0",path="/predict",code="200"} 90
nomadml_router_requests_total{backend="iris_v1_1_0_0",path="/health",code="200"} 7
nomadml_router_requests_total{backend="iris_v1_1_1_0",path="/predict",code="200"} 5
nomadml_router_requests_total{backend="iris_v1_1_1_0",path="/predict",code="503"} 5
# TYPE nomadml_router_request_duration_seconds histogram
nomadml_router_request_duration_seconds_bucket{backend="iris_v1_1_0_0",path="/predict",le="0.01"} 80
nomadml_router_request_duration_seconds_bucket{backend="iris_v1_1_0_0",path="/predict",le="0.1"} 90
nomadml_router_request_duration_seconds_bucket{backend="iris_v1_1_0_0",path="/predict",le="+Inf"} 90
nomadml_router_request_duration_seconds_sum{backend="iris_v1_1_0_0",path="/predict"} 0.6
nomadml_router_request_duration_seconds_count{backend="iris_v1_1_0_0",path="/predict"} 90
nomadml_router_request_duration_seconds_bucket{backend="iris_v1_1_1_0",path="/predict",le="0.01"} 0
nomadml_router_request_duration_seconds_bucket{backend="iris_v1_1_1_0",path="/predict",le="0.1"} 2
nomadml_router_request_duration_seconds_bucket{backend="iris_v1_1_1_0",path="/predict",le="+Inf"} 10
nomadml_router_request_duration_seconds_sum{backend="iris_v1_1_1_0",path="/predict"} 9.5
nomadml_router_request_duration_seconds_count{backend="iris_v1_1_1_0",path="/predict"} 10
"""


def test_each_version_gets_its_own_counters_on_the_gated_path() -> None:
    found = per_backend(parse(SCRAPE), router_names("/predict"))
    stable = found[backend_name("iris-v1", "1.0.0")]
    canary = found[backend_name("iris-v1", "1.1.0")]
    assert (stable.requests, stable.errors, stable.count) == (90, 0, 90)  # /health left out
    assert (canary.requests, canary.errors, canary.count) == (10, 5, 10)
    assert canary.buckets == ((0.01, 0.0), (0.1, 2.0), (float("inf"), 10.0))
    assert canary.sum == pytest.approx(9.5)


def test_a_version_without_traffic_has_no_series_and_another_path_counts_nothing() -> None:
    assert per_backend(parse(""), router_names("/predict")) == {}
    found = per_backend(parse(SCRAPE), router_names("/other"))
    assert all(snap == Snapshot() for snap in found.values())


def test_predictions_by_label_are_read_per_version_on_the_gated_path() -> None:
    """The Lua's count of the servers' X-Nomadml-Predictions header, per version."""
    scrape = (
        SCRAPE
        + """\
# TYPE nomadml_router_predictions_total counter
nomadml_router_predictions_total{backend="iris_v1_1_0_0",path="/predict",label="setosa"} 30
nomadml_router_predictions_total{backend="iris_v1_1_0_0",path="/predict",label="virginica"} 60
nomadml_router_predictions_total{backend="iris_v1_1_1_0",path="/predict",label="setosa"} 5
nomadml_router_predictions_total{backend="iris_v1_1_1_0",path="/other",label="setosa"} 50
"""
    )
    found = per_backend(parse(scrape), router_names("/predict"))
    assert found[backend_name("iris-v1", "1.0.0")].predictions == (
        ("setosa", 30.0),
        ("virginica", 60.0),
    )
    assert found[backend_name("iris-v1", "1.1.0")].predictions == (("setosa", 5.0),)


NOSRV = """\
# TYPE nomadml_router_nosrv_requests_total counter
nomadml_router_nosrv_requests_total{backend="iris_v1_1_2_0",path="/predict"} 40
nomadml_router_nosrv_requests_total{backend="iris_v1_1_2_0",path="/health"} 2
nomadml_router_nosrv_requests_total{backend="other_v1_1_0_0",path="/predict"} 3
"""


def test_the_routers_own_answers_are_counted_apart_and_shown_per_version() -> None:
    """Answers with no server (the router's 503) are not the version's: no snapshot
    (so no gate) reads them, but they are summed per backend for the operator."""
    samples = parse(SCRAPE + NOSRV)
    found = per_backend(samples, router_names("/predict"))
    assert found[backend_name("iris-v1", "1.2.0")] == Snapshot()
    assert unserved(samples) == {"iris_v1_1_2_0": 42, "other_v1_1_0_0": 3}
    line = Line("iris-v1", 1, (Split("1.0.0", 50), Split("1.2.0", 50)))
    assert unserved_versions(line, unserved(samples)) == {"1.2.0": 42}
    assert unserved_text("1.2.0", 42).startswith(
        "42 request(s) for 1.2.0 answered 503 by the router itself: no server of 1.2.0 was up"
    )
