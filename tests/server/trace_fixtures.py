"""Traces for the trace view and graph tests: a 5,000-span trace (wide and deep, with
errors, events and links), a service that calls itself (a self-loop edge), and a FastAPI
request with the ASGI instrumentation's send/receive spans and a failed answer.

Rows go in ``TRACE_COLUMNS`` order through ``TraceStore.insert_spans``, like real ingest.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from chainmap_otel.storage.store import TraceStore

MS = 1_000_000
BIG_SPANS = 5_000
#: The big trace: a root, FAN_OUT workers under it, the rest spread under the workers.
FAN_OUT = 50


def hex_id(text: str, length: int) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:length]


def _row(
    trace: str,
    span: str,
    parent: str,
    service: str,
    kind: str,
    name: str,
    start_ns: int,
    duration_ns: int,
    attributes: dict[str, str],
    status: str = "Unset",
    events: tuple[list[Any], list[str], list[dict[str, str]]] = ([], [], []),
    links: tuple[list[str], list[str], list[str], list[dict[str, str]]] = ([], [], [], []),
) -> tuple[Any, ...]:
    return (
        start_ns,
        trace,
        span,
        parent,
        "",
        name,
        kind,
        service,
        {"service.name": service, "host.name": "web-test"},
        "trace-fixtures",
        "1",
        attributes,
        duration_ns,
        status,
        "worker failed" if status == "Error" else "",
        *events,
        *links,
    )


def big_trace(base_ns: int) -> tuple[str, list[tuple[Any, ...]]]:
    """A batch job of :data:`BIG_SPANS` spans in four services; every 97th span fails."""
    trace = hex_id("big-trace", 32)
    root = hex_id("big/root", 16)
    rows = [
        _row(
            trace,
            root,
            "",
            "batch-scheduler",
            "Server",
            "POST /jobs/rebalance",
            base_ns,
            2_000 * MS,
            {"http.route": "/jobs/rebalance", "http.request.method": "POST"},
            events=([base_ns + 1 * MS], ["job accepted"], [{"job.size": str(BIG_SPANS)}]),
        )
    ]
    workers = [hex_id(f"big/w{i}", 16) for i in range(FAN_OUT)]
    for i, worker in enumerate(workers):
        start = base_ns + 10 * MS + i * 38 * MS
        rows.append(
            _row(
                trace,
                worker,
                root,
                "rebalance-worker",
                "Internal",
                f"rebalance shard {i}",
                start,
                36 * MS,
                {"shard": str(i)},
            )
        )
    services = ("pricing", "positions")
    for n in range(BIG_SPANS - 1 - FAN_OUT):
        parent_index = n % FAN_OUT
        start = base_ns + 10 * MS + parent_index * 38 * MS + (n // FAN_OUT) % 30 * MS
        rows.append(
            _row(
                trace,
                hex_id(f"big/s{n}", 16),
                workers[parent_index],
                services[n % 2],
                "Client",
                f"lookup {n}",
                start + 100_000,
                800_000,
                {"lookup.n": str(n), "peer.service": "quotes"},
                "Error" if n % 97 == 0 else "Unset",
                links=(
                    ([hex_id("loop-trace", 32)], [hex_id("loop/root", 16)], [""], [{}])
                    if n == 0
                    else ([], [], [], [])
                ),
            )
        )
    return trace, rows


def loop_trace(base_ns: int) -> tuple[str, list[tuple[Any, ...]]]:
    """cache-service calls itself (client span and server child in the same service)."""
    trace = hex_id("loop-trace", 32)
    root, client, inner = (hex_id(f"loop/{s}", 16) for s in ("root", "client", "inner"))
    http = {"http.request.method": "GET"}
    rows = [
        _row(
            trace,
            root,
            "",
            "cache-service",
            "Server",
            "GET /cache/{key}",
            base_ns,
            30 * MS,
            {**http, "http.route": "/cache/{key}"},
        ),
        _row(
            trace,
            client,
            root,
            "cache-service",
            "Client",
            "GET",
            base_ns + 2 * MS,
            20 * MS,
            {**http, "server.address": "cache-service"},
        ),
        _row(
            trace,
            inner,
            client,
            "cache-service",
            "Server",
            "GET /cache/fill",
            base_ns + 3 * MS,
            18 * MS,
            {**http, "http.route": "/cache/fill"},
        ),
    ]
    return trace, rows


#: The ASGI trace's long operation name: it must stay readable with the span details open.
ASGI_OPERATION = "POST /api/v1/portfolios/{portfolio_id}/rebalance-with-risk-limits"


def asgi_trace(base_ns: int) -> tuple[str, list[tuple[Any, ...]]]:
    """A FastAPI request answered 500, as opentelemetry-instrumentation-asgi records it: the
    server span, an http receive, two http sends (the response start one failed too, as the
    instrumentation marks it) around a failing database call."""
    trace = hex_id("asgi-trace", 32)
    ids = {s: hex_id(f"asgi/{s}", 16) for s in ("server", "rx", "db", "tx1", "tx2")}
    http = {"http.route": ASGI_OPERATION.split(" ")[1], "http.request.method": "POST"}
    server = ("portfolio-api", "Server", ASGI_OPERATION, base_ns, 40 * MS, http, "Error")
    rows = [_row(trace, ids["server"], "", *server[:6], status=server[6])]
    internal = [
        ("rx", f"{ASGI_OPERATION} http receive", 1, {"asgi.event.type": "http.request"}, "Unset"),
        (
            "tx1",
            f"{ASGI_OPERATION} http send",
            36,
            {"asgi.event.type": "http.response.start", "http.status_code": "500"},
            "Error",
        ),
        (
            "tx2",
            f"{ASGI_OPERATION} http send",
            38,
            {"asgi.event.type": "http.response.body"},
            "Unset",
        ),
    ]
    for key, name, at_ms, attributes, status in internal:
        rows.append(
            _row(
                trace,
                ids[key],
                ids["server"],
                "portfolio-api",
                "Internal",
                name,
                base_ns + at_ms * MS,
                1 * MS,
                attributes,
                status,
            )
        )
    rows.append(
        _row(
            trace,
            ids["db"],
            ids["server"],
            "portfolio-api",
            "Client",
            "UPDATE portfolios",
            base_ns + 3 * MS,
            30 * MS,
            {"db.system": "postgresql"},
            "Error",
        )
    )
    return trace, rows


def seed(store: TraceStore, now_ns: int | None = None) -> dict[str, str]:
    """Insert the traces four minutes before ``now_ns``; returns their ids."""
    base = (now_ns or time.time_ns()) - 4 * 60 * 1_000_000_000
    big, big_rows = big_trace(base)
    loop, loop_rows = loop_trace(base + 100 * MS)
    asgi, asgi_rows = asgi_trace(base + 200 * MS)
    store.insert_spans(rows=big_rows + loop_rows + asgi_rows)
    return {"big": big, "loop": loop, "asgi": asgi}
