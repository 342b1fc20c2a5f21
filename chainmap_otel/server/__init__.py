"""``chainmap serve``: OTLP receivers in front of the trace store, and the HTTP surfaces."""

from __future__ import annotations

from chainmap_otel.server.app import (
    ServeAddresses,
    create_app,
    new_span_writer,
    open_wal,
    run_server,
)
from chainmap_otel.server.otlp_grpc import OtlpGrpcReceiver
from chainmap_otel.server.span_writer import SpanWriter, WriterStats

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
