"""``chainmap serve``: OTLP receivers in front of the trace store, and the HTTP surfaces."""

from __future__ import annotations

from chainmap_otel.ingest.receivers.otlp_grpc import OtlpGrpcReceiver
from chainmap_otel.ingest.writer import SpanWriter, WriterStats
from chainmap_otel.server.app import (
    ServeAddresses,
    create_app,
    new_span_writer,
    open_wal,
    run_server,
)

__all__ = [
    "OtlpGrpcReceiver",
    "ServeAddresses",
    "SpanWriter",
    "WriterStats",
    "create_app",
    "new_span_writer",
    "open_wal",
    "run_server",
]
