"""OTLP/HTTP trace receiver: ``POST /v1/traces`` per the OTLP/HTTP specification.

Bodies are ``application/x-protobuf`` or ``application/json`` (OTLP/JSON),
optionally ``Content-Encoding: gzip`` or ``deflate``. Answers:

* 200 ``ExportTraceServiceResponse`` in the request's encoding, with
  ``partial_success`` when some spans were rejected, once the accepted spans
  are in the write-ahead log (see :mod:`chainmap_otel.ingest.wal`);
* 400 malformed payload (nothing of the request is stored);
* 413 body larger than the limit, compressed (``Content-Length``, streamed
  bytes) or decompressed (so a gzip bomb stops at the limit);
* 415 unsupported ``Content-Type`` or ``Content-Encoding``;
* 429 + ``Retry-After`` when the ingest queue is full or too many request bytes
  are being decoded at once (``CHAINMAP_SERVE_MAX_INFLIGHT_BYTES``), 503 +
  ``Retry-After`` while shutting down or while the write-ahead log cannot be
  written (its volume is full or broken; ``/health/detailed`` says which).

Reading, decoding and logging run off the event loop, so the API stays
responsive while large requests are decoded.

Error bodies are ``google.rpc.Status`` messages in the request's encoding.

``POST /v1/metrics`` takes the chain entry counts of the services' chainmap distro
(:mod:`chainmap_otel.ingest.metric_points`) with the same encodings, limits and answers
(``partial_success.rejected_data_points`` for rejected points); other metrics are dropped
and counted. ``/v1/logs`` is read and dropped.
"""

from __future__ import annotations

import json
import logging
import zlib
from typing import Any

from fastapi import APIRouter, Request, Response
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from chainmap_otel.errors import IngestError
from chainmap_otel.ingest.decode import DecodedSpans, decode_json, decode_protobuf
from chainmap_otel.ingest.entry_counts import EntryCountWriter
from chainmap_otel.ingest.metric_points import DecodedPoints
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

__all__ = ["JSON", "PROTOBUF", "RETRY_AFTER_S", "otlp_http_router"]

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
#: Seconds a client is told to wait when the ingest queue is full.
RETRY_AFTER_S = 1


def _media_type(request: Request) -> str:
    raw = request.headers.get("content-type", "")
    media = raw.split(";", 1)[0].strip().lower()
    if media in (PROTOBUF, JSON):
        return media
    raise Refusal(
        415,
        code_pb2.INVALID_ARGUMENT,
        f"unsupported Content-Type {raw!r}; send {PROTOBUF} or {JSON}",
    )


def _decompressor(request: Request) -> zlib._Decompress | None:
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj(zlib.MAX_WBITS)
    raise Refusal(
        415,
        code_pb2.INVALID_ARGUMENT,
        f"unsupported Content-Encoding {encoding!r}; send gzip, deflate or no encoding",
    )


def _too_large(limit: int, what: str) -> Refusal:
    return Refusal(
        413,
        code_pb2.RESOURCE_EXHAUSTED,
        f"{what} exceeds the {limit}-byte limit; send smaller batches "
        "(or raise CHAINMAP_SERVE_MAX_BODY_BYTES)",
    )


def _busy(budget: RequestBudget) -> Refusal:
    return Refusal(
        429,
        code_pb2.RESOURCE_EXHAUSTED,
        f"more than {budget.max_bytes} request bytes are being decoded at once "
        "(CHAINMAP_SERVE_MAX_INFLIGHT_BYTES); retry later",
    )


class _Held:
    """Bytes of one request taken from the shared budget, given back when it is answered."""

    def __init__(self, budget: RequestBudget) -> None:
        self.budget = budget
        self.size = 0

    def take(self, size: int) -> None:
        if not self.budget.acquire(size):
            raise _busy(self.budget)
        self.size += size

    def release(self) -> None:
        self.budget.release(self.size)
        self.size = 0


async def _read_body(request: Request, limit: int, held: _Held) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise Refusal(
                400, code_pb2.INVALID_ARGUMENT, "Content-Length is not a number"
            ) from None
        if size > limit:
            raise _too_large(limit, f"request body of {declared} bytes")
        held.take(size)  # refuse before reading when the budget is spent
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit, "request body")
        if size > held.size:
            held.take(size - held.size)
        chunks.append(chunk)
    return b"".join(chunks)


def _inflate(body: bytes, decompressor: zlib._Decompress, limit: int) -> bytes:
    out: list[bytes] = []
    size = 0
    data = body
    try:
        while True:
            piece = decompressor.decompress(data, limit + 1 - size)
            size += len(piece)
            out.append(piece)
            if size > limit:
                raise _too_large(limit, "decompressed request body")
            if decompressor.eof:
                # Concatenated gzip members are one body (RFC 1952 section 2.2).
                data = decompressor.unused_data
                if not data:
                    break
                decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
                continue
            data = decompressor.unconsumed_tail
            if not data:
                raise Refusal(400, code_pb2.INVALID_ARGUMENT, "compressed body is truncated")
    except zlib.error as exc:
        raise Refusal(
            400, code_pb2.INVALID_ARGUMENT, f"body does not decompress as declared ({exc})"
        ) from exc
    return b"".join(out)


def _decode(media: str, body: bytes) -> DecodedSpans:
    return decode_protobuf(body) if media == PROTOBUF else decode_json(body)


def _decode_and_accept(media: str, body: bytes, writer: SpanWriter, sender: str) -> DecodedSpans:
    if media == PROTOBUF:
        decoded = decode_in_process(body, engine=writer.takes_bodies)
    else:
        try:
            decoded = decode_json(body)
        except IngestError as exc:
            raise Refusal(400, code_pb2.INVALID_ARGUMENT, str(exc)) from exc
    accept(writer, decoded, sender)
    return decoded


def _pooled_decode_and_accept(
    pool: DecodePool, body: bytes, writer: SpanWriter, sender: str
) -> DecodedSpans:
    decoded, ipc = decode_in_pool(pool, body, engine=writer.takes_bodies)
    accept(writer, decoded, sender, ipc)
    return decoded


def _sender(request: Request) -> str:
    client = request.client
    where = f"{client.host}:{client.port}" if client else "unknown address"
    agent = request.headers.get("user-agent", "")[:80]
    return f"{where} ({agent})" if agent else where


def _ok(media: str, decoded: DecodedSpans) -> Response:
    return _accepted(media, ExportTraceServiceResponse(), "rejected_spans", decoded)


def _accepted(
    media: str, response: Any, rejected_field: str, decoded: DecodedSpans | DecodedPoints
) -> Response:
    """The 200 answer in ``media``: ``response`` (the signal's protobuf answer) with a
    ``partial_success`` naming the items rejected (``rejected_field``, snake case) when some
    were, or its OTLP/JSON form."""
    if media == PROTOBUF:
        if decoded.rejected:
            setattr(response.partial_success, rejected_field, decoded.rejected)
            response.partial_success.error_message = decoded.error_message
        return Response(response.SerializeToString(), 200, media_type=PROTOBUF)
    document: dict[str, object] = {}
    if decoded.rejected:
        head, *rest = rejected_field.split("_")
        document["partialSuccess"] = {
            head + "".join(part.title() for part in rest): str(decoded.rejected),
            "errorMessage": decoded.error_message,
        }
    return Response(json.dumps(document), 200, media_type=JSON)


def _error(media: str, status: int, code: int, message: str) -> Response:
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status in (429, 503) else None
    if media == PROTOBUF:
        body = status_pb2.Status(code=code, message=message).SerializeToString()
        return Response(body, status, headers=headers, media_type=PROTOBUF)
    body_text = json.dumps({"code": code, "message": message})
    return Response(body_text, status, headers=headers, media_type=JSON)


def _metrics_ok(media: str, decoded: DecodedPoints) -> Response:
    return _accepted(media, ExportMetricsServiceResponse(), "rejected_data_points", decoded)


def otlp_http_router(
    writer: SpanWriter,
    max_body_bytes: int,
    budget: RequestBudget | None = None,
    pool: DecodePool | None = None,
    entry_counts: EntryCountWriter | None = None,
) -> APIRouter:
    """The ``/v1/traces`` route, feeding ``writer``; bodies are capped at ``max_body_bytes``.

    ``budget`` bounds the bytes of all requests being read and decoded at once
    (default: its own, of ``2 * max_body_bytes``); with ``pool`` protobuf bodies
    are decoded in its worker processes. With ``entry_counts`` ``/v1/metrics`` stores
    the chain entry counts there (without, it reads and drops every metric).
    """
    if max_body_bytes < 1:
        raise ValueError(f"max_body_bytes must be >= 1, got {max_body_bytes}")
    budget = budget if budget is not None else RequestBudget(2 * max_body_bytes)
    router = APIRouter()

    @router.post("/v1/traces", include_in_schema=True, summary="OTLP/HTTP trace export")
    async def export_traces(request: Request) -> Response:
        media = JSON
        held = _Held(budget)
        try:
            media = _media_type(request)
            decompressor = _decompressor(request)
            body = await _read_body(request, max_body_bytes, held)
            if decompressor is not None:
                body = _inflate(body, decompressor, max_body_bytes)
                held.take(len(body))
            if pool is not None and media == PROTOBUF:
                decoded = await run_in_threadpool(
                    _pooled_decode_and_accept, pool, body, writer, _sender(request)
                )
            else:
                decoded = await run_in_threadpool(
                    _decode_and_accept, media, body, writer, _sender(request)
                )
            if decoded.rejected:
                logger.info("OTLP/HTTP request: %s", decoded.error_message)
            return _ok(media, decoded)
        except Refusal as reply:
            if reply.status >= 500 or reply.status == 429:
                logger.warning("OTLP/HTTP request refused: %s", reply.message)
            else:
                logger.info("OTLP/HTTP request rejected (%d): %s", reply.status, reply.message)
            return _error(media, reply.status, reply.code, reply.message)
        except ClientDisconnect:
            return Response(status_code=499)
        finally:
            held.release()

    told: set[str] = set()

    async def drop_signal(request: Request, signal: str) -> Response:
        """Stock SDKs export metrics and logs to the same endpoint: read (bounded), drop,
        and say so once per signal, rather than a 404 for every export."""
        media = JSON
        held = _Held(budget)
        try:
            media = _media_type(request)
            await _read_body(request, max_body_bytes, held)
        except Refusal as reply:
            return _error(media, reply.status, reply.code, reply.message)
        except ClientDisconnect:
            return Response(status_code=499)
        finally:
            held.release()
        if signal not in told:
            told.add(signal)
            logger.warning(
                "chainmap serve stores traces only: OTLP %s from %s are dropped (said once); "
                "set OTEL_%s_EXPORTER=none in the service to stop sending them",
                signal,
                _sender(request),
                signal.upper(),
            )
        return Response(b"" if media == PROTOBUF else "{}", 200, media_type=media)

    @router.post(
        "/v1/metrics",
        include_in_schema=entry_counts is not None,
        summary="OTLP/HTTP metrics export (chain entry counts)",
    )
    async def export_metrics(request: Request) -> Response:
        if entry_counts is None:
            return await drop_signal(request, "metrics")
        media = JSON
        held = _Held(budget)
        try:
            media = _media_type(request)
            decompressor = _decompressor(request)
            body = await _read_body(request, max_body_bytes, held)
            if decompressor is not None:
                body = _inflate(body, decompressor, max_body_bytes)
                held.take(len(body))
            decoded = await run_in_threadpool(store_entry_counts, entry_counts, body, media == JSON)
            if decoded.rejected:
                logger.info("OTLP/HTTP metrics request: %s", decoded.error_message)
            if decoded.dropped and "metrics" not in told:
                told.add("metrics")
                logger.warning(
                    "chainmap serve keeps only the chain entry counts (chainmap.chain.*) of OTLP "
                    "metrics: the others from %s are dropped and counted (said once)",
                    _sender(request),
                )
            return _metrics_ok(media, decoded)
        except Refusal as reply:
            logger.info("OTLP/HTTP metrics request rejected (%d): %s", reply.status, reply.message)
            return _error(media, reply.status, reply.code, reply.message)
        except ClientDisconnect:
            return Response(status_code=499)
        finally:
            held.release()

    @router.post("/v1/logs", include_in_schema=False)
    async def export_logs(request: Request) -> Response:
        return await drop_signal(request, "logs")

    return router
