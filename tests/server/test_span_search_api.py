"""Span-level search, chain entry spans, error sources and pick lists over HTTP: the same
numbers as the library for a fixed window (ISO bounds, so no minute boundary moves them)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chainmap_otel.analysis.timewindow import parse_window
from chainmap_otel.analysis.topology import iso_time
from chainmap_otel.analysis.traces import TraceQuery, search_traces
from chainmap_otel.server import create_app
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog
from tests.analysis.conftest import hex_id, insert_spans, load_fixture
from tests.server.conftest import ServerThread
from tests.support.catalog import chains_catalog
from tests.support.stores import fresh_store

NEST, DIRECT, QUICK = (hex_id(name, 32) for name in ("nest", "direct", "quick"))
BASE_NS = (time.time_ns() - 600 * 10**9) // 10**9 * 10**9
WINDOW = {"since": iso_time(BASE_NS - 60 * 10**9), "until": iso_time(BASE_NS + 60 * 10**9)}


@pytest.fixture(scope="module")
def catalog() -> ChainCatalog:
    return chains_catalog()


@pytest.fixture(scope="module")
def seeded(
    chdb_store: TraceStore, chdb_path: Path, catalog: ChainCatalog
) -> Iterator[tuple[httpx.Client, TraceStore]]:
    store = fresh_store(chdb_path)
    insert_spans(store, load_fixture("span_search")["spans"], BASE_NS)
    server = ServerThread(create_app(store, chains=catalog))
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            yield client, store
    finally:
        server.stop()
        store.command(f"DROP DATABASE IF EXISTS {store.database}")
        store.close()


def search(client: httpx.Client, **params: Any) -> list[str]:
    response = client.get("/api/v1/traces", params={**WINDOW, **params})
    assert response.status_code == 200, response.text
    return [t["trace_id"] for t in response.json()["traces"]]


def test_span_level_filters(seeded: tuple[httpx.Client, TraceStore]) -> None:
    client, _ = seeded
    risk = {"service": "ai-risk-model", "operation": "inference risk-var"}
    assert search(client, **risk, min_duration_ms="300") == [DIRECT]
    assert search(client, min_duration_ms="300") == [DIRECT, NEST]
    assert search(client, chain="B3", order="duration") == [DIRECT, QUICK, NEST]
    assert search(client, chain="B3", chain_status="error") == [QUICK, NEST]
    assert search(client, chain="B3", status="error", chain_status="ok") == [DIRECT]
    assert search(client, attr=["tenant", "tenant!=acme"]) == [DIRECT]
    assert search(client, attr="tenant=~^ac") == [NEST]


@pytest.mark.parametrize(
    "params",
    [
        {"chain": "B3", "order": "duration", "chain_status": "error"},
        {"service": "ai-risk-model", "max_duration_ms": "60"},
        {"attr": ["tenant"], "status": "error"},
    ],
)
def test_answers_the_library_json(
    seeded: tuple[httpx.Client, TraceStore], catalog: ChainCatalog, params: dict[str, Any]
) -> None:
    client, store = seeded
    body = client.get("/api/v1/traces", params={**WINDOW, **params}).json()
    attr = params.pop("attr", [])
    query = TraceQuery.parse(attr=attr, **params)
    window = parse_window(WINDOW["since"], WINDOW["until"])
    assert body == search_traces(store, catalog, window, query).to_json()
    assert body["traces"] and all(t["error_source"] for t in body["traces"] if t["error_count"])


def test_pick_lists(seeded: tuple[httpx.Client, TraceStore]) -> None:
    client, _ = seeded
    services = client.get("/api/v1/traces/services", params=WINDOW)
    assert services.json() == {"services": ["ai-risk-model", "api-gateway", "trading-engine"]}
    operations = client.get(
        "/api/v1/traces/operations", params={**WINDOW, "service": "api-gateway"}
    )
    assert operations.json() == {"operations": ["POST", "POST /api/v1/trading"]}
    empty = client.get("/api/v1/traces/services", params={"since": "2h", "until": "1h"})
    assert empty.json() == {"services": []}
    missing = client.get("/api/v1/traces/operations", params=WINDOW)
    assert missing.status_code == 400
    assert missing.json()["detail"].startswith("query parameter service is required")
    too_long = client.get("/api/v1/traces/operations", params={"service": "x" * 600})
    assert too_long.status_code == 400
    assert "service" in too_long.json()["detail"]
    bad_window = client.get("/api/v1/traces/services", params={"since": "soon"})
    assert bad_window.status_code == 400 and "since" in bad_window.json()["detail"]
