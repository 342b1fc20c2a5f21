"""OTLP trace payloads (protobuf and OTLP/JSON) to ``otel_traces`` rows.

Rows come out in :data:`~chainmap_otel.storage.columns.TRACE_COLUMNS` order
with the values the Collector's clickhouseexporter writes (hex ids, kind and
status names, attributes stringified by :func:`~.columns.attribute_text`,
``Timestamp`` and event times as integer nanoseconds).

A payload that cannot be parsed raises :class:`~chainmap_otel.errors.IngestError`
and yields no rows at all, so a receiver never stores part of a broken
request. A well-formed payload may still carry spans the store cannot hold
(zero trace id, end before start, ...): those are left out and counted in
:attr:`DecodedSpans.rejected`, which receivers report as OTLP ``partial_success``.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)

from chainmap_otel.errors import IngestError
from chainmap_otel.storage.columns import (
    MAX_TIME_NANOS,
    attribute_text,
    span_kind_name,
    status_code_name,
)

__all__ = [
    "DecodedSpans",
    "decode_document",
    "decode_json",
    "decode_json_lines",
    "decode_protobuf",
    "decode_request",
    "iter_protobuf_frames",
]

#: How many rejection reasons a batch keeps for its error message.
MAX_REASONS = 5
#: How deep AnyValue arrays/maps may nest; deeper values reject their span.
MAX_VALUE_DEPTH = 32
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
#: A ``\uD800``-``\uDFFF`` escape in the raw JSON: only then can a decoded string hold one.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_ZERO_TRACE_ID = bytes(16)
_ZERO_SPAN_ID = bytes(8)

Row = tuple[Any, ...]


class _Rejected(Exception):
    """One span the store cannot hold; the payload itself is fine."""


@dataclass(slots=True)
class DecodedSpans:
    """Rows of the accepted spans of one or more OTLP requests, and what was rejected."""

    rows: list[Row] = field(default_factory=list)
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)
    #: The accepted spans as an Arrow table, when decoded straight into columns.
    table: Any = None

    @property
    def accepted(self) -> int:
        return len(self.rows) if self.table is None else int(self.table.num_rows)

    @property
    def error_message(self) -> str:
        """The OTLP ``partial_success.error_message``: '' when nothing was rejected."""
        if not self.rejected:
            return ""
        more = self.rejected - len(self.reasons)
        tail = f"; and {more} more" if more > 0 else ""
        return f"rejected {self.rejected} span(s): " + "; ".join(self.reasons) + tail

    def reject(self, reason: str) -> None:
        self.rejected += 1
        if len(self.reasons) < MAX_REASONS:
            self.reasons.append(reason)

    def to_arrow(self) -> Any:
        """The accepted rows as an Arrow table (None when there are none).

        A row Arrow cannot hold (a value of the wrong kind) is rejected on its own;
        the request's other rows are kept.
        """
        from chainmap_otel.storage.spanbatch import rows_to_arrow

        if self.table is not None:
            return self.table
        if not self.rows:
            return None
        table = rows_to_arrow(self.rows)
        if table is not None:
            return table
        import pyarrow as pa

        tables = []
        kept = []
        for row in self.rows:
            single = rows_to_arrow([row])
            if single is None:
                self.reject(f"span {row[2] or '(no id)'}: a value the store cannot hold")
            else:
                tables.append(single)
                kept.append(row)
        self.rows = kept
        return pa.concat_tables(tables).combine_chunks() if tables else None

    def extend(self, other: DecodedSpans) -> None:
        self.rows.extend(other.rows)
        self.rejected += other.rejected
        room = MAX_REASONS - len(self.reasons)
        if room > 0:
            self.reasons.extend(other.reasons[:room])


# --------------------------------------------------------------------------- protobuf


def _pb_value(value: Any, depth: int = 0) -> Any:
    """An OTLP ``AnyValue`` message as a Python value (what pdata's ``AsRaw`` gives)."""
    if depth > MAX_VALUE_DEPTH:
        raise _Rejected(f"an attribute value nests deeper than {MAX_VALUE_DEPTH} levels")
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "double_value":
        return value.double_value
    if kind == "array_value":
        return [_pb_value(v, depth + 1) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _pb_value(kv.value, depth + 1) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return value.bytes_value
    return None


def _pb_text(value: Any) -> str:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        text: str = value.string_value
        return text
    if kind == "int_value":
        return str(value.int_value)
    return attribute_text(_pb_value(value))


def _pb_attributes(attributes: Iterable[Any]) -> dict[str, str]:
    # The hot loop of the ingest path: strings and ints inline, the rest via _pb_text.
    out: dict[str, str] = {}
    for kv in attributes:
        value = kv.value
        kind = value.WhichOneof("value")
        if kind == "string_value":
            out[kv.key] = value.string_value
        elif kind == "int_value":
            out[kv.key] = str(value.int_value)
        else:
            out[kv.key] = _pb_text(value)
    return out


def _check_times(start: int, end: int) -> None:
    if start == 0:
        raise _Rejected("start time is missing")
    if start < 0:
        raise _Rejected(f"start time {start} is before 1970")
    if end < start:
        raise _Rejected("end time is before start time")
    if end > MAX_TIME_NANOS:
        raise _Rejected("end time is beyond 2106-02-07, the last time the store can hold")


def _pb_span_row(
    span: Any,
    service: str,
    resource_attrs: dict[str, str],
    scope_name: str,
    scope_version: str,
) -> Row:
    trace_id = span.trace_id
    if len(trace_id) != 16 or trace_id == _ZERO_TRACE_ID:
        raise _Rejected("trace id must be 16 bytes and not all zero")
    span_id = span.span_id
    if len(span_id) != 8 or span_id == _ZERO_SPAN_ID:
        raise _Rejected("span id must be 8 bytes and not all zero")
    parent = span.parent_span_id
    if parent and len(parent) != 8:
        raise _Rejected("parent span id must be 8 bytes or empty")
    start = span.start_time_unix_nano
    end = span.end_time_unix_nano
    _check_times(start, end)

    event_times: list[int] = []
    event_names: list[str] = []
    event_attrs: list[dict[str, str]] = []
    for event in span.events:
        if event.time_unix_nano > MAX_TIME_NANOS:
            raise _Rejected("event time is beyond 2106-02-07, the last time the store can hold")
        event_times.append(event.time_unix_nano)
        event_names.append(event.name)
        event_attrs.append(_pb_attributes(event.attributes))
    link_traces: list[str] = []
    link_spans: list[str] = []
    link_states: list[str] = []
    link_attrs: list[dict[str, str]] = []
    for link in span.links:
        if len(link.trace_id) != 16 or len(link.span_id) != 8:
            raise _Rejected("link trace id must be 16 bytes and link span id 8 bytes")
        link_traces.append(link.trace_id.hex())
        link_spans.append(link.span_id.hex())
        link_states.append(link.trace_state)
        link_attrs.append(_pb_attributes(link.attributes))
    status = span.status
    return (
        start,
        trace_id.hex(),
        span_id.hex(),
        parent.hex() if parent and parent != _ZERO_SPAN_ID else "",
        span.trace_state,
        span.name,
        span_kind_name(span.kind),
        service,
        resource_attrs,
        scope_name,
        scope_version,
        _pb_attributes(span.attributes),
        end - start,
        status_code_name(status.code),
        status.message,
        event_times,
        event_names,
        event_attrs,
        link_traces,
        link_spans,
        link_states,
        link_attrs,
    )


def decode_request(
    request: ExportTraceServiceRequest, out: DecodedSpans | None = None
) -> DecodedSpans:
    """Rows of a parsed ``ExportTraceServiceRequest`` (the gRPC receiver's entry point)."""
    out = out if out is not None else DecodedSpans()
    rows = out.rows
    for resource_spans in request.resource_spans:
        try:
            resource_attrs = _pb_attributes(resource_spans.resource.attributes)
        except _Rejected as exc:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    out.reject(f"span {span.span_id.hex() or '(no id)'}: resource {exc}")
            continue
        service = resource_attrs.get("service.name", "")
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope
            scope_name = scope.name
            scope_version = scope.version
            for span in scope_spans.spans:
                try:
                    rows.append(
                        _pb_span_row(span, service, resource_attrs, scope_name, scope_version)
                    )
                except _Rejected as exc:
                    out.reject(f"span {span.span_id.hex() or '(no id)'} {span.name!r}: {exc}")
    return out


def decode_protobuf(payload: bytes, out: DecodedSpans | None = None) -> DecodedSpans:
    """Rows of one protobuf ``ExportTraceServiceRequest``; IngestError when it does not parse."""
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


# --------------------------------------------------------------------------- OTLP/JSON

_KIND_NAMES = {
    "SPAN_KIND_UNSPECIFIED": 0,
    "SPAN_KIND_INTERNAL": 1,
    "SPAN_KIND_SERVER": 2,
    "SPAN_KIND_CLIENT": 3,
    "SPAN_KIND_PRODUCER": 4,
    "SPAN_KIND_CONSUMER": 5,
}
_STATUS_NAMES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
_SPECIAL_DOUBLES = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class _Malformed(Exception):
    """The JSON document does not follow the OTLP/JSON mapping."""


def _json_int(value: Any, what: str) -> int:
    # int64/uint64/fixed64 are strings in proto3 JSON; numbers are accepted too.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    elif isinstance(value, float) and value.is_integer():
        return int(value)
    raise _Malformed(f"{what} must be an integer or a decimal string, got {value!r}")


def _json_enum(value: Any, names: Mapping[str, int], what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value in names:
        return names[value]
    raise _Malformed(f"{what} must be an enum integer, got {value!r}")


def _json_value(value: Any, depth: int = 0) -> Any:
    """An OTLP/JSON ``AnyValue`` object as a Python value."""
    if depth > MAX_VALUE_DEPTH:
        raise _Rejected(f"an attribute value nests deeper than {MAX_VALUE_DEPTH} levels")
    if not isinstance(value, dict):
        if value is None:
            return None
        raise _Malformed(f"attribute value must be an AnyValue object, got {value!r}")
    if "stringValue" in value:
        text = value["stringValue"]
        if not isinstance(text, str):
            raise _Malformed(f"stringValue must be a string, got {text!r}")
        return text
    if "intValue" in value:
        return _json_int(value["intValue"], "intValue")
    if "boolValue" in value:
        flag = value["boolValue"]
        if not isinstance(flag, bool):
            raise _Malformed(f"boolValue must be true or false, got {flag!r}")
        return flag
    if "doubleValue" in value:
        number = value["doubleValue"]
        if isinstance(number, int | float) and not isinstance(number, bool):
            return float(number)
        if isinstance(number, str):
            if number in _SPECIAL_DOUBLES:
                return _SPECIAL_DOUBLES[number]
            try:
                return float(number)
            except ValueError:
                pass
        raise _Malformed(f"doubleValue must be a number, got {number!r}")
    if "arrayValue" in value:
        values = (value["arrayValue"] or {}).get("values") or []
        return [_json_value(v, depth + 1) for v in values]
    if "kvlistValue" in value:
        return _json_kv_dict((value["kvlistValue"] or {}).get("values"), raw=True, depth=depth + 1)
    if "bytesValue" in value:
        data = value["bytesValue"]
        try:
            return base64.b64decode(data.replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, AttributeError, ValueError):
            raise _Malformed(f"bytesValue must be base64, got {data!r}") from None
    return None


def _json_kv_dict(items: Any, raw: bool = False, depth: int = 0) -> dict[str, Any]:
    if not items:
        return {}
    if not isinstance(items, list):
        raise _Malformed(f"attributes must be a list of key/value objects, got {items!r}")
    out: dict[str, Any] = {}
    for kv in items:
        key = kv.get("key", "")
        if not isinstance(key, str):
            raise _Malformed(f"attribute key must be a string, got {key!r}")
        value = _json_value(kv.get("value"), depth)
        out[key] = value if raw else attribute_text(value)
    return out


def _json_id(value: Any, size: int, what: str, required: bool) -> str:
    if not value:
        if required:
            raise _Rejected(f"{what} is missing")
        return ""
    if not isinstance(value, str):
        raise _Malformed(f"{what} must be a hex string, got {value!r}")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raw = b""
    if len(value) != 2 * size:
        # Repaired: the protobuf JSON mapping's base64 ids (some senders write those).
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
    if len(raw) != size:
        raise _Rejected(
            f"{what} {value[:64]!r} must be {2 * size} hex characters (or base64 of {size} bytes)"
        )
    if not any(raw):
        if required:
            raise _Rejected(f"{what} must not be all zero")
        return ""
    return raw.hex()


def _json_span_row(
    span: dict[str, Any],
    service: str,
    resource_attrs: dict[str, str],
    scope_name: str,
    scope_version: str,
) -> Row:
    trace_id = _json_id(span.get("traceId"), 16, "traceId", True)
    span_id = _json_id(span.get("spanId"), 8, "spanId", True)
    parent = _json_id(span.get("parentSpanId"), 8, "parentSpanId", False)
    start = _json_int(span.get("startTimeUnixNano", 0), "startTimeUnixNano")
    end = _json_int(span.get("endTimeUnixNano", 0), "endTimeUnixNano")
    _check_times(start, end)

    event_times: list[int] = []
    event_names: list[str] = []
    event_attrs: list[dict[str, str]] = []
    for event in span.get("events") or ():
        at = _json_int(event.get("timeUnixNano", 0), "event timeUnixNano")
        if not 0 <= at <= MAX_TIME_NANOS:
            raise _Rejected("event time is outside 1970..2106-02-07")
        event_times.append(at)
        event_names.append(_json_str(event.get("name"), "event name"))
        event_attrs.append(_json_kv_dict(event.get("attributes")))
    link_traces: list[str] = []
    link_spans: list[str] = []
    link_states: list[str] = []
    link_attrs: list[dict[str, str]] = []
    for link in span.get("links") or ():
        link_traces.append(_json_id(link.get("traceId"), 16, "link traceId", True))
        link_spans.append(_json_id(link.get("spanId"), 8, "link spanId", True))
        link_states.append(_json_str(link.get("traceState"), "link traceState"))
        link_attrs.append(_json_kv_dict(link.get("attributes")))
    status = span.get("status") or {}
    return (
        start,
        trace_id,
        span_id,
        parent,
        _json_str(span.get("traceState"), "traceState"),
        _json_str(span.get("name"), "name"),
        span_kind_name(_json_enum(span.get("kind", 0), _KIND_NAMES, "kind")),
        service,
        resource_attrs,
        scope_name,
        scope_version,
        _json_kv_dict(span.get("attributes")),
        end - start,
        status_code_name(_json_enum(status.get("code", 0), _STATUS_NAMES, "status code")),
        _json_str(status.get("message"), "status message"),
        event_times,
        event_names,
        event_attrs,
        link_traces,
        link_spans,
        link_states,
        link_attrs,
    )


def _json_str(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _Malformed(f"{what} must be a string, got {value!r}")
    return value


def _decode_document(document: Any, out: DecodedSpans) -> None:
    if not isinstance(document, dict):
        raise _Malformed("the document must be a JSON object with 'resourceSpans'")
    rows = out.rows
    for resource_spans in document.get("resourceSpans") or ():
        try:
            resource_attrs = _json_kv_dict((resource_spans.get("resource") or {}).get("attributes"))
        except _Rejected as exc:
            for scope_spans in resource_spans.get("scopeSpans") or ():
                for span in scope_spans.get("spans") or ():
                    out.reject(f"span {span.get('spanId') or '(no id)'}: resource {exc}")
            continue
        service = resource_attrs.get("service.name", "")
        for scope_spans in resource_spans.get("scopeSpans") or ():
            scope = scope_spans.get("scope") or {}
            scope_name = _json_str(scope.get("name"), "scope name")
            scope_version = _json_str(scope.get("version"), "scope version")
            for span in scope_spans.get("spans") or ():
                try:
                    rows.append(
                        _json_span_row(span, service, resource_attrs, scope_name, scope_version)
                    )
                except _Rejected as exc:
                    span_id = span.get("spanId") or "(no id)"
                    out.reject(f"span {span_id} {span.get('name', '')!r}: {exc}")


def _load(text: bytes | str) -> Any:
    try:
        document = json.loads(text)
    except RecursionError:
        raise IngestError(
            "payload nests JSON deeper than the decoder allows; OTLP/JSON needs a few levels"
        ) from None
    except UnicodeDecodeError as exc:
        raise IngestError(f"payload is not UTF-8 JSON ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise IngestError(
            f"payload is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from exc
    raw = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    if _SURROGATE_ESCAPE.search(raw):
        document = repair_surrogates(document)
    return document


def repair_surrogates(document: Any) -> Any:
    """``document`` with lone UTF-16 surrogates (``"\\ud800"``) replaced by U+FFFD.

    ``json.loads`` accepts them, UTF-8 cannot hold them; Go's encoding/json
    (the Collector's decoder) makes the same replacement.
    """
    fix = _LONE_SURROGATE.sub
    if isinstance(document, str):
        return fix("\ufffd", document)
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key in list(node):
                value = node[key]
                if isinstance(value, str):
                    node[key] = fix("\ufffd", value)
                elif isinstance(value, dict | list):
                    stack.append(value)
                if _LONE_SURROGATE.search(key):
                    node[fix("\ufffd", key)] = node.pop(key)
        elif isinstance(node, list):
            for index, value in enumerate(node):
                if isinstance(value, str):
                    node[index] = fix("\ufffd", value)
                elif isinstance(value, dict | list):
                    stack.append(value)
    return document


def decode_document(document: Any, out: DecodedSpans | None = None) -> DecodedSpans:
    """Rows of an already parsed OTLP/JSON ``ExportTraceServiceRequest`` object."""
    decoded = DecodedSpans()
    try:
        _decode_document(document, decoded)
    except RecursionError:
        raise IngestError("payload is not OTLP/JSON: it nests too deeply") from None
    except _Malformed as exc:
        raise IngestError(f"payload is not OTLP/JSON: {exc}") from exc
    except (AttributeError, TypeError) as exc:
        raise IngestError(
            "payload is not OTLP/JSON: expected resourceSpans[].scopeSpans[].spans[] objects "
            f"with lowerCamelCase fields ({exc})"
        ) from exc
    if out is None:
        return decoded
    out.extend(decoded)
    return out


def decode_json(payload: bytes | str, out: DecodedSpans | None = None) -> DecodedSpans:
    """Rows of one OTLP/JSON ``ExportTraceServiceRequest`` document."""
    return decode_document(_load(payload), out)


def decode_json_lines(
    lines: Iterable[bytes | str],
) -> Iterator[tuple[int, DecodedSpans | IngestError]]:
    """Per line of the Collector file exporter's format: (line number, rows or the error).

    Each line is an independent request, so one broken line does not void the others.
    Blank lines are skipped.
    """
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield number, decode_json(line)
        except IngestError as exc:
            yield number, exc
