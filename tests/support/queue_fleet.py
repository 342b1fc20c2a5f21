"""A fleet with a queue, from real SDK spans: trading-engine places an order in chain B3 and
publishes an order event; settlement consumes it in a trace of its own, linked to the
producer span (``track.publish`` / ``track.consume``), and writes to PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from chainmap_otel import track
from chainmap_otel.ingest.sdk_spans import spans_to_arrow
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.active import set_active_catalog
from chainmap_otel.tagging.definitions import ChainCatalog

WAIT_S = 0.05


class Fleet:
    def __init__(self, catalog: ChainCatalog) -> None:
        from chainmap_otel.tagging.processor import ChainSpanProcessor

        self.catalog = catalog
        self.exporter = InMemorySpanExporter()
        self.providers: dict[str, TracerProvider] = {}
        self._processor = ChainSpanProcessor

    def use(self, service: str) -> TracerProvider:
        provider = self.providers.get(service)
        if provider is None:
            provider = TracerProvider(resource=Resource.create({"service.name": service}))
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


def fleet_of(catalog: ChainCatalog) -> Iterator[Fleet]:
    fleet = Fleet(catalog)
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


def store_spans(store: TraceStore, fleet: Fleet) -> None:
    store.insert_arrow(spans_to_arrow(fleet.spans()))
