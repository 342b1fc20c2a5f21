"""Large OTLP protobuf requests built directly (no SDK), each span id known to the sender."""

from __future__ import annotations

import os
import time

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span


def bulky_request(service: str, spans: int, padding: int = 1024) -> tuple[bytes, list[str]]:
    """One request of ``spans`` SERVER root spans carrying ``padding`` bytes of attribute."""
    now = time.time_ns()
    filler = os.urandom(padding // 2).hex()
    scope = ScopeSpans()
    ids = []
    for _ in range(spans):
        span_id = os.urandom(8)
        ids.append(span_id.hex())
        scope.spans.append(
            Span(
                trace_id=os.urandom(16),
                span_id=span_id,
                name="GET /bulk",
                kind=Span.SPAN_KIND_SERVER,
                start_time_unix_nano=now - 5_000_000,
                end_time_unix_nano=now,
                attributes=[KeyValue(key="padding", value=AnyValue(string_value=filler))],
            )
        )
    resource = ResourceSpans(scope_spans=[scope])
    resource.resource.attributes.append(
        KeyValue(key="service.name", value=AnyValue(string_value=service))
    )
    return ExportTraceServiceRequest(resource_spans=[resource]).SerializeToString(), ids
