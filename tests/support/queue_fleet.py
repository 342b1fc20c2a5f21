"""A fleet with a queue, from real SDK spans: trading-engine places an order in chain B3 and
publishes an order event; settlement consumes it in a trace of its own, linked to the
producer span (``track.publish`` / ``track.consume``), and writes to PostgreSQL.

A fleet may also hold *plain* services (``plain=``): their TracerProviders have no chainmap
processor, as a Node or Go service with the bare OpenTelemetry SDK, so their spans carry no
``chain.*`` attributes; :func:`settle_plain` consumes the order event in such a service.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from chainmap_otel import track
from chainmap_otel.ingest.sdk_spans import spans_to_arrow
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.active import set_active_catalog
from chainmap_otel.tagging.definitions import ChainCatalog

WAIT_S = 0.05


class Fleet:
    def __init__(self, catalog: ChainCatalog, plain: Iterable[str] = ()) -> None:
        from chainmap_otel.tagging.processor import ChainSpanProcessor

        self.catalog = catalog
        self.plain = frozenset(plain)
        self.exporter = InMemorySpanExporter()
        self.providers: dict[str, TracerProvider] = {}
        self._processor = ChainSpanProcessor

    def use(self, service: str) -> TracerProvider:
        provider = self.providers.get(service)
        if provider is None:
            provider = TracerProvider(resource=Resource.create({"service.name": service}))
            if service not in self.plain:
                provider.add_span_processor(self._processor(self.catalog))
            provider.add_span_processor(SimpleSpanProcessor(self.exporter))
            self.providers[service] = provider
        track.use_tracer_provider(provider)
        return provider

    def spans(self) -> tuple[ReadableSpan, ...]:
        return self.exporter.get_finished_spans()

    def close(self) -> None:
        track.use_tracer_provider(None)
        for provider in self.providers.values():
            provider.shutdown()


def fleet_of(catalog: ChainCatalog, plain: Iterable[str] = ()) -> Iterator[Fleet]:
    fleet = Fleet(catalog, plain)
    set_active_catalog(catalog)  # the chain ids settlement's propagator accepts
    yield fleet
    set_active_catalog(ChainCatalog())
    fleet.close()


def place_order(fleet: Fleet, headers: dict[str, str]) -> None:
    """trading-engine's POST /orders (B3's entry), publishing an order event."""
    tracer = fleet.use("trading-engine").get_tracer("test")
    with tracer.start_as_current_span(
        "POST /orders",
        kind=SpanKind.SERVER,
        attributes={"http.route": "/orders", "http.method": "POST"},
    ):
        with track.publish(headers, "order-events", system="demo-queue"):
            pass


def settle(fleet: Fleet, headers: dict[str, str], *, fail: bool = False) -> None:
    """settlement's consumer: a new trace linked to the producer, writing to PostgreSQL."""
    tracer = fleet.use("settlement").get_tracer("test")
    try:
        with track.consume(headers, "order-events", system="demo-queue"):
            with tracer.start_as_current_span(
                "INSERT settlements", kind=SpanKind.CLIENT, attributes={"db.system": "postgresql"}
            ):
                if fail:
                    raise RuntimeError("settlement refused")
    except RuntimeError:
        pass


def publish_unchained(fleet: Fleet, headers: dict[str, str]) -> None:
    """inventory's GET /stock, in no chain (no rule matches it), publishing a stock event."""
    tracer = fleet.use("inventory").get_tracer("test")
    with tracer.start_as_current_span(
        "GET /stock",
        kind=SpanKind.SERVER,
        attributes={"http.route": "/stock", "http.method": "GET"},
    ):
        with track.publish(headers, "order-events", system="demo-queue"):
            pass


def settle_plain(fleet: Fleet, headers: dict[str, str], *, ledger: bool = False) -> None:
    """settlement without chainmap (a plain service of ``fleet``): a CONSUMER span starting a
    new trace with a span link to the producer's context from the message's ``traceparent``,
    writing to PostgreSQL; with ``ledger``, also calling the plain service ledger."""
    tracer = fleet.use("settlement").get_tracer("test")
    carrier = TraceContextTextMapPropagator().extract(headers)
    producer = trace.get_current_span(carrier).get_span_context()
    with tracer.start_as_current_span(
        "process order-events",
        context=Context(),
        kind=SpanKind.CONSUMER,
        links=[Link(producer)],
        attributes={"messaging.system": "demo-queue", "messaging.destination.name": "order-events"},
    ):
        with tracer.start_as_current_span(
            "INSERT settlements", kind=SpanKind.CLIENT, attributes={"db.system": "postgresql"}
        ):
            pass
        if ledger:
            with tracer.start_as_current_span(
                "POST /entries", kind=SpanKind.CLIENT, attributes={"server.address": "ledger"}
            ):
                ledger_tracer = fleet.use("ledger").get_tracer("test")
                with ledger_tracer.start_as_current_span(
                    "POST /entries", kind=SpanKind.SERVER, attributes={"http.route": "/entries"}
                ):
                    with ledger_tracer.start_as_current_span(
                        "INSERT entries",
                        kind=SpanKind.CLIENT,
                        attributes={"db.system": "postgresql"},
                    ):
                        pass


def store_spans(store: TraceStore, fleet: Fleet) -> None:
    store.insert_arrow(spans_to_arrow(fleet.spans()))
