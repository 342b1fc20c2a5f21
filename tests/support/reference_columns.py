"""A plain-Python reference of the ``otel_traces`` row values of SDK spans.

The production writers build Arrow columns (``storage/arrow.py``); tests
compare them with this straightforward list-per-column form, and insert it
through clickhouse-connect's Native path as a second opinion.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from chainmap_otel.storage.columns import attribute_text

#: One batch in column form: ``TRACE_COLUMNS`` order, one list per column.
Columns = list[list[Any]]

_KIND_NAMES: dict[SpanKind, str] = {
    SpanKind.INTERNAL: "Internal",
    SpanKind.SERVER: "Server",
    SpanKind.CLIENT: "Client",
    SpanKind.PRODUCER: "Producer",
    SpanKind.CONSUMER: "Consumer",
}
_STATUS_NAMES: dict[StatusCode, str] = {
    StatusCode.UNSET: "Unset",
    StatusCode.OK: "Ok",
    StatusCode.ERROR: "Error",
}


_JSON_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _text(value: Any) -> str:
    """A non-``str`` attribute value as the Collector stores it (see ``columns.attribute_text``)."""
    kind = type(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return int.__repr__(value)
    if kind is tuple or kind is list:
        # The SDK keeps sequences of str/bool/int/float/None: plain JSON, as attribute_text.
        try:
            return _JSON_ENCODE(value)
        except (TypeError, ValueError):
            pass
    return attribute_text(value)


def _attribute_map(attributes: Any) -> dict[str, str]:
    if not attributes:
        return {}
    # BoundedAttributes keeps a plain dict in ``_dict``; iterating it skips the
    # Mapping ABC's per-item __getitem__.
    items = getattr(attributes, "_dict", attributes).items()
    return {k: v if type(v) is str else _text(v) for k, v in items}


def spans_to_columns(spans: Sequence[ReadableSpan]) -> Columns:
    """Columns of ``otel_traces`` rows for ``spans`` (the exporter's hot path).

    One loop, no per-span helper calls for the common case: ids are formatted
    with ``%``, string attributes pass through, resources are converted once.
    """
    timestamps: list[int] = []
    trace_ids: list[str] = []
    span_ids: list[str] = []
    parent_ids: list[str] = []
    trace_states: list[str] = []
    names: list[str] = []
    kinds: list[str] = []
    services: list[str] = []
    resources: list[dict[str, str]] = []
    scope_names: list[str] = []
    scope_versions: list[str] = []
    attributes: list[dict[str, str]] = []
    durations: list[int] = []
    status_codes: list[str] = []
    status_messages: list[str] = []
    event_times: list[list[int]] = []
    event_names: list[list[str]] = []
    event_attributes: list[list[dict[str, str]]] = []
    link_trace_ids: list[list[str]] = []
    link_span_ids: list[list[str]] = []
    link_states: list[list[str]] = []
    link_attributes: list[list[dict[str, str]]] = []
    resource_cache: dict[int, tuple[dict[str, str], str]] = {}
    kind_names = _KIND_NAMES
    status_names = _STATUS_NAMES
    text = _text
    amap = _attribute_map
    no_events: list[Any] = []
    for span in spans:
        context = span._context
        start = span._start_time or 0
        end = span._end_time
        timestamps.append(start)
        if context is None:
            trace_ids.append("")
            span_ids.append("")
            trace_states.append("")
        else:
            trace_ids.append(f"{context.trace_id:032x}" if context.trace_id else "")
            span_ids.append(f"{context.span_id:016x}" if context.span_id else "")
            state = context.trace_state
            trace_states.append(state.to_header() if state else "")
        parent = span._parent
        parent_ids.append(f"{parent.span_id:016x}" if parent is not None else "")
        names.append(span._name)
        kinds.append(kind_names.get(span._kind, "Unspecified"))
        resource = span._resource
        cached = resource_cache.get(id(resource))
        if cached is None:
            resource_map = amap(resource.attributes if resource is not None else None)
            cached = (resource_map, resource_map.get("service.name", ""))
            resource_cache[id(resource)] = cached
        resources.append(cached[0])
        services.append(cached[1])
        scope = span._instrumentation_scope
        if scope is None:
            scope_names.append("")
            scope_versions.append("")
        else:
            scope_names.append(scope.name or "")
            scope_versions.append(scope.version or "")
        span_attributes = span._attributes
        if span_attributes:
            items = getattr(span_attributes, "_dict", span_attributes).items()
            attributes.append({k: v if type(v) is str else text(v) for k, v in items})
        else:
            attributes.append({})
        durations.append(end - start if end is not None and end > start else 0)
        status = span._status
        status_codes.append(status_names.get(status.status_code, "Unset"))
        status_messages.append(status.description or "")
        events = span._events
        if events:
            event_times.append([event.timestamp for event in events])
            event_names.append([event.name for event in events])
            event_attributes.append([amap(event.attributes) for event in events])
        else:
            event_times.append(no_events)
            event_names.append(no_events)
            event_attributes.append(no_events)
        links = span._links
        if links:
            link_trace_ids.append(
                [f"{link.context.trace_id:032x}" if link.context.trace_id else "" for link in links]
            )
            link_span_ids.append(
                [f"{link.context.span_id:016x}" if link.context.span_id else "" for link in links]
            )
            link_states.append(
                [
                    link.context.trace_state.to_header() if link.context.trace_state else ""
                    for link in links
                ]
            )
            link_attributes.append([amap(link.attributes) for link in links])
        else:
            link_trace_ids.append(no_events)
            link_span_ids.append(no_events)
            link_states.append(no_events)
            link_attributes.append(no_events)
    return [
        timestamps,
        trace_ids,
        span_ids,
        parent_ids,
        trace_states,
        names,
        kinds,
        services,
        resources,
        scope_names,
        scope_versions,
        attributes,
        durations,
        status_codes,
        status_messages,
        event_times,
        event_names,
        event_attributes,
        link_trace_ids,
        link_span_ids,
        link_states,
        link_attributes,
    ]
