"""The web view in headless Chromium (Playwright driving /usr/bin/chromium) on demo-like data.

One served app and one browser for the module: every page renders without console
errors, the graph fits its box, zooms, pans and draws self-calls, a node click shows its
chains and traces, the waterfall shows every span of a 5,000-span trace with a small
DOM, trace search filters work, and a newcomer gets from the chain list to a slow
failing trace's waterfall in two clicks; the trace view folds ASGI spans, walks errors,
finds spans and leads to a comparison with a typical trace in one click. Screenshots go to the test's directory, and
into ``docs/`` when ``UPDATE_SCREENSHOTS=1``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlparse

import httpx
import pytest

from chainmap_otel.server import create_app
from chainmap_otel.storage.store import TraceStore, open_store
from tests.server import chain_traffic, trace_fixtures
from tests.support.browser import TIMEOUT_MS, Tab, chromium, needs_chromium, open_tab

pytestmark = needs_chromium


@dataclass
class Site:
    client: httpx.Client
    url: str
    trades: list[str]
    big: str
    loop: str
    asgi: str
    shots: Path


@pytest.fixture(scope="module")
def site(
    chdb_store: TraceStore, chdb_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    from chainmap_otel.storage.schema import apply_schema

    store = open_store(f"chdb://{chdb_path}?database=t_{uuid.uuid4().hex[:12]}")
    apply_schema(store, progress=lambda line: None)
    inserted = chain_traffic.seed(store)
    extra = trace_fixtures.seed(store)
    try:
        with chain_traffic.serving(create_app(store, chains=chain_traffic.catalog())) as client:
            yield Site(
                client,
                str(client.base_url).rstrip("/"),
                inserted["trades"],
                extra["big"],
                extra["loop"],
                extra["asgi"],
                tmp_path_factory.mktemp("screenshots"),
            )
    finally:
        store.command(f"DROP DATABASE IF EXISTS {store.database}")
        store.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as opened:
        yield opened


@pytest.fixture
def tab(browser: Any, site: Site) -> Iterator[Tab]:
    with open_tab(browser, site.url, site.shots) as opened:
        yield opened


# --------------------------------------------------------------------------- every page


def test_every_page_renders_without_console_errors(tab: Tab, site: Site) -> None:
    pages = [
        ("/", "table.chains"),
        ("/chains/B3", "[data-topology][data-drawn]"),
        ("/chains/C1", ".graph .canvas.empty"),
        ("/topology", "[data-topology][data-drawn]"),
        (f"/traces/{site.trades[0]}", "#trace-view[data-loaded] .wf-row"),
        (f"/traces/{site.big}", "#trace-view[data-loaded] .wf-row"),
        ("/search", "#search-results[data-state]"),
        (f"/traces/{site.asgi}", "#trace-view[data-loaded] .wf-row"),
        (f"/compare?a={site.trades[3]}&b={site.trades[0]}", "#compare-view[data-loaded] tbody tr"),
        ("/compare", "#trace-compare"),
        ("/docs", ".swagger-ui .info"),
    ]
    for path, ready in pages:
        tab.open(path)
        tab.wait(ready)
        if tab.page.query_selector(".trace-list"):
            tab.lists_loaded()
        assert tab.page.title().endswith(("chainmap", "chainmap API")), path
        assert not tab.problems, (path, tab.problems)
    tab.open("/")
    tab.shot("web-view-chains.png", full_page=True)


def test_api_docs_render_from_local_assets(tab: Tab, site: Site) -> None:
    loaded: list[str] = []
    tab.page.on("request", lambda request: loaded.append(request.url))
    tab.open("/docs")
    tab.wait(".swagger-ui .opblock-tag")
    assert "GET/api/v1/traces/{trace_id}" in tab.page.inner_text(".swagger-ui").replace("\n", "")
    assert loaded and all(url.startswith(site.url) for url in loaded), loaded
    assert any("/static/vendor/swagger-ui/swagger-ui-bundle.js" in url for url in loaded)


# --------------------------------------------------------------------------- the graph

_GRAPH_BOX = """() => {
  const box = document.querySelector('[data-topology]');
  const cy = box.chainmapGraph;
  const inside = cy.nodes().every(n => {
    const b = n.renderedBoundingBox();
    return b.x1 >= 0 && b.y1 >= 0 && b.x2 <= cy.width() && b.y2 <= cy.height();
  });
  const loops = cy.edges().filter(e => e.isLoop()).map(e => {
    const b = e.renderedBoundingBox();
    return {id: e.source().id(), label: e.data('label'), w: b.w, h: b.h,
            inside: b.x1 >= 0 && b.y1 >= 0 && b.x2 <= cy.width() && b.y2 <= cy.height()};
  });
  return {inside, loops, nodes: cy.nodes().length, zoom: cy.zoom(), pan: cy.pan(),
          labels: cy.edges().map(e => e.data('label')),
          width: cy.width(), height: cy.height(),
          box: box.getBoundingClientRect().width};
}"""


def test_graph_fits_the_box_and_draws_self_calls(tab: Tab, site: Site) -> None:
    tab.open("/topology")
    tab.wait("[data-topology][data-drawn]")
    graph = tab.page.evaluate(_GRAPH_BOX)
    api = site.client.get("/api/v1/chains/topology").json()
    assert graph["nodes"] == len(api["nodes"])
    assert graph["inside"], graph
    assert graph["width"] <= 1400 and graph["box"] <= 1400  # the box is the page's width
    loop = next(e for e in api["edges"] if e["source"] == e["target"])
    assert [entry["id"] for entry in graph["loops"]] == [loop["source"]]
    assert graph["loops"][0]["inside"] and graph["loops"][0]["w"] > 10
    assert graph["loops"][0]["label"].startswith(f"{loop['calls']} calls")
    assert all(" calls" in label and "p95 " in label for label in graph["labels"])
    tab.shot("web-view-topology.png")


def test_graph_zooms_pans_and_fits_again(tab: Tab) -> None:
    tab.open("/chains/B3")
    tab.wait("[data-topology][data-drawn]")
    before = tab.page.evaluate(_GRAPH_BOX)
    canvas = tab.page.locator(".graph .canvas").bounding_box()
    assert canvas is not None
    cx, cy = canvas["x"] + canvas["width"] / 2, canvas["y"] + canvas["height"] / 2
    tab.page.mouse.move(cx, cy)
    for _ in range(4):
        tab.page.mouse.wheel(0, -300)
    tab.page.wait_for_function(
        f"() => document.querySelector('[data-topology]').chainmapGraph.zoom() > {before['zoom'] * 1.05}"
    )
    tab.page.mouse.move(canvas["x"] + 8, canvas["y"] + canvas["height"] - 8)
    tab.page.mouse.down()
    tab.page.mouse.move(canvas["x"] + 200, canvas["y"] + canvas["height"] - 60, steps=8)
    tab.page.mouse.up()
    moved = tab.page.evaluate(_GRAPH_BOX)
    assert moved["pan"] != before["pan"]
    tab.page.click(".graph button.fit")
    fitted = tab.page.evaluate(_GRAPH_BOX)
    assert fitted["inside"] and fitted["zoom"] == pytest.approx(before["zoom"], rel=0.01)


def test_chain_page_shows_red_per_operation_with_drawn_sparklines(tab: Tab, site: Site) -> None:
    tab.open("/chains/B3")
    tab.wait("[data-topology][data-drawn]")
    api = site.client.get("/api/v1/chains/B3/operations", params={"since": "1h"}).json()
    section = "section:has(> h2#operations)"
    rows = tab.page.locator(f"{section} tbody tr")
    assert rows.count() == len(api["operations"]) > 0
    shown = rows.evaluate_all(
        "rows => rows.map(r => [r.cells[0].innerText.trim(), r.cells[1].innerText.trim()])"
    )
    assert shown == [[o["service"], o["operation"]] for o in api["operations"]]
    # Every row's rate sparkline is drawn at a visible size.
    boxes = tab.page.locator(f"{section} svg.spark.rate").evaluate_all(
        "svgs => svgs.map(s => s.getBoundingClientRect()).map(b => [b.width, b.height])"
    )
    assert len(boxes) == len(shown) and all(w > 20 and h > 5 for w, h in boxes)
    # The p95 trend draws something for every operation that had traffic (a dot for one step).
    marks = tab.page.locator(f"{section} svg.spark.p95").evaluate_all(
        "svgs => svgs.map(s => s.querySelector('polyline, circle').getBBox().width + 1)"
    )
    assert len(marks) == len(shown) and all(m >= 1 for m in marks)
    assert not tab.problems
    tab.shot("web-view-operations.png", element=section)


def test_node_click_shows_its_chains_and_traces(tab: Tab, site: Site) -> None:
    tab.open("/chains/B3")
    tab.wait("[data-topology][data-drawn]")
    position = tab.page.evaluate(
        "() => document.querySelector('[data-topology]').chainmapGraph"
        ".getElementById('trading-engine').renderedPosition()"
    )
    canvas = tab.page.locator(".graph .canvas").bounding_box()
    assert canvas is not None
    tab.page.mouse.click(canvas["x"] + position["x"], canvas["y"] + position["y"])
    tab.wait(".node-panel a.chain-link")
    panel = tab.page.locator(".node-panel")
    assert panel.is_visible()
    hrefs = panel.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert "/search?service=trading-engine" in hrefs
    assert "/search?service=trading-engine&status=error" in hrefs
    impact = site.client.get("/api/v1/chains/impact/trading-engine").json()
    chains = panel.locator("a.chain-link").evaluate_all(
        "links => links.map(a => a.getAttribute('href'))"
    )
    assert chains == [f"/chains/{c['chain_id']}" for c in impact["chains"]]
    assert "/chains/B3" in chains
    tab.shot("web-view-chain.png", full_page=True)
    tab.page.click(".node-panel button.close")
    assert not panel.is_visible()


def test_refresh_keeps_the_drawn_graph_and_its_zoom(tab: Tab) -> None:
    tab.open("/chains/B3")
    tab.wait("[data-topology][data-drawn]")
    tab.lists_loaded()
    before = tab.page.inner_text(".window .muted")
    zoom = tab.page.evaluate(
        """() => { const box = document.querySelector('[data-topology]');
                   box.dataset.marker = 'kept'; box.chainmapGraph.zoom(1.7); return 1.7; }"""
    )
    tab.page.wait_for_function(
        f"() => document.querySelector('.window .muted').innerText !== {before!r}",
        timeout=TIMEOUT_MS,
    )  # the 10 s refresh replaced the page's content
    after = tab.page.evaluate(
        """() => { const box = document.querySelector('[data-topology]');
                   return {marker: box.dataset.marker || '', zoom: box.chainmapGraph.zoom(),
                           boxes: document.querySelectorAll('[data-topology]').length,
                           lists: document.querySelectorAll('.trace-list').length}; }"""
    )
    assert after == {"marker": "kept", "zoom": zoom, "boxes": 1, "lists": 4}
    assert not tab.problems, tab.problems


def test_a_chain_caller_is_one_node_titled_by_its_service(tab: Tab) -> None:
    """The chain topology contract: the entry span's caller is a node of type caller."""
    tab.open("/topology")
    tab.wait("[data-topology][data-drawn]")
    drawn = tab.page.evaluate(
        """() => {
      const topo = {nodes: [
          {id: 'caller:api-gateway', title: 'api-gateway', type: 'caller', calls: 0, errors: 0},
          {id: 'pricing', type: 'service', calls: 5, errors: 0}],
        edges: [{source: 'caller:api-gateway', target: 'pricing', connection_type: '',
                 calls: 5, errors: 0, p95_ms: 12}]};
      const box = document.createElement('div');
      box.className = 'graph'; box.dataset.topology = 'caller-test';
      box.innerHTML = '<script type="application/json" class="topology-data"></' + 'script>' +
        '<div class="canvas"></div><aside class="node-panel" hidden></aside>';
      box.querySelector('script').textContent = JSON.stringify(topo);
      document.querySelector('main').appendChild(box);
      window.chainmapDrawGraphs();
      const node = box.chainmapGraph.getElementById('caller:api-gateway');
      return {label: node.data('label'), border: node.style('border-style'),
              service: node.data('service'), drawn: box.dataset.drawn};
    }"""
    )
    assert drawn == {
        "label": "api-gateway",
        "border": "dashed",
        "service": "api-gateway",
        "drawn": "1",
    }


#: Draws a topology into a new graph box of the page; returns the box's key.
_INJECT = """topo => {
  const box = document.createElement('div');
  box.className = 'graph'; box.dataset.topology = 'injected-' + Math.random();
  box.innerHTML = '<script type="application/json" class="topology-data"></' + 'script>' +
    '<div class="canvas"></div><aside class="node-panel" hidden></aside>';
  box.querySelector('script').textContent = JSON.stringify(topo);
  document.querySelector('main').prepend(box);
  window.chainmapDrawGraphs();
  return box.dataset.topology;
}"""
#: Geometry of an injected graph: edges crossing nodes (as drawn, and as straight lines would),
#: overlapping labels, the zoom and whether every element is inside the canvas.
_GEOMETRY = """key => {
  const box = document.querySelector(`[data-topology="${key}"]`);
  const cy = box.chainmapGraph;
  const cross = (p, q, b) => {
    let t0 = 0, t1 = 1; const dx = q.x - p.x, dy = q.y - p.y;
    for (const [pk, qk] of [[-dx, p.x - b.x1], [dx, b.x2 - p.x], [-dy, p.y - b.y1], [dy, b.y2 - p.y]]) {
      if (pk === 0) { if (qk < 0) return false; continue; }
      const r = qk / pk;
      if (pk < 0) { if (r > t1) return false; if (r > t0) t0 = r; }
      else { if (r < t0) return false; if (r < t1) t1 = r; }
    }
    return t0 < t1;
  };
  const through = (e, pts) => cy.nodes().filter(n => n.id() !== e.source().id() &&
      n.id() !== e.target().id() && pts.some((p, i) => i + 1 < pts.length &&
      cross(p, pts[i + 1], n.boundingBox()))).map(n => `${e.id()}:${n.id()}`);
  const straight = [], drawn = [];
  cy.edges().filter(e => !e.isLoop()).forEach(e => {
    const p = e.source().position(), q = e.target().position();
    straight.push(...through(e, [p, q]));
    const bends = e.style('curve-style') === 'segments' ? (e.segmentPoints() || []) : [];
    drawn.push(...through(e, [p, ...bends, q]));
  });
  const opts = {includeNodes: false, includeEdges: false, includeLabels: true,
    includeMainLabels: true, includeSourceLabels: false, includeTargetLabels: false,
    includeOverlays: false};
  const labels = cy.edges().map(e => [e.id(), e.boundingBox(opts)]);
  const nodes = cy.nodes().map(n => [n.id(), n.boundingBox()]);
  const hit = (a, b) => a.x1 < b.x2 && b.x1 < a.x2 && a.y1 < b.y2 && b.y1 < a.y2;
  const collisions = [];
  labels.forEach(([id, b], i) => {
    labels.slice(i + 1).forEach(([other, c]) => { if (hit(b, c)) collisions.push(`${id}/${other}`); });
    nodes.forEach(([node, c]) => { if (hit(b, c)) collisions.push(`${id}/${node}`); });
  });
  const rb = cy.elements().renderedBoundingBox();
  return {straight, drawn, collisions, zoom: cy.zoom(),
          inside: rb.x1 >= 0 && rb.y1 >= 0 && rb.x2 <= cy.width() && rb.y2 <= cy.height()};
}"""


def _node(node_id: str, kind: str = "service", calls: int = 10) -> dict[str, Any]:
    return {"id": node_id, "type": kind, "calls": calls, "errors": 0}


def _edge(source: str, target: str, calls: int = 10, errors: int = 0) -> dict[str, Any]:
    return {
        "source": source,
        "target": target,
        "connection_type": "",
        "calls": calls,
        "errors": errors,
        "p95_ms": 12.5,
    }


def test_edges_go_around_nodes_and_labels_do_not_collide(tab: Tab) -> None:
    """The demo's all-traffic shape: user -> ai-market-model spans three ranks, and the
    edges around data-bridge crowd their labels."""
    tab.open("/topology")
    tab.wait("[data-topology][data-drawn]")
    names = [
        "api-gateway",
        "ai-orchestration",
        "ai-market-model",
        "ai-risk-model",
        "ai-sentiment-model",
        "trading-engine",
        "database-service",
        "data-bridge",
    ]
    topo = {
        "nodes": [_node("user", "user"), *map(_node, names), _node("postgresql", "database")],
        "edges": [
            _edge("user", "api-gateway", 300),
            _edge("user", "ai-market-model", 40),
            _edge("user", "data-bridge", 18),
            _edge("api-gateway", "ai-orchestration", 50),
            _edge("api-gateway", "trading-engine", 91, 5),
            _edge("api-gateway", "data-bridge", 60),
            _edge("ai-orchestration", "ai-market-model", 50),
            _edge("ai-orchestration", "ai-risk-model", 50),
            _edge("ai-orchestration", "ai-sentiment-model", 50),
            _edge("ai-orchestration", "trading-engine", 50),
            _edge("trading-engine", "database-service", 88),
            _edge("data-bridge", "database-service", 120),
            _edge("data-bridge", "ai-market-model", 30),
            _edge("database-service", "postgresql", 211),
            _edge("database-service", "database-service", 4),
        ],
    }
    key = tab.page.evaluate(_INJECT, topo)
    geometry = tab.page.evaluate(_GEOMETRY, key)
    assert geometry["straight"], "the graph must have an edge a straight line would run through"
    assert geometry["drawn"] == [], geometry
    assert geometry["collisions"] == [], geometry
    assert tab.problems == []


def test_a_small_graph_is_not_blown_up_and_keeps_its_loop_label(tab: Tab) -> None:
    tab.open("/topology")
    tab.wait("[data-topology][data-drawn]")
    topo = {
        "nodes": [_node("pricing"), _node("quotes")],
        "edges": [_edge("pricing", "quotes", 5), _edge("quotes", "quotes", 3)],
    }
    geometry = tab.page.evaluate(_GEOMETRY, tab.page.evaluate(_INJECT, topo))
    assert geometry["zoom"] <= 1.25 and geometry["inside"], geometry


def test_the_page_uses_a_wide_screen(tab: Tab) -> None:
    tab.page.set_viewport_size({"width": 1920, "height": 1080})
    tab.open("/topology")
    tab.wait("[data-topology][data-drawn]")
    width = tab.page.evaluate("() => document.querySelector('[data-topology]').clientWidth")
    assert width > 1800


# --------------------------------------------------------------------------- trace view


def test_waterfall_shows_every_span_of_a_5000_span_trace(tab: Tab, site: Site) -> None:
    tab.open(f"/traces/{site.big}")
    tab.wait("#trace-view[data-loaded] .wf-row")
    api = site.client.get(f"/api/v1/traces/{site.big}").json()
    assert api["span_count"] == trace_fixtures.BIG_SPANS and not api["truncated"]
    assert tab.page.get_attribute("#trace-view", "data-rows") == str(trace_fixtures.BIG_SPANS)
    collected = tab.collect_rows()
    assert sorted(collected["ids"]) == sorted(s["span_id"] for s in api["spans"])
    assert collected["most"] < 200  # only the rows in view are in the DOM
    tab.page.locator(".wf-scroll").evaluate("s => { s.scrollTop = 0; }")
    tab.wait(".wf-row.failed")
    assert tab.page.locator(".wf-row.on-critical-path").count() >= 1
    root = tab.page.locator(".wf-row").first
    root.locator(".toggle").click()
    assert tab.page.get_attribute("#trace-view", "data-rows") == "1"
    tab.page.click("button.expand-all")
    assert tab.page.get_attribute("#trace-view", "data-rows") == str(trace_fixtures.BIG_SPANS)
    assert not tab.problems, tab.problems


def test_trace_view_marks_errors_entries_and_the_critical_path(tab: Tab, site: Site) -> None:
    trace = site.trades[0]
    api = site.client.get(f"/api/v1/traces/{trace}").json()
    tab.open(f"/traces/{trace}")
    tab.wait("#trace-view[data-loaded] .wf-row")
    rows = tab.page.locator(".wf-row")
    ids = rows.evaluate_all("rows => rows.map(r => r.dataset.spanId)")
    assert sorted(ids) == sorted(s["span_id"] for s in api["spans"])
    failed = {s["span_id"] for s in api["spans"] if s["status"] == "error"}
    shown_failed = tab.page.locator(".wf-row.failed").evaluate_all(
        "rows => rows.map(r => r.dataset.spanId)"
    )
    assert set(shown_failed) == failed and len(failed) == 5
    assert tab.page.locator(".wf-track .cp").count() == len(api["critical_path"])
    entries = tab.page.locator(".entry-tag").all_inner_texts()
    assert sorted(entries) == ["A2 entry", "B1 entry", "B3 entry"]
    assert tab.page.locator(".trace-summary a.chain-tag").all_inner_texts() == ["A2", "B1", "B3"]
    entry = next(s for s in api["spans"] if s["entry_ids"] == ["B3"])
    tab.page.click(f'.wf-row[data-span-id="{entry["span_id"]}"] .wf-track')
    details = tab.page.locator(".span-details")
    assert details.is_visible()
    text = details.inner_text()
    for expected in ("trading-engine · POST /orders", "http.route", "/orders", "B1 > A2 > B3"):
        assert expected in text
    assert "resource (1)" in text and "service.name" in text
    tab.shot("web-view-trace.png")
    assert not tab.problems, tab.problems


def test_span_links_lead_to_the_linked_trace(tab: Tab, site: Site) -> None:
    tab.open(f"/traces/{site.big}")
    tab.wait("#trace-view[data-loaded] .wf-row")
    linked = trace_fixtures.hex_id("big/s0", 16)
    tab.page.click(f'.wf-row[data-span-id="{linked}"] .wf-label')
    link = tab.page.locator(".span-details a", has_text=site.loop)
    assert link.get_attribute("href") == f"/traces/{site.loop}"
    link.click()
    tab.wait("#trace-view[data-loaded] .wf-row")
    assert tab.page.get_attribute("#trace-view", "data-rows") == "3"


def _pct(part: float, whole: float) -> str:
    """A share as trace.js writes it."""
    value = part / whole * 100 if whole > 0 else 0
    return f"{value:.0f} %" if value >= 10 or value == 0 else f"{value:.1f} %"


def _fact(tab: Tab, name: str) -> str:
    text: str = tab.page.inner_text(f'.trace-summary [data-fact="{name}"] dd')
    return text


def test_asgi_spans_are_folded_and_never_counted_as_errors(tab: Tab, site: Site) -> None:
    api = site.client.get(f"/api/v1/traces/{site.asgi}").json()
    asgi = [s for s in api["spans"] if s["asgi_internal"]]
    assert len(asgi) == 3 and any(s["status"] == "error" for s in asgi)
    failed = [s for s in api["spans"] if s["status"] == "error"]
    tab.open(f"/traces/{site.asgi}")
    tab.wait("#trace-view[data-loaded] .wf-row")
    view = tab.page.locator("#trace-view")
    # Folded by default: the server span and its database call only.
    assert view.get_attribute("data-asgi") == "folded" and view.get_attribute("data-rows") == "2"
    assert not any("http send" in t for t in tab.page.locator(".wf-row .op").all_inner_texts())
    # Three spans failed; the failed http send repeats the server span's error.
    assert len(failed) == 3 and _fact(tab, "errors") == "2"
    assert _fact(tab, "spans") == "5 (3 ASGI send/receive)"
    # Folded, the sends' critical-path sections are drawn on the server span's row.
    assert tab.page.locator(".wf-track .cp").count() == len(api["critical_path"])
    total = api["end_unix_nano"] - api["start_unix_nano"]
    on_path = sum(c["end_unix_nano"] - c["start_unix_nano"] for c in api["critical_path"])
    assert (
        _fact(tab, "critical path")
        == f"{on_path / 1e6:.1f} ms · {_pct(on_path, total)} of the trace"
    )
    # The database call (30 of 40 ms); the server span's own 10 ms include the folded sends'.
    assert _fact(tab, "most on it") == "portfolio-api · UPDATE portfolios 30.0 ms (75 %)"
    tab.page.check(".asgi-toggle input")
    assert view.get_attribute("data-asgi") == "shown" and view.get_attribute("data-rows") == "5"
    assert tab.page.locator(".wf-row.failed").count() == 3
    assert tab.page.locator(".wf-track .cp").count() == len(api["critical_path"])
    assert _fact(tab, "errors") == "2"
    tab.page.uncheck(".asgi-toggle input")
    assert view.get_attribute("data-rows") == "2"
    assert not tab.problems, tab.problems


def test_operation_names_stay_visible_with_details_open(tab: Tab, site: Site) -> None:
    tab.open(f"/traces/{site.asgi}")
    tab.wait("#trace-view[data-loaded] .wf-row")
    tab.page.click(".wf-row >> nth=0")
    assert tab.page.locator(".span-details").is_visible()
    widths = tab.page.locator(".wf-row .op").evaluate_all(
        "ops => ops.map(o => ({text: o.textContent.trim(), shown: o.getBoundingClientRect().width,"
        " right: o.getBoundingClientRect().right,"
        " label: o.closest('.wf-label').getBoundingClientRect().right}))"
    )
    assert [w["text"] for w in widths] == [trace_fixtures.ASGI_OPERATION, "UPDATE portfolios"]
    for w in widths:
        # At least ~10 characters of every operation are on screen, inside its label.
        assert w["shown"] >= 80 and w["right"] <= w["label"] + 1, w
    detail = tab.page.locator(".span-details .critical-share").inner_text()
    assert detail.startswith("On the critical path for ") and detail.endswith("of the trace.")
    assert not tab.problems, tab.problems


def test_next_and_previous_error_unfold_and_open_each_failed_span(tab: Tab, site: Site) -> None:
    api = site.client.get(f"/api/v1/traces/{site.big}").json()
    failed = [s for s in api["spans"] if s["status"] == "error"]
    assert api["error_count"] == len(failed) > 2
    tab.open(f"/traces/{site.big}")
    tab.wait("#trace-view[data-loaded] .wf-row")
    tab.page.click("button.collapse-all")
    assert tab.page.get_attribute("#trace-view", "data-rows") == "1"
    # Tree order: worker by worker (by start), each worker's lookups by start.
    workers = sorted(
        (s for s in api["spans"] if s["name"].startswith("rebalance shard")),
        key=lambda s: s["start_unix_nano"],
    )
    order = {w["span_id"]: i for i, w in enumerate(workers)}
    in_tree = sorted(
        failed, key=lambda s: (order[s["parent_span_id"]], s["start_unix_nano"], s["span_id"])
    )
    tab.page.click("button.next-error")
    first = in_tree[0]
    selected = tab.page.locator(".wf-row.selected")
    assert selected.get_attribute("data-span-id") == first["span_id"]
    assert "failed" in (selected.get_attribute("class") or "")
    assert tab.page.inner_text(".error-position") == f"error 1 of {len(failed)}"
    assert f"{first['service']} · {first['name']}" in tab.page.inner_text(".span-details h3")
    tab.page.click("button.next-error")
    assert (
        tab.page.locator(".wf-row.selected").get_attribute("data-span-id") == in_tree[1]["span_id"]
    )
    tab.page.click("button.prev-error")
    tab.page.click("button.prev-error")  # before the first: wraps to the last
    last = in_tree[-1]
    assert tab.page.locator(".wf-row.selected").get_attribute("data-span-id") == last["span_id"]
    assert tab.page.inner_text(".error-position") == f"error {len(failed)} of {len(failed)}"
    assert tab.page.locator(".wf-row.selected").is_visible()
    assert not tab.problems, tab.problems


def test_find_in_trace_highlights_and_walks_the_matches(tab: Tab, site: Site) -> None:
    api = site.client.get(f"/api/v1/traces/{site.big}").json()

    def hits(text: str) -> list[dict[str, Any]]:
        text = text.lower()
        return [
            s
            for s in api["spans"]
            if any(text in v.lower() for v in (s["service"], s["name"], s["span_id"]))
            or any(text in k.lower() or text in str(v).lower() for k, v in s["attributes"].items())
        ]

    tab.open(f"/traces/{site.big}")
    tab.wait("#trace-view[data-loaded] .wf-row")
    find = tab.page.locator("input.find")
    find.fill("lookup 12")
    expected = hits("lookup 12")
    assert len(expected) == 1 + 10 + 100  # lookup 12, 120-129, 1200-1299
    assert tab.page.get_attribute("#trace-view", "data-matches") == str(len(expected))
    assert tab.page.inner_text(".find-count") == f"{len(expected)} matches"
    find.press("Enter")
    selected = tab.page.locator(".wf-row.selected")
    assert selected.get_attribute("data-span-id") in {s["span_id"] for s in expected}
    assert "match" in (selected.get_attribute("class") or "")
    assert "lookup 12" in tab.page.inner_text(".span-details h3")
    assert tab.page.inner_text(".find-count") == f"1 of {len(expected)} matches"
    highlighted = tab.page.locator(".wf-row.match").evaluate_all(
        "rows => rows.map(r => r.dataset.spanId)"
    )
    assert highlighted and set(highlighted) <= {s["span_id"] for s in expected}
    # Attribute values are searched too: the batch job's shard number.
    find.fill("shard")
    assert tab.page.get_attribute("#trace-view", "data-matches") == str(len(hits("shard")))
    find.fill(trace_fixtures.hex_id("big/s4000", 16))
    assert tab.page.get_attribute("#trace-view", "data-matches") == "1"
    find.press("Enter")
    assert tab.page.locator(".wf-row.selected").get_attribute(
        "data-span-id"
    ) == trace_fixtures.hex_id("big/s4000", 16)
    find.fill("")
    assert tab.page.locator(".wf-row.match").count() == 0
    assert not tab.problems, tab.problems


def test_a_trace_is_one_click_from_a_comparison_with_a_typical_trace(tab: Tab, site: Site) -> None:
    failed = site.trades[0]
    tab.open(f"/traces/{failed}")
    tab.wait("#trace-view[data-loaded] .wf-row")
    links = tab.page.locator("a.compare-typical")
    assert links.all_inner_texts() == ["A2", "B1", "B3"]
    links.filter(has_text="B3").click()  # the one click
    tab.page.wait_for_url("**/compare?*")
    tab.wait("#compare-view[data-loaded]")
    assert tab.page.get_attribute("#compare-view", "data-loaded") == "1"
    query = dict(parse_qsl(urlparse(tab.page.url).query))
    assert query["b"] == failed and query["chain"] == "B3"
    api = site.client.get("/api/v1/traces/compare", params=query).json()
    assert api["typical"]["chain_id"] == "B3" and api["a"]["trace_id"] != failed
    rows = tab.page.locator("#compare-view tbody tr")
    assert rows.count() == len(api["nodes"]) == 10
    names = rows.evaluate_all("rows => rows.map(r => r.querySelector('.span-name').textContent)")
    # ai-orchestration's two POST calls (market model, trading engine) are #1 and #2.
    assert names == [
        f"{n['service']} {n['operation']}" + (f" #{n['occurrence']}" if n["occurrence"] > 1 else "")
        for n in api["nodes"]
    ]
    assert "ai-orchestration POST #2" in names
    facts = tab.page.inner_text(".compare-facts")
    assert "A: typical B3 trace" in facts and "5 only in B" in facts
    assert tab.page.locator(".compare-facts a").evaluate_all(
        "links => links.map(a => a.getAttribute('href'))"
    ) == [f"/traces/{api['a']['trace_id']}", f"/traces/{failed}"]
    # The database insert of trade 0 took 40 ms, the typical trade's 40 + 5i ms: faster.
    insert = next(n for n in api["nodes"] if n["operation"] == "INSERT orders")
    cell = tab.page.locator(f'tr[data-node="{insert["id"]}"] td.diff')
    diff = insert["duration_diff_ms"]
    assert diff < 0 and "faster" in (cell.get_attribute("class") or "")
    assert cell.inner_text() == f"−{abs(diff):.1f}"
    failed_rows = tab.page.locator("#compare-view tr.err-only_b").count()
    assert failed_rows == api["errors"]["only_b"] == 5
    tab.page.check("input.only-changes")
    changed = [
        n
        for n in api["nodes"]
        if n["errors"] != "none" or max(abs(n["duration_diff_ms"]), abs(n["self_diff_ms"])) >= 1
    ]
    assert tab.page.locator("#compare-view tbody tr:visible").count() == len(changed) < 10
    tab.page.uncheck("input.only-changes")
    tab.shot("web-view-compare.png")
    assert not tab.problems, tab.problems


def test_the_comparison_form_compares_two_traces(tab: Tab, site: Site) -> None:
    tab.open("/compare")
    tab.wait("#trace-compare")
    tab.page.fill("input[name=b]", site.trades[0])
    tab.page.fill("input[name=a]", site.trades[4])
    tab.page.click("#trace-compare button[type=submit]")
    tab.wait("#compare-view[data-loaded]")
    assert tab.page.locator("#compare-view tbody tr").count() == 10
    assert "A (baseline)" in tab.page.inner_text(".compare-facts")
    tab.page.fill("input[name=a]", "not-a-trace")
    tab.page.click("#trace-compare button[type=submit]")
    tab.wait("#compare-view[data-loaded=error]")
    assert "query parameter a 'not-a-trace' is not 32 hex" in tab.page.inner_text("#compare-view")


# --------------------------------------------------------------------------- search


def _result_rows(tab: Tab) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = tab.page.locator("#search-results tbody tr").evaluate_all(
        "rows => rows.map(r => ({id: r.dataset.traceId, href: r.querySelector('a').getAttribute('href'),"
        " status: r.children[3].textContent, chains: r.children[6].textContent}))"
    )
    return rows


def test_trace_search_filters(tab: Tab, site: Site) -> None:
    tab.open("/search?status=error&chain=B3")
    tab.wait("#search-results[data-state=done]")
    failing = _result_rows(tab)
    assert len(failing) == chain_traffic.FAILED_TRADES
    assert all(r["status"].startswith("error") and "B3" in r["chains"] for r in failing)
    assert all(r["href"] == f"/traces/{r['id']}" for r in failing)
    tab.page.fill("input[name=attr]", "http.route=/orders")
    tab.wait("#search-results[data-state=done]")
    tab.page.click("form.search button[type=submit]")
    tab.page.wait_for_url("**attr=http.route*")
    tab.wait("#search-results[data-state=done]")
    by_attr = _result_rows(tab)
    assert {r["id"] for r in by_attr} == {r["id"] for r in failing}  # every trade has /orders
    tab.page.fill("input[name=attr]", "")
    tab.page.select_option("select[name=status]", "ok")
    # With a chain the duration is its entry span's: B3's take 170 ms in 300 ms traces.
    tab.page.fill("input[name=min_duration_ms]", "160")
    tab.page.click("form.search button[type=submit]")
    tab.page.wait_for_url("**/search?*status=ok*")
    tab.wait("#search-results[data-state=done]")
    query = dict(parse_qsl(urlparse(tab.page.url).query))
    assert query == {
        "chain": "B3",
        "status": "ok",
        "min_duration_ms": "160",
        "order": "duration",
        "limit": "50",
    }
    api = site.client.get("/api/v1/traces", params=query).json()
    shown = _result_rows(tab)
    assert [r["id"] for r in shown] == [t["trace_id"] for t in api["traces"]] != []
    assert all(r["status"].startswith("ok") for r in shown)
    longer = site.client.get("/api/v1/traces", params={**query, "min_duration_ms": "290"})
    assert longer.json()["traces"] == []
    whole = site.client.get("/api/v1/traces", params={"min_duration_ms": "290", "status": "ok"})
    assert {t["trace_id"] for t in whole.json()["traces"]} >= {r["id"] for r in shown}
    tab.shot("web-view-search.png")
    assert not tab.problems, tab.problems


def test_search_pick_lists_come_from_the_window(tab: Tab, site: Site) -> None:
    tab.open("/search?since=1h")
    tab.wait("select[data-pick=service][data-loaded]")
    api = site.client.get("/api/v1/traces/services", params={"since": "1h"}).json()
    options = tab.page.eval_on_selector_all(
        "select[data-pick=service] option", "os => os.map(o => o.value)"
    )
    assert options == ["", *api["services"]] and "trading-engine" in options
    tab.page.select_option("select[data-pick=service]", "trading-engine")
    tab.wait("select[data-pick=operation][data-loaded]")
    operations = site.client.get(
        "/api/v1/traces/operations", params={"since": "1h", "service": "trading-engine"}
    ).json()["operations"]
    shown = tab.page.eval_on_selector_all(
        "select[data-pick=operation] option", "os => os.map(o => o.value)"
    )
    assert shown == ["", *operations] and operations
    tab.page.select_option("select[data-pick=operation]", operations[0])
    tab.page.click("form.search button[type=submit]")
    tab.page.wait_for_url("**operation=*")
    tab.wait("#search-results[data-state=done]")
    query = dict(parse_qsl(urlparse(tab.page.url).query))
    assert query["service"] == "trading-engine" and query["operation"] == operations[0]
    expected = site.client.get("/api/v1/traces", params=query).json()["traces"]
    assert [r["id"] for r in _result_rows(tab)] == [t["trace_id"] for t in expected] != []
    assert not tab.problems, tab.problems


def test_scatter_plot_point_opens_its_trace(tab: Tab, site: Site) -> None:
    tab.open("/search?chain=B3&order=duration")
    tab.wait("#search-scatter[data-points] circle")
    api = site.client.get(
        "/api/v1/traces", params={"chain": "B3", "order": "duration", "limit": 50}
    )
    traces = api.json()["traces"]
    points = tab.page.eval_on_selector_all(
        "#search-scatter circle", "cs => cs.map(c => [c.dataset.traceId, c.getAttribute('class')])"
    )
    assert sorted(p[0] for p in points) == sorted(t["trace_id"] for t in traces)
    failed = {t["trace_id"] for t in traces if t["status"] == "error"}
    assert {p[0] for p in points if p[1] == "failed"} == failed != set()
    # The slowest B3 entry span is the highest point (smallest y).
    top = tab.page.eval_on_selector_all(
        "#search-scatter circle",
        "cs => cs.slice().sort((a, b) => a.cy.baseVal.value - b.cy.baseVal.value)[0].dataset.traceId",
    )
    assert top == traces[0]["trace_id"]
    tab.shot("web-view-search-scatter.png")
    tab.page.click(f'#search-scatter circle[data-trace-id="{top}"]')
    tab.wait("#trace-view[data-loaded] .wf-row")
    assert tab.page.url.endswith(f"/traces/{top}")
    assert not tab.problems, tab.problems


def test_trace_lists_show_the_error_source(tab: Tab, site: Site) -> None:
    tab.open("/search?chain=B3&status=error")
    tab.wait("#search-results[data-state=done]")
    api = site.client.get(
        "/api/v1/traces",
        params={"chain": "B3", "status": "error", "order": "duration", "limit": 50},
    ).json()["traces"]
    cells = tab.page.eval_on_selector_all(
        "#search-results tbody tr",
        "rows => rows.map(r => [r.dataset.traceId, r.querySelector('td.error-source .deepest')"
        ".textContent, r.children[3].textContent])",
    )
    assert len(cells) == len(api) == chain_traffic.FAILED_TRADES
    for (trace_id, deepest, status), trace in zip(cells, api, strict=True):
        source = trace["error_source"]["deepest"]
        assert trace_id == trace["trace_id"]
        assert deepest == f"{source['service']} · {source['operation']}"
        assert status.endswith(
            "chain failed" if trace["chain"]["status"] == "error" else "chain ok"
        )
    # The chain page: the "chain failed" list names where each trace failed.
    tab.open("/chains/B3")
    tab.lists_loaded()
    chain_failed = tab.page.locator(".trace-list").nth(1)
    sources = chain_failed.locator("td.error-source .deepest").all_inner_texts()
    assert len(sources) == chain_traffic.FAILED_TRADES and all(" · " in s for s in sources)
    assert not tab.problems, tab.problems


def test_a_newcomer_finds_a_slow_failing_trace_in_two_clicks(tab: Tab, site: Site) -> None:
    tab.open("/")
    tab.page.click('a[href="/chains/B3"]')  # click 1: the chain
    tab.wait("[data-topology][data-drawn]")
    tab.lists_loaded()
    failing = tab.page.locator(".trace-list").nth(1)  # "chain failed, slowest first"
    slowest_failing = site.client.get(
        "/api/v1/traces", params={"chain": "B3", "chain_status": "error", "order": "duration"}
    ).json()["traces"][0]
    first = failing.locator("a.trace-link").first
    assert first.get_attribute("href") == f"/traces/{slowest_failing['trace_id']}"
    first.click()  # click 2: the slowest failing trace
    tab.wait("#trace-view[data-loaded] .wf-row")
    assert tab.page.url.endswith(f"/traces/{slowest_failing['trace_id']}")
    assert tab.page.locator(".wf-row.failed").count() >= 1
    assert tab.page.locator(".wf-row").count() == slowest_failing["span_count"]
    assert not tab.problems, tab.problems
