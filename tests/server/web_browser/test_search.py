"""Trace search in the browser: filters, pick lists from the window, the scatter plot, the
error source, and a newcomer getting from the chain list to a slow failing trace's
waterfall in two clicks (headless Chromium, fixtures in ``conftest.py``)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlparse

from tests.server import chain_traffic
from tests.server.web_browser.site import Site
from tests.support.browser import Tab, needs_chromium

pytestmark = needs_chromium


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
