"""SDK spans as an Arrow table of ``otel_traces`` rows: the exporter's hot path.

:func:`spans_to_arrow` fills :class:`~chainmap_otel.storage.arrow.FlatSpans` from the
SDK's ``ReadableSpan`` objects, reading their private fields once per span (the public
properties copy attributes and events). Values are those of
:mod:`chainmap_otel.storage.columns`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
from opentelemetry.sdk.trace import ReadableSpan

from chainmap_otel.storage.arrow import FlatSpans
from chainmap_otel.storage.columns import attribute_text

__all__ = ["spans_to_arrow", "stringify_values"]


#: Texts of recent float and sequence values (Go-style formatting is slow and values repeat).
_TEXT_CACHE: dict[tuple[Any, ...], str] = {}
_TEXT_CACHE_SIZE = 4096


def _text(value: Any) -> str:
    """A non-``str`` attribute value as the Collector stores it (see ``columns.attribute_text``)."""
    kind = value.__class__
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return int.__repr__(value)
    # Equal values of different types (1, 1.0, True) must not share a text: key by types too.
    key = (kind, value, *map(type, value)) if kind is tuple else (kind, value)
    try:
        return _TEXT_CACHE[key]
    except KeyError:
        text = attribute_text(value)
    except TypeError:  # unhashable (a list or a mapping)
        return attribute_text(value)
    if len(_TEXT_CACHE) >= _TEXT_CACHE_SIZE:
        _TEXT_CACHE.clear()
    _TEXT_CACHE[key] = text
    return text


_NO_ATTRIBUTES: dict[str, Any] = {}


def _plain(attributes: Any) -> Any:
    """The plain dict inside the SDK's ``BoundedAttributes`` (its Mapping methods are Python)."""
    try:
        return attributes._dict
    except AttributeError:
        return attributes or _NO_ATTRIBUTES


def stringify_values(values: list[Any]) -> list[str]:
    """Attribute values as text: one pass over a whole batch, strings untouched."""
    text = _text
    return [v if v.__class__ is str else text(v) for v in values]


def spans_to_arrow(spans: Sequence[ReadableSpan]) -> pa.Table:
    """``otel_traces`` rows of SDK spans as an Arrow table (the exporter's hot path).

    One loop reads each span's private fields once (the public properties copy
    attributes and events); ids stay ``int`` until one formatting pass per
    column; attribute values are stringified in one pass per batch; resources
    are converted once per batch.
    """
    out = FlatSpans()
    o: Any = out
    timestamps = o.timestamps.append
    trace_ids = o.trace_ids.append
    span_ids = o.span_ids.append
    parent_ids = o.parent_ids.append
    trace_states = o.trace_states.append
    names = o.names.append
    kinds = o.kinds.append
    services = o.services.append
    resource_offsets = o.resource_offsets.append
    resource_keys = o.resource_keys
    resource_values = o.resource_values
    scope_names = o.scope_names.append
    scope_versions = o.scope_versions.append
    attribute_offsets = o.attribute_offsets.append
    attribute_keys = o.attribute_keys
    attribute_values = o.attribute_values
    durations = o.durations.append
    status_codes = o.status_codes.append
    status_messages = o.status_messages.append
    event_offsets = o.event_offsets.append
    event_attribute_offsets = o.event_attribute_offsets.append
    event_keys = o.event_attribute_keys
    event_values = o.event_attribute_values
    link_offsets = o.link_offsets.append
    link_attribute_offsets = o.link_attribute_offsets.append
    link_keys = o.link_attribute_keys
    link_values = o.link_attribute_values
    event_times: list[int] = o.event_times
    event_names: list[str] = o.event_names
    link_trace_ids: list[int] = []
    link_span_ids: list[int] = []
    link_states: list[str] = o.link_states
    resource_cache: dict[int, tuple[list[str], list[str], str]] = {}
    kind_names = _KIND_NAMES
    status_names = _STATUS_NAMES
    scope_cache: dict[int, tuple[str, str]] = {}
    for span in spans:
        context = span._context
        start = span._start_time or 0
        end = span._end_time
        timestamps(start)
        if context is None:
            trace_ids(0)
            span_ids(0)
            trace_states("")
        else:
            trace_ids(context.trace_id)
            span_ids(context.span_id)
            state = context.trace_state
            trace_states(state.to_header() if state else "")
        parent = span._parent
        parent_ids(parent.span_id if parent is not None else 0)
        names(span._name)
        kinds(kind_names.get(id(span._kind), "Unspecified"))
        resource = span._resource
        cached = resource_cache.get(id(resource))
        if cached is None:
            raw = _plain(resource.attributes if resource is not None else None)
            keys = list(raw)
            values = stringify_values(list(raw.values()))
            service = values[keys.index("service.name")] if "service.name" in raw else ""
            cached = (keys, values, service)
            resource_cache[id(resource)] = cached
        resource_keys.extend(cached[0])
        resource_values.extend(cached[1])
        resource_offsets(len(resource_keys))
        services(cached[2])
        scope = span._instrumentation_scope
        scoped = scope_cache.get(id(scope))
        if scoped is None:
            scoped = ("", "") if scope is None else (scope.name or "", scope.version or "")
            scope_cache[id(scope)] = scoped
        scope_names(scoped[0])
        scope_versions(scoped[1])
        items = _plain(span._attributes)
        attribute_keys.extend(items)
        attribute_values.extend(items.values())
        attribute_offsets(len(attribute_keys))
        durations(end - start if end is not None and end > start else 0)
        status = span._status
        status_codes(status_names.get(id(status.status_code), "Unset"))
        status_messages(status.description or "")
        events = span._events
        events = getattr(events, "_dq", events)  # BoundedList: skip its locked copy
        if events:
            for event in events:
                event_times.append(event.timestamp)
                event_names.append(event.name)
                items = _plain(event.attributes)
                event_keys.extend(items)
                event_values.extend(items.values())
                event_attribute_offsets(len(event_keys))
        event_offsets(len(event_times))
        links = span._links
        links = getattr(links, "_dq", links)
        if links:
            for link in links:
                link_context = link.context
                link_trace_ids.append(link_context.trace_id)
                link_span_ids.append(link_context.span_id)
                link_state = link_context.trace_state
                link_states.append(link_state.to_header() if link_state else "")
                items = _plain(link.attributes)
                link_keys.extend(items)
                link_values.extend(items.values())
                link_attribute_offsets(len(link_keys))
        link_offsets(len(link_states))
    o.trace_ids = [f"{v:032x}" if v else "" for v in o.trace_ids]
    o.span_ids = [f"{v:016x}" if v else "" for v in o.span_ids]
    o.parent_ids = [f"{v:016x}" if v else "" for v in o.parent_ids]
    o.link_trace_ids = [f"{v:032x}" if v else "" for v in link_trace_ids]
    o.link_span_ids = [f"{v:016x}" if v else "" for v in link_span_ids]
    o.attribute_values = stringify_values(attribute_values)
    o.event_attribute_values = stringify_values(event_values)
    o.link_attribute_values = stringify_values(link_values)
    return out.to_arrow()


def _kind_names() -> dict[int, str]:
    from opentelemetry.trace import SpanKind

    # Keyed by identity: hashing an Enum member runs Python code, id() does not.
    return {
        id(SpanKind.INTERNAL): "Internal",
        id(SpanKind.SERVER): "Server",
        id(SpanKind.CLIENT): "Client",
        id(SpanKind.PRODUCER): "Producer",
        id(SpanKind.CONSUMER): "Consumer",
    }


def _status_names() -> dict[int, str]:
    from opentelemetry.trace import StatusCode

    return {id(StatusCode.UNSET): "Unset", id(StatusCode.OK): "Ok", id(StatusCode.ERROR): "Error"}


_KIND_NAMES = _kind_names()
_STATUS_NAMES = _status_names()
