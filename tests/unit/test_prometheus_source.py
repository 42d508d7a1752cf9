"""The Prometheus metric source against a stand-in Prometheus HTTP API on loopback:
answers become per-allocation snapshots; a refused query is one line naming it."""

from __future__ import annotations

import http.server
import json
import threading
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from nomadml.adapters.prometheus import PrometheusSource, PromQueries
from nomadml.errors import BadInput

QUERIES = PromQueries(
    "http://127.0.0.1:0",
    'sum by (alloc_id) (req{svc="{service}"})',
    'sum by (alloc_id) (req{svc="{service}",code=~"5.."})',
    'sum by (alloc_id, le) (lat_bucket{svc="{service}"})',
)


def vector(*series: tuple[dict[str, str], str]) -> dict[str, Any]:
    result = [{"metric": m, "value": [1.0, v]} for m, v in series]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


ANSWERS = {
    'sum by (alloc_id) (req{svc="iris-v1"})': vector(
        ({"alloc_id": "a"}, "100"), ({"alloc_id": "c"}, "40")
    ),
    'sum by (alloc_id) (req{svc="iris-v1",code=~"5.."})': vector(({"alloc_id": "c"}, "4")),
    'sum by (alloc_id, le) (lat_bucket{svc="iris-v1"})': vector(
        ({"alloc_id": "a", "le": "0.1"}, "90"),
        ({"alloc_id": "a", "le": "+Inf"}, "100"),
        ({"alloc_id": "c", "le": "0.1"}, "10"),
        ({"alloc_id": "c", "le": "+Inf"}, "40"),
    ),
}


@pytest.fixture()
def prometheus() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)["query"][0]
            body = ANSWERS.get(query) or {
                "status": "error",
                "errorType": "bad_data",
                "error": f"parse error in {query!r}",
            }
            data = json.dumps(body).encode()
            self.send_response(200 if body["status"] == "success" else 400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def source(url: str, **changes: str) -> PrometheusSource:
    fields = {**QUERIES.__dict__, "url": url, **changes}
    return PrometheusSource(PromQueries(**fields), "spec.toml: gates.prometheus")


def test_answers_become_snapshots_per_allocation(prometheus: str) -> None:
    readings = {r.key: r for r in source(prometheus).read("iris-v1", {"c"})}
    assert set(readings) == {"prometheus/a", "prometheus/c"}
    stable, canary = readings["prometheus/a"], readings["prometheus/c"]
    assert (stable.canary, canary.canary) == (False, True)
    assert (canary.snapshot.requests, canary.snapshot.errors) == (40, 4)
    assert stable.snapshot.errors == 0
    assert canary.snapshot.buckets == ((0.1, 10.0), (float("inf"), 40.0))
    assert canary.snapshot.count == 40


def test_a_refused_query_is_one_line_naming_it(prometheus: str) -> None:
    bad = source(prometheus, errors="sum(rate(oops[")
    with pytest.raises(BadInput) as caught:
        bad.check("iris-v1")
    assert str(caught.value).startswith(
        "spec.toml: gates.prometheus.errors: Prometheus answered: bad_data: parse error in"
    )
    assert bad.read("iris-v1", {"c"}) == []  # during a rollout: nothing this round


def test_unreachable_is_one_line_too() -> None:
    with pytest.raises(BadInput, match=r"gates\.prometheus\.requests: .* unreachable"):
        source("http://127.0.0.1:9").check("iris-v1")
