"""The built-in web view on a real chDB store: pages, the trace API, no external resources."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from chainmap_otel.server import create_app
from chainmap_otel.storage.store import TraceStore
from tests.server import chain_traffic
from tests.support.stores import fresh_store


@pytest.fixture(scope="module")
def web(chdb_store: TraceStore, chdb_path: Path) -> Iterator[tuple[httpx.Client, dict[str, Any]]]:

    store = fresh_store(chdb_path)
    inserted = chain_traffic.seed(store)
    try:
        with chain_traffic.serving(create_app(store, chains=chain_traffic.catalog())) as client:
            yield client, inserted
    finally:
        store.command(f"DROP DATABASE IF EXISTS {store.database}")
        store.close()


@pytest.fixture(scope="module")
def client(web: tuple[httpx.Client, dict[str, Any]]) -> httpx.Client:
    return web[0]


def page(client: httpx.Client, path: str, status: int = 200, **params: str) -> str:
    response = client.get(path, params=params)
    assert response.status_code == status, response.text[:2000]
    assert response.headers["content-type"].startswith("text/html")
    return response.text


def assert_self_contained(html: str) -> None:
    """Every script, stylesheet and link points back at this server."""
    for attribute in re.findall(r'(?:src|href)="([^"]*)"', html):
        assert attribute.startswith(("/", "?", "#")), attribute
    assert "cdn" not in html.lower()


def test_index_lists_chains_with_status_rate_errors_and_slo(client: httpx.Client) -> None:
    html = page(client, "/")
    for name in (
        "API request",
        "AI trading decision",
        "Trade execution",
        "WebSocket market stream",
    ):
        assert name in html
    assert re.search(r'class="badge (healthy|degraded|critical)"', html)
    assert "15.00%" in html  # B3's error ratio: 3 failed of 20
    assert "/ 500.0 ms" in html  # B3's p95 objective next to its observed p95
    assert "no traffic" in html  # C1 has none
    assert 'href="/chains/B3"' in html
    assert_self_contained(html)


def _embedded_topology(html: str, key: str) -> dict[str, Any]:
    match = re.search(
        rf'data-topology="{re.escape(key)}"[^>]*><script type="application/json" '
        r'class="topology-data">(.*?)</script>',
        html,
        re.S,
    )
    assert match is not None, html[:3000]
    data: dict[str, Any] = json.loads(match.group(1))
    return data


def test_index_keeps_the_chain_list_order_with_sparklines(client: httpx.Client) -> None:
    html = page(client, "/")
    listed = re.findall(r'<a href="/chains/([^"?]+)"><b>', html)
    api = client.get("/api/v1/chains").json()["chains"]
    assert listed == [c["id"] for c in api]  # worst status first, then most critical
    assert api[0]["health"]["status"] == "critical"
    for heading in ("rate trend", "errors trend", "p95 trend"):
        assert f"<th>{heading}</th>" in html
    b3 = next(c for c in api if c["id"] == "B3")
    steps = len(b3["series"]["rate_per_s"])
    assert steps >= 2
    row = re.search(r'<tr><td><a href="/chains/B3">.*?</tr>', html, re.S)
    assert row is not None
    assert row.group(0).count('<svg class="spark ') == 3
    peak = max(v for v in b3["series"]["errors"] if v is not None)
    assert f"B3 errors, {steps} steps of" in row.group(0) and f"peak {peak:,.3g}" in row.group(0)


def test_sparkline_scales_to_the_series_and_skips_gaps() -> None:
    from chainmap_otel.server.web.pages import sparkline

    svg = sparkline([0.0, 2.0, None, 4.0], "B3 rate")
    points = re.search(r'points="([^"]+)"', svg)
    assert points is not None
    pairs = [tuple(map(float, p.split(","))) for p in points.group(1).split()]
    assert len(pairs) == 3  # the gap is left out
    assert pairs[0][1] > pairs[1][1] > pairs[2][1]  # higher values draw higher
    assert pairs[2] == (80.0, 1.0)  # the peak touches the top at the right edge
    assert "<title>B3 rate</title>" in svg
    # No traffic says so; one step (a short window) is still drawn, as a level line.
    assert sparkline([], "none") == sparkline([None, None], "idle")
    assert ">no data</span>" in sparkline([], "none")
    one = re.search(r'points="([^"]+)"', sparkline([1.0], "one"))
    assert one is not None and one.group(1) == "0.0,1.0 80.0,1.0"
    # One value among empty steps (a p95 with traffic in one step only) is a dot, not nothing.
    dot = sparkline([None, 5.0, None, None, None], "dot")
    assert '<circle cx="20.0" cy="1.0" r="2"/>' in dot and "polyline" not in dot


def test_chain_page_embeds_its_topology_for_the_graph_library(client: httpx.Client) -> None:
    html = page(client, "/chains/B3")
    topo = _embedded_topology(html, "chain:B3")
    assert topo == client.get("/api/v1/chains/B3/topology").json() | {"window": topo["window"]}
    nodes = {n["id"] for n in topo["nodes"]}
    # The chain's subtree: the caller of its entry span is one node, the gateway is not drawn.
    assert {"trading-engine", "database-service", "postgresql", "caller:ai-orchestration"} <= nodes
    assert "api-gateway" not in nodes
    assert {"source": "database-service", "target": "postgresql"}.items() <= next(
        e for e in topo["edges"] if e["target"] == "postgresql"
    ).items()
    for script in ("vendor/cytoscape.min.js", "vendor/cytoscape-dagre.min.js", "topology.js"):
        assert f'<script src="/static/{script}" defer></script>' in html
    assert "burn 1h" in html and "Critical path" in html
    assert "matches its expected topology" in html
    assert 'class="fill" style="width:' in html  # share bars
    assert_self_contained(html)


def test_chain_page_lists_slowest_failing_and_recent_traces(client: httpx.Client) -> None:
    html = page(client, "/chains/B3", since="15m")
    queries = [
        dict(parse_qsl(unescape(q)))
        for q in re.findall(r'class="trace-list" data-compact data-query="([^"]+)"', html)
    ]
    assert queries == [
        {"chain": "B3", "order": "duration", "limit": "8", "since": "15m"},
        {"chain": "B3", "chain_status": "error", "order": "duration", "limit": "8", "since": "15m"},
        {
            "chain": "B3",
            "status": "error",
            "chain_status": "ok",
            "order": "duration",
            "limit": "8",
            "since": "15m",
        },
        {"chain": "B3", "order": "start", "limit": "8", "since": "15m"},
    ]
    assert "chain failed, slowest first" in html and "a span failed, chain ok" in html
    assert '<script src="/static/search.js" defer></script>' in html


def test_chain_page_shows_red_per_operation_linked_to_its_traces(client: httpx.Client) -> None:
    html = page(client, "/chains/B3", since="15m")
    section = html.split('<h2 id="operations">', 1)[1].split("</section>", 1)[0]
    api = client.get("/api/v1/chains/B3/operations", params={"since": "15m"}).json()
    rows = re.findall(r"<tr><td>(.*?)</td><td><a href=\"/search\?([^\"]+)\">(.*?)</a>", section)
    assert [(unescape(s), unescape(op)) for s, _, op in rows] == [
        (o["service"], o["operation"]) for o in api["operations"]
    ]
    service, query, operation = rows[0]
    assert dict(parse_qsl(unescape(query))) == {
        "chain": "B3",
        "service": unescape(service),
        "operation": unescape(operation),
        "order": "duration",
        "since": "15m",
    }
    assert section.count('<svg class="spark rate"') == len(rows)
    assert f"{api['operations'][0]['rate_per_s']:.3f}/s" in section


def test_all_traffic_page_and_static_files(client: httpx.Client) -> None:
    html = page(client, "/topology")
    topo = _embedded_topology(html, "all")
    assert "report-service" in {n["id"] for n in topo["nodes"]}
    css = client.get("/static/style.css")
    js = client.get("/static/app.js")
    assert css.status_code == 200 and ".badge.critical" in css.text
    assert js.status_code == 200 and "setInterval" in js.text
    for name in ("app.js", "topology.js", "trace.js", "search.js"):
        text = client.get(f"/static/{name}").text
        assert "http" not in text.replace("window.location.href", ""), name


def test_the_graph_library_is_vendored_with_its_licences(client: httpx.Client) -> None:
    from chainmap_otel.server.web.pages import STATIC_DIR

    vendor = STATIC_DIR / "vendor"
    readme = (vendor / "README.md").read_text()
    for package in ("cytoscape", "cytoscape-dagre", "@dagrejs/dagre", "@dagrejs/graphlib"):
        assert f"`{package}`" in readme
        assert (vendor / f"LICENSE.{package.split('/')[-1]}").read_text().startswith(
            ("Copyright", "MIT", "The MIT")
        ) or "Permission is hereby granted" in (
            vendor / f"LICENSE.{package.split('/')[-1]}"
        ).read_text()
    assert "`swagger-ui-dist` | 5." in readme
    assert "Apache License" in (vendor / "swagger-ui" / "LICENSE").read_text()
    for name in ("cytoscape.min.js", "cytoscape-dagre.min.js"):
        response = client.get(f"/static/vendor/{name}")
        assert response.status_code == 200 and len(response.content) > 10_000
        assert response.headers["content-type"].startswith(
            ("text/javascript", "application/javascript")
        )


def test_the_whole_trace_api_returns_every_span_and_the_critical_path(
    web: tuple[httpx.Client, dict[str, Any]],
) -> None:
    client, inserted = web
    trace = inserted["trades"][0]
    body = client.get(f"/api/v1/traces/{trace}").json()
    assert body["trace_id"] == trace and body["span_count"] == body["returned_spans"] == 10
    assert body["truncated"] is False and body["note"] is None
    spans = {s["span_id"]: s for s in body["spans"]}
    roots = [s for s in spans.values() if not s["parent_span_id"]]
    assert len(roots) == 1 and roots[0]["service"] == "api-gateway"
    assert all(s["parent_span_id"] in spans for s in spans.values() if s is not roots[0])
    assert body["chain_ids"] == ["A2", "B1", "B3"]
    entry = next(s for s in spans.values() if s["entry_ids"] == ["B3"])
    assert entry["service"] == "trading-engine" and entry["chain_ids"] == ["B1", "A2", "B3"]
    assert entry["kind"] == "server" and entry["status"] == "error"  # trade 0 failed
    assert entry["attributes"]["http.route"] == "/orders"
    assert entry["resource"] == {"service.name": "trading-engine"}
    assert body["error_count"] == 5
    critical = client.get(f"/api/v1/chains/traces/{trace}/critical-path").json()
    assert body["critical_path"] == critical["sections"]
    assert body["duration_ms"] == pytest.approx(300.0)


def test_the_whole_trace_api_caps_spans_with_a_note(
    web: tuple[httpx.Client, dict[str, Any]],
) -> None:
    client, inserted = web
    trace = inserted["trades"][1]
    body = client.get(f"/api/v1/traces/{trace}", params={"max_spans": 4}).json()
    assert body["span_count"] == 10 and body["returned_spans"] == len(body["spans"]) == 4
    assert body["truncated"] is True
    assert "first 4 of 10 spans" in body["note"] and "max_spans" in body["note"]
    starts = [s["start_unix_nano"] for s in body["spans"]]
    assert starts == sorted(starts)


@pytest.mark.parametrize(
    ("path", "params", "status", "text"),
    [
        ("/api/v1/traces/nope", {}, 400, "trace_id 'nope' is not 32 hex characters"),
        ("/api/v1/traces/" + "ab" * 16, {}, 404, "not found"),
        ("/api/v1/traces/" + "ab" * 16, {"max_spans": "0"}, 400, "max_spans='0' must be a whole"),
        ("/api/v1/traces/" + "ab" * 16, {"max_spans": "50001"}, 400, "between 1 and 50000"),
        ("/api/v1/traces/" + "ab" * 16, {"max_spans": "many"}, 400, "max_spans='many' must be"),
    ],
)
def test_the_whole_trace_api_rejects_bad_input(
    client: httpx.Client, path: str, params: dict[str, str], status: int, text: str
) -> None:
    response = client.get(path, params=params)
    assert response.status_code == status
    assert text in response.json()["detail"]


def test_trace_view_page_and_the_old_url(web: tuple[httpx.Client, dict[str, Any]]) -> None:
    client, inserted = web
    trace = inserted["trades"][0]
    html = page(client, f"/traces/{trace}")
    assert f'<div id="trace-view" data-trace-id="{trace}"></div>' in html
    assert '<script src="/static/trace.js" defer></script>' in html
    assert_self_contained(html)
    old = client.get("/traces", params={"trace_id": trace.upper()}, follow_redirects=False)
    assert old.status_code == 307 and old.headers["location"] == f"/traces/{trace}"


def test_search_page_is_prefilled_from_its_url(client: httpx.Client) -> None:
    params: dict[str, Any] = {
        "chain": "B3",
        "status": "error",
        "min_duration_ms": "100",
        "order": "start",
        "attr": ["http.route=/orders", "tenant"],
        "service": "trading-engine",
        "operation": "POST /orders",
        "chain_status": "ok",
    }
    html = client.get("/search", params={**params, "since": "2h"}).text
    assert 'name="since" value="2h"' in html
    assert '<option value="B3" selected>B3 Trade execution</option>' in html
    assert '<option value="error" selected>error</option>' in html
    assert 'name="min_duration_ms" value="100"' in html
    assert 'name="attr" value="http.route=/orders"' in html
    assert 'name="attr" value="tenant"' in html
    assert '<option value="trading-engine" selected>trading-engine</option>' in html
    assert '<option value="POST /orders" selected>POST /orders</option>' in html
    assert '<select name="chain_status"><option value="">any</option><option value="error">' in html
    assert '<option value="ok" selected>ok</option>' in html
    assert 'id="search-scatter"' in html
    assert '<option value="start" selected>most recent first</option>' in html
    assert '<script src="/static/search.js" defer></script>' in html
    assert_self_contained(html)
    assert 'id="trace-search"' in page(client, "/traces")  # no id: the search page


def test_api_docs_are_served_offline(client: httpx.Client) -> None:
    html = client.get("/docs").text
    assets = re.findall(r"""(?:href|src|url)\s*[:=]\s*['"]([^'"]+)['"]""", html)
    assert "/openapi.json" in assets
    local = [a for a in assets if a != "/openapi.json"]
    assert local and all(a.startswith("/static/vendor/swagger-ui/") for a in local), assets
    assert "cdn" not in html.lower()
    for asset in local:
        response = client.get(asset)
        assert response.status_code == 200 and len(response.content) > 100, asset
    assert (
        "SwaggerUIBundle"
        in client.get("/static/vendor/swagger-ui/swagger-ui-bundle.js").text[:2_000_000]
    )
    assert client.get("/redoc").status_code == 404  # ReDoc would load from a CDN


@pytest.mark.parametrize(
    ("path", "params", "status", "text"),
    [
        ("/chains/NOPE", {}, 404, "unknown chain id &#x27;NOPE&#x27;"),
        ("/chains/B3", {"since": "someday"}, 400, "query parameter since"),
        ("/traces", {"trace_id": "nope"}, 400, "not 32 hex characters"),
        ("/traces/nope", {}, 400, "not 32 hex characters"),
        ("/traces/" + "ab" * 16, {}, 404, "not found"),
        ("/", {"until": "later"}, 400, "query parameter until"),
    ],
)
def test_errors_render_as_pages(
    client: httpx.Client, path: str, params: dict[str, str], status: int, text: str
) -> None:
    html = page(client, path, status, **params)
    assert text in html and "Traceback" not in html


def test_windowed_pages_refresh_and_the_trace_page_does_not(
    web: tuple[httpx.Client, dict[str, Any]],
) -> None:
    client, inserted = web
    assert 'data-refresh="10"' in page(client, "/")
    assert 'data-refresh="10"' in page(client, "/chains/B1", since="15m")
    assert "data-refresh" not in page(client, f"/traces/{inserted['trades'][1]}")


def test_alerts_page_without_a_registry_says_how_to_turn_alerts_on(client: httpx.Client) -> None:
    html = page(client, "/alerts")
    assert_self_contained(html)
    assert '<a href="/alerts">alerts</a>' in html  # in every page's navigation
    text = " ".join(unescape(re.sub(r"<[^>]+>", " ", re.sub(r"</?code>", "", html))).split())
    assert "runs without a chain registry (CHAINMAP_REGISTRY_URL=off)" in text
    assert "no alert is evaluated" in text and "leave CHAINMAP_REGISTRY_URL unset" in text
    assert client.get("/api/v1/alerts/deliveries").json() == {"enabled": False, "deliveries": []}
    refused = client.get("/api/v1/alerts/deliveries", params={"limit": 0})
    assert refused.status_code == 400 and "limit=0" in refused.json()["detail"]


def test_an_overspent_budget_says_how_many_times_not_a_negative_percentage() -> None:
    from chainmap_otel.server.web.pages import budget_left, status_badge

    assert budget_left(-15.417900, 0.164179, 0.01) == "exhausted (16.4x)"
    assert budget_left(0.25, 0.0075, 0.01) == "25.00%"
    assert status_badge("no_data") == '<span class="badge no_data">no data</span>'
