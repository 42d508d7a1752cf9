"""Prometheus text parsing and the snapshot arithmetic behind the canary gates."""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from nomadml.core.metrics import (
    MetricNames,
    MetricsFormatError,
    Sample,
    Snapshot,
    delta,
    merge,
    parse,
    quantile,
    snapshot,
)
from nomadml.core.spec import parse_spec
from nomadml.errors import SpecError

INF = math.inf
SERVE_PY = Path(__file__).resolve().parents[2] / "nomadml" / "bundled" / "serve.py"

# What the reference server's /metrics looks like after some traffic: every family it exposes.
REFERENCE = """\
# HELP nomadml_requests_total HTTP requests answered, by path and status code.
# TYPE nomadml_requests_total counter
nomadml_requests_total{path="/health",code="200"} 31
nomadml_requests_total{path="/metrics",code="200"} 4
nomadml_requests_total{path="/predict",code="200"} 95
nomadml_requests_total{path="/predict",code="400"} 2
nomadml_requests_total{path="/predict",code="500"} 3
nomadml_requests_total{path="other",code="503"} 1
# HELP nomadml_request_duration_seconds Time taken to answer POST /predict.
# TYPE nomadml_request_duration_seconds histogram
nomadml_request_duration_seconds_bucket{le="0.005"} 10
nomadml_request_duration_seconds_bucket{le="0.01"} 30
nomadml_request_duration_seconds_bucket{le="0.025"} 60
nomadml_request_duration_seconds_bucket{le="0.05"} 80
nomadml_request_duration_seconds_bucket{le="0.1"} 90
nomadml_request_duration_seconds_bucket{le="0.25"} 96
nomadml_request_duration_seconds_bucket{le="0.5"} 98
nomadml_request_duration_seconds_bucket{le="1"} 99
nomadml_request_duration_seconds_bucket{le="2.5"} 100
nomadml_request_duration_seconds_bucket{le="5"} 100
nomadml_request_duration_seconds_bucket{le="+Inf"} 100
nomadml_request_duration_seconds_sum 4.25
nomadml_request_duration_seconds_count 100
# HELP nomadml_predict_in_flight POST /predict requests being answered right now.
# TYPE nomadml_predict_in_flight gauge
nomadml_predict_in_flight 2
# HELP nomadml_model_info The model version this server answers for.
# TYPE nomadml_model_info gauge
nomadml_model_info{model="iris",version="1.2.0"} 1
"""

REFERENCE_BUCKETS = (
    (0.005, 10.0),
    (0.01, 30.0),
    (0.025, 60.0),
    (0.05, 80.0),
    (0.1, 90.0),
    (0.25, 96.0),
    (0.5, 98.0),
    (1.0, 99.0),
    (2.5, 100.0),
    (5.0, 100.0),
    (INF, 100.0),
)

# An operator's own server: other names, `handler`/`status` labels, extra `method` label on the
# histogram, labels in no particular order, and traffic on another path that must not count.
OPERATOR = """\
# TYPE http_requests_total counter
http_requests_total{handler="/v1/predict",method="post",status="200"} 180
http_requests_total{status="503",handler="/v1/predict",method="post"} 20
http_requests_total{handler="/healthz",method="get",status="200"} 500
http_requests_total{handler="/healthz",method="get",status="500"} 7
# TYPE http_request_seconds histogram
http_request_seconds_bucket{handler="/v1/predict",method="post",le="0.1"} 100
http_request_seconds_bucket{handler="/v1/predict",method="post",le="0.5"} 170
http_request_seconds_bucket{handler="/v1/predict",method="post",le="+Inf"} 180
http_request_seconds_bucket{le="0.1",method="put",handler="/v1/predict"} 10
http_request_seconds_bucket{handler="/v1/predict",method="put",le="0.5"} 20
http_request_seconds_bucket{handler="/v1/predict",method="put",le="+Inf"} 20
http_request_seconds_bucket{handler="/healthz",method="get",le="0.1"} 507
http_request_seconds_bucket{handler="/healthz",method="get",le="0.5"} 507
http_request_seconds_bucket{handler="/healthz",method="get",le="+Inf"} 507
http_request_seconds_sum{handler="/v1/predict",method="post"} 40.5
http_request_seconds_sum{handler="/v1/predict",method="put"} 3.5
http_request_seconds_sum{handler="/healthz",method="get"} 1.0
http_request_seconds_count{handler="/v1/predict",method="post"} 180
http_request_seconds_count{handler="/v1/predict",method="put"} 20
http_request_seconds_count{handler="/healthz",method="get"} 507
"""

OPERATOR_NAMES = MetricNames(
    requests_total="http_requests_total",
    duration_seconds="http_request_seconds",
    path_label="handler",
    path="/v1/predict",
    code_label="status",
)


def _load_serve() -> ModuleType:
    """The reference server runs as a plain script in its image, so load it from its file."""
    name = "nomadml_bundled_serve_for_metrics"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SERVE_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses resolves annotations through sys.modules while the module executes.
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- parse


def test_parse_reference_output_keeps_every_sample_in_order() -> None:
    samples = parse(REFERENCE)
    assert len(samples) == 21
    assert samples[0] == Sample(
        "nomadml_requests_total", (("code", "200"), ("path", "/health")), 31
    )
    assert samples[6] == Sample("nomadml_request_duration_seconds_bucket", (("le", "0.005"),), 10)
    assert samples[16] == Sample("nomadml_request_duration_seconds_bucket", (("le", "+Inf"),), 100)
    assert samples[17] == Sample("nomadml_request_duration_seconds_sum", (), 4.25)
    assert samples[19] == Sample("nomadml_predict_in_flight", (), 2)
    assert samples[-1].labels == (("model", "iris"), ("version", "1.2.0"))


def test_parse_sorts_labels_and_reads_them_by_name() -> None:
    (sample,) = parse('m{zeta="1",alpha="2",mid="3"} 7\n')
    assert sample.labels == (("alpha", "2"), ("mid", "3"), ("zeta", "1"))
    assert sample.label("mid") == "3"
    assert sample.label("absent") is None


def test_parse_label_escapes_and_separators_inside_values() -> None:
    text = r'm{q="say \"hi\"",b="c:\\dir",n="one\ntwo",s="a,b}c=d",t="\\n",u="\\q"} 1'
    (sample,) = parse(text)
    assert dict(sample.labels) == {
        "q": 'say "hi"',
        "b": "c:\\dir",
        "n": "one\ntwo",
        "s": "a,b}c=d",
        "t": "\\n",
        "u": "\\q",
    }


def test_parse_reference_server_label_escaping_round_trips() -> None:
    serve = _load_serve()
    weird = 'a "quoted"\\ model\nname, {x}'
    line = f'nomadml_model_info{{model="{serve._label(weird)}"}} 1'
    assert parse(line)[0].label("model") == weird


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ("m 1", 1.0),
        ("m -0.5", -0.5),
        ("m 1e3", 1000.0),
        ("m 2.5E-3", 0.0025),
        ("m .5", 0.5),
        ("m +Inf", INF),
        ("m -Inf", -INF),
        ("m 1 1700000000000", 1.0),
        ("m 3 -42", 3.0),
        ('m{a="b"} 4 1700000000000', 4.0),
        ('m{a="b"}5', 5.0),
        ('m{a="b",} 6', 6.0),
        ('m { a = "b" } 7', 7.0),
        ("m\t8\t1700000000000", 8.0),
        ("  m 9  ", 9.0),
        ("m 10\r", 10.0),
        ("m{} 11", 11.0),
        ("name:with_colons 12", 12.0),
    ],
)
def test_parse_values_timestamps_and_spacing(line: str, value: float) -> None:
    (sample,) = parse(line)
    assert sample.value == value


def test_parse_nan() -> None:
    (sample,) = parse("m NaN")
    assert math.isnan(sample.value)


def test_parse_skips_comments_and_blank_lines() -> None:
    text = '\n# HELP m help text with {braces} and "quotes"\n# TYPE m counter\n\n   \n#\nm 1\n'
    assert parse(text) == [Sample("m", (), 1.0)]
    assert parse("") == []


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('m{a="b" 1', "expected ',' or '}'"),
        ('m{a="b"', "expected ',' or '}'"),
        ("m{a=b} 1", "quoted label value"),
        ('m{a="unterminated} 1', "quoted label value"),
        ('m{a="b",a="c"} 1', "label 'a' appears twice"),
        (r'm{a="\q"} 1', "invalid escape"),
        ('m{1a="b"} 1', "label name"),
        ('m{a "b"} 1', "'='"),
        ("1m 1", "metric name"),
        ("m", "space before the value"),
        ('m{a="b"}', "a number"),
        ("m abc", "a number"),
        ("m 1_000", "unexpected text"),
        ("m 1.5.3", "unexpected text"),
        ("m Infinity", "unexpected text"),
        ("m 1 12.5", "unexpected text"),
        ("m 1 2 3", "unexpected text"),
        ("m 1 # trailing comment", "integer timestamp"),
    ],
)
def test_parse_rejects_malformed_lines(line: str, problem: str) -> None:
    with pytest.raises(MetricsFormatError) as caught:
        parse(f"# TYPE m counter\ngood 1\n{line}\nlater 2\n")
    err = caught.value
    assert err.line == 3
    assert problem in err.problem
    assert str(err).startswith("line 3: ")
    assert err.excerpt == line


def test_parse_error_excerpt_is_short() -> None:
    line = "m{" + ",".join(f'l{i}="{"x" * 20}"' for i in range(20)) + " 1"
    with pytest.raises(MetricsFormatError) as caught:
        parse(line)
    assert len(caught.value.excerpt) == 60
    assert caught.value.excerpt.endswith("...")
    assert isinstance(caught.value, ValueError)


# --------------------------------------------------------------------------- snapshot


def test_snapshot_of_reference_output() -> None:
    snap = snapshot(parse(REFERENCE), MetricNames())
    # Only /predict counts; 400 is the client's fault, 500 the server's; "other" 503 is elsewhere.
    assert snap == Snapshot(
        requests=100.0, errors=3.0, buckets=REFERENCE_BUCKETS, count=100.0, sum=4.25
    )


def test_snapshot_of_real_reference_server_render() -> None:
    serve = _load_serve()
    metrics = serve.Metrics("iris", "1.2.0")
    metrics.record("/predict", 200, 0.003)
    metrics.record("/predict", 200, 0.2)
    metrics.record("/predict", 500, 0.7)
    metrics.record("/health", 200, None)
    metrics.record("other", 503, None)
    snap = snapshot(parse(metrics.render()), MetricNames())
    assert (snap.requests, snap.errors, snap.count) == (3.0, 1.0, 3.0)
    assert snap.sum == pytest.approx(0.903)
    assert dict(snap.buckets) == {
        0.005: 1.0,
        0.01: 1.0,
        0.025: 1.0,
        0.05: 1.0,
        0.1: 1.0,
        0.25: 2.0,
        0.5: 2.0,
        1.0: 3.0,
        2.5: 3.0,
        5.0: 3.0,
        INF: 3.0,
    }


def test_snapshot_of_fresh_reference_server_is_zero_not_missing() -> None:
    snap = snapshot(parse(_load_serve().Metrics("iris", "1.2.0").render()), MetricNames())
    assert (snap.requests, snap.errors, snap.count, snap.sum) == (0.0, 0.0, 0.0, 0.0)
    assert len(snap.buckets) == 11
    assert all(n == 0.0 for _, n in snap.buckets)


def test_snapshot_with_operator_names_filters_path_and_sums_extra_labels() -> None:
    snap = snapshot(parse(OPERATOR), OPERATOR_NAMES)
    assert snap == Snapshot(
        requests=200.0,
        errors=20.0,
        buckets=((0.1, 110.0), (0.5, 190.0), (INF, 200.0)),
        count=200.0,
        sum=44.0,
    )


def test_snapshot_without_path_label_takes_every_series() -> None:
    text = """\
predictions_total{status="200"} 40
predictions_total{status="502"} 2
predictions_total{status="429"} 3
latency_seconds_bucket{le="1"} 45
latency_seconds_bucket{le="+Inf"} 45
"""
    names = MetricNames(
        requests_total="predictions_total", duration_seconds="latency_seconds", code_label="status"
    )
    snap = snapshot(parse(text), names)
    assert (snap.requests, snap.errors) == (45.0, 2.0)
    assert snap.buckets == ((1.0, 45.0), (INF, 45.0))


def test_snapshot_of_nothing_is_zero() -> None:
    assert snapshot([], MetricNames()) == Snapshot()
    assert snapshot(parse("unrelated_metric 5\n"), MetricNames()) == Snapshot()


def test_snapshot_wrong_names_find_nothing() -> None:
    assert snapshot(parse(OPERATOR), MetricNames()) == Snapshot()


def test_snapshot_adds_missing_inf_bucket_from_count() -> None:
    text = 'd_bucket{le="0.1"} 3\nd_bucket{le="1"} 5\nd_count 6\n'
    snap = snapshot(parse(text), MetricNames(duration_seconds="d"))
    assert snap.buckets == ((0.1, 3.0), (1.0, 5.0), (INF, 6.0))


def test_snapshot_ignores_nan_series() -> None:
    text = 'r{path="/predict",code="200"} NaN\nr{path="/predict",code="500"} 4\n'
    snap = snapshot(parse(text), MetricNames(requests_total="r"))
    assert (snap.requests, snap.errors) == (4.0, 4.0)


@pytest.mark.parametrize("bucket", ["d_bucket 3", 'd_bucket{le="fast"} 3', 'd_bucket{le="NaN"} 3'])
def test_snapshot_rejects_bucket_without_numeric_le(bucket: str) -> None:
    with pytest.raises(MetricsFormatError, match="no numeric 'le'"):
        snapshot(parse(bucket), MetricNames(duration_seconds="d"))


def test_metric_names_defaults_equal_spec_defaults() -> None:
    spec = parse_spec('[model]\nname = "iris"\n', "iris.toml")
    assert spec.gates.metrics == MetricNames()


def test_the_spec_reads_operator_metric_names() -> None:
    text = """\
[model]
name = "iris"

[gates.metrics]
requests_total = "http_requests_total"
duration_seconds = "http_request_seconds"
path_label = "handler"
path = "/v1/predict"
code_label = "status"
"""
    assert parse_spec(text, "iris.toml").gates.metrics == OPERATOR_NAMES
    one = parse_spec('[model]\nname = "iris"\n[gates.metrics]\npath = "/score"\n', "s.toml")
    assert one.gates.metrics == MetricNames(path="/score")
    with pytest.raises(SpecError, match=r"gates\.metrics\.path: expected a string"):
        parse_spec('[model]\nname = "iris"\n[gates.metrics]\npath = 5\n', "s.toml")


# --------------------------------------------------------------------------- delta


def _snap(requests: float, errors: float, buckets: list[float], total: float = 0.0) -> Snapshot:
    """A snapshot over bounds 0.1, 0.5, +Inf with the given cumulative counts."""
    return Snapshot(
        requests=requests,
        errors=errors,
        buckets=tuple(zip((0.1, 0.5, INF), buckets, strict=True)),
        count=buckets[-1],
        sum=total,
    )


def test_delta_subtracts_every_counter() -> None:
    before = _snap(100, 2, [50, 90, 100], 10.0)
    after = _snap(160, 5, [80, 140, 160], 16.5)
    assert delta(before, after) == _snap(60, 3, [30, 50, 60], 6.5)


def test_delta_of_unchanged_scrapes_is_empty_traffic() -> None:
    snap = _snap(100, 2, [50, 90, 100], 10.0)
    window = delta(snap, snap)
    assert window == _snap(0, 0, [0, 0, 0], 0.0)
    assert quantile(window.buckets, 0.95) is None


@pytest.mark.parametrize(
    "after",
    [
        _snap(30, 1, [20, 28, 30], 3.0),  # everything reset
        _snap(160, 1, [80, 140, 160], 16.5),  # only errors went down
        _snap(160, 5, [40, 140, 160], 16.5),  # only a bucket went down
        _snap(160, 5, [80, 140, 160], 9.0),  # only the sum went down
        Snapshot(160, 5, ((0.25, 120), (INF, 160)), 160, 16.5),  # new bucket layout
    ],
)
def test_delta_after_a_restart_is_the_new_process_counts(after: Snapshot) -> None:
    before = _snap(100, 2, [50, 90, 100], 10.0)
    assert delta(before, after) == after


def test_delta_from_a_scrape_without_the_histogram_yet() -> None:
    before = Snapshot(requests=0.0, errors=0.0)
    after = _snap(12, 1, [6, 11, 12], 1.5)
    assert delta(before, after) == after


def test_delta_of_parsed_scrapes() -> None:
    later = REFERENCE.replace("} 95\n", "} 135\n").replace('"500"} 3', '"500"} 8')
    later = later.replace('{le="+Inf"} 100', '{le="+Inf"} 145').replace("_count 100", "_count 145")
    window = delta(snapshot(parse(REFERENCE), MetricNames()), snapshot(parse(later), MetricNames()))
    assert (window.requests, window.errors, window.count) == (45.0, 5.0, 45.0)
    assert window.buckets[-1] == (INF, 45.0)
    assert window.buckets[0] == (0.005, 0.0)


# --------------------------------------------------------------------------- merge


def test_merge_sums_allocations_with_equal_layouts() -> None:
    merged = merge([_snap(10, 1, [5, 8, 10], 1.0), _snap(30, 2, [10, 25, 30], 2.5)])
    assert merged == _snap(40, 3, [15, 33, 40], 3.5)


def test_merge_unions_bounds_carrying_the_next_lower_count() -> None:
    a = Snapshot(10, 0, ((0.1, 4.0), (0.5, 8.0), (INF, 10.0)), 10, 2.0)
    b = Snapshot(5, 1, ((0.25, 3.0), (INF, 5.0)), 5, 1.0)
    merged = merge([a, b])
    # 0.1: 4 + nothing below b's first bound; 0.25: a carries 4 from 0.1; 0.5: b carries 3.
    assert merged.buckets == ((0.1, 4.0), (0.25, 7.0), (0.5, 11.0), (INF, 15.0))
    assert (merged.requests, merged.errors, merged.count, merged.sum) == (15, 1, 15, 3.0)


def test_merge_with_a_snapshot_without_histogram() -> None:
    a = _snap(10, 1, [5, 8, 10], 1.0)
    merged = merge([a, Snapshot(requests=4.0, errors=4.0)])
    assert merged.buckets == a.buckets
    assert (merged.requests, merged.errors) == (14.0, 5.0)


def test_merge_of_nothing_and_of_one() -> None:
    assert merge([]) == Snapshot()
    one = _snap(10, 1, [5, 8, 10], 1.0)
    assert merge(iter([one])) == one


# --------------------------------------------------------------------------- quantile


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (0.5, 0.02),  # rank 50 in (0.01, 0.025]: 0.01 + 0.015 * 20/30
        (0.95, 0.225),  # rank 95 in (0.1, 0.25]: 0.1 + 0.15 * 5/6
        (0.9, 0.1),  # rank 90 is exactly the 0.1 bucket's count
        (0.05, 0.0025),  # first bucket interpolates from 0: 0.005 * 5/10
        (0.99, 1.0),
        (1.0, 2.5),  # the first bound that holds everything
        (0.0, 0.0),
    ],
)
def test_quantile_interpolates_inside_the_bucket(q: float, expected: float) -> None:
    assert quantile(REFERENCE_BUCKETS, q) == pytest.approx(expected)


def test_quantile_in_the_inf_bucket_is_the_highest_finite_bound() -> None:
    assert quantile(((0.1, 5.0), (0.5, 6.0), (INF, 10.0)), 0.9) == 0.5
    assert quantile(((0.1, 5.0), (0.5, 6.0), (INF, 10.0)), 0.6) == 0.5
    assert quantile(((0.1, 5.0), (0.5, 6.0), (INF, 10.0)), 0.55) == pytest.approx(0.3)


@pytest.mark.parametrize(
    "buckets",
    [(), ((0.1, 0.0), (INF, 0.0)), ((INF, 0.0),), ((INF, 7.0),)],
)
def test_quantile_without_usable_data_is_none(buckets: tuple[tuple[float, float], ...]) -> None:
    assert quantile(buckets, 0.95) is None


def test_quantile_forces_counts_to_be_cumulative() -> None:
    # 0.5 dips below 0.1 (a torn scrape); treated as 4, so rank 4 ends in the first bucket.
    assert quantile(((0.1, 4.0), (0.5, 3.0), (1.0, 8.0), (INF, 8.0)), 0.5) == pytest.approx(0.1)


def test_quantile_first_bound_at_or_below_zero() -> None:
    assert quantile(((0.0, 3.0), (1.0, 4.0), (INF, 4.0)), 0.5) == 0.0


def test_quantile_without_inf_bucket_uses_the_last_bound_as_total() -> None:
    assert quantile(((1.0, 2.0), (3.0, 4.0)), 0.75) == pytest.approx(2.0)


@pytest.mark.parametrize("q", [-0.1, 1.5, math.nan])
def test_quantile_rejects_out_of_range(q: float) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        quantile(REFERENCE_BUCKETS, q)


# --------------------------------------------------------------------------- purity


def test_metrics_and_gates_import_nothing_beyond_the_standard_library() -> None:
    code = (
        "import sys, nomadml.core.metrics, nomadml.core.gates\n"
        "bad = sorted({'click', 'docker', 'nomad', 'requests', 'jinja2'} & set(sys.modules))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == ""
