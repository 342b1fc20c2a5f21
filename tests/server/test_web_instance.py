"""The trace view shows the chain instance a trace starts through a queue, in Chromium.

The ``queue_hop`` fixture: trading-engine publishes to order_events in one trace;
settlement-service consumes it 23 ms later in a trace linked to the producer span. The
producer's trace view lists the instance's critical path, the queue wait marked, each
section leading to its trace, exactly as ``/api/v1/chains/traces/{id}/critical-path`` says.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chainmap_otel.server import create_app
from chainmap_otel.storage.store import TraceStore
from tests.analysis.conftest import hex_id, insert_spans, load_fixture
from tests.server import chain_traffic
from tests.support.browser import Tab, chromium, needs_chromium, open_tab

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def served(chdb_store: TraceStore) -> Iterator[httpx.Client]:
    from chainmap_otel.storage.schema import apply_schema

    apply_schema(chdb_store, progress=lambda line: None)
    insert_spans(chdb_store, load_fixture("queue_hop")["spans"], time.time_ns() - 60 * 10**9)
    with chain_traffic.serving(create_app(chdb_store, chains=chain_traffic.catalog())) as client:
        yield client


@pytest.fixture
def tab(served: httpx.Client, tmp_path: Path) -> Iterator[Tab]:
    with chromium() as browser, open_tab(browser, str(served.base_url).rstrip("/"), tmp_path) as t:
        yield t


def test_the_producer_trace_shows_its_instance_through_the_queue(
    tab: Tab, served: httpx.Client
) -> None:
    producer, consumer = hex_id("q1", 32), hex_id("q2", 32)
    api: dict[str, Any] = served.get(f"/api/v1/chains/traces/{producer}/critical-path").json()
    instance = api["instance"]
    assert instance is not None and instance["traces"] == [producer, consumer]
    tab.open(f"/traces/{producer}")
    tab.wait(".instance-path[data-sections]")
    items = tab.page.locator(".instance-path li")
    assert items.count() == len(instance["sections"])
    texts = [items.nth(i).inner_text() for i in range(items.count())]
    for text, section in zip(texts, instance["sections"], strict=True):
        assert text.startswith(f"{section['service']} · {section['name']}")
    queue = tab.page.locator(".instance-path li.queue a")
    assert queue.count() == 1
    assert queue.inner_text() == "order_events (queue) · queue wait"
    assert queue.get_attribute("href") == f"/traces/{consumer}"
    assert not tab.problems, tab.problems


def test_the_chain_page_says_how_long_its_instances_take_through_the_queue(
    served: httpx.Client,
) -> None:
    """Server-rendered: the chain page's critical-path section, next to its health."""
    api = served.get("/api/v1/chains/B3/critical-path").json()["through_queues"]
    assert api["instances"] == 1, api
    page = served.get("/chains/B3").text
    assert (
        f'<p class="through-queues">end to end through queues: 1 sampled instances, '
        f"p50 {api['p50_ms']:.1f} ms" in page
    ), page
