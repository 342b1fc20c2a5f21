"""Span batches as Arrow tables: the fast insert path of the exporter and the OTLP receivers.

Both writers fill :class:`FlatSpans` - one flat Python list per leaf column,
maps and nested arrays as offsets plus flat keys and values - and
:meth:`FlatSpans.to_arrow` turns those lists into an Arrow table with one
C-level conversion per column. ClickHouse then reads the table without any
per-value Python work (clickhouse-connect's Native serialisation builds
LowCardinality dictionaries in Python, which cost more than building the rows).

Values are exactly those of :mod:`chainmap_otel.storage.columns`: hex ids,
kind and status names, attributes stringified like the Collector. Timestamps
are Arrow ``timestamp[ns, UTC]`` so they mean the same instant whatever the
engine's time zone.

pyarrow is imported by this module only, and this module only by the writers,
when they first write.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
from opentelemetry.sdk.trace import ReadableSpan

from chainmap_otel.storage.columns import TRACE_COLUMNS, TRACE_SCHEMA, attribute_text

__all__ = [
    "FlatSpans",
    "from_ipc",
    "rows_to_arrow",
    "spans_to_arrow",
    "stringify_values",
    "to_ipc",
]

_STRING = pa.string()
_OFFSETS = pa.int32()
_TIMESTAMP = pa.timestamp("ns", "UTC")


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


class FlatSpans:
    """Columns of ``otel_traces`` as flat lists, filled span by span by a writer's hot loop.

    ``*_offsets`` lists start with ``0`` and get the running length of their
    child list appended once per parent (span, event or link).
    """

    __slots__ = (
        "attribute_keys",
        "attribute_offsets",
        "attribute_values",
        "durations",
        "event_attribute_keys",
        "event_attribute_offsets",
        "event_attribute_values",
        "event_names",
        "event_offsets",
        "event_times",
        "kinds",
        "link_attribute_keys",
        "link_attribute_offsets",
        "link_attribute_values",
        "link_offsets",
        "link_span_ids",
        "link_states",
        "link_trace_ids",
        "names",
        "parent_ids",
        "resource_keys",
        "resource_offsets",
        "resource_values",
        "scope_names",
        "scope_versions",
        "services",
        "span_ids",
        "status_codes",
        "status_messages",
        "timestamps",
        "trace_ids",
        "trace_states",
    )

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, [0] if name.endswith("_offsets") else [])

    def __len__(self) -> int:
        return len(self.timestamps)  # type: ignore[attr-defined, no-any-return]

    def to_arrow(self) -> pa.Table:
        """The batch as an Arrow table with the ``TRACE_COLUMNS`` names, in that order.

        Columns are built by name and ordered by ``TRACE_SCHEMA``, so the order is
        spelled in one place only.
        """
        s: Any = self
        count = len(s.timestamps)

        def strings(values: list[str]) -> pa.Array:
            return pa.array(values, _STRING)

        def a_map(offsets: list[int], keys: list[str], values: list[str]) -> pa.Array:
            return pa.MapArray.from_arrays(
                pa.array(offsets, _OFFSETS), strings(keys), strings(values)
            )

        def a_list(offsets: list[int], values: pa.Array) -> pa.Array:
            if len(offsets) == 1:  # no span of the batch has any: all empty lists
                offsets = [0] * (count + 1)
            return pa.ListArray.from_arrays(pa.array(offsets, _OFFSETS), values)

        def timestamps(values: list[int]) -> pa.Array:
            return pa.array(values, pa.int64()).cast(_TIMESTAMP)

        columns = {
            "Timestamp": timestamps(s.timestamps),
            "TraceId": strings(s.trace_ids),
            "SpanId": strings(s.span_ids),
            "ParentSpanId": strings(s.parent_ids),
            "TraceState": strings(s.trace_states),
            "SpanName": strings(s.names),
            "SpanKind": strings(s.kinds),
            "ServiceName": strings(s.services),
            "ResourceAttributes": a_map(s.resource_offsets, s.resource_keys, s.resource_values),
            "ScopeName": strings(s.scope_names),
            "ScopeVersion": strings(s.scope_versions),
            "SpanAttributes": a_map(s.attribute_offsets, s.attribute_keys, s.attribute_values),
            "Duration": pa.array(s.durations, pa.uint64()),
            "StatusCode": strings(s.status_codes),
            "StatusMessage": strings(s.status_messages),
            "Events.Timestamp": a_list(s.event_offsets, timestamps(s.event_times)),
            "Events.Name": a_list(s.event_offsets, strings(s.event_names)),
            "Events.Attributes": a_list(
                s.event_offsets,
                a_map(s.event_attribute_offsets, s.event_attribute_keys, s.event_attribute_values),
            ),
            "Links.TraceId": a_list(s.link_offsets, strings(s.link_trace_ids)),
            "Links.SpanId": a_list(s.link_offsets, strings(s.link_span_ids)),
            "Links.TraceState": a_list(s.link_offsets, strings(s.link_states)),
            "Links.Attributes": a_list(
                s.link_offsets,
                a_map(s.link_attribute_offsets, s.link_attribute_keys, s.link_attribute_values),
            ),
        }
        return pa.Table.from_arrays([columns[n] for n in TRACE_COLUMNS], names=list(TRACE_COLUMNS))


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


def _flat_maps(maps: Sequence[Mapping[str, str]]) -> pa.Array:
    keys: list[str] = []
    values: list[str] = []
    offsets = [0]
    for item in maps:
        keys.extend(item)
        values.extend(item.values())
        offsets.append(len(keys))
    return pa.MapArray.from_arrays(
        pa.array(offsets, _OFFSETS), pa.array(keys, _STRING), pa.array(values, _STRING)
    )


def _flat_lists(lists: Sequence[Sequence[Any]]) -> tuple[pa.Array, list[Any]]:
    flat: list[Any] = []
    offsets = [0]
    for item in lists:
        flat.extend(item)
        offsets.append(len(flat))
    return pa.array(offsets, _OFFSETS), flat


def rows_to_arrow(rows: Sequence[Sequence[Any]]) -> pa.Table | None:
    """Rows in ``TRACE_COLUMNS`` order (as the OTLP decoder makes them) as an Arrow table.

    None when a value is not of the decoder's kinds (a ``datetime`` timestamp,
    say): the caller then inserts the rows the general way.
    """
    columns = list(zip(*rows, strict=True))
    if not columns:
        return None
    try:
        arrays: list[pa.Array] = []
        for index, column in enumerate(columns):
            kind = _ROW_KINDS[index]
            if kind == "time":
                if not all(value.__class__ is int for value in column):
                    return None
                arrays.append(pa.array(column, pa.int64()).cast(_TIMESTAMP))
            elif kind == "uint":
                arrays.append(pa.array(column, pa.uint64()))
            elif kind == "str":
                arrays.append(pa.array(column, _STRING))
            elif kind == "map":
                arrays.append(_flat_maps(column))
            else:
                offsets, flat = _flat_lists(column)
                if kind == "times":
                    if not all(value.__class__ is int for value in flat):
                        return None
                    values = pa.array(flat, pa.int64()).cast(_TIMESTAMP)
                elif kind == "maps":
                    values = _flat_maps(flat)
                else:
                    values = pa.array(flat, _STRING)
                arrays.append(pa.ListArray.from_arrays(offsets, values))
    except (pa.ArrowException, TypeError, ValueError, AttributeError):
        return None
    return pa.Table.from_arrays(arrays, names=list(TRACE_COLUMNS))


#: How each ``TRACE_COLUMNS`` column is converted by :func:`rows_to_arrow`.
_ROW_KINDS: tuple[str, ...] = tuple(column.kind for column in TRACE_SCHEMA)


def to_ipc(table: pa.Table) -> bytes:
    """The table as one Arrow IPC stream (the write-ahead log's record payload)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as stream:
        stream.write_table(table)
    return bytes(sink.getvalue())


def from_ipc(payload: bytes) -> pa.Table:
    """The table :func:`to_ipc` wrote."""
    with pa.ipc.open_stream(pa.py_buffer(payload)) as stream:
        return stream.read_all()
