"""The OTLP receivers in front of a writer the engine decodes for, over real HTTP and gRPC.

A request the engine path takes is answered without ``partial_success`` and stored with
the Python decoder's rows; a request with one bad span is answered with its exact rejected
count and its other spans stored; a malformed one is a 400 / INVALID_ARGUMENT; with and
without the decode worker processes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from chainmap_otel.ingest.decode import decode_protobuf
from chainmap_otel.ingest.engine_decode import engine_spans
from chainmap_otel.ingest.receivers.decode_pool import DecodePool
from chainmap_otel.server import OtlpGrpcReceiver, create_app, new_span_writer
from chainmap_otel.storage.columns import TRACE_COLUMNS
from chainmap_otel.storage.store import TraceStore
from tests.ingest.receivers.test_decode_differential import Builder, request, service
from tests.ingest.receivers.test_otlp_grpc_receiver import raw_export
from tests.server.conftest import ServerThread, Serving

PB = {"Content-Type": "application/x-protobuf"}


@pytest.fixture(scope="module")
def pool() -> Iterator[DecodePool]:
    decoding = DecodePool(1)
    yield decoding
    decoding.close()


@pytest.fixture(params=["in process", "worker process"])
def serving(
    request: pytest.FixtureRequest,
    store_factory: Callable[[], TraceStore],
    pool: DecodePool,
) -> Iterator[Serving]:
    store = store_factory()
    writer = new_span_writer(store, engine_decode=True)
    assert writer.takes_bodies
    writer.start()
    decode_pool = pool if request.param == "worker process" else None
    receiver = OtlpGrpcReceiver(writer, "127.0.0.1", 0, pool=decode_pool)
    receiver.start()
    server = ServerThread(create_app(store, writer=writer, decode_pool=decode_pool))
    server.start()
    yield Serving(store, writer, server.url, receiver.address)
    server.stop()
    receiver.stop(grace=1)
    writer.close()


def rows(store: TraceStore, service_name: str) -> list[tuple[Any, ...]]:
    exact = {
        "Timestamp": "toUnixTimestamp64Nano(Timestamp)",
        "Events.Timestamp": "arrayMap(t -> toUnixTimestamp64Nano(t), `Events.Timestamp`)",
    }
    columns = ", ".join(exact.get(name, f"`{name}`") for name in TRACE_COLUMNS)
    sql = (
        f"SELECT {columns} FROM {store.database}.otel_traces "
        "WHERE ServiceName = {s:String} ORDER BY SpanId"
    )
    return [tuple(row) for row in store.query(sql, {"s": service_name}).result_rows]


def test_a_plain_request_is_stored_by_the_engine_as_python_would(serving: Serving) -> None:
    b = Builder()
    spans = [
        b.span(f"plain {i}", attributes=[("http.route", "/x"), ("n", i), ("ok", True)])
        for i in range(6)
    ]
    body = request((service("engine-http"), spans[:3])).SerializeToString()
    grpc_body = request((service("engine-grpc"), spans[3:])).SerializeToString()
    assert engine_spans(body) == 3
    response = httpx.post(serving.traces_url, content=body, headers=PB)
    assert response.status_code == 200
    assert not ExportTraceServiceResponse.FromString(response.content).HasField("partial_success")
    answer = ExportTraceServiceResponse.FromString(raw_export(serving.grpc_address, grpc_body))
    assert not answer.HasField("partial_success")
    assert serving.stored() == 6
    reference = decode_protobuf(body).table
    serving.store.insert_arrow(reference, table="otel_traces")  # a second copy, via Python
    stored = rows(serving.store, "engine-http")
    assert stored[0::2] == stored[1::2]  # engine row == Python row, span by span


def test_one_bad_span_is_rejected_exactly_and_the_rest_stored(serving: Serving) -> None:
    b = Builder()
    spans = [b.span("good"), b.span("ends first", end_time_unix_nano=1), b.span("also good")]
    body = request((service("partial"), spans)).SerializeToString()
    assert engine_spans(body) is None
    response = httpx.post(serving.traces_url, content=body, headers=PB)
    assert response.status_code == 200
    partial = ExportTraceServiceResponse.FromString(response.content).partial_success
    assert partial.rejected_spans == 1
    assert "end time is before start time" in partial.error_message
    answer = ExportTraceServiceResponse.FromString(raw_export(serving.grpc_address, body))
    assert answer.partial_success.rejected_spans == 1
    assert serving.stored_for("partial") == 4


def test_a_malformed_body_is_refused_whole(serving: Serving) -> None:
    body = request((service("broken"), [Builder().span("x")])).SerializeToString()[:-3]
    response = httpx.post(serving.traces_url, content=body, headers=PB)
    assert response.status_code == 400
    with pytest.raises(grpc.RpcError) as refused:
        raw_export(serving.grpc_address, body)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert serving.stored() == 0
