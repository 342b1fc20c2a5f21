"""OTLP protobuf requests decoded by the engine: many bodies, one ``INSERT ... SELECT``.

Decoding a span in Python costs ~8-20 µs; ClickHouse's ``Protobuf`` input format reads the
same request in ~3 µs, but every query has a fixed cost of tens of milliseconds, so the
engine decodes *batches*: the receiver checks a body (:func:`engine_spans`), the
write-ahead log keeps it as it came, and the span writer hands the bodies of a batch to
:func:`insert_bodies`, which frames them as length-delimited messages in one file and
inserts them with one query (``file(..., 'Protobuf')`` read with the schema of
:mod:`.engine_schema`, ``ARRAY JOIN`` down to spans).

The engine path must store exactly what the Python decoder (:mod:`.validate`) stores, so
:func:`engine_spans` accepts a body for it only when nothing is left to judgement:

* the body parses with a *lean* copy of the OTLP schema whose ``AnyValue`` holds only
  ``string_value``, ``bool_value`` and ``int_value``, and whose enums are ``uint32``
  (the engine reads them so too);
* it is canonical: with the fields the lean schema lacks discarded, re-encoding the parsed
  message gives exactly its length (a canonical encoding is never longer than another
  encoding of the same message, so equal length means canonical and nothing discarded).
  A double, array, map or bytes value (which Python renders as Go does), an unknown
  field, a repeated singular field, two members of one ``oneof``, a negative enum in ten
  bytes or any other non-minimal encoding makes the size differ;
* every span passes the decoder's checks (ids, times, event times, link ids), so the count
  of accepted spans is the exact count and nothing is rejected.

Any other body goes through the Python decoder, which rejects, renders and reports as it
always has. Strings of a body the lean schema parsed are valid UTF-8 (upb checks proto3
strings); the engine maps a duplicate attribute key as a Python ``dict`` does (the first
position, the last value).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

from chainmap_otel.ingest.decode import decode_protobuf
from chainmap_otel.ingest.engine_schema import SCHEMA_MESSAGE, SCHEMA_PATH, lean_request_class
from chainmap_otel.ingest.validate import DecodedSpans
from chainmap_otel.storage.arrow import FlatSpans
from chainmap_otel.storage.columns import MAX_TIME_NANOS, SPAN_KIND_NAMES, STATUS_CODE_NAMES

if TYPE_CHECKING:
    import pyarrow as pa

    from chainmap_otel.storage.store import TraceStore

__all__ = [
    "decode_bodies",
    "decode_for_engine",
    "engine_spans",
    "frame",
    "insert_bodies",
    "select_sql",
]

_ZERO_TRACE_ID = bytes(16)
_ZERO_SPAN_ID = bytes(8)


def engine_spans(body: bytes) -> int | None:
    """How many spans the engine stores for ``body``; None when it must be decoded in Python.

    An exact count: a body is taken only when the Python decoder would accept every one of
    its spans with the values the engine writes (see the module docstring). The id and time
    checks below are the ones ``validate.append_spans`` makes, inlined on both request paths
    (one shared function cost the Python decoders 13-22 % more CPU per request in
    ``benchmarks/decode_cpu.py``); ``tests/ingest/test_engine_decode.py`` holds the two
    equal over the hostile corpus.
    """
    request = lean_request_class()()
    try:
        request.ParseFromString(body)
    except Exception:
        return None  # the Python decoder says why it does not parse
    # Without unknown fields, a canonical re-encoding is never longer than any encoding of
    # the same message (enums are uint32 here), and as long only when the body is canonical
    # and had nothing the lean schema lacks.
    request.DiscardUnknownFields()
    if request.ByteSize() != len(body):
        return None
    zero_trace = _ZERO_TRACE_ID
    zero_span = _ZERO_SPAN_ID
    max_time = MAX_TIME_NANOS
    count = 0
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                trace_id = span.trace_id
                span_id = span.span_id
                parent = span.parent_span_id
                start = span.start_time_unix_nano
                end = span.end_time_unix_nano
                if (
                    len(trace_id) != 16
                    or trace_id == zero_trace
                    or len(span_id) != 8
                    or span_id == zero_span
                    or (parent and len(parent) != 8)
                    or start <= 0
                    or end < start
                    or end > max_time
                ):
                    return None
                events = span.events
                if events:
                    for event in events:
                        if event.time_unix_nano > max_time:
                            return None
                links = span.links
                if links:
                    for link in links:
                        link_trace = link.trace_id
                        link_span = link.span_id
                        if (link_trace and len(link_trace) != 16) or (
                            link_span and len(link_span) != 8
                        ):
                            return None
                count += 1
    return count


def decode_for_engine(body: bytes) -> DecodedSpans:
    """A protobuf request as a receiver hands it to a writer that takes bodies: the body
    itself when the engine path takes it, else decoded in Python (IngestError when it does
    not parse)."""
    count = engine_spans(body)
    if count is None:
        return decode_protobuf(body)
    return DecodedSpans(body=body, body_spans=count)


def decode_bodies(bodies: Sequence[bytes]) -> pa.Table:
    """Bodies decoded in Python into one table: what the writer inserts when the engine
    refuses a batch (to find the offending spans) or runs without the engine."""
    import pyarrow as pa

    tables = [decoded.table for decoded in map(decode_protobuf, bodies) if decoded.table]
    if not tables:
        return FlatSpans().to_arrow()
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables).combine_chunks()


def _varint(number: int) -> bytes:
    out = bytearray()
    while number > 0x7F:
        out.append((number & 0x7F) | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


def frame(bodies: Sequence[bytes]) -> bytes:
    """The bodies as the ``Protobuf`` format's stream: each message after its varint length."""
    parts: list[bytes] = []
    for body in bodies:
        parts.append(_varint(len(body)))
        parts.append(body)
    return b"".join(parts)


# --------------------------------------------------------------------------- SQL

_VALUE = (
    "Tuple(string_value Nullable(String), bool_value Nullable(Bool), int_value Nullable(Int64))"
)
_ATTRIBUTES = f"Array(Tuple(key String, value {_VALUE}))"
#: The columns the engine reads of each request (names are the schema's field names).
_STRUCTURE = (
    f"resource_spans Array(Tuple(resource Tuple(attributes {_ATTRIBUTES}), "
    "scope_spans Array(Tuple(scope Tuple(name String, version String), "
    "spans Array(Tuple(trace_id String, span_id String, trace_state String, "
    "parent_span_id String, name String, kind UInt32, start_time_unix_nano UInt64, "
    f"end_time_unix_nano UInt64, attributes {_ATTRIBUTES}, "
    f"events Array(Tuple(time_unix_nano UInt64, name String, attributes {_ATTRIBUTES})), "
    "links Array(Tuple(trace_id String, span_id String, trace_state String, "
    f"attributes {_ATTRIBUTES})), status Tuple(message String, code UInt32)))))))"
)


def _text(value: str) -> str:
    # attribute_text of the one member set (None: ''), as the Python decoder renders it.
    return (
        f"multiIf(isNotNull({value}.string_value), assumeNotNull({value}.string_value), "
        f"isNotNull({value}.int_value), toString(assumeNotNull({value}.int_value)), "
        f"isNotNull({value}.bool_value), if(assumeNotNull({value}.bool_value), 'true', 'false'), "
        "'')"
    )


def _map(items: str) -> str:
    # A dict's semantics for repeated keys: first position, last value.
    keys = f"arrayMap(kv -> kv.key, {items})"
    values = f"arrayMap(kv -> {_text('kv.value')}, {items})"
    distinct = f"arrayDistinct({keys})"
    last = f"{values}[length({items}) + 1 - indexOf(arrayReverse({keys}), k)]"
    return (
        f"if(length({distinct}) = length({items}), mapFromArrays({keys}, {values}), "
        f"mapFromArrays({distinct}, arrayMap(k -> {last}, {distinct})))"
    )


def _names(names: Sequence[str], number: str) -> str:
    # Read as UInt32 like the lean parse: a negative enum in five bytes is a number beyond
    # the names either way (Python reads -1, the engine 2^32 - 1), stored as ''.
    listed = ", ".join(f"'{name}'" for name in names)
    return f"if({number} < {len(names)}, [{listed}][{number} + 1], '')"


def _hex_id(raw: str, size: int) -> str:
    # An all-zero id is stored as '' (pdata's String()); an empty one is '' anyway.
    return f"if({raw} = repeat('\\0', {size}), '', lower(hex({raw})))"


_SELECT = f"""
SELECT
    fromUnixTimestamp64Nano(toInt64(s.start_time_unix_nano)) AS Timestamp,
    lower(hex(s.trace_id)) AS TraceId,
    lower(hex(s.span_id)) AS SpanId,
    {_hex_id("s.parent_span_id", 8)} AS ParentSpanId,
    s.trace_state AS TraceState,
    s.name AS SpanName,
    {_names(SPAN_KIND_NAMES, "s.kind")} AS SpanKind,
    ResourceAttributes['service.name'] AS ServiceName,
    {_map("rs.resource.attributes")} AS ResourceAttributes,
    ss.scope.name AS ScopeName,
    ss.scope.version AS ScopeVersion,
    {_map("s.attributes")} AS SpanAttributes,
    s.end_time_unix_nano - s.start_time_unix_nano AS Duration,
    {_names(STATUS_CODE_NAMES, "s.status.code")} AS StatusCode,
    s.status.message AS StatusMessage,
    arrayMap(e -> fromUnixTimestamp64Nano(toInt64(e.time_unix_nano)), s.events)
        AS `Events.Timestamp`,
    arrayMap(e -> e.name, s.events) AS `Events.Name`,
    arrayMap(e -> {_map("e.attributes")}, s.events) AS `Events.Attributes`,
    arrayMap(l -> {_hex_id("l.trace_id", 16)}, s.links) AS `Links.TraceId`,
    arrayMap(l -> {_hex_id("l.span_id", 8)}, s.links) AS `Links.SpanId`,
    arrayMap(l -> l.trace_state, s.links) AS `Links.TraceState`,
    arrayMap(l -> {_map("l.attributes")}, s.links) AS `Links.Attributes`
FROM file({{path}}, 'Protobuf', '{_STRUCTURE}')
ARRAY JOIN resource_spans AS rs
ARRAY JOIN rs.scope_spans AS ss
ARRAY JOIN ss.spans AS s
"""


def _quoted(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@cache
def _schema_setting() -> str:
    return f"{SCHEMA_PATH}:{SCHEMA_MESSAGE}"


def select_sql(path: str | os.PathLike[str]) -> tuple[str, dict[str, Any]]:
    """The ``SELECT`` giving ``otel_traces`` rows of the framed requests in ``path``, and the
    settings it needs."""
    return _SELECT.format(path=_quoted(os.fspath(path))), {"format_schema": _schema_setting()}


def insert_bodies(
    store: TraceStore, bodies: Sequence[bytes], token: str, table: str = "otel_traces"
) -> None:
    """Insert the spans of ``bodies`` (each accepted by :func:`engine_spans`) in one query
    under the deduplication ``token``. Embedded stores only."""
    with tempfile.NamedTemporaryFile(prefix="chainmap-otlp-", suffix=".pb") as batch:
        batch.write(frame(bodies))
        batch.flush()
        sql, settings = select_sql(batch.name)
        store.insert_select(sql, settings, table=table, deduplication_token=token)
