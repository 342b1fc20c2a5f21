"""Span batches as Arrow tables: the table format both writers insert and the WAL logs.

Writers fill :class:`FlatSpans` - one flat Python list per leaf column,
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

from chainmap_otel.storage.columns import TRACE_COLUMNS, TRACE_SCHEMA

__all__ = [
    "FlatSpans",
    "from_ipc",
    "rows_to_arrow",
    "to_ipc",
]

_STRING = pa.string()
_OFFSETS = pa.int32()
_TIMESTAMP = pa.timestamp("ns", "UTC")


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
