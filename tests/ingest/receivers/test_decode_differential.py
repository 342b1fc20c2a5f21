"""Protobuf and OTLP/JSON of the same request, through every decode path, store the same rows.

One logical request per case of hostile input (out-of-range enums, int64 extremes, NaN and
infinite doubles, non-BMP text, invalid UTF-8, empty and missing fields and ids, duplicate
keys, deep values, bytes, impossible times) is encoded as protobuf, as OTLP/JSON the way
the OTLP exporters write it (the protobuf JSON mapping with hex ids) and as the
OpenTelemetry JS exporter writes it (int64 values as JSON numbers), and fed through:

* ``chainmap ingest``'s file path (``.pb`` and ``.json`` files), and
* the receivers' decoders: OTLP/HTTP protobuf and JSON as serve decodes them in-process,
  and protobuf in a real decode worker process, whose Arrow IPC answer the receiver stores,
* and over the wire to serve's running receivers (HTTP protobuf and JSON, gRPC: their
  answers, the write-ahead log and the span writer),

each into its own chDB database. The rows read back from every database are equal, every
path rejects the same spans of every case (or the whole request, with 400 or
INVALID_ARGUMENT), and the values are the ones the Collector's clickhouseexporter writes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span

from chainmap_otel.errors import IngestError
from chainmap_otel.ingest.files import ingest_file
from chainmap_otel.ingest.receivers.common import Refusal, decode_in_pool
from chainmap_otel.ingest.receivers.decode_pool import DecodePool
from chainmap_otel.ingest.receivers.otlp_http import JSON, PROTOBUF, _decode
from chainmap_otel.ingest.validate import DecodedSpans
from chainmap_otel.storage.columns import TRACE_COLUMNS
from chainmap_otel.storage.store import TraceStore
from tests.ingest.receivers.test_otlp_grpc_receiver import raw_export
from tests.server.conftest import ServeFactory, Serving
from tests.support.otlp_payloads import to_otlp_json
from tests.support.stores import fresh_store

START = 1_700_000_000_000_000_000
MAX_TIME = (2**32 - 1) * 10**9
#: Replaced by invalid UTF-8 in the encoded request (same length, so protobuf lengths hold).
BAD_TEXT = "BADUTF8!"
BAD_BYTES = b"BAD\xff\xfe8!\xc3"


# --------------------------------------------------------------------------- building


def value(raw: Any) -> AnyValue:
    """An AnyValue holding ``raw`` (a list is an array, a list of pairs a kvlist)."""
    if isinstance(raw, bool):
        return AnyValue(bool_value=raw)
    if isinstance(raw, int):
        return AnyValue(int_value=raw)
    if isinstance(raw, float):
        return AnyValue(double_value=raw)
    if isinstance(raw, str):
        return AnyValue(string_value=raw)
    if isinstance(raw, bytes):
        return AnyValue(bytes_value=raw)
    if isinstance(raw, Pairs):
        out = AnyValue()
        out.kvlist_value.values.extend(attributes(raw.items))
        return out
    if isinstance(raw, list):
        out = AnyValue()
        out.array_value.values.extend(value(v) for v in raw)
        return out
    return AnyValue()  # None: a value with nothing set


@dataclass
class Pairs:
    """A kvlist value (keys may repeat)."""

    items: list[tuple[str, Any]]


def attributes(items: list[tuple[str, Any]]) -> list[KeyValue]:
    return [KeyValue(key=k, value=value(v)) for k, v in items]


def nested(depth: int) -> Any:
    raw: Any = "leaf"
    for _ in range(depth):
        raw = [raw]
    return raw


class Builder:
    """Spans with ids unique across the corpus, unless a case sets its own."""

    def __init__(self) -> None:
        self.count = 0

    def span(self, name: str, **fields: Any) -> Span:
        self.count += 1
        span = Span(
            trace_id=self.count.to_bytes(16, "big"),
            span_id=(self.count + 1000).to_bytes(8, "big"),
            name=name,
            kind=Span.SPAN_KIND_SERVER,
            start_time_unix_nano=START + self.count * 1000,
            end_time_unix_nano=START + self.count * 1000 + 500,
        )
        for key, raw in fields.items():
            if key == "attributes":
                span.attributes.extend(attributes(raw))
            elif key == "status":
                span.status.code, span.status.message = raw
            elif key == "events":
                for at, event_name, items in raw:
                    span.events.add(time_unix_nano=at, name=event_name).attributes.extend(
                        attributes(items)
                    )
            elif key == "links":
                for trace_id, span_id, state, items in raw:
                    span.links.add(
                        trace_id=trace_id, span_id=span_id, trace_state=state
                    ).attributes.extend(attributes(items))
            else:
                setattr(span, key, raw)
        return span


def request(
    *groups: tuple[list[tuple[str, Any]], list[Span]], scope: tuple[str, str] = ("s", "1")
) -> ExportTraceServiceRequest:
    out = ExportTraceServiceRequest()
    for resource, spans in groups:
        group = ResourceSpans()
        group.resource.attributes.extend(attributes(resource))
        scoped = group.scope_spans.add()
        scoped.scope.name, scoped.scope.version = scope
        scoped.spans.extend(spans)
        out.resource_spans.append(group)
    return out


def service(name: str) -> list[tuple[str, Any]]:
    return [("service.name", name)]


def corpus() -> dict[str, ExportTraceServiceRequest]:
    b = Builder()
    cases: dict[str, ExportTraceServiceRequest] = {}
    cases["enums"] = request(
        (
            service("enums"),
            [b.span(f"kind {k}", kind=k) for k in (0, 1, 2, 3, 4, 5, 6, 7, -1, 2**31 - 1, -(2**31))]
            + [b.span(f"status {c}", status=(c, f"m{c}")) for c in (0, 1, 2, 3, -1, 2**31 - 1)],
        )
    )
    cases["integers"] = request(
        (
            service("integers"),
            [
                b.span(
                    "ints",
                    attributes=[
                        ("zero", 0),
                        ("minus", -1),
                        ("max", 2**63 - 1),
                        ("min", -(2**63)),
                        ("beyond double", 2**53 + 1),
                        ("array", [2**63 - 1, -(2**63), 7]),
                        ("map", Pairs([("big", 2**62), ("small", -5)])),
                    ],
                )
            ],
        )
    )
    cases["doubles"] = request(
        (
            service("doubles"),
            [
                b.span(
                    "doubles",
                    attributes=[
                        ("nan", math.nan),
                        ("inf", math.inf),
                        ("-inf", -math.inf),
                        ("-zero", -0.0),
                        ("tenth", 0.1),
                        ("e21", 1e21),
                        ("tiny", 1e-7),
                        ("denormal", 5e-324),
                        ("max", 1.7976931348623157e308),
                        ("whole", 3.0),
                        ("array", [math.nan, 1.5, -math.inf]),
                        ("map", Pairs([("inf", math.inf)])),
                    ],
                )
            ],
        )
    )
    cases["unicode"] = request(
        (
            service("ünïcode 😀"),
            [
                b.span(
                    "naïve 😀 𝄞 \U0010ffff",
                    trace_state="k=v😀",
                    attributes=[
                        ("ключ 😀", "значение 𝄞"),
                        ("separators", '\u2028\u2029<>&"\\'),
                        ("nul", "a\x00b"),
                        ("map", Pairs([("😀", "𝄞"), ("a", ["\U0010ffff"])])),
                    ],
                    status=(2, "💥"),
                    events=[(START + 1, "événement 😀", [("k😀", "v")])],
                )
            ],
        ),
        scope=("scope 😀", "v𝄞"),
    )
    bare = Span(
        trace_id=(90).to_bytes(16, "big"),
        span_id=(90).to_bytes(8, "big"),
        start_time_unix_nano=START,
        end_time_unix_nano=START,
    )
    cases["empty"] = request(
        ([], [bare]),
        (
            [("service.name", ""), ("", "empty key")],
            [b.span("empty values", attributes=[("", ""), ("none", None), ("b", b"")])],
        ),
        scope=("", ""),
    )
    zero16, zero8 = bytes(16), bytes(8)
    cases["ids"] = request(
        (
            service("ids"),
            [
                b.span("good"),
                b.span("no trace id", trace_id=b""),
                b.span("no span id", span_id=b""),
                b.span("zero trace id", trace_id=zero16),
                b.span("zero span id", span_id=zero8),
                b.span("15-byte trace id", trace_id=b"\x01" * 15),
                b.span("7-byte parent", parent_span_id=b"\x01" * 7),
                b.span("zero parent", parent_span_id=zero8),
                b.span("parent", parent_span_id=(5).to_bytes(8, "big")),
                b.span(
                    "links",
                    links=[
                        ((7).to_bytes(16, "big"), (7).to_bytes(8, "big"), "a=b", [("n", 1)]),
                        (b"", b"", "", [("invalid", "context")]),
                        (zero16, zero8, "k=v", []),
                    ],
                ),
                b.span("4-byte link", links=[(b"\x01" * 4, (1).to_bytes(8, "big"), "", [])]),
            ],
        )
    )
    cases["duplicates"] = request(
        (
            [("service.name", "first"), ("service.name", "second")],
            [
                b.span(
                    "dups",
                    attributes=[
                        ("k", "first"),
                        ("k", 2),
                        ("map", Pairs([("a", 1), ("a", "again"), ("b", True)])),
                    ],
                )
            ],
        )
    )
    cases["nesting"] = request(
        (
            service("nesting"),
            [
                b.span(
                    "mixed",
                    attributes=[
                        ("arrays", [[1, "x"], [], [Pairs([("m", [True, None])])]]),
                        ("maps", Pairs([("inner", Pairs([("deeper", Pairs([]))]))])),
                        ("bytes in array", [b"\x00\xff", b""]),
                    ],
                ),
                b.span("depth 32", attributes=[("deep", nested(32))]),
                b.span("depth 33", attributes=[("deep", nested(33))]),
            ],
        )
    )
    cases["bytes"] = request(
        (
            service("bytes"),
            [
                b.span(
                    "bytes",
                    attributes=[
                        ("empty", b""),
                        ("binary", b"\x00\xff\xfe\x80"),
                        ("all", bytes(range(256))),
                    ],
                )
            ],
        )
    )
    cases["times"] = request(
        (
            service("times"),
            [
                b.span("no start", start_time_unix_nano=0),
                b.span("ends first", end_time_unix_nano=START),
                b.span("past 2106", end_time_unix_nano=MAX_TIME + 1),
                b.span("at 2106", start_time_unix_nano=MAX_TIME - 1, end_time_unix_nano=MAX_TIME),
                b.span("first ns", start_time_unix_nano=1, end_time_unix_nano=1),
                b.span("late event", events=[(MAX_TIME + 1, "e", [])]),
                b.span("event at 0", events=[(0, "e", [])]),
            ],
        )
    )
    cases["resources"] = request(
        ([*service("deep resource"), ("deep", nested(33))], [b.span("in a deep resource")]),
        (service("fine"), [b.span("fine", trace_state="ot=th:8")]),
        (service("fine"), []),
    )
    cases["invalid-utf8"] = request((service("utf8"), [b.span(BAD_TEXT)]))
    return cases


# --------------------------------------------------------------------------- encodings


def js_form(node: Any) -> Any:
    """The JS exporter's OTLP/JSON: int64 attribute values as JSON numbers."""
    if isinstance(node, dict):
        if set(node) == {"intValue"} and isinstance(node["intValue"], str):
            return {"intValue": int(node["intValue"])}
        return {k: js_form(v) for k, v in node.items()}
    if isinstance(node, list):
        return [js_form(v) for v in node]
    return node


def encodings(case: ExportTraceServiceRequest) -> dict[str, bytes]:
    document = to_otlp_json(case)
    found = {
        "pb": case.SerializeToString(),
        "json": json.dumps(document).encode(),
        "json-js": json.dumps(js_form(document), ensure_ascii=False).encode(),
    }
    return {k: v.replace(BAD_TEXT.encode(), BAD_BYTES) for k, v in found.items()}


# --------------------------------------------------------------------------- decode paths

#: What a path did with a request: ("error",) or ("stored", accepted, rejected).
Outcome = tuple[Any, ...]


def from_decoded(store: TraceStore, decoded: DecodedSpans) -> Outcome:
    if decoded.table is not None:
        store.insert_arrow(decoded.table)
    return ("stored", decoded.accepted, decoded.rejected)


def file_path(
    suffix: str, encoding: str
) -> Callable[[TraceStore, dict[str, bytes], Path], Outcome]:
    def run(store: TraceStore, bodies: dict[str, bytes], tmp: Path) -> Outcome:
        path = tmp / f"request{suffix}"
        path.write_bytes(bodies[encoding])
        report = ingest_file(store, path)
        if report.errors:
            return ("error",)
        return ("stored", report.spans_stored, report.spans_rejected)

    return run


def in_process(
    media: str, encoding: str
) -> Callable[[TraceStore, dict[str, bytes], Path], Outcome]:
    def run(store: TraceStore, bodies: dict[str, bytes], tmp: Path) -> Outcome:
        try:
            return from_decoded(store, _decode(media, bodies[encoding]))
        except IngestError:
            return ("error",)

    return run


PATHS: dict[str, Callable[[TraceStore, dict[str, bytes], Path], Outcome]] = {
    "ingest file .pb": file_path(".pb", "pb"),
    "ingest file .json": file_path(".json", "json"),
    "ingest file .json (JS exporter)": file_path(".json", "json-js"),
    "receiver protobuf": in_process(PROTOBUF, "pb"),
    "receiver JSON": in_process(JSON, "json"),
    "receiver JSON (JS exporter)": in_process(JSON, "json-js"),
}
POOL = "receiver protobuf, decode worker process"


@dataclass
class Stored:
    outcomes: dict[str, dict[str, Outcome]]  # path -> case -> outcome
    rows: dict[str, list[tuple[Any, ...]]]  # path -> every stored row


def read_rows(store: TraceStore) -> list[tuple[Any, ...]]:
    columns = ", ".join(f"`{name}`" for name in TRACE_COLUMNS)
    rows = store.query(
        f"SELECT {columns} FROM {store.database}.otel_traces "
        "ORDER BY TraceId, SpanId, SpanName, toString(SpanAttributes)"
    ).result_rows
    return [tuple(row) for row in rows]


@pytest.fixture(scope="module")
def stored(chdb_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stored]:
    cases = {name: encodings(case) for name, case in corpus().items()}
    outcomes: dict[str, dict[str, Outcome]] = {}
    rows: dict[str, list[tuple[Any, ...]]] = {}
    stores: list[TraceStore] = []
    pool = DecodePool(1)
    try:
        for index, path in enumerate([*PATHS, POOL]):
            store = fresh_store(chdb_path, f"differential_{index}")
            stores.append(store)
            tmp = tmp_path_factory.mktemp(f"path{index}")
            outcomes[path] = {}
            for name, bodies in cases.items():
                if path == POOL:
                    try:
                        decoded, _ = decode_in_pool(pool, bodies["pb"])
                        outcome = from_decoded(store, decoded)
                    except Refusal as refusal:
                        assert refusal.status == 400, refusal.message
                        outcome = ("error",)
                else:
                    outcome = PATHS[path](store, bodies, tmp)
                outcomes[path][name] = outcome
            rows[path] = read_rows(store)
        yield Stored(outcomes, rows)
    finally:
        pool.close()
        for store in stores:
            store.command(f"DROP DATABASE IF EXISTS {store.database}")
            store.close()


REFERENCE = "receiver protobuf"


def test_every_path_accepts_and_rejects_the_same_spans(stored: Stored) -> None:
    reference = stored.outcomes[REFERENCE]
    assert reference == {
        "enums": ("stored", 17, 0),
        "integers": ("stored", 1, 0),
        "doubles": ("stored", 1, 0),
        "unicode": ("stored", 1, 0),
        "empty": ("stored", 2, 0),
        "ids": ("stored", 4, 7),
        "duplicates": ("stored", 1, 0),
        "nesting": ("stored", 2, 1),
        "bytes": ("stored", 1, 0),
        "times": ("stored", 3, 4),
        "resources": ("stored", 1, 1),
        "invalid-utf8": ("error",),
    }
    for path, outcomes in stored.outcomes.items():
        assert outcomes == reference, path


def test_every_path_stores_the_same_rows(stored: Stored) -> None:
    reference = stored.rows[REFERENCE]
    assert len(reference) == 34
    for path, rows in stored.rows.items():
        assert len(rows) == len(reference), path
        for got, expected in zip(rows, reference, strict=True):
            assert got == expected, path


def by_name(stored: Stored) -> dict[str, dict[str, Any]]:
    names = [
        "Timestamp",
        "TraceId",
        "SpanId",
        "ParentSpanId",
        "TraceState",
        "SpanName",
        "SpanKind",
        "ServiceName",
        "ResourceAttributes",
        "ScopeName",
        "ScopeVersion",
        "SpanAttributes",
        "Duration",
        "StatusCode",
        "StatusMessage",
    ]
    return {row[5]: dict(zip(names, row, strict=False)) for row in stored.rows[REFERENCE]}


def test_the_values_are_those_the_collector_writes(stored: Stored) -> None:
    rows = by_name(stored)
    kinds = {name: row["SpanKind"] for name, row in rows.items() if name.startswith("kind ")}
    assert kinds == {
        "kind 0": "Unspecified",
        "kind 1": "Internal",
        "kind 2": "Server",
        "kind 3": "Client",
        "kind 4": "Producer",
        "kind 5": "Consumer",
        "kind 6": "",
        "kind 7": "",
        "kind -1": "",
        f"kind {2**31 - 1}": "",
        f"kind {-(2**31)}": "",
    }
    codes = {name: row["StatusCode"] for name, row in rows.items() if name.startswith("status ")}
    assert codes == {
        "status 0": "Unset",
        "status 1": "Ok",
        "status 2": "Error",
        "status 3": "",
        "status -1": "",
        f"status {2**31 - 1}": "",
    }
    assert rows["ints"]["SpanAttributes"] == {
        "zero": "0",
        "minus": "-1",
        "max": "9223372036854775807",
        "min": "-9223372036854775808",
        "beyond double": "9007199254740993",
        "array": "[9223372036854775807,-9223372036854775808,7]",
        "map": '{"big":4611686018427387904,"small":-5}',
    }
    doubles = rows["doubles"]["SpanAttributes"]
    assert (doubles["nan"], doubles["inf"], doubles["-inf"]) == ("NaN", "Infinity", "-Infinity")
    assert (doubles["whole"], doubles["tenth"], doubles["e21"]) == ("3", "0.1", "1e+21")
    assert doubles["array"] == '["NaN",1.5,"-Infinity"]'
    assert rows["dups"]["SpanAttributes"] == {"k": "2", "map": '{"a":"again","b":true}'}
    assert rows["dups"]["ServiceName"] == "second"
    assert rows["naïve 😀 𝄞 \U0010ffff"]["ServiceName"] == "ünïcode 😀"
    assert rows["bytes"]["SpanAttributes"]["binary"] == "AP/+gA=="
    assert rows["bytes"]["SpanAttributes"]["empty"] == ""
    assert rows["zero parent"]["ParentSpanId"] == ""
    assert rows["parent"]["ParentSpanId"] == "0000000000000005"
    assert rows["empty values"]["SpanAttributes"] == {"": "", "none": "", "b": ""}
    assert rows["empty values"]["ResourceAttributes"] == {"service.name": "", "": "empty key"}
    bare = rows[""]  # nothing but ids and times: every other field at its default
    assert (bare["SpanKind"], bare["StatusCode"], bare["ServiceName"]) == (
        "Unspecified",
        "Unset",
        "",
    )
    assert (bare["ScopeName"], bare["SpanAttributes"], bare["Duration"]) == ("", {}, 0)


def test_links_to_an_invalid_context_are_kept_with_empty_ids(stored: Stored) -> None:
    # The OTLP spec keeps links to an all-zero context that carry attributes or a trace
    # state; the Collector stores their ids as "" (pdata's String() of an empty id).
    row = next(r for r in stored.rows[REFERENCE] if r[5] == "links")
    links = dict(zip(("trace", "span", "state", "attributes"), row[18:22], strict=True))
    assert links == {
        "trace": ["00000000000000000000000000000007", "", ""],
        "span": ["0000000000000007", "", ""],
        "state": ["a=b", "", "k=v"],
        "attributes": [{"n": "1"}, {"invalid": "context"}, {}],
    }


@pytest.mark.parametrize(
    "int_value",
    [1.5e21, 1e21, "1500000000000000000000", 2**63, -(2**63) - 1, 3.0, "1_000", " 12", True],
    ids=repr,
)
@pytest.mark.parametrize("path", ["ingest file .json", "receiver JSON"])
def test_an_int_value_beyond_int64_fails_the_request_as_in_the_collector(
    int_value: Any, path: str, tmp_path: Path, store_factory: Callable[[], TraceStore]
) -> None:
    """pdata's ReadInt64 fails the whole request for a number with a fraction or an exponent,
    beyond int64, or a string strconv.ParseInt does not take; the JS exporter sends whole
    doubles >= 2^53 as such an intValue."""
    document = to_otlp_json(corpus()["integers"])
    span = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    span["attributes"].append({"key": "js", "value": {"intValue": int_value}})
    body = json.dumps(document).encode()
    if path == "receiver JSON":
        with pytest.raises(IngestError, match="intValue must be a 64-bit integer"):
            _decode(JSON, body)
        return
    file = tmp_path / "request.json"
    file.write_bytes(body)
    report = ingest_file(store_factory(), file)
    assert report.spans_stored == 0
    assert any("intValue must be a 64-bit integer" in error for error in report.errors)


def post_http(serving: Serving, body: bytes, media: str) -> Outcome:
    response = httpx.post(serving.traces_url, content=body, headers={"Content-Type": media})
    if response.status_code == 400:
        return ("error",)
    assert response.status_code == 200, response.text
    if media == PROTOBUF:
        answer = ExportTraceServiceResponse.FromString(response.content)
        return ("stored", answer.partial_success.rejected_spans)
    partial = response.json().get("partialSuccess", {})
    return ("stored", int(partial.get("rejectedSpans", 0)))


def post_grpc(serving: Serving, body: bytes) -> Outcome:
    try:
        answer = ExportTraceServiceResponse.FromString(raw_export(serving.grpc_address, body))
    except grpc.RpcError as error:
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, error
        return ("error",)
    return ("stored", answer.partial_success.rejected_spans)


def test_the_running_receivers_answer_and_store_the_same(
    stored: Stored, serve: ServeFactory
) -> None:
    """Over the wire to serve's receivers (HTTP protobuf and JSON, gRPC, each its own store):
    the same ``partial_success`` counts or 400 / INVALID_ARGUMENT, and the same rows."""
    cases = {name: encodings(case) for name, case in corpus().items()}
    senders: dict[str, Callable[[Serving, dict[str, bytes]], Outcome]] = {
        "HTTP protobuf": lambda s, bodies: post_http(s, bodies["pb"], PROTOBUF),
        "HTTP JSON": lambda s, bodies: post_http(s, bodies["json"], JSON),
        "HTTP JSON (JS exporter)": lambda s, bodies: post_http(s, bodies["json-js"], JSON),
        "gRPC": lambda s, bodies: post_grpc(s, bodies["pb"]),
    }
    expected = {
        name: outcome[:1] + outcome[2:] for name, outcome in stored.outcomes[REFERENCE].items()
    }
    for transport, send in senders.items():
        serving = serve()
        answers = {name: send(serving, bodies) for name, bodies in cases.items()}
        assert answers == expected, transport
        assert serving.writer.flush(timeout=60), transport
        assert read_rows(serving.store) == stored.rows[REFERENCE], transport
