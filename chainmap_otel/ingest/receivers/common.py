"""What both OTLP receivers share: the refusal reply, handing decoded spans to the span
writer, and decoding in the worker pool. Each receiver maps a :class:`Refusal` to its own
protocol (an HTTP status, a gRPC status code)."""

from __future__ import annotations

import logging
from concurrent.futures.process import BrokenProcessPool

from google.rpc import code_pb2

from chainmap_otel.errors import IngestError, StoreError
from chainmap_otel.ingest.decode import decode_protobuf
from chainmap_otel.ingest.engine_decode import decode_for_engine
from chainmap_otel.ingest.entry_counts import EntryCountWriter
from chainmap_otel.ingest.metric_points import DecodedPoints, decode_metrics
from chainmap_otel.ingest.receivers.decode_pool import DecodePool, as_decoded
from chainmap_otel.ingest.validate import DecodedSpans
from chainmap_otel.ingest.writer import SpanWriter, WriterClosedError

logger = logging.getLogger(__name__)

__all__ = ["Refusal", "accept", "decode_in_pool", "decode_in_process", "store_entry_counts"]


class Refusal(Exception):
    """A request the receiver turns down: HTTP status, google.rpc code, one-line message."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def accept(
    writer: SpanWriter, decoded: DecodedSpans, sender: str, ipc: bytes | None = None
) -> None:
    """Validate ``decoded`` into Arrow and hand it to ``writer``; raises the refusal reply.

    Shared by both receivers (gRPC maps the reply's status to its codes).
    """
    table = decoded.to_arrow()
    if table is None and decoded.body is None:
        return
    try:
        if decoded.body is not None:
            queued = writer.offer_body(decoded.body, decoded.body_spans, sender)
        else:
            queued = writer.offer(table, sender, ipc)
    except WriterClosedError:
        raise Refusal(
            503, code_pb2.UNAVAILABLE, "the server is shutting down; retry later"
        ) from None
    except OSError as exc:
        # Logged by the write-ahead log once per outage; each refusal is counted.
        raise Refusal(
            503, code_pb2.UNAVAILABLE, f"the ingest write-ahead log cannot be written ({exc})"
        ) from None
    if not queued:
        raise Refusal(
            429,
            code_pb2.RESOURCE_EXHAUSTED,
            f"ingest queue is full ({writer.max_queued_spans} spans or "
            f"{writer.max_queued_bytes} bytes); retry later",
        )


def decode_in_pool(
    pool: DecodePool, body: bytes, engine: bool = False
) -> tuple[DecodedSpans, bytes | None]:
    """Decode a protobuf body in the pool; raises the refusal reply for a bad body or a broken pool.

    With ``engine`` (the writer takes bodies) a body the engine path takes is only checked
    in the worker and comes back as the body itself.
    """
    try:
        return as_decoded(pool.submit(body, engine).result(), body)
    except IngestError as exc:
        raise Refusal(400, code_pb2.INVALID_ARGUMENT, str(exc)) from exc
    except (BrokenProcessPool, RuntimeError) as exc:
        logger.error("the decode worker pool failed: %s", exc)
        raise Refusal(
            503, code_pb2.UNAVAILABLE, "the decoder is unavailable; retry later"
        ) from None


def decode_in_process(body: bytes, engine: bool = False) -> DecodedSpans:
    """Decode a protobuf body here (as :func:`decode_in_pool` does in a worker)."""
    try:
        return decode_for_engine(body) if engine else decode_protobuf(body)
    except IngestError as exc:
        raise Refusal(400, code_pb2.INVALID_ARGUMENT, str(exc)) from exc


def store_entry_counts(counts: EntryCountWriter, body: bytes, json_body: bool) -> DecodedPoints:
    """Decode an OTLP metrics body and store its entry points; the refusal reply for a body
    that does not parse (400) or a store that cannot take them (503). Both receivers use it."""
    try:
        decoded = decode_metrics(body, json_body)
    except IngestError as exc:
        raise Refusal(400, code_pb2.INVALID_ARGUMENT, str(exc)) from exc
    try:
        counts.write(decoded)
    except StoreError as exc:
        logger.warning("chain entry counts not stored: %s", exc)
        raise Refusal(
            503, code_pb2.UNAVAILABLE, "the store cannot take chain entry counts now; retry later"
        ) from None
    return decoded
