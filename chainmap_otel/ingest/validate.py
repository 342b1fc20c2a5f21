"""What each span of an OTLP request becomes in ``otel_traces``, and when it is rejected.

The one definition for both encodings (protobuf, OTLP/JSON) and both outputs (Arrow
columns, rows), so ``chainmap ingest``, the OTLP/HTTP receiver (protobuf and JSON), the
gRPC receiver and serve's decode worker processes store the same values for the same
request and reject the same spans.

A reader hands :func:`append_spans` its request as objects with the protobuf message's
attribute names (``resource_spans``, ``scope_spans``, ``spans``; a span's ``trace_id``
as bytes, ``kind`` as the enum number, ``start_time_unix_nano`` as an int, ...) and a
function turning an ``attributes`` field into ``dict[str, str]``. The protobuf reader
(:mod:`.decode`) passes the parsed ``ExportTraceServiceRequest`` itself; the OTLP/JSON
reader (:mod:`.decode_json`) thin views of the parsed document, which raise
:class:`Rejected` or :class:`Malformed` for what only JSON can get wrong (an id that is
neither hex nor base64, a field of the wrong JSON type) when that field is read.

Values, as the Collector's clickhouseexporter writes them: ids as lowercase hex (an
all-zero or empty parent or link id as ``""``, as pdata's ``String()`` gives it), span
kind and status code as ``Server``/``Ok``... and ``""`` for a number outside the enum,
attribute values as :func:`~chainmap_otel.storage.columns.attribute_text` of the value the reader decoded,
times as integer nanoseconds. A span is checked completely before anything of it is
appended, so a rejected span leaves nothing behind; rows are read back from the Arrow
table the columns make (:attr:`DecodedSpans.rows`), so rows and columns cannot differ.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from chainmap_otel.storage.arrow import FlatSpans
from chainmap_otel.storage.columns import (
    MAX_TIME_NANOS,
    SPAN_KIND_NAMES,
    STATUS_CODE_NAMES,
    attribute_text,
)

__all__ = [
    "MAX_REASONS",
    "MAX_VALUE_DEPTH",
    "DecodedSpans",
    "Malformed",
    "Member",
    "Rejected",
    "Wording",
    "any_value",
    "append_spans",
    "attribute_map",
    "check_times",
    "decode_spans",
    "table_rows",
]

#: How many rejection reasons a batch keeps for its error message.
MAX_REASONS = 5
#: How deep AnyValue arrays/maps may nest; deeper values reject their span.
MAX_VALUE_DEPTH = 32

Row = tuple[Any, ...]
#: A reader's conversion of an ``attributes`` field to the stored map.
AttributesOf = Callable[[Any], dict[str, str]]
#: How a reader sees one ``AnyValue``: the member set (``"string_value"``, ...) and its value
#: as Python has it, the element ``AnyValue``s of an ``array_value``, the ``(key, AnyValue)``
#: pairs of a ``kvlist_value``; ``(None, None)`` when no member the store renders is set.
Member = Callable[[Any], tuple[str | None, Any]]

_ZERO_TRACE_ID = bytes(16)
_ZERO_SPAN_ID = bytes(8)
_EVENT_TIME = "event time is outside 1970..2106-02-07, the times the store can hold"


class Rejected(Exception):
    """One span the store cannot hold; the request itself is fine."""


class Malformed(Exception):
    """The request does not follow its encoding: nothing of it is stored."""


@dataclass(frozen=True, slots=True)
class Wording:
    """How rejection reasons name what is wrong with an id, in the sender's encoding's terms
    (the rule is the same for both)."""

    trace_id_missing: str
    trace_id_size: str
    trace_id_zero: str
    span_id_missing: str
    span_id_size: str
    span_id_zero: str
    parent_size: str
    link_size: str
    #: (span id, span name) of a rejected span for its reason.
    describe: Callable[[Any], tuple[str, str]]


@dataclass(slots=True)
class DecodedSpans:
    """The accepted spans of one or more OTLP requests as an Arrow table, and what was
    rejected."""

    rejected: int = 0
    reasons: list[str] = field(default_factory=list)
    #: The accepted spans (``TRACE_COLUMNS``), None when there are none.
    table: Any = None
    #: Or the request as it came, all of its ``body_spans`` spans accepted, for the engine
    #: to decode (see :mod:`~chainmap_otel.ingest.engine_decode`).
    body: bytes | None = None
    body_spans: int = 0

    @property
    def accepted(self) -> int:
        return self.body_spans + (0 if self.table is None else int(self.table.num_rows))

    @property
    def rows(self) -> list[Row]:
        """The accepted spans as rows in ``TRACE_COLUMNS`` order (read back from the table)."""
        return [] if self.table is None else table_rows(self.table)

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
        """The accepted spans as an Arrow table (None when there are none)."""
        return self.table

    def extend(self, other: DecodedSpans) -> None:
        if other.table is not None:
            if self.table is None:
                self.table = other.table
            else:
                import pyarrow as pa

                self.table = pa.concat_tables([self.table, other.table]).combine_chunks()
        self.rejected += other.rejected
        room = MAX_REASONS - len(self.reasons)
        if room > 0:
            self.reasons.extend(other.reasons[:room])


def any_value(value: Any, member: Member, depth: int = 0) -> Any:
    """An ``AnyValue`` as the Python value pdata's ``AsRaw`` gives, read through ``member``
    (the one definition for protobuf and OTLP/JSON); too deep a value rejects its span."""
    if depth > MAX_VALUE_DEPTH:
        raise Rejected(f"an attribute value nests deeper than {MAX_VALUE_DEPTH} levels")
    kind, payload = member(value)
    return _python(kind, payload, member, depth)


def _python(kind: str | None, payload: Any, member: Member, depth: int) -> Any:
    if kind == "array_value":
        return [any_value(item, member, depth + 1) for item in payload]
    if kind == "kvlist_value":
        return {key: any_value(item, member, depth + 1) for key, item in payload}
    return payload


def attribute_map(pairs: Iterable[tuple[str, Any]], member: Member) -> dict[str, str]:
    """``(key, AnyValue)`` pairs as the stored map: values as
    :func:`~chainmap_otel.storage.columns.attribute_text` renders them, a repeated key at its
    first position with its last value. Strings and ints, most values, are done inline."""
    out: dict[str, str] = {}
    for key, value in pairs:
        kind, payload = member(value)
        if kind == "string_value":
            out[key] = payload
        elif kind == "int_value":
            out[key] = str(payload)
        else:
            out[key] = attribute_text(_python(kind, payload, member, 0))
    return out


def check_times(start: int, end: int) -> None:
    """Raise :class:`Rejected` unless ``start``..``end`` (ns) is a span the store can hold."""
    if start == 0:
        raise Rejected("start time is missing")
    if start < 0:
        raise Rejected(f"start time {start} is before 1970")
    if end < start:
        raise Rejected("end time is before start time")
    if end > MAX_TIME_NANOS:
        raise Rejected("end time is beyond 2106-02-07, the last time the store can hold")


def _id_problem(raw: bytes, size: int, missing: str, wrong_size: str, zero: str) -> str:
    if not raw:
        return missing
    return wrong_size if len(raw) != size else zero


def decode_spans(
    resources: Iterable[Any], attributes_of: AttributesOf, wording: Wording
) -> DecodedSpans:
    """The accepted spans of one request (see the module docstring) and its rejections."""
    out = DecodedSpans()
    flat = FlatSpans()
    append_spans(out, flat, resources, attributes_of, wording)
    if len(flat):
        out.table = flat.to_arrow()
    return out


def append_spans(
    out: DecodedSpans,
    flat: FlatSpans,
    resources: Iterable[Any],
    attributes_of: AttributesOf,
    wording: Wording,
) -> None:
    """Validate every span of ``resources`` and append the accepted ones to ``flat``;
    rejections are counted in ``out``. The decode hot path: every column's ``append`` is
    bound once, and a span's values are appended only after all of it was checked."""
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
    zero_trace = _ZERO_TRACE_ID
    zero_span = _ZERO_SPAN_ID
    for resource_spans in resources:
        try:
            resource = attributes_of(resource_spans.resource.attributes)
        except Rejected as exc:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    out.reject(f"span {wording.describe(span)[0]}: resource {exc}")
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
                    if len(trace_id) != 16 or trace_id == zero_trace:
                        raise Rejected(
                            _id_problem(
                                trace_id,
                                16,
                                wording.trace_id_missing,
                                wording.trace_id_size,
                                wording.trace_id_zero,
                            )
                        )
                    span_id = span.span_id
                    if len(span_id) != 8 or span_id == zero_span:
                        raise Rejected(
                            _id_problem(
                                span_id,
                                8,
                                wording.span_id_missing,
                                wording.span_id_size,
                                wording.span_id_zero,
                            )
                        )
                    parent = span.parent_span_id
                    if parent and len(parent) != 8:
                        raise Rejected(wording.parent_size)
                    start = span.start_time_unix_nano
                    end = span.end_time_unix_nano
                    if start <= 0 or end < start or end > max_time:
                        check_times(start, end)
                    attributes = attributes_of(span.attributes)
                    event_rows = []
                    for event in span.events:
                        at = event.time_unix_nano
                        if not 0 <= at <= max_time:
                            raise Rejected(_EVENT_TIME)
                        event_rows.append((at, event.name, attributes_of(event.attributes)))
                    link_rows = []
                    for link in span.links:
                        link_trace = link.trace_id
                        link_span = link.span_id
                        if (link_trace and len(link_trace) != 16) or (
                            link_span and len(link_span) != 8
                        ):
                            raise Rejected(wording.link_size)
                        link_rows.append(
                            (
                                # The OTLP spec keeps links to an invalid (all-zero) context
                                # that carry attributes: stored as "" like pdata's String().
                                "" if link_trace == zero_trace else link_trace.hex(),
                                "" if link_span == zero_span else link_span.hex(),
                                link.trace_state,
                                attributes_of(link.attributes),
                            )
                        )
                    status = span.status
                    code = status.code
                    status_message = status.message
                    kind = span.kind
                    trace_state = span.trace_state
                    name = span.name
                except Rejected as exc:
                    span_text, name_text = wording.describe(span)
                    out.reject(f"span {span_text} {name_text!r}: {exc}")
                    continue
                timestamps(start)
                trace_ids(trace_id.hex())
                span_ids(span_id.hex())
                parent_ids(parent.hex() if parent and parent != zero_span else "")
                trace_states(trace_state)
                names(name)
                kinds(kind_names[kind] if 0 <= kind < kind_count else "")
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
                status_codes(status_names[code] if 0 <= code < status_count else "")
                status_messages(status_message)
                for at, event_name, items in event_rows:
                    event_times.append(at)
                    event_names.append(event_name)
                    event_keys.extend(items)
                    event_values.extend(items.values())
                    event_attribute_offsets(len(event_keys))
                event_offsets(len(event_times))
                for link_trace_hex, link_span_hex, link_state, items in link_rows:
                    link_trace_ids.append(link_trace_hex)
                    link_span_ids.append(link_span_hex)
                    link_states.append(link_state)
                    link_keys.extend(items)
                    link_values.extend(items.values())
                    link_attribute_offsets(len(link_keys))
                link_offsets(len(link_states))


def table_rows(table: Any) -> list[Row]:
    """An ``otel_traces`` Arrow table as rows in ``TRACE_COLUMNS`` order: times as int ns,
    maps as ``dict[str, str]``, Nested columns as lists."""
    import pyarrow as pa
    import pyarrow.compute as pc

    def values(name: str) -> list[Any]:
        column = table.column(name)
        kind = column.type
        if pa.types.is_timestamp(kind):
            return list(pc.cast(column, pa.int64()).to_pylist())
        if pa.types.is_map(kind):
            return [dict(items) for items in column.to_pylist()]
        if pa.types.is_list(kind):
            inner = kind.value_type
            if pa.types.is_timestamp(inner):
                return list(pc.cast(column, pa.list_(pa.int64())).to_pylist())
            if pa.types.is_map(inner):
                return [[dict(items) for items in maps] for maps in column.to_pylist()]
        return list(column.to_pylist())

    columns = [values(name) for name in table.column_names]
    return list(zip(*columns, strict=True))
