"""A fleet whose chains are recognised in every way coverage tells apart, with real spans.

* ``api-gateway`` and ``trading-engine`` run ``ChainSpanProcessor`` with the current
  catalog (tagged at the source; B3 nests in B1), and api-gateway's health checks match no
  chain;
* ``ai-orchestration`` runs it with a stale chains file: A2 on an old route too (its tag
  says A2, the current rules nothing), a chain R1 the current catalog removed, and no D1
  (the current rules say D1 on spans it leaves untagged, and on a span it tags with B1
  inside a B1 request);
* ``data-bridge`` (a service without chainmap) goes through the real Collector running
  OTTL generated before the last rule change (C1 also on ``/stream/*``, since dropped): tagged
  by the Collector, on ``/stream/*`` against the current rules; its health checks match no
  chain;
* ``ws-gateway`` (without chainmap, no Collector) is classified at query time.

Every span is made by the OpenTelemetry SDK (a call to another service is a child of the
caller's client span in this process: the processor reads the caller's tags from it, as it
reads the baggage a real hop carries); the processor's and the plain services' spans
are stored as serve stores them (``spans_to_arrow``), the Collector's output through
``chainmap ingest`` of its file exporter's OTLP/JSON.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from chainmap_otel.collector.pipeline import processor_config
from chainmap_otel.ingest.files import ingest_file
from chainmap_otel.ingest.sdk_spans import spans_to_arrow
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog, parse_catalog
from chainmap_otel.tagging.processor import ChainSpanProcessor
from tests.support.collector import COLLECTOR, CollectorProcess
from tests.support.processes import free_port

CURRENT_YAML = """
version: 1
chains:
  - id: B1
    name: API request
    category: api
    entry:
      - service: api-gateway
        kind: server
        route: /api/v1/*
  - id: B3
    name: Trade execution
    category: trading
    criticality: critical
    entry:
      - service: trading-engine
        kind: server
        route: /orders*
        method: [POST]
  - id: A2
    name: AI decision
    category: ai_decision
    entry:
      - service: ai-orchestration
        kind: server
        route: /decisions*
  - id: D1
    name: Risk check
    category: trading
    entry:
      - service: ai-orchestration
        kind: server
        route: /risk/*
  - id: C1
    name: Market data ingestion
    category: data_flow
    entry:
      - service: data-bridge
        kind: server
        route: /feeds/*
  - id: C2
    name: WebSocket session
    category: user_experience
    entry:
      - service: ws-gateway
        kind: server
        route: /ws/*
"""

#: What ai-orchestration still runs: A2 also on /legacy/*, R1 (since removed), no D1.
STALE_YAML = """
version: 1
chains:
  - id: B1
    name: API request
    category: api
    entry:
      - service: api-gateway
        kind: server
        route: /api/v1/*
  - id: A2
    name: AI decision
    category: ai_decision
    entry:
      - service: ai-orchestration
        kind: server
        route: /decisions*
      - service: ai-orchestration
        kind: server
        route: /legacy/*
  - id: R1
    name: Reports
    category: batch
    entry:
      - service: ai-orchestration
        kind: server
        route: /reports*
"""


def collector_catalog() -> ChainCatalog:
    """The catalog the Collector's OTTL was generated from: the current one before C1's
    ``/stream/*`` rule was dropped (a registry change not rolled out to the Collector)."""
    text = CURRENT_YAML.replace(
        "        route: /feeds/*\n",
        "        route: /feeds/*\n      - service: data-bridge\n        kind: server\n"
        "        route: /stream/*\n",
    )
    assert text != CURRENT_YAML
    return parse_catalog(text, source="collector-chains.yaml")


#: Per chain: instances by what recognised them, and the disagreements.
EXPECTED: dict[str, dict[str, Any]] = {
    "B1": {"tagged_by": {"source": 6, "collector": 0, "query_time": 0}, "disagree": (0, 0)},
    "B3": {"tagged_by": {"source": 5, "collector": 0, "query_time": 0}, "disagree": (0, 0)},
    "A2": {"tagged_by": {"source": 7, "collector": 0, "query_time": 0}, "disagree": (3, 0)},
    "D1": {"tagged_by": {"source": 0, "collector": 0, "query_time": 2}, "disagree": (0, 3)},
    "C1": {"tagged_by": {"source": 0, "collector": 6, "query_time": 0}, "disagree": (2, 0)},
    "C2": {"tagged_by": {"source": 0, "collector": 0, "query_time": 3}, "disagree": (0, 0)},
    "R1": {"tagged_by": {"source": 1, "collector": 0, "query_time": 0}, "disagree": (1, 0)},
}
#: Root endpoints no chain covers: (service, route, method) -> traces, most first.
UNMATCHED = [
    ("api-gateway", "/healthz", "GET", 6),
    ("data-bridge", "/health", "GET", 2),
    ("ws-gateway", "/metrics", "GET", 1),
]

_MS = 1_000_000


def current_catalog() -> ChainCatalog:
    return parse_catalog(CURRENT_YAML, source="current-chains.yaml")


def stale_catalog() -> ChainCatalog:
    return parse_catalog(STALE_YAML, source="stale-chains.yaml")


class Service:
    """One service's TracerProvider: with ``catalog`` it runs the chainmap processor."""

    def __init__(self, name: str, catalog: ChainCatalog | None, exporter: Any) -> None:
        self.provider = TracerProvider(resource=Resource.create({"service.name": name}))
        if catalog is not None:
            self.provider.add_span_processor(ChainSpanProcessor(catalog))
        self.provider.add_span_processor(SimpleSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("coverage-fleet")

    def server(
        self,
        route: str,
        method: str,
        start_ns: int,
        parent: trace.Span | None = None,
        children: tuple[tuple[Service, str, str], ...] = (),
    ) -> None:
        """A server span (old HTTP conventions, as FastAPI's instrumentation 0.66b emits),
        with a client call to each child service's server span."""
        context = trace.set_span_in_context(parent) if parent is not None else None
        span = self.tracer.start_span(
            f"{method} {route}",
            context=context,
            kind=SpanKind.SERVER,
            attributes={"http.route": route, "http.method": method, "http.target": route},
            start_time=start_ns,
        )
        at = start_ns + _MS
        for child, child_route, child_method in children:
            client = self.tracer.start_span(
                f"{child_method}",
                context=trace.set_span_in_context(span),
                kind=SpanKind.CLIENT,
                attributes={"http.method": child_method},
                start_time=at,
            )
            child.server(child_route, child_method, at + _MS, parent=client)
            client.end(end_time=at + 8 * _MS)
            at += 10 * _MS
        span.end(end_time=at + 5 * _MS)


def source_and_plain_spans(base_ns: int) -> list[ReadableSpan]:
    """The spans of every service but data-bridge, starting ``base_ns``."""
    exporter = InMemorySpanExporter()
    current, stale = current_catalog(), stale_catalog()
    gateway = Service("api-gateway", current, exporter)
    trading = Service("trading-engine", current, exporter)
    ai = Service("ai-orchestration", stale, exporter)
    ws = Service("ws-gateway", None, exporter)
    at = iter(range(base_ns, base_ns + 10_000 * _MS, 100 * _MS))
    for _ in range(5):
        gateway.server("/api/v1/orders", "GET", next(at), children=((trading, "/orders", "POST"),))
    for _ in range(6):
        gateway.server("/healthz", "GET", next(at))
    # Inside B1, ai-orchestration's span inherits B1 and its stale file knows no D1.
    gateway.server("/api/v1/risk", "GET", next(at), children=((ai, "/risk/check", "POST"),))
    for _ in range(4):
        ai.server("/decisions/next", "POST", next(at))
    for _ in range(3):
        ai.server("/legacy/decide", "POST", next(at))
    ai.server("/reports/daily", "GET", next(at))
    for _ in range(2):
        ai.server("/risk/check", "POST", next(at))
    for _ in range(3):
        ws.server("/ws/stream", "GET", next(at))
    ws.server("/metrics", "GET", next(at))
    for service in (gateway, trading, ai, ws):
        service.provider.shutdown()
    return list(exporter.get_finished_spans())


def collector_output(directory: Path, base_ns: int) -> Path:
    """data-bridge's spans sent through the real Collector (OTLP -> ``transform/chains``
    generated from :func:`collector_catalog` -> file exporter): the OTLP/JSON file it wrote."""
    if not COLLECTOR.exists():
        pytest.skip(
            f"{COLLECTOR.relative_to(COLLECTOR.parents[1])} (the real Collector that runs the "
            "generated OTTL) is not built: run `make collector` (needs Go)"
        )
    port = free_port()
    output = directory / "collector-spans.json"
    transform = processor_config(collector_catalog())
    config = {
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": f"127.0.0.1:{port}"}}}},
        "processors": yaml.safe_load(transform)["processors"],
        "exporters": {"file": {"path": str(output)}},
        "service": {
            "pipelines": {
                "traces": {
                    "receivers": ["otlp"],
                    "processors": ["transform/chains"],
                    "exporters": ["file"],
                }
            }
        },
    }
    collector = CollectorProcess(COLLECTOR, config, directory, name="coverage-otelcol")
    try:
        collector.wait_ready()
        exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{port}/v1/traces")
        memory = InMemorySpanExporter()
        bridge = Service("data-bridge", None, memory)
        at = iter(range(base_ns, base_ns + 10_000 * _MS, 100 * _MS))
        for _ in range(4):
            bridge.server("/feeds/prices", "GET", next(at))
        for _ in range(2):
            bridge.server("/stream/ticks", "GET", next(at))
        for _ in range(2):
            bridge.server("/health", "GET", next(at))
        bridge.provider.shutdown()
        assert exporter.export(memory.get_finished_spans()) == SpanExportResult.SUCCESS
        exporter.shutdown()  # type: ignore[no-untyped-call]
        assert collector.stop() == 0, collector.log()
    finally:
        collector.kill()
    return output


def load_fleet(store: TraceStore, directory: Path, base_ns: int | None = None) -> int:
    """Stores the whole fleet's spans (the Collector's first: it may skip); returns the
    base time (ns), a few minutes ago by default."""
    base = base_ns if base_ns is not None else time.time_ns() - 5 * 60 * 1_000_000_000
    output = collector_output(directory, base + 3_000 * _MS)
    report = ingest_file(store, output)
    assert report.spans_stored == 8 and report.ok, report
    store.insert_arrow(spans_to_arrow(source_and_plain_spans(base)))
    return base
