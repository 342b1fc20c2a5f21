"""OTLP/gRPC trace receiver (``TraceService/Export``), the Python exporter's default protocol.

Status codes follow the OTLP specification: INVALID_ARGUMENT for a payload
that does not parse (not retryable), RESOURCE_EXHAUSTED with a
``google.rpc.RetryInfo`` delay when the ingest queue or the request budget is
full (the client retries after the delay), UNAVAILABLE with the same delay
while the server shuts down or its write-ahead log cannot be written (a full
volume). OK (with ``partial_success`` for rejected spans) means the accepted
spans are in the write-ahead log, exactly as for OTLP/HTTP.

Authentication and TLS are the caller's: serve passes its bearer-token interceptor
(every call must carry ``authorization: Bearer <token>`` metadata, UNAUTHENTICATED
otherwise) and, with TLS configured, ``credentials`` so the port serves TLS only.

With an entry-count writer it also serves ``MetricsService/Export``: the chain entry
counts of the services' chainmap distro, other metrics dropped and counted
(:mod:`chainmap_otel.ingest.metric_points`), the same status codes.

The request is registered with a bytes-in handler so a malformed message gets
INVALID_ARGUMENT with a message instead of grpc's generic deserialisation error.
"""

from __future__ import annotations

import logging
from concurrent import futures
from typing import Any

import grpc
from google.protobuf.duration_pb2 import Duration
from google.rpc import code_pb2
from google.rpc.error_details_pb2 import RetryInfo
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)

from chainmap_otel import config
from chainmap_otel.ingest.entry_counts import EntryCountWriter
from chainmap_otel.ingest.receivers.common import (
    Refusal,
    accept,
    decode_in_pool,
    decode_in_process,
    store_entry_counts,
)
from chainmap_otel.ingest.receivers.decode_pool import DecodePool
from chainmap_otel.ingest.writer import RequestBudget, SpanWriter

logger = logging.getLogger(__name__)

__all__ = ["EXPORT_METHOD", "OtlpGrpcReceiver"]

EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
_METRICS_SERVICE = "opentelemetry.proto.collector.metrics.v1.MetricsService"
#: Seconds a client is told to wait when the ingest queue is full.
RETRY_DELAY_S = 1
_RETRY_INFO = (
    (
        "google.rpc.retryinfo-bin",
        RetryInfo(retry_delay=Duration(seconds=RETRY_DELAY_S)).SerializeToString(),
    ),
)


def _connection_limits() -> list[tuple[str, int]]:
    """Close idle connections and detect half-open ones with keepalive pings."""
    idle_ms = config.env_int(config.CHAINMAP_SERVE_IDLE_TIMEOUT_S) * 20 * 1000
    return [
        ("grpc.max_connection_idle_ms", idle_ms),
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
    ]


class OtlpGrpcReceiver:
    """A grpc server on ``host:port`` (port 0 picks a free one, see :attr:`port`).

    ``interceptors`` run before every call (serve's bearer-token check); with
    ``credentials`` (``grpc.ssl_server_credentials``) the port serves TLS only.
    """

    def __init__(
        self,
        writer: SpanWriter,
        host: str = "127.0.0.1",
        port: int = 4317,
        *,
        max_message_bytes: int = 32 * 1024 * 1024,
        max_workers: int = 4,
        budget: RequestBudget | None = None,
        interceptors: tuple[grpc.ServerInterceptor, ...] = (),
        credentials: grpc.ServerCredentials | None = None,
        pool: DecodePool | None = None,
        entry_counts: EntryCountWriter | None = None,
    ) -> None:
        self._writer = writer
        self._entry_counts = entry_counts
        self._pool = pool
        self._budget = budget if budget is not None else RequestBudget(2 * max_message_bytes)
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="otlp-grpc"),
            interceptors=list(interceptors),
            options=[
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.max_send_message_length", 4 * 1024 * 1024),
                *_connection_limits(),
            ],
        )
        handler = grpc.unary_unary_rpc_method_handler(
            self._export,
            request_deserializer=None,
            response_serializer=ExportTraceServiceResponse.SerializeToString,
        )
        self._server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(_SERVICE, {"Export": handler}),)
        )
        if entry_counts is not None:
            metrics_handler = grpc.unary_unary_rpc_method_handler(
                self._export_metrics,
                request_deserializer=None,
                response_serializer=ExportMetricsServiceResponse.SerializeToString,
            )
            self._server.add_generic_rpc_handlers(
                (
                    grpc.method_handlers_generic_handler(
                        _METRICS_SERVICE, {"Export": metrics_handler}
                    ),
                )
            )
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            if credentials is not None:
                self.port = self._server.add_secure_port(address, credentials)
            else:
                self.port = self._server.add_insecure_port(address)
        except RuntimeError as exc:
            tls_hint = (
                "; if the port is free, check CHAINMAP_TLS_CERT_FILE and CHAINMAP_TLS_KEY_FILE"
                if credentials is not None
                else ""
            )
            raise OSError(
                f"cannot listen for OTLP/gRPC on {address} ({exc}); choose another port with "
                f"CHAINMAP_SERVE_GRPC_PORT (0 disables gRPC){tls_hint}"
            ) from exc
        self.address = f"{host}:{self.port}"

    def start(self) -> None:
        self._server.start()
        logger.info("OTLP/gRPC receiver listening on %s", self.address)

    def stop(self, grace: float = 5.0) -> None:
        """Refuse new calls, let running ones finish for ``grace`` seconds."""
        self._server.stop(grace).wait(grace + 1.0)

    def _export(self, payload: bytes, context: Any) -> ExportTraceServiceResponse:
        size = len(payload)
        if not self._budget.acquire(size):
            context.set_trailing_metadata(_RETRY_INFO)
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"more than {self._budget.max_bytes} request bytes are being decoded at once "
                "(CHAINMAP_SERVE_MAX_INFLIGHT_BYTES); retry later",
            )
        try:
            try:
                ipc = None
                engine = self._writer.takes_bodies
                if self._pool is not None:
                    decoded, ipc = decode_in_pool(self._pool, payload, engine)
                else:
                    decoded = decode_in_process(payload, engine)
                accept(self._writer, decoded, f"{context.peer()} (grpc)", ipc)
            except Refusal as refusal:
                if refusal.code == code_pb2.INVALID_ARGUMENT:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, refusal.message)
                context.set_trailing_metadata(_RETRY_INFO)
                if refusal.code == code_pb2.RESOURCE_EXHAUSTED:
                    context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refusal.message)
                context.abort(grpc.StatusCode.UNAVAILABLE, refusal.message)
        finally:
            self._budget.release(size)
        response = ExportTraceServiceResponse()
        if decoded.rejected:
            logger.info("OTLP/gRPC request: %s", decoded.error_message)
            response.partial_success.rejected_spans = decoded.rejected
            response.partial_success.error_message = decoded.error_message
        return response

    def _export_metrics(self, payload: bytes, context: Any) -> ExportMetricsServiceResponse:
        assert self._entry_counts is not None
        size = len(payload)
        if not self._budget.acquire(size):
            context.set_trailing_metadata(_RETRY_INFO)
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"more than {self._budget.max_bytes} request bytes are being decoded at once "
                "(CHAINMAP_SERVE_MAX_INFLIGHT_BYTES); retry later",
            )
        try:
            decoded = store_entry_counts(self._entry_counts, payload, json_body=False)
        except Refusal as refusal:
            if refusal.code == code_pb2.INVALID_ARGUMENT:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, refusal.message)
            context.set_trailing_metadata(_RETRY_INFO)
            context.abort(grpc.StatusCode.UNAVAILABLE, refusal.message)
        finally:
            self._budget.release(size)
        response = ExportMetricsServiceResponse()
        if decoded.rejected:
            logger.info("OTLP/gRPC metrics request: %s", decoded.error_message)
            response.partial_success.rejected_data_points = decoded.rejected
            response.partial_success.error_message = decoded.error_message
        return response
