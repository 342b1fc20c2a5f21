"""The checked-in ``.proto`` schema the engine reads OTLP with is the one the installed
opentelemetry-proto descriptors render (regenerate it with ``render_schema`` when this
fails after an upgrade), and it describes the same wire format: a request serialised by
the protobuf runtime parses with the lean copy into the same fields."""

from __future__ import annotations

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from chainmap_otel.ingest.engine_schema import (
    SCHEMA_MESSAGE,
    SCHEMA_PATH,
    lean_request_class,
    render_schema,
)


def test_the_checked_in_schema_is_the_rendered_one() -> None:
    assert SCHEMA_PATH.read_text() == render_schema()


def test_the_schema_declares_every_message_of_a_trace_request() -> None:
    text = render_schema()
    for message in (SCHEMA_MESSAGE, "ResourceSpans", "ScopeSpans", "Span", "AnyValue"):
        assert f"message {message} {{" in text
    assert "  fixed64 start_time_unix_nano = 7;" in text
    assert "  repeated Span.Event events = 11;" in text
    assert "  oneof value {" in text


def test_the_lean_copy_reads_a_request_like_the_real_one() -> None:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.name, span.kind, span.trace_id = "checkout", 2, b"\x01" * 16
    span.attributes.add(key="k").value.string_value = "v"
    lean = lean_request_class()()
    lean.ParseFromString(request.SerializeToString())
    read = lean.resource_spans[0].scope_spans[0].spans[0]
    assert (read.name, read.kind, read.trace_id) == ("checkout", 2, b"\x01" * 16)
    assert read.attributes[0].value.string_value == "v"
    assert lean.ByteSize() == request.ByteSize()
