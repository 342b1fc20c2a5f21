"""Hostile names in headless Chromium: span, service and chain names that end or reopen a
``<script>`` element (``<!--<script``, ``</script>``), close CDATA (``]]>``) or hold the
line separators U+2028/U+2029. Every page still draws its graph with those names as text,
and no script the names carry runs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chainmap_otel.server import create_app
from chainmap_otel.server.web.pages import json_for_html
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import parse_catalog
from tests.server import chain_traffic
from tests.server.trace_fixtures import hex_id
from tests.support.browser import chromium, needs_chromium, open_tab
from tests.support.stores import fresh_store

pytestmark = needs_chromium

MS = 1_000_000
#: Each would break a page that embeds JSON naively; the script ones set ``window.pwned``.
HOSTILE = (
    "<!--<script",
    "</script><script>window.pwned=1</script>",
    "<script>window.pwned=2</script>",
    "a\u2028b\u2029c",
    "]]><img src=x onerror=window.pwned=3>",
    "x' onmouseover='window.pwned=4",
    "&lt;&amp;",
)
GATEWAY = "gate<!--<script"
BACKEND = "</script><script>window.pwned=5</script>"
CHAIN_NAME = "Checkout <!--<script </script><script>window.pwned=6</script> \u2028 ]]>"
CHAINS = f"""
version: 1
chains:
  - id: HX
    name: {json.dumps(CHAIN_NAME)}
    category: api
    description: {json.dumps("</script><!--<script>window.pwned=7</script>")}
    entry:
      - service: {json.dumps(GATEWAY)}
        kind: server
"""


def _row(
    trace: str, span: str, parent: str, service: str, kind: str, name: str, start: int
) -> tuple[Any, ...]:
    return (
        start,
        trace,
        hex_id(f"{trace}/{span}", 16),
        hex_id(f"{trace}/{parent}", 16) if parent else "",
        "",
        name,
        kind,
        service,
        {"service.name": service},
        "hostile",
        "1",
        {"http.route": name, "chain.ids": "HX", "chain.id": "HX"}
        if kind == "Server"
        else {"server.address": name},
        40 * MS,
        "Error" if "pwned=1" in name else "Unset",
        "",
        [],
        [],
        [],
        [],
        [],
        [],
        [],
    )


def _rows(base: int) -> tuple[list[str], list[tuple[Any, ...]]]:
    traces, rows = [], []
    for i, name in enumerate(HOSTILE):
        trace = hex_id(f"hostile-{i}", 32)
        start = base + i * 100 * MS
        traces.append(trace)
        rows += [
            _row(trace, "in", "", GATEWAY, "Server", name, start),
            _row(trace, "out", "in", GATEWAY, "Client", name, start + MS),
            _row(trace, "back", "out", BACKEND, "Server", name, start + 2 * MS),
        ]
    return traces, rows


@pytest.fixture(scope="module")
def hostile_site(chdb_store: TraceStore, chdb_path: Path) -> Iterator[tuple[httpx.Client, str]]:

    store = fresh_store(chdb_path)
    traces, rows = _rows(time.time_ns() - 5 * 60 * 1_000_000_000)
    store.insert_spans(rows=rows)
    catalog = parse_catalog(CHAINS, source="hostile.yaml")
    try:
        with chain_traffic.serving(create_app(store, chains=catalog)) as client:
            yield client, traces[1]
    finally:
        store.command(f"DROP DATABASE IF EXISTS {store.database}")
        store.close()


def test_embedded_json_escapes_what_html_would_read() -> None:
    value = {"name": "<!--<script></script>&\u2028\u2029]]>"}
    text = json_for_html(value)
    assert not any(ch in text for ch in "<>&\u2028\u2029")
    assert json.loads(text) == value


def test_pages_draw_hostile_names_as_text_and_run_none_of_them(
    hostile_site: tuple[httpx.Client, str], tmp_path: Path
) -> None:
    client, trace = hostile_site
    url = str(client.base_url).rstrip("/")
    pages = [
        ("/", "table.chains"),
        ("/topology", "[data-topology][data-drawn]"),
        ("/chains/HX", "[data-topology][data-drawn]"),
        ("/search?chain=HX", "#search-results[data-state='done']"),
        (f"/traces/{trace}", "#trace-view[data-loaded] .wf-row"),
        ("/coverage", "table.coverage"),
    ]
    with chromium() as browser, open_tab(browser, url, tmp_path) as tab:
        dialogs: list[str] = []
        tab.page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        for path, ready in pages:
            tab.open(path)
            tab.wait(ready)
            if tab.page.query_selector(".trace-list"):
                tab.lists_loaded()
            assert tab.page.evaluate("() => window.pwned") is None, path
            assert not tab.problems, (path, tab.problems)
            if "data-drawn" in ready:
                labels = tab.page.evaluate(
                    "() => document.querySelector('[data-topology]').chainmapGraph"
                    ".nodes().map(n => n.data('label') || n.data('id'))"
                )
                assert any(GATEWAY in str(label) for label in labels), (path, labels)
                assert any(BACKEND in str(label) for label in labels), (path, labels)
        tab.open("/")
        tab.wait("table.chains")
        assert "Checkout <!--<script </script><script>window.pwned=6</script>" in (
            tab.page.inner_text("table.chains")
        )
        assert tab.page.evaluate("() => window.pwned") is None
        tab.open("/coverage")
        tab.wait("table.coverage")
        assert CHAIN_NAME.split(" \u2028")[0] in tab.page.inner_text("table.coverage")
        assert tab.page.evaluate("() => window.pwned") is None
    assert not dialogs
