"""``GET /api/v1/traces`` on a real uvicorn: each filter, the library's JSON, bad parameters."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chainmap_otel.analysis.timewindow import parse_window
from chainmap_otel.analysis.traces import TraceQuery, search_traces
from chainmap_otel.server import create_app
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog
from tests.analysis.conftest import hex_id, insert_spans, load_fixture
from tests.server.conftest import ServerThread
from tests.support.catalog import chains_catalog
from tests.support.stores import fresh_store

SLOW, ORDER, REPORT = (hex_id(name, 32) for name in ("slow", "order", "report"))
SINCE, UNTIL = "1h", "2099-01-01T00:00:00Z"


@pytest.fixture(scope="module")
def catalog() -> ChainCatalog:
    return chains_catalog()


@pytest.fixture(scope="module")
def seeded(
    chdb_store: TraceStore, chdb_path: Path, catalog: ChainCatalog
) -> Iterator[tuple[httpx.Client, TraceStore]]:
    """One serving app for the module, on a database of its own."""
    store = fresh_store(chdb_path)
    insert_spans(store, load_fixture("trace_search")["spans"], time.time_ns() - 600 * 10**9)
    server = ServerThread(create_app(store, chains=catalog))
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            yield client, store
    finally:
        server.stop()
        store.command(f"DROP DATABASE IF EXISTS {store.database}")
        store.close()


def ids(client: httpx.Client, **params: Any) -> list[str]:
    response = client.get("/api/v1/traces", params={"since": SINCE, **params})
    assert response.status_code == 200, response.text
    return [t["trace_id"] for t in response.json()["traces"]]


def test_each_filter(seeded: tuple[httpx.Client, TraceStore]) -> None:
    client, _ = seeded
    assert ids(client) == [REPORT, ORDER, SLOW]
    assert ids(client, chain="B3") == [ORDER, SLOW]
    assert ids(client, service="reporting") == [REPORT]
    assert ids(client, operation="render") == [REPORT]
    assert ids(client, service="trading-engine", operation="/orders") == [ORDER, SLOW]
    assert ids(client, status="error") == [REPORT, SLOW]
    assert ids(client, status="ok") == [ORDER]
    assert ids(client, min_duration_ms="100") == [REPORT, SLOW]
    assert ids(client, max_duration_ms="100") == [ORDER]
    assert ids(client, attr="tenant=acme") == [SLOW]
    assert ids(client, attr=["tenant=acme", "http.route=/orders"]) == [SLOW]
    assert ids(client, order="duration") == [SLOW, REPORT, ORDER]
    assert ids(client, order="duration", limit="2") == [SLOW, REPORT]
    assert ids(client, since="3h", until="2h") == []


def test_answers_the_library_json(
    seeded: tuple[httpx.Client, TraceStore], catalog: ChainCatalog
) -> None:
    client, store = seeded
    body = client.get(
        "/api/v1/traces", params={"since": SINCE, "until": UNTIL, "chain": "B3"}
    ).json()
    expected = search_traces(store, catalog, parse_window(SINCE, UNTIL), TraceQuery(chain="B3"))
    assert body == expected.to_json()
    assert body["limit"] == 20 and body["order"] == "start"


@pytest.mark.parametrize(
    ("params", "status", "named"),
    [
        ({"status": "broken"}, 400, "query parameter status"),
        ({"order": "name"}, 400, "query parameter order"),
        ({"limit": "0"}, 400, "query parameter limit"),
        ({"limit": "5000"}, 400, "query parameter limit"),
        ({"min_duration_ms": "fast"}, 400, "query parameter min_duration_ms"),
        ({"max_duration_ms": "-3"}, 400, "query parameter max_duration_ms"),
        ({"attr": "tenant=~("}, 400, "query parameter attr"),
        ({"attr": ["k"] * 17}, 400, "query parameter attr"),
        ({"chain_status": "error"}, 400, "query parameter chain_status"),
        ({"since": "yesterday"}, 400, "query parameter since"),
        ({"since": "2h", "until": "3h"}, 400, "query parameter since"),
        ({"chain": "ZZ"}, 404, "query parameter chain"),
    ],
)
def test_bad_parameters_are_named(
    seeded: tuple[httpx.Client, TraceStore], params: dict[str, Any], status: int, named: str
) -> None:
    client, _ = seeded
    response = client.get("/api/v1/traces", params=params)
    assert response.status_code == status
    assert named in response.json()["detail"]
