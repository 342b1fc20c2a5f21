"""Every page renders without console errors and the API docs load from local assets; the
graph fits its box, zooms, pans, draws self-calls, routes edges around nodes, and a node
click shows its chains and traces (headless Chromium, fixtures in ``conftest.py``)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.server.web_browser.site import Site
from tests.support.browser import TIMEOUT_MS, Tab, needs_chromium

pytestmark = needs_chromium


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
