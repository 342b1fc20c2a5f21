"""The OTLP/gRPC receiver of ``chainmap serve`` with the standard gRPC exporter."""

from __future__ import annotations

import grpc
from google.rpc.error_details_pb2 import RetryInfo
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.trace.export import SpanExportResult

from chainmap_otel.ingest.receivers.otlp_grpc import EXPORT_METHOD
from tests.server.conftest import ServeFactory
from tests.support.ingest import BlockedInsert, emit, with_bad_spans
from tests.support.otlp_payloads import request_of, sdk_spans


def raw_export(address: str, payload: bytes, compression: grpc.Compression | None = None) -> bytes:
    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary(EXPORT_METHOD)
        response: bytes = call(payload, timeout=10, compression=compression)
        return response


def test_the_standard_grpc_exporter_stores_every_span(serve: ServeFactory) -> None:
    serving = serve()
    exporter = OTLPSpanExporter(endpoint=serving.grpc_address, insecure=True)
    emit(exporter, "grpc-svc", traces=25)
    assert serving.stored_for("grpc-svc") == 75


def test_gzip_compressed_calls(serve: ServeFactory) -> None:
    serving = serve()
    exporter = OTLPSpanExporter(
        endpoint=serving.grpc_address, insecure=True, compression=grpc.Compression.Gzip
    )
    assert exporter.export(sdk_spans("grpc-gzip", count=3)) == SpanExportResult.SUCCESS
    exporter.shutdown()
    assert serving.stored_for("grpc-gzip") == 6


def test_partial_success(serve: ServeFactory) -> None:
    serving = serve()
    request = with_bad_spans(request_of(sdk_spans("grpc-partial", count=2)))
    response = ExportTraceServiceResponse.FromString(
        raw_export(serving.grpc_address, request.SerializeToString())
    )
    assert response.partial_success.rejected_spans == 2
    assert "trace id must be 16 bytes" in response.partial_success.error_message
    assert serving.stored_for("grpc-partial") == 2


def test_malformed_messages_get_invalid_argument_and_store_nothing(serve: ServeFactory) -> None:
    serving = serve()
    good = request_of(sdk_spans("grpc-bad", count=2)).SerializeToString()
    for payload in (b"\xff\xff\xff garbage", good[:-3]):
        try:
            raw_export(serving.grpc_address, payload)
        except grpc.RpcError as error:
            assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
            assert "not a protobuf ExportTraceServiceRequest" in (error.details() or "")
        else:
            raise AssertionError("a malformed message was accepted")
    assert serving.stored() == 0


def test_oversized_messages_are_refused(serve: ServeFactory) -> None:
    serving = serve(max_body_bytes=32 * 1024)
    big = request_of(sdk_spans("grpc-big", count=200)).SerializeToString()
    try:
        raw_export(serving.grpc_address, big)
    except grpc.RpcError as error:
        assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    else:
        raise AssertionError("an oversized message was accepted")
    assert serving.stored() == 0


def test_a_full_queue_gets_resource_exhausted_with_retry_info(serve: ServeFactory) -> None:
    blocked = BlockedInsert()
    serving = serve(queue_spans=2, insert=blocked)
    two_spans = request_of(sdk_spans("grpc-queue")).SerializeToString()
    raw_export(serving.grpc_address, two_spans)
    assert blocked.entered.wait(10)
    raw_export(serving.grpc_address, two_spans)
    try:
        raw_export(serving.grpc_address, two_spans)
    except grpc.RpcError as error:
        assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        trailers = dict(error.trailing_metadata() or ())
        retry = RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"])
        assert retry.retry_delay.seconds == 1
    else:
        raise AssertionError("a full queue accepted the request")
    blocked.release.set()
    assert serving.stored_for("grpc-queue") == 4


def test_a_shutting_down_server_answers_unavailable(serve: ServeFactory) -> None:
    serving = serve()
    serving.writer.close()
    try:
        raw_export(serving.grpc_address, request_of(sdk_spans()).SerializeToString())
    except grpc.RpcError as error:
        assert error.code() is grpc.StatusCode.UNAVAILABLE
    else:
        raise AssertionError("a closed writer accepted the request")
