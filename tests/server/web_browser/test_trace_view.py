"""The trace view: the waterfall shows every span of a 5,000-span trace with a small DOM,
marks errors, entries and the critical path, follows span links both ways, folds ASGI
spans, walks errors, finds spans and leads to a comparison with a typical trace in one
click (headless Chromium, fixtures in ``conftest.py``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlparse

from tests.server import trace_fixtures
from tests.server.web_browser.site import Site
from tests.support.browser import Tab, needs_chromium

pytestmark = needs_chromium


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


def test_linked_traces_are_shown_inline_both_ways(tab: Tab, site: Site) -> None:
    """The big trace's span links to the loop trace's root: the loop trace names the big
    trace as one that continues it, and the big trace's linking row leads to the loop."""
    tab.open(f"/traces/{site.loop}")
    tab.wait("#trace-view[data-loaded] .linked-traces a.linked-trace")
    onward = tab.page.locator(".linked-traces a.linked-trace.linked_from")
    assert onward.count() == 1
    assert onward.get_attribute("href") == f"/traces/{site.big}"
    root = trace_fixtures.hex_id("loop/root", 16)
    assert tab.page.locator(f'.wf-row[data-span-id="{root}"] a.link-tag').count() == 1
    onward.click()
    tab.wait("#trace-view[data-loaded] .linked-traces a.linked-trace.links_to")
    linking = trace_fixtures.hex_id("big/s0", 16)
    tag = tab.page.locator(f'.wf-row[data-span-id="{linking}"] a.link-tag')
    assert tag.get_attribute("href") == f"/traces/{site.loop}"
    assert not tab.problems, tab.problems


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
