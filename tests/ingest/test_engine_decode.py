"""The engine-side decode stores exactly the rows of the Python decoder, or declines the body.

Every hostile request of the receivers' differential corpus, whole and split into one
request per span, plus cases aimed at the engine path (repeated keys, values with no member
set, enums beyond their names, several resources and scopes) and hand-made wire forms the
lean parse must refuse (two members of one ``oneof``, an overlong length, a five-byte
negative enum, an unknown field, a string table index): for each body the engine path
accepts, ``engine_spans`` is the Python decoder's accepted count with nothing rejected,
and the rows the engine inserts equal the Python decoder's rows, column for column.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span

from chainmap_otel.errors import IngestError
from chainmap_otel.ingest.decode import decode_protobuf
from chainmap_otel.ingest.engine_decode import engine_spans, frame, insert_bodies
from chainmap_otel.storage.columns import TRACE_COLUMNS
from chainmap_otel.storage.store import TraceStore
from tests.ingest.receivers.test_decode_differential import (
    BAD_BYTES,
    BAD_TEXT,
    MAX_TIME,
    START,
    Builder,
    Pairs,
    attributes,
    corpus,
    request,
    service,
)


def split(case: ExportTraceServiceRequest) -> list[ExportTraceServiceRequest]:
    """One request per span, each with its resource and scope."""
    out = []
    for group in case.resource_spans:
        for scoped in group.scope_spans:
            for span in scoped.spans:
                one = ExportTraceServiceRequest()
                copy = one.resource_spans.add()
                copy.resource.CopyFrom(group.resource)
                scope = copy.scope_spans.add()
                scope.scope.CopyFrom(scoped.scope)
                scope.spans.append(span)
                out.append(one)
    return out


def engine_cases() -> dict[str, ExportTraceServiceRequest]:
    b = Builder()
    cases: dict[str, ExportTraceServiceRequest] = {}
    cases["repeated keys"] = request(
        (
            [("service.name", "first"), ("host", "h"), ("service.name", 7)],
            [
                b.span(
                    "dups",
                    attributes=[("k", "a"), ("k", 1), ("j", True), ("k", False), ("j", "x")],
                    events=[(START, "e", [("a", 1), ("a", 2)])],
                    links=[((3).to_bytes(16, "big"), (3).to_bytes(8, "big"), "", [("l", "1")] * 3)],
                )
            ],
        )
    )
    cases["no member set"] = request(
        ([("service.name", None)], [b.span("none", attributes=[("n", None), ("", "")])])
    )
    cases["scalars"] = request(
        (
            service("scalars"),
            [
                b.span(
                    "ints",
                    attributes=[
                        ("zero", 0),
                        ("max", 2**63 - 1),
                        ("min", -(2**63)),
                        ("false", False),
                        ("true", True),
                        ("empty", ""),
                        ("text", 'a\x00b\u2028"\\<>&😀'),
                    ],
                )
            ],
        )
    )
    cases["enum numbers"] = request(
        (
            service("enum numbers"),
            [b.span(f"kind {k}", kind=k) for k in range(8)]
            + [b.span(f"kind {2**31 - 1}", kind=2**31 - 1)]
            + [b.span(f"status {c}", status=(c, f"m{c}")) for c in (0, 1, 2, 3, 2**31 - 1)],
        )
    )
    cases["resources and scopes"] = request(
        (service("a"), [b.span("a1"), b.span("a2")]),
        ([], [b.span("no resource")]),
        (service("c"), []),
        (service("d"), [b.span("d1", trace_state="ot=th:8", parent_span_id=bytes(8))]),
        scope=("scope 😀", "v𝄞"),
    )
    cases["times"] = request(
        (
            service("times"),
            [
                b.span("first ns", start_time_unix_nano=1, end_time_unix_nano=1),
                b.span("at 2106", start_time_unix_nano=MAX_TIME - 1, end_time_unix_nano=MAX_TIME),
                b.span("events", events=[(0, "zero", []), (MAX_TIME, "last", [("x", "y")])]),
            ],
        )
    )
    cases["links"] = request(
        (
            service("links"),
            [
                b.span(
                    "links",
                    links=[
                        ((7).to_bytes(16, "big"), (7).to_bytes(8, "big"), "a=b", [("n", 1)]),
                        (b"", b"", "", [("invalid", "context")]),
                        (bytes(16), bytes(8), "k=v", []),
                    ],
                )
            ],
        )
    )
    return cases


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        low, number = number & 0x7F, number >> 7
        out.append(low | (0x80 if number else 0))
        if not number:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _body(span: bytes, resource: bytes = b"") -> bytes:
    scope_spans = _field(2, span)
    resource_spans = _field(1, resource) + _field(2, scope_spans)
    return _field(1, resource_spans)


def _span(extra: bytes = b"", attribute: bytes = b"", kind: bytes = b"\x30\x02") -> bytes:
    base = (
        _field(1, (1).to_bytes(16, "big"))
        + _field(2, (2).to_bytes(8, "big"))
        + _field(5, b"wire")
        + kind
        + b"\x39"
        + START.to_bytes(8, "little")
        + b"\x41"
        + (START + 5).to_bytes(8, "little")
    )
    return base + (_field(9, attribute) if attribute else b"") + extra


def _key_value(value: bytes, key: bytes = b"k") -> bytes:
    return _field(1, key) + _field(2, value)


#: Wire forms whose meaning the lean parse cannot vouch for: all decoded in Python.
DECLINED = {
    # string_value then int_value: protobuf keeps the last member.
    "two oneof members": _body(_span(attribute=_key_value(_field(1, b"s") + b"\x18\x05"))),
    # A length written in two bytes where one does.
    "overlong length": _body(_span(attribute=_field(1, b"k") + b"\x12\x83\x00" + _field(1, b"v"))),
    "canonical negative enum": _body(_span(kind=b"\x30" + b"\xff" * 9 + b"\x01")),
    "unknown span field": _body(_span(extra=_field(99, b"future"))),
    "string table index": _body(_span(attribute=_key_value(b"\x40\x03"))),
    "double": _body(_span(attribute=_key_value(b"\x21" + bytes(8)))),
    "explicit default": _body(_span(extra=b"\x50\x00")),  # dropped_attributes_count = 0
}
#: Wire forms the lean parse takes: what the engine reads must be what Python reads.
TAKEN = {
    # kind -1 in five bytes (canonically ten): Python reads -1, the engine 2^32 - 1.
    "short negative enum": _body(_span(kind=b"\x30\xff\xff\xff\xff\x0f")),
    "key index and flags": _body(
        _span(
            attribute=_key_value(_field(1, b"v")) + b"\x18\x04",
            extra=b"\x85\x01\x01\x03\x00\x00" + b"\x50\x02",  # flags (field 16), dropped = 2
        )
    ),
}


def bodies() -> Iterator[tuple[str, bytes]]:
    for name, case in {**corpus(), **engine_cases()}.items():
        body = case.SerializeToString().replace(BAD_TEXT.encode(), BAD_BYTES)
        yield name, body
        for index, one in enumerate(split(case)):
            yield (
                f"{name} span {index}",
                one.SerializeToString().replace(BAD_TEXT.encode(), BAD_BYTES),
            )
    yield from {**DECLINED, **TAKEN}.items()


def _rows(store: TraceStore, table: str) -> list[tuple[Any, ...]]:
    # Times as integer nanoseconds: a Python datetime would drop the last three digits.
    exact = {
        "Timestamp": "toUnixTimestamp64Nano(Timestamp)",
        "Events.Timestamp": "arrayMap(t -> toUnixTimestamp64Nano(t), `Events.Timestamp`)",
    }
    columns = ", ".join(exact.get(name, f"`{name}`") for name in TRACE_COLUMNS)
    return [
        tuple(row)
        for row in store.query(
            f"SELECT {columns} FROM {store.database}.{table} "
            "ORDER BY TraceId, SpanId, ServiceName, SpanName, toString(SpanAttributes)"
        ).result_rows
    ]


@pytest.fixture
def tables(store_factory: Callable[[], TraceStore]) -> TraceStore:
    store = store_factory()
    for table in ("engine_rows", "python_rows"):
        store.command(f"CREATE TABLE {store.database}.{table} AS {store.database}.otel_traces")
    return store


def python_decode(body: bytes) -> tuple[int, int, Any] | None:
    try:
        decoded = decode_protobuf(body)
    except IngestError:
        return None
    return decoded.accepted, decoded.rejected, decoded.table


def test_the_engine_stores_the_python_decoders_rows(tables: TraceStore) -> None:
    store = tables
    taken: list[str] = []
    declined: list[str] = []
    engine_bodies: list[bytes] = []
    for name, body in bodies():
        count = engine_spans(body)
        python = python_decode(body)
        if count is None:
            declined.append(name)
            continue
        taken.append(name)
        assert python is not None, f"{name}: taken by the engine, refused by Python"
        accepted, rejected, table = python
        assert (count, rejected) == (accepted, 0), name
        if table is not None:
            store.insert_arrow(table, table="python_rows")
        engine_bodies.append(body)
    insert_bodies(store, engine_bodies, "differential", table="engine_rows")
    python_rows = _rows(store, "python_rows")
    engine_rows = _rows(store, "engine_rows")
    assert len(python_rows) > 50
    assert len(engine_rows) == len(python_rows)
    for got, expected in zip(engine_rows, python_rows, strict=True):
        assert got == expected
    # The engine takes the plain cases whole and every span without Go-rendered values.
    assert set(taken) >= {*engine_cases(), *TAKEN, "empty span 0", "ids span 0", "times"}
    # Negative enums (ten bytes), non-string values, rejected spans, invalid UTF-8.
    assert set(declined) >= {
        *DECLINED,
        "enums",
        "integers",
        "doubles",
        "nesting",
        "bytes",
        "duplicates",
        "ids",
        "resources",
        "unicode",
        "invalid-utf8",
        "invalid-utf8 span 0",
    }


def test_a_body_one_span_of_which_python_rejects_is_declined() -> None:
    b = Builder()
    body = request((service("x"), [b.span("fine"), b.span("bad", end_time_unix_nano=1)]))
    assert decode_protobuf(body.SerializeToString()).rejected == 1
    assert engine_spans(body.SerializeToString()) is None


def test_bodies_are_framed_as_length_delimited_messages() -> None:
    small, large = b"\x0a\x00", bytes(300)
    assert frame([small, large]) == b"\x02" + small + b"\xac\x02" + large


def test_a_repeated_insert_under_one_token_stores_once(tables: TraceStore) -> None:
    store = tables
    b = Builder()
    body = request((service("once"), [b.span("a"), b.span("b")])).SerializeToString()
    insert_bodies(store, [body], "same-token")
    insert_bodies(store, [body], "same-token")
    count = store.query(f"SELECT count() FROM {store.database}.otel_traces").result_rows[0][0]
    assert count == 2


@pytest.mark.parametrize("value", [AnyValue(double_value=1.5), AnyValue(bytes_value=b"x")])
def test_values_python_renders_decline_the_body(value: AnyValue) -> None:
    b = Builder()
    span = b.span("v")
    span.attributes.append(KeyValue(key="v", value=value))
    body = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[{"spans": [span]}])]
    )
    assert engine_spans(body.SerializeToString()) is None
    assert isinstance(Span, type)
    assert Pairs([]).items == []
    assert attributes([]) == []
