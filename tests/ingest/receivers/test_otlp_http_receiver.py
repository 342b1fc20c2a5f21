"""``POST /v1/traces`` of a real ``chainmap serve`` answered per the OTLP/HTTP specification."""

from __future__ import annotations

import gzip
import json
import threading
import zlib
from typing import Any

import httpx
import pytest
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.server.conftest import ServeFactory, Serving
from tests.support.ingest import BlockedInsert, emit, with_bad_spans
from tests.support.otlp_payloads import json_bytes, request_of, sdk_spans

PB = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    "compression", [Compression.NoCompression, Compression.Gzip, Compression.Deflate]
)
def test_the_standard_http_exporter_stores_every_span(
    serve: ServeFactory, compression: Compression
) -> None:
    serving = serve()
    exporter = OTLPSpanExporter(endpoint=serving.traces_url, compression=compression)
    emit(exporter, "quotes", traces=40)
    assert serving.stored_for("quotes") == 120
    kinds = serving.store.query(
        "SELECT SpanKind, count() FROM otel_traces GROUP BY SpanKind ORDER BY SpanKind"
    ).result_rows
    assert kinds == [("Client", 40), ("Internal", 40), ("Server", 40)]
    traces = serving.store.query(
        "SELECT uniqExact(TraceId), countIf(ParentSpanId = '') FROM otel_traces"
    ).result_rows
    assert traces == [(40, 40)]


def test_simple_span_processor_requests_each_get_a_protobuf_response(serve: ServeFactory) -> None:
    serving = serve()
    exporter = OTLPSpanExporter(endpoint=serving.traces_url)
    emit(exporter, "simple", traces=3, batch=False)
    assert serving.stored_for("simple") == 9
    response = httpx.post(
        serving.traces_url, content=request_of(sdk_spans()).SerializeToString(), headers=PB
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    assert not ExportTraceServiceResponse.FromString(response.content).HasField("partial_success")


def test_json_payloads_plain_and_gzip(serve: ServeFactory) -> None:
    serving = serve()
    body = json_bytes(request_of(sdk_spans("json-svc", count=2)))
    plain = httpx.post(serving.traces_url, content=body, headers=JSON)
    assert plain.status_code == 200
    assert plain.headers["content-type"] == "application/json"
    assert plain.json() == {}
    zipped = httpx.post(
        serving.traces_url,
        content=gzip.compress(body),
        headers={**JSON, "Content-Encoding": "gzip"},
    )
    assert zipped.status_code == 200
    charset = httpx.post(
        serving.traces_url,
        content=body,
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert charset.status_code == 200
    assert serving.stored_for("json-svc") == 3 * 4


def test_partial_success_in_protobuf_and_json(serve: ServeFactory) -> None:
    serving = serve()
    request = with_bad_spans(request_of(sdk_spans("partial", count=2)))
    response = httpx.post(serving.traces_url, content=request.SerializeToString(), headers=PB)
    assert response.status_code == 200
    partial = ExportTraceServiceResponse.FromString(response.content).partial_success
    assert partial.rejected_spans == 2
    assert "trace id must be 16 bytes" in partial.error_message
    assert "end time is before start time" in partial.error_message

    response = httpx.post(serving.traces_url, content=json_bytes(request), headers=JSON)
    assert response.status_code == 200
    body = response.json()["partialSuccess"]
    assert body["rejectedSpans"] == "2"
    assert "traceId must not be all zero" in body["errorMessage"]
    assert serving.stored_for("partial") == 2 * 2


GOOD = request_of(sdk_spans("bad-payloads", count=3)).SerializeToString()


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"\x00\x01garbage\xff\xfe", PB),
        (GOOD[: len(GOOD) // 2], PB),
        (GOOD[:-1], PB),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [', JSON),
        (json_bytes(request_of(sdk_spans("bad-payloads")))[:-10], JSON),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [42]}]}]}', JSON),
        (gzip.compress(GOOD)[:-12], {**PB, "Content-Encoding": "gzip"}),
        (GOOD, {**PB, "Content-Encoding": "gzip"}),
        (zlib.compress(b"not a request at all"), {**PB, "Content-Encoding": "deflate"}),
    ],
    ids=[
        "garbage",
        "truncated-half",
        "truncated-last-byte",
        "truncated-json",
        "truncated-otlp-json",
        "span-not-an-object",
        "truncated-gzip",
        "not-gzip",
        "deflated-garbage",
    ],
)
def test_malformed_payloads_get_400_and_store_nothing(
    serve: ServeFactory, body: bytes, headers: dict[str, str]
) -> None:
    serving = serve()
    response = httpx.post(serving.traces_url, content=body, headers=headers)
    assert response.status_code == 400, response.text
    if headers["Content-Type"] == PB["Content-Type"]:
        status = status_pb2.Status.FromString(response.content)
        assert status.code == 3 and status.message
    else:
        assert response.json()["message"]
    assert serving.stored() == 0


def test_oversized_bodies_get_413(serve: ServeFactory) -> None:
    serving = serve(max_body_bytes=64 * 1024)
    big = request_of(sdk_spans("big", count=200)).SerializeToString()
    assert len(big) > 64 * 1024
    declared = httpx.post(serving.traces_url, content=big, headers=PB)
    assert declared.status_code == 413
    assert "limit" in status_pb2.Status.FromString(declared.content).message

    def chunks() -> Any:
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    streamed = httpx.post(serving.traces_url, content=chunks(), headers=PB)  # no Content-Length
    assert streamed.status_code == 413

    bomb = gzip.compress(b"\x00" * (50 * 1024 * 1024))
    assert len(bomb) < 64 * 1024
    exploded = httpx.post(
        serving.traces_url, content=bomb, headers={**PB, "Content-Encoding": "gzip"}
    )
    assert exploded.status_code == 413
    assert "decompressed" in status_pb2.Status.FromString(exploded.content).message
    assert serving.stored() == 0

    small = request_of(sdk_spans("big", count=2)).SerializeToString()
    assert httpx.post(serving.traces_url, content=small, headers=PB).status_code == 200
    assert serving.stored_for("big") == 4


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "text/plain"},
        {"Content-Type": "application/protobuf+garbage"},
        {},
        {**PB, "Content-Encoding": "br"},
    ],
    ids=["text", "unknown", "missing", "brotli"],
)
def test_unsupported_media_gets_415(serve: ServeFactory, headers: dict[str, str]) -> None:
    serving = serve()
    response = httpx.post(serving.traces_url, content=GOOD, headers=headers)
    assert response.status_code == 415
    assert serving.stored() == 0


def test_a_full_queue_gets_429_with_retry_after_and_loses_nothing_accepted(
    serve: ServeFactory,
) -> None:
    blocked = BlockedInsert()
    serving = serve(queue_spans=5, insert=blocked)
    two_spans = request_of(sdk_spans("queue")).SerializeToString()
    assert httpx.post(serving.traces_url, content=two_spans, headers=PB).status_code == 200
    assert blocked.entered.wait(10)  # the writer holds that batch; the queue is empty again
    assert httpx.post(serving.traces_url, content=two_spans, headers=PB).status_code == 200
    assert httpx.post(serving.traces_url, content=two_spans, headers=PB).status_code == 200
    full = httpx.post(serving.traces_url, content=two_spans, headers=PB)
    assert full.status_code == 429
    assert full.headers["retry-after"] == "1"
    assert status_pb2.Status.FromString(full.content).code == 8  # RESOURCE_EXHAUSTED
    json_full = httpx.post(
        serving.traces_url, content=json_bytes(request_of(sdk_spans("queue"))), headers=JSON
    )
    assert json_full.status_code == 429
    assert "queue is full" in json_full.json()["message"]
    blocked.release.set()
    assert serving.stored_for("queue") == 6
    assert serving.writer.stats().refused_requests == 2


def test_the_exporter_retries_after_429_until_the_queue_drains(serve: ServeFactory) -> None:
    blocked = BlockedInsert()
    serving = serve(queue_spans=2, insert=blocked)
    two_spans = request_of(sdk_spans("retry")).SerializeToString()
    assert httpx.post(serving.traces_url, content=two_spans, headers=PB).status_code == 200
    assert blocked.entered.wait(10)
    assert httpx.post(serving.traces_url, content=two_spans, headers=PB).status_code == 200

    exporter = OTLPSpanExporter(endpoint=serving.traces_url, timeout=30)
    results: list[SpanExportResult] = []
    sender = threading.Thread(target=lambda: results.append(exporter.export(sdk_spans("retry"))))
    sender.start()
    while serving.writer.stats().refused_requests == 0:
        assert sender.is_alive(), "the export finished without being refused"
        threading.Event().wait(0.02)
    blocked.release.set()
    sender.join(30)
    assert results == [SpanExportResult.SUCCESS]
    assert serving.stored_for("retry") == 6


def test_a_shutting_down_server_answers_503(serve: ServeFactory) -> None:
    serving = serve()
    serving.writer.close()
    response = httpx.post(serving.traces_url, content=GOOD, headers=PB)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"


def test_only_post_is_allowed(serve: ServeFactory) -> None:
    serving: Serving = serve()
    assert httpx.get(serving.traces_url).status_code == 405
    assert json.loads(httpx.get(f"{serving.url}/openapi.json").text)["paths"]["/v1/traces"]


def test_metrics_and_logs_of_stock_sdks_are_accepted_dropped_and_said_once(
    serve: ServeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    serving = serve()
    base = serving.traces_url.removesuffix("/v1/traces")
    reader = InMemoryMetricReader()
    MeterProvider(metric_readers=[reader]).get_meter("m").create_counter("orders").add(3)
    data = reader.get_metrics_data()
    assert data is not None
    exporter = OTLPMetricExporter(endpoint=base + "/v1/metrics")
    with caplog.at_level("WARNING"):
        for _ in range(3):
            assert exporter.export(data).name == "SUCCESS"  # no 404 per export
        logs = httpx.post(base + "/v1/logs", content=b"{}", headers=JSON)
    assert (logs.status_code, logs.text) == (200, "{}")
    said = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(said) == 2, said  # once for metrics, once for logs
    assert "keeps only the chain entry counts" in said[0] and "OTEL_LOGS_EXPORTER=none" in said[1]
    assert serving.store.query("SELECT count() FROM otel_traces").result_rows == [(0,)]
    too_big = httpx.post(base + "/v1/metrics", content=b"x" * (64 * 1024 * 1024), headers=PB)
    assert too_big.status_code == 413
