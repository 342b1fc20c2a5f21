"""OTLP protobuf and OTLP/JSON payloads decode to the rows the Collector's exporter writes."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from chainmap_otel.errors import IngestError
from chainmap_otel.ingest.decode import (
    decode_json,
    decode_json_lines,
    decode_protobuf,
    iter_protobuf_frames,
)
from chainmap_otel.storage.columns import TRACE_COLUMNS
from tests.support.otlp_payloads import json_bytes, request_of, sdk_spans, to_otlp_json

FIXTURES = Path(__file__).parent / "fixtures"


def as_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    assert len(row) == len(TRACE_COLUMNS)
    return dict(zip(TRACE_COLUMNS, row, strict=True))


def by_name(rows: list[tuple[Any, ...]]) -> dict[str, dict[str, Any]]:
    return {r["SpanName"]: r for r in map(as_dict, rows)}


@pytest.fixture(scope="module")
def request_pb() -> ExportTraceServiceRequest:
    return request_of(sdk_spans("checkout"))


def test_protobuf_rows_carry_every_field_as_the_collector_writes_it(
    request_pb: ExportTraceServiceRequest,
) -> None:
    decoded = decode_protobuf(request_pb.SerializeToString())
    assert decoded.rejected == 0
    rows = by_name(decoded.rows)
    root, child = rows["GET /orders/{id}"], rows["SELECT orders"]
    pb_root = next(
        s for s in request_pb.resource_spans[0].scope_spans[0].spans if s.name == "GET /orders/{id}"
    )
    assert root["TraceId"] == pb_root.trace_id.hex() and len(root["TraceId"]) == 32
    assert root["SpanId"] == pb_root.span_id.hex()
    assert root["ParentSpanId"] == ""
    assert child["ParentSpanId"] == root["SpanId"]
    assert root["Timestamp"] == pb_root.start_time_unix_nano
    assert root["Duration"] == pb_root.end_time_unix_nano - pb_root.start_time_unix_nano
    assert (root["SpanKind"], child["SpanKind"]) == ("Server", "Client")
    assert (root["StatusCode"], child["StatusCode"]) == ("Unset", "Error")
    assert child["StatusMessage"] == "timeout"
    assert root["ServiceName"] == "checkout"
    assert root["ResourceAttributes"]["pod"] == "p-1"
    assert (root["ScopeName"], root["ScopeVersion"]) == ("shop.scope", "2.1")
    assert root["SpanAttributes"] == {
        "http.route": "/orders/{id}",
        "http.status_code": "200",
        "ratio": "0.25",
        "cached": "true",
        "tags": '["a","b"]',
        "n": "0",
    }
    assert root["Events.Name"] == ["validated"]
    assert root["Events.Attributes"] == [{"items": "3"}]
    assert root["Timestamp"] <= root["Events.Timestamp"][0]
    assert child["Links.TraceId"] == [root["TraceId"]]
    assert child["Links.SpanId"] == [root["SpanId"]]
    assert child["Links.TraceState"] == [""]


def test_otlp_json_decodes_to_the_same_rows_as_protobuf(
    request_pb: ExportTraceServiceRequest,
) -> None:
    from_pb = decode_protobuf(request_pb.SerializeToString())
    from_json = decode_json(json_bytes(request_pb))
    assert from_json.rows == from_pb.rows
    assert from_json.rejected == 0


def test_the_otlp_specification_example_with_uppercase_hex_ids() -> None:
    decoded = decode_json((FIXTURES / "otlp_spec_example.json").read_bytes())
    (row,) = map(as_dict, decoded.rows)
    assert row["TraceId"] == "5b8efff798038103d269b633813fc60c"
    assert row["SpanId"] == "eee19b7ec3c1b174"
    assert row["ParentSpanId"] == "eee19b7ec3c1b173"
    assert row["Timestamp"] == 1544712660000000000
    assert row["Duration"] == 1_000_000_000
    assert row["SpanKind"] == "Server"
    assert row["ServiceName"] == "my.service"
    assert (row["ScopeName"], row["ScopeVersion"]) == ("my.library", "1.0.0")
    assert row["SpanAttributes"] == {"my.span.attr": "some value"}


def test_every_any_value_type_is_stringified_like_pdata() -> None:
    decoded = decode_json((FIXTURES / "all_value_types.json").read_text(encoding="utf-8"))
    (row,) = map(as_dict, decoded.rows)
    assert row["SpanAttributes"] == {
        "str": "héllo",
        "empty": "",
        "int_str": "-42",
        "int_num": "7",
        "big": "9223372036854775807",
        "dbl": "1.5",
        "dbl_whole": "3",
        "dbl_nan": "NaN",
        "yes": "true",
        "no": "false",
        "raw": "AQID",
        "arr": '["x",1,true]',
        "map": '{"k":"v","n":2}',
        "nothing": "",
    }
    assert row["SpanKind"] == "Client"  # enum names are accepted too
    assert (row["StatusCode"], row["StatusMessage"]) == ("Error", "boom")
    assert row["Duration"] == 250_000_000
    assert row["Events.Timestamp"] == [1700000000100000000]
    assert row["Events.Attributes"] == [{"attempt": "2"}]
    assert row["Links.TraceId"] == ["1af7651916cd43dd8448eb211c80319c"]
    assert row["Links.TraceState"] == ["k=v"]
    assert row["Links.Attributes"] == [{"why": "batch"}]
    assert row["ScopeName"] == "" and row["ScopeVersion"] == ""


def test_protobuf_any_values_match_their_json_form() -> None:
    document = json.loads((FIXTURES / "all_value_types.json").read_text(encoding="utf-8"))
    # The protobuf JSON mapping wants base64 ids and enum names or numbers.
    pb_document = copy.deepcopy(document)
    span = pb_document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    for holder in (span, span["links"][0]):
        for key in ("traceId", "spanId"):
            holder[key] = base64.b64encode(bytes.fromhex(holder[key])).decode()
    request = json_format.ParseDict(pb_document, ExportTraceServiceRequest())
    assert (
        decode_protobuf(request.SerializeToString()).rows == decode_json(json.dumps(document)).rows
    )


def _one_span_document(**span: Any) -> dict[str, Any]:
    base = {
        "traceId": "0af7651916cd43dd8448eb211c80319c",
        "spanId": "b7ad6b7169203331",
        "name": "s",
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000000000001000",
    }
    base.update(span)
    return {"resourceSpans": [{"scopeSpans": [{"spans": [base]}]}]}


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"traceId": "00000000000000000000000000000000"}, "traceId must not be all zero"),
        ({"traceId": ""}, "traceId is missing"),
        ({"spanId": "b7ad6b71"}, "spanId 'b7ad6b71' must be 16 hex characters"),
        ({"traceId": "not-an-id"}, "must be 32 hex characters (or base64 of 16 bytes)"),
        ({"startTimeUnixNano": -1e20}, "before 1970"),
        ({"startTimeUnixNano": "-9000000000000000000"}, "before 1970"),
        ({"endTimeUnixNano": "1600000000000000000"}, "end time is before start time"),
        ({"startTimeUnixNano": "0"}, "start time is missing"),
        ({"endTimeUnixNano": "18446744073709551615"}, "beyond 2106-02-07"),
    ],
)
def test_invalid_spans_are_rejected_and_counted(fields: dict[str, Any], reason: str) -> None:
    document = _one_span_document(**fields)
    good = _one_span_document(spanId="c7ad6b7169203331", name="good")
    document["resourceSpans"].append(good["resourceSpans"][0])
    decoded = decode_json(json.dumps(document))
    assert [as_dict(r)["SpanName"] for r in decoded.rows] == ["good"]
    assert decoded.rejected == 1
    assert reason in decoded.error_message
    assert decoded.error_message.startswith("rejected 1 span(s): ")


def test_protobuf_spans_with_bad_ids_or_times_are_rejected() -> None:
    request = request_of(sdk_spans("checkout", count=3))
    spans = request.resource_spans[0].scope_spans[0].spans
    spans[0].trace_id = bytes(16)
    spans[1].span_id = b"\x01\x02"
    spans[2].end_time_unix_nano = spans[2].start_time_unix_nano - 1
    decoded = decode_protobuf(request.SerializeToString())
    assert decoded.rejected == 3
    assert decoded.accepted == len(spans) - 3
    assert "trace id must be 16 bytes and not all zero" in decoded.error_message
    assert "span id must be 8 bytes" in decoded.error_message


@pytest.mark.parametrize(
    "payload",
    [
        b"\xff\xff\xff\xff garbage",
        b"not protobuf at all, just text",
        request_of(sdk_spans()).SerializeToString()[:-7],  # truncated
    ],
    ids=["garbage", "text", "truncated"],
)
def test_malformed_protobuf_raises_ingest_error(payload: bytes) -> None:
    with pytest.raises(IngestError, match="not a protobuf ExportTraceServiceRequest"):
        decode_protobuf(payload)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b'{"resourceSpans": [', "not valid JSON"),
        (b"\xff\xfe\x00garbage", "not"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"resourceSpans": 5}', "not OTLP/JSON"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": ["x"]}]}]}', "not OTLP/JSON"),
        (json.dumps(_one_span_document(startTimeUnixNano="soon")).encode(), "startTimeUnixNano"),
        (
            json.dumps(
                _one_span_document(attributes=[{"key": "k", "value": {"boolValue": "yes"}}])
            ).encode(),
            "boolValue must be true or false",
        ),
    ],
    ids=["truncated", "binary", "array", "wrong-type", "span-not-object", "bad-int", "bad-bool"],
)
def test_malformed_json_raises_ingest_error(payload: bytes, message: str) -> None:
    with pytest.raises(IngestError, match=message):
        decode_json(payload)


def test_unknown_fields_are_ignored_as_the_spec_requires() -> None:
    document = _one_span_document(unknownField={"x": 1})
    document["extra"] = True
    assert decode_json(json.dumps(document)).accepted == 1


def test_empty_request_decodes_to_nothing() -> None:
    assert decode_json(b"{}").accepted == 0
    assert decode_protobuf(b"").accepted == 0


def test_json_lines_are_independent_requests() -> None:
    one = json.dumps(to_otlp_json(request_of(sdk_spans("a")))).encode()
    lines = [one, b"", b'{"resourceSpans": [', one]
    results = list(decode_json_lines(lines))
    assert [number for number, _ in results] == [1, 3, 4]
    assert isinstance(results[1][1], IngestError)
    assert [r.accepted for _, r in results if not isinstance(r, IngestError)] == [2, 2]


def test_length_prefixed_protobuf_stream_is_split_into_requests() -> None:
    first = request_of(sdk_spans("a")).SerializeToString()
    second = request_of(sdk_spans("b", count=2)).SerializeToString()
    framed = b"".join(len(m).to_bytes(4, "big") + m for m in (first, second))
    assert list(iter_protobuf_frames(framed)) == [first, second]
    assert list(iter_protobuf_frames(first)) == [first]
    with pytest.raises(IngestError, match="truncated message"):
        list(iter_protobuf_frames(framed[:-3]))


def test_base64_ids_are_repaired_to_hex() -> None:
    document = _one_span_document(traceId="CvdlGRbNQ92ESOshHIAxnA==", spanId="t61rcWkgMzE=")
    decoded = decode_json(json.dumps(document))
    assert decoded.rejected == 0
    row = as_dict(decoded.rows[0])
    assert (row["TraceId"], row["SpanId"]) == (
        "0af7651916cd43dd8448eb211c80319c",
        "b7ad6b7169203331",
    )


def test_lone_surrogates_are_replaced_like_go_does() -> None:
    # json.loads accepts "\ud800"; UTF-8 (and so the store) cannot hold it.
    body = json.dumps(_one_span_document(name="x\ud800"))
    assert "\\ud800" in body
    decoded = decode_json(body.encode())
    assert as_dict(decoded.rows[0])["SpanName"] == "x\ufffd"
    table = decoded.to_arrow()
    assert table is not None and table.column("SpanName").to_pylist() == ["x\ufffd"]
    # A valid pair written as escapes is one character and stays as it is.
    pair = json.dumps(_one_span_document(name="\U0001f600"))
    assert as_dict(decode_json(pair).rows[0])["SpanName"] == "\U0001f600"


def test_json_nested_beyond_the_decoder_is_a_clear_error() -> None:
    with pytest.raises(IngestError, match="nests JSON deeper"):
        decode_json(b"[" * 100_000 + b"]" * 100_000)


def test_attribute_values_nested_too_deep_reject_only_their_span() -> None:
    value: dict[str, Any] = {"stringValue": "leaf"}
    for _ in range(40):
        value = {"arrayValue": {"values": [value]}}
    deep = _one_span_document(attributes=[{"key": "deep", "value": value}])
    good = _one_span_document(spanId="c7ad6b7169203331", name="good")
    deep["resourceSpans"].append(good["resourceSpans"][0])
    decoded = decode_json(json.dumps(deep))
    assert [as_dict(r)["SpanName"] for r in decoded.rows] == ["good"]
    assert decoded.rejected == 1 and "nests deeper than 32" in decoded.error_message
