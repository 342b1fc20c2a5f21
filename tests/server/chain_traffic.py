"""Chain traffic for the API and web view tests: nested B1 > A2 > B3 trading traces, a
market-data chain, and untagged report traces no chain covers (for discovery).

Rows go in ``TRACE_COLUMNS`` order through ``TraceStore.insert_spans``, so the
materialized views fill the per-minute and per-trace aggregates as real ingest does.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog
from tests.support.catalog import SERVED_CHAINS, chains_catalog, chains_yaml

MS = 1_000_000

CHAINS_YAML = chains_yaml(SERVED_CHAINS)

TRADES = 20
FAILED_TRADES = 3
REPORTS = 12


def catalog() -> ChainCatalog:
    return chains_catalog(SERVED_CHAINS)


def trace_id(name: str) -> str:
    return hashlib.sha1(name.encode()).hexdigest()[:32]


def _span_id(trace: str, span: str) -> str:
    return hashlib.sha1(f"{trace}/{span}".encode()).hexdigest()[:16]


def _row(
    trace: str,
    span: str,
    parent: str,
    service: str,
    kind: str,
    name: str,
    start_ns: int,
    duration_ms: float,
    attributes: dict[str, str],
    status: str = "Unset",
) -> tuple[Any, ...]:
    return (
        start_ns,
        trace_id(trace),
        _span_id(trace, span),
        _span_id(trace, parent) if parent else "",
        "",
        name,
        kind,
        service,
        {"service.name": service},
        "chain-traffic",
        "1",
        attributes,
        int(duration_ms * MS),
        status,
        "",
        [],
        [],
        [],
        [],
        [],
        [],
        [],
    )


def _tags(ids: str, entry: str = "") -> dict[str, str]:
    tags = {"chain.ids": ids, "chain.id": ids.split(",")[-1]}
    if entry:
        tags.update({"chain.entry": "true", "chain.entry_ids": entry})
    return tags


def trade_trace(name: str, base: int, failed: bool, slow_db_ms: float) -> list[tuple[Any, ...]]:
    """gateway -> ai-orchestration -> (ai-market-model, trading-engine -> database -> postgres)."""
    err = "Error" if failed else "Unset"
    http = {"http.request.method": "POST"}
    return [
        _row(
            name,
            "gw",
            "",
            "api-gateway",
            "Server",
            "POST /api/v1/trading/decision",
            base,
            300,
            {**http, "http.route": "/api/v1/trading/decision", **_tags("B1", "B1")},
            err,
        ),
        _row(
            name,
            "gwc",
            "gw",
            "api-gateway",
            "Client",
            "POST",
            base + 5 * MS,
            280,
            {**http, "server.address": "ai-orchestration", **_tags("B1")},
            err,
        ),
        _row(
            name,
            "ao",
            "gwc",
            "ai-orchestration",
            "Server",
            "POST /decisions",
            base + 10 * MS,
            260,
            {**http, "http.route": "/decisions", **_tags("B1,A2", "A2")},
            err,
        ),
        _row(
            name,
            "aom",
            "ao",
            "ai-orchestration",
            "Client",
            "POST",
            base + 15 * MS,
            60,
            {**http, **_tags("B1,A2")},
        ),
        _row(
            name,
            "mm",
            "aom",
            "ai-market-model",
            "Server",
            "POST /predict",
            base + 18 * MS,
            50,
            {**http, "http.route": "/predict", **_tags("B1,A2")},
        ),
        _row(
            name,
            "aot",
            "ao",
            "ai-orchestration",
            "Client",
            "POST",
            base + 80 * MS,
            180,
            {**http, **_tags("B1,A2")},
            err,
        ),
        _row(
            name,
            "te",
            "aot",
            "trading-engine",
            "Server",
            "POST /orders",
            base + 85 * MS,
            170,
            {**http, "http.route": "/orders", **_tags("B1,A2,B3", "B3")},
            err,
        ),
        _row(
            name,
            "tec",
            "te",
            "trading-engine",
            "Client",
            "POST",
            base + 95 * MS,
            slow_db_ms + 20,
            {**http, **_tags("B1,A2,B3")},
        ),
        _row(
            name,
            "ds",
            "tec",
            "database-service",
            "Server",
            "POST /orders/store",
            base + 97 * MS,
            slow_db_ms + 15,
            {**http, "http.route": "/orders/store", **_tags("B1,A2,B3")},
        ),
        _row(
            name,
            "pg",
            "ds",
            "database-service",
            "Client",
            "INSERT orders",
            base + 100 * MS,
            slow_db_ms,
            {"db.system": "postgresql", "db.namespace": "trading", **_tags("B1,A2,B3")},
        ),
    ]


def report_trace(name: str, base: int) -> list[tuple[Any, ...]]:
    """An untagged trace of a service no chain covers."""
    return [
        _row(
            name,
            "r",
            "",
            "report-service",
            "Server",
            "GET /reports/daily",
            base,
            40,
            {"http.request.method": "GET", "http.route": "/reports/daily"},
        ),
        _row(
            name,
            "rc",
            "r",
            "report-service",
            "Client",
            "SELECT",
            base + 2 * MS,
            30,
            {"db.system": "postgresql"},
        ),
    ]


def seed(store: TraceStore, now_ns: int | None = None) -> dict[str, Any]:
    """Insert the traffic five minutes before ``now_ns``; returns what was inserted."""
    base = (now_ns or time.time_ns()) - 5 * 60 * 1_000_000_000
    rows: list[tuple[Any, ...]] = []
    trades = [f"trade-{i}" for i in range(TRADES)]
    for i, name in enumerate(trades):
        rows += trade_trace(name, base + i * 50 * MS, i < FAILED_TRADES, 40 + 5 * i)
    reports = [f"report-{i}" for i in range(REPORTS)]
    for i, name in enumerate(reports):
        rows += report_trace(name, base + i * 30 * MS)
    store.insert_spans(rows=rows)
    return {"trades": [trace_id(t) for t in trades], "reports": [trace_id(r) for r in reports]}


@contextmanager
def serving(app: FastAPI, timeout: float = 15.0) -> Iterator[httpx.Client]:
    """``app`` under a real uvicorn on a free port (lifespan on); a client on its URL."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start within {timeout}s")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(15)
