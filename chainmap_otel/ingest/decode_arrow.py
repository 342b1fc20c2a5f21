"""The receivers' entry point: an OTLP protobuf request straight into Arrow columns.

Kept as the name the receivers and serve's decode worker processes call; the decoding
itself is :func:`~.decode.decode_protobuf`, which like every OTLP decoder goes through
:func:`~.validate.append_spans` (the one validator) into
:class:`~chainmap_otel.storage.arrow.FlatSpans` columns, so the receivers, ``chainmap ingest`` and the
OTLP/JSON path cannot store different values for the same span.
"""

from __future__ import annotations

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from chainmap_otel.ingest.decode import decode_protobuf, decode_request
from chainmap_otel.ingest.validate import DecodedSpans

__all__ = ["decode_protobuf_arrow", "decode_request_arrow"]


def decode_protobuf_arrow(payload: bytes) -> DecodedSpans:
    """The accepted spans of one protobuf request as ``DecodedSpans.table``; IngestError if
    the payload does not parse."""
    return decode_protobuf(payload)


def decode_request_arrow(request: ExportTraceServiceRequest) -> DecodedSpans:
    """The accepted spans of a parsed request as an Arrow table."""
    return decode_request(request)
