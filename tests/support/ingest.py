"""Helpers for the ingest server tests: a real SDK pipeline, broken requests, a blocked insert."""

from __future__ import annotations

import threading
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind

from chainmap_otel.storage.store import TraceStore


def emit(exporter: SpanExporter, service: str, traces: int, batch: bool = True) -> None:
    """``traces`` traces of 3 spans each, through a real SDK pipeline into ``exporter``."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test.http")
    for index in range(traces):
        with tracer.start_as_current_span("GET /quote", kind=SpanKind.SERVER) as root:
            root.set_attribute("i", index)
            with tracer.start_as_current_span("fetch", kind=SpanKind.CLIENT):
                pass
            with tracer.start_as_current_span("price"):
                pass
    provider.shutdown()


def with_bad_spans(request: Any) -> Any:
    """The request with its first span's trace id zeroed and its second ending early."""
    spans = request.resource_spans[0].scope_spans[0].spans
    spans[0].trace_id = bytes(16)
    spans[1].end_time_unix_nano = spans[1].start_time_unix_nano - 5
    return request


class BlockedInsert:
    """Failure injection: the store insert waits until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()

    def __call__(self, store: TraceStore, table: Any, token: str) -> None:
        self.entered.set()
        assert self.release.wait(60), "test never released the blocked insert"
        store.insert_arrow(table, deduplication_token=token)
