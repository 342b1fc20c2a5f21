"""OTLP protobuf requests straight into Arrow columns: the receivers' hot path.

Same values and the same per-span validation as :func:`~.otlp.decode_request`
(which builds row tuples for the file ingest and the tests), but every value
goes directly onto the flat column lists of
:class:`~chainmap_otel.storage.spanbatch.FlatSpans`: no tuple per span, no
second pass to turn rows into columns. A span is validated completely before
anything of it is appended, so a rejected span leaves no partial values.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from chainmap_otel.errors import IngestError
from chainmap_otel.storage.columns import (
    MAX_TIME_NANOS,
    SPAN_KIND_NAMES,
    STATUS_CODE_NAMES,
)
from chainmap_otel.storage.otlp import DecodedSpans, _check_times, _pb_attributes, _Rejected
from chainmap_otel.storage.spanbatch import FlatSpans

__all__ = ["decode_protobuf_arrow"]

_ZERO_TRACE_ID = bytes(16)
_ZERO_SPAN_ID = bytes(8)


def decode_protobuf_arrow(payload: bytes) -> DecodedSpans:
    """The accepted spans of one protobuf request as ``DecodedSpans.table``; IngestError if
    the payload does not parse."""
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(payload)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise IngestError(
            f"payload is not a protobuf ExportTraceServiceRequest ({exc}); "
            "send OTLP protobuf as application/x-protobuf or OTLP/JSON as application/json"
        ) from exc
    return decode_request_arrow(request)


def decode_request_arrow(request: ExportTraceServiceRequest) -> DecodedSpans:
    """The accepted spans of a parsed request as an Arrow table (see the module docstring)."""
    out = DecodedSpans()
    flat = FlatSpans()
    f: Any = flat
    timestamps = f.timestamps.append
    trace_ids = f.trace_ids.append
    span_ids = f.span_ids.append
    parent_ids = f.parent_ids.append
    trace_states = f.trace_states.append
    names = f.names.append
    kinds = f.kinds.append
    services = f.services.append
    resource_offsets = f.resource_offsets.append
    resource_keys = f.resource_keys.extend
    resource_values = f.resource_values.extend
    scope_names = f.scope_names.append
    scope_versions = f.scope_versions.append
    attribute_offsets = f.attribute_offsets.append
    attribute_keys: list[str] = f.attribute_keys
    attribute_values: list[str] = f.attribute_values
    durations = f.durations.append
    status_codes = f.status_codes.append
    status_messages = f.status_messages.append
    event_offsets = f.event_offsets.append
    event_times: list[int] = f.event_times
    event_names: list[str] = f.event_names
    event_attribute_offsets = f.event_attribute_offsets.append
    event_keys: list[str] = f.event_attribute_keys
    event_values: list[str] = f.event_attribute_values
    link_offsets = f.link_offsets.append
    link_trace_ids: list[str] = f.link_trace_ids
    link_span_ids: list[str] = f.link_span_ids
    link_states: list[str] = f.link_states
    link_attribute_offsets = f.link_attribute_offsets.append
    link_keys: list[str] = f.link_attribute_keys
    link_values: list[str] = f.link_attribute_values
    kind_names = SPAN_KIND_NAMES
    status_names = STATUS_CODE_NAMES
    kind_count = len(kind_names)
    status_count = len(status_names)
    max_time = MAX_TIME_NANOS
    for resource_spans in request.resource_spans:
        try:
            resource = _pb_attributes(resource_spans.resource.attributes)
        except _Rejected as exc:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    out.reject(f"span {span.span_id.hex() or '(no id)'}: resource {exc}")
            continue
        r_keys = list(resource)
        r_values = list(resource.values())
        service = resource.get("service.name", "")
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope
            scope_name = scope.name
            scope_version = scope.version
            for span in scope_spans.spans:
                try:
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
                    attributes = _pb_attributes(span.attributes)
                    events = span.events
                    event_rows = []
                    for event in events:
                        if event.time_unix_nano > max_time:
                            raise _Rejected(
                                "event time is beyond 2106-02-07, the last time the store can hold"
                            )
                        event_rows.append(
                            (event.time_unix_nano, event.name, _pb_attributes(event.attributes))
                        )
                    link_rows = []
                    for link in span.links:
                        if len(link.trace_id) != 16 or len(link.span_id) != 8:
                            raise _Rejected(
                                "link trace id must be 16 bytes and link span id 8 bytes"
                            )
                        link_rows.append(
                            (
                                link.trace_id.hex(),
                                link.span_id.hex(),
                                link.trace_state,
                                _pb_attributes(link.attributes),
                            )
                        )
                except _Rejected as exc:
                    out.reject(f"span {span.span_id.hex() or '(no id)'} {span.name!r}: {exc}")
                    continue
                timestamps(start)
                trace_ids(trace_id.hex())
                span_ids(span_id.hex())
                parent_ids(parent.hex() if parent and parent != _ZERO_SPAN_ID else "")
                trace_states(span.trace_state)
                names(span.name)
                kind = span.kind
                kinds(kind_names[kind] if 0 <= kind < kind_count else "Unspecified")
                services(service)
                resource_keys(r_keys)
                resource_values(r_values)
                resource_offsets(len(f.resource_keys))
                scope_names(scope_name)
                scope_versions(scope_version)
                attribute_keys.extend(attributes)
                attribute_values.extend(attributes.values())
                attribute_offsets(len(attribute_keys))
                durations(end - start)
                status = span.status
                code = status.code
                status_codes(status_names[code] if 0 <= code < status_count else "Unset")
                status_messages(status.message)
                for at, name, items in event_rows:
                    event_times.append(at)
                    event_names.append(name)
                    event_keys.extend(items)
                    event_values.extend(items.values())
                    event_attribute_offsets(len(event_keys))
                event_offsets(len(event_times))
                for link_trace, link_span, link_state, items in link_rows:
                    link_trace_ids.append(link_trace)
                    link_span_ids.append(link_span)
                    link_states.append(link_state)
                    link_keys.extend(items)
                    link_values.extend(items.values())
                    link_attribute_offsets(len(link_keys))
                link_offsets(len(link_states))
    if len(flat):
        out.table = flat.to_arrow()
    return out
