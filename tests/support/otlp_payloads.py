"""OTLP requests for ingest tests: real SDK spans encoded by the SDK's own OTLP encoder."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


def sdk_spans(service: str = "checkout", count: int = 1) -> Sequence[ReadableSpan]:
    """``count`` traces of a SERVER root with an erroring CLIENT child, an event and a link."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service, "pod": "p-1"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("shop.scope", "2.1")
    for index in range(count):
        with tracer.start_as_current_span(
            "GET /orders/{id}",
            kind=SpanKind.SERVER,
            attributes={
                "http.route": "/orders/{id}",
                "http.status_code": 200,
                "ratio": 0.25,
                "cached": True,
                "tags": ["a", "b"],
                "n": index,
            },
        ) as root:
            root.add_event("validated", {"items": 3})
            with tracer.start_as_current_span(
                "SELECT orders", kind=SpanKind.CLIENT, links=[Link(root.get_span_context())]
            ) as child:
                child.set_status(Status(StatusCode.ERROR, "timeout"))
    provider.shutdown()
    return memory.get_finished_spans()


def request_of(spans: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
    return encode_spans(spans)


def to_otlp_json(request: ExportTraceServiceRequest) -> dict[str, Any]:
    """The OTLP/JSON form: protobuf JSON mapping, but ids in hex and enums as integers."""
    document = json_format.MessageToDict(request, use_integers_for_enums=True)
    return _hex_ids(document)


def _hex_ids(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: base64.b64decode(value).hex()
            if key in _ID_FIELDS and isinstance(value, str)
            else _hex_ids(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_hex_ids(item) for item in node]
    return node


def json_bytes(request: ExportTraceServiceRequest) -> bytes:
    return json.dumps(to_otlp_json(request)).encode()
