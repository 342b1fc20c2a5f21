"""OTLP trace payloads (protobuf and OTLP/JSON) to ``otel_traces`` spans.

The protobuf reader lives here, the OTLP/JSON one in :mod:`.decode_json`; both hand their
request to :func:`~.validate.append_spans`, the one definition of which spans are
stored and with which values (those the Collector's clickhouseexporter writes: hex ids,
kind and status names, attributes stringified by :func:`~chainmap_otel.storage.columns.attribute_text`,
``Timestamp`` and event times as integer nanoseconds). Every decoder returns
:class:`~.validate.DecodedSpans`: the accepted spans as an Arrow table (``.table``,
what the receivers and ``chainmap ingest`` insert) and as rows (``.rows``, read back
from that table).

A payload that cannot be parsed raises :class:`~chainmap_otel.errors.IngestError`
and yields no spans at all, so a receiver never stores part of a broken
request. A well-formed payload may still carry spans the store cannot hold
(zero trace id, end before start, ...): those are left out and counted in
:attr:`DecodedSpans.rejected`, which receivers report as OTLP ``partial_success``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)

from chainmap_otel.errors import IngestError
from chainmap_otel.ingest.decode_json import (
    decode_document,
    decode_json,
    decode_json_lines,
    repair_surrogates,
)
from chainmap_otel.ingest.validate import (
    MAX_REASONS,
    DecodedSpans,
    Wording,
    attribute_map,
    decode_spans,
)

__all__ = [
    "MAX_REASONS",
    "PROTOBUF_WORDING",
    "DecodedSpans",
    "decode_document",
    "decode_json",
    "decode_json_lines",
    "decode_protobuf",
    "decode_request",
    "iter_protobuf_frames",
    "repair_surrogates",
]


# --------------------------------------------------------------------------- protobuf


#: The members the store renders as they are read (strindex values are stored as "").
_SCALARS = frozenset({"string_value", "int_value", "bool_value", "double_value", "bytes_value"})


def _pb_member(value: Any) -> tuple[str | None, Any]:
    """An ``AnyValue`` message as :data:`~.validate.Member` sees it."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return kind, value.string_value
    if kind == "int_value":
        return kind, value.int_value
    if kind in _SCALARS:
        return kind, getattr(value, kind)
    if kind == "array_value":
        return kind, value.array_value.values
    if kind == "kvlist_value":
        return kind, [(kv.key, kv.value) for kv in value.kvlist_value.values]
    return None, None


def _pb_attributes(attributes: Iterable[Any]) -> dict[str, str]:
    return attribute_map([(kv.key, kv.value) for kv in attributes], _pb_member)


def _describe(span: Any) -> tuple[str, str]:
    return span.span_id.hex() or "(no id)", span.name


#: Rejection reasons in the protobuf message's terms.
PROTOBUF_WORDING = Wording(
    trace_id_missing="trace id must be 16 bytes and not all zero",
    trace_id_size="trace id must be 16 bytes and not all zero",
    trace_id_zero="trace id must be 16 bytes and not all zero",
    span_id_missing="span id must be 8 bytes and not all zero",
    span_id_size="span id must be 8 bytes and not all zero",
    span_id_zero="span id must be 8 bytes and not all zero",
    parent_size="parent span id must be 8 bytes or empty",
    link_size="link trace id must be 16 bytes and link span id 8 bytes",
    describe=_describe,
)


def decode_request(
    request: ExportTraceServiceRequest, out: DecodedSpans | None = None
) -> DecodedSpans:
    """The spans of a parsed ``ExportTraceServiceRequest``."""
    decoded = decode_spans(request.resource_spans, _pb_attributes, PROTOBUF_WORDING)
    if out is None:
        return decoded
    out.extend(decoded)
    return out


def decode_protobuf(payload: bytes, out: DecodedSpans | None = None) -> DecodedSpans:
    """The spans of one protobuf ``ExportTraceServiceRequest``; IngestError when it does not
    parse."""
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(payload)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise IngestError(
            f"payload is not a protobuf ExportTraceServiceRequest ({exc}); "
            "send OTLP protobuf as application/x-protobuf or OTLP/JSON as application/json"
        ) from exc
    return decode_request(request, out)


def iter_protobuf_frames(payload: bytes) -> Iterator[bytes]:
    """Requests of a protobuf file: one bare message, or the Collector file exporter's
    stream of messages each prefixed with its 4-byte big-endian length.

    A bare message never starts with a zero byte (field number 0 is invalid), so
    a leading zero byte means the length-prefixed stream.
    """
    if not payload or payload[0] != 0:
        yield payload
        return
    offset, size = 0, len(payload)
    while offset < size:
        if offset + 4 > size:
            raise IngestError(f"truncated length prefix at byte {offset}")
        length = int.from_bytes(payload[offset : offset + 4], "big")
        offset += 4
        if offset + length > size:
            raise IngestError(
                f"truncated message at byte {offset}: {length} bytes announced, "
                f"{size - offset} present"
            )
        yield payload[offset : offset + length]
        offset += length
