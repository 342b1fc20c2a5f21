"""The built-in web view on a real chDB store: pages, the topology SVG, no external resources."""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import networkx as nx
import pytest

from chainmap_otel.server import create_app
from chainmap_otel.server.topology_svg import layered_layout
from chainmap_otel.storage.store import TraceStore, open_store
from tests.server import chain_traffic


@pytest.fixture(scope="module")
def web(chdb_store: TraceStore, chdb_path: Path) -> Iterator[tuple[httpx.Client, dict[str, Any]]]:
    from chainmap_otel.storage.schema import apply_schema

    store = open_store(f"chdb://{chdb_path}?database=t_{uuid.uuid4().hex[:12]}")
    apply_schema(store, progress=lambda line: None)
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


def test_chain_page_draws_the_topology_and_analysis(client: httpx.Client) -> None:
    html = page(client, "/chains/B3")
    svg = re.search(r"<svg class=\"topology\".*?</svg>", html, re.S)
    assert svg is not None
    nodes = set(re.findall(r'data-node="([^"]+)"', svg.group(0)))
    assert {"trading-engine", "database-service", "postgresql", "caller:ai-orchestration"} <= nodes
    assert "api-gateway" not in nodes
    edges = set(re.findall(r'data-source="([^"]+)" data-target="([^"]+)"', svg.group(0)))
    assert ("database-service", "postgresql") in edges
    assert "20 calls" in svg.group(0)
    assert 'class="node database' in svg.group(0)
    assert "burn 1h" in html and "Critical path" in html
    assert "matches its expected topology" in html
    assert 'class="fill" style="width:' in html  # share bars
    assert_self_contained(html)


def test_all_traffic_page_and_static_files(client: httpx.Client) -> None:
    html = page(client, "/topology")
    assert 'data-node="report-service"' in html
    css = client.get("/static/style.css")
    js = client.get("/static/app.js")
    assert css.status_code == 200 and ".badge.critical" in css.text
    assert js.status_code == 200 and "setInterval" in js.text
    assert "http" not in js.text.replace("window.location.href", "")


def test_trace_waterfall(web: tuple[httpx.Client, dict[str, Any]]) -> None:
    client, inserted = web
    trace = inserted["trades"][0]
    html = page(client, "/traces", trace_id=trace)
    assert f"Critical path of {trace}" in html
    assert html.count('class="wf"') >= 3
    assert "api-gateway" in html and "trading-engine" in html
    assert "Paste a trace id" in page(client, "/traces")


@pytest.mark.parametrize(
    ("path", "params", "status", "text"),
    [
        ("/chains/NOPE", {}, 404, "unknown chain id &#x27;NOPE&#x27;"),
        ("/chains/B3", {"since": "someday"}, 400, "query parameter since"),
        ("/traces", {"trace_id": "nope"}, 400, "not 32 hex characters"),
        ("/traces", {"trace_id": "ab" * 16}, 404, "not found"),
        ("/", {"until": "later"}, 400, "query parameter until"),
    ],
)
def test_errors_render_as_pages(
    client: httpx.Client, path: str, params: dict[str, str], status: int, text: str
) -> None:
    html = page(client, path, status, **params)
    assert text in html and "Traceback" not in html


def test_layout_layers_follow_the_edges() -> None:
    graph = nx.DiGraph()
    graph.add_node("user", type="user")
    graph.add_edges_from(
        [("user", "gw"), ("gw", "ai"), ("ai", "te"), ("gw", "te"), ("te", "db"), ("db", "te")]
    )
    layout = layered_layout(graph)
    assert layout.layers["user"] == 0 and layout.layers["gw"] == 1 and layout.layers["ai"] == 2
    assert layout.layers["te"] == layout.layers["db"] == 3  # a cycle shares a layer
    xs = {node: x for node, (x, _) in layout.positions.items()}
    assert xs["user"] < xs["gw"] < xs["ai"] < xs["te"]
    same_column = [y for node, (_, y) in layout.positions.items() if node in ("te", "db")]
    assert same_column[0] != same_column[1]
    assert all(0 < x < layout.width and 0 < y < layout.height for x, y in layout.positions.values())


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome", "headless_shell"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.mark.skipif(
    _chromium() is None,
    reason="headless Chromium is not installed (Debian package chromium; .ci/run installs it)",
)
def test_chain_page_in_headless_chromium(client: httpx.Client, tmp_path: Path) -> None:
    browser = _chromium()
    assert browser is not None
    result = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path}",
            "--virtual-time-budget=3000",
            "--dump-dom",
            str(client.base_url.join("/chains/B3")),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'data-node="postgresql"' in result.stdout
    assert "Trade execution" in result.stdout


def test_windowed_pages_refresh_and_the_trace_page_does_not(
    web: tuple[httpx.Client, dict[str, Any]],
) -> None:
    client, inserted = web
    assert 'data-refresh="10"' in page(client, "/")
    assert 'data-refresh="10"' in page(client, "/chains/B1", since="15m")
    assert "data-refresh" not in page(client, "/traces", trace_id=inserted["trades"][1])
