"""The FastAPI application and process runner of ``chainmap serve``.

``create_app`` builds the app around an open :class:`TraceStore`; routers are
added with ``include_router`` so surfaces (chain API, health, web view) stay
separate modules. ``run_server`` owns the process: it opens the store (the only
process that does, for an embedded chDB store), applies the schema, starts the
OTLP/HTTP and OTLP/gRPC receivers, and on SIGINT/SIGTERM stops accepting,
writes every queued span and closes the store.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from fastapi import FastAPI

from chainmap_otel import config
from chainmap_otel.server.api import install_api, resolve_catalog
from chainmap_otel.server.decode_pool import DecodePool
from chainmap_otel.server.otlp_grpc import OtlpGrpcReceiver
from chainmap_otel.server.otlp_http import otlp_http_router
from chainmap_otel.server.span_writer import RequestBudget, SpanWriter
from chainmap_otel.server.web import install_web
from chainmap_otel.storage.batching import BatchInserter, store_landed
from chainmap_otel.storage.store import TraceStore, open_store
from chainmap_otel.storage.wal import FSYNC_MODES, WriteAheadLog
from chainmap_otel.tagging.definitions import ChainCatalog

logger = logging.getLogger(__name__)

__all__ = ["ServeAddresses", "create_app", "new_span_writer", "open_wal", "run_server"]


def new_span_writer(
    store: TraceStore,
    queue_spans: int | None = None,
    *,
    queue_bytes: int | None = None,
    wal: WriteAheadLog | None = None,
) -> SpanWriter:
    """A (not yet started) writer into ``store``'s ``otel_traces``, durable with ``wal``."""

    def insert(table: Any, token: str) -> None:
        store.insert_arrow(table, deduplication_token=token)

    def probe() -> None:
        store.query("SELECT 1")

    spans = (
        queue_spans
        if queue_spans is not None
        else config.env_int(config.CHAINMAP_SERVE_QUEUE_SPANS)
    )
    size = (
        queue_bytes
        if queue_bytes is not None
        else config.env_int(config.CHAINMAP_SERVE_QUEUE_BYTES)
    )
    inserter = BatchInserter(insert, probe, landed=store_landed(store))
    return SpanWriter(inserter, wal=wal, max_queued_spans=spans, max_queued_bytes=size)


def open_wal(store: TraceStore, directory: str | Path | None = None) -> WriteAheadLog:
    """The ingest write-ahead log of ``store`` (``CHAINMAP_SERVE_WAL_*``); not opened yet."""
    if directory is None:
        directory = config.env_str(config.CHAINMAP_SERVE_WAL_DIR) or None
    if directory is None:
        directory = (
            Path(store.location.path) / "chainmap-ingest-wal"
            if store.embedded
            else config.data_dir() / "ingest-wal"
        )
    fsync = config.env_str(config.CHAINMAP_SERVE_WAL_FSYNC).lower()
    if fsync not in FSYNC_MODES:
        logger.warning(
            "CHAINMAP_SERVE_WAL_FSYNC=%r is not one of %s; using fsync", fsync, FSYNC_MODES
        )
        fsync = "fsync"
    return WriteAheadLog(
        directory, max(1, config.env_int(config.CHAINMAP_SERVE_QUEUE_BYTES)), fsync
    )


def create_app(
    store: TraceStore,
    *,
    writer: SpanWriter | None = None,
    max_body_bytes: int | None = None,
    queue_spans: int | None = None,
    chains: ChainCatalog | str | Path | None = None,
    budget: RequestBudget | None = None,
    decode_pool: DecodePool | None = None,
) -> FastAPI:
    """The ``chainmap serve`` app: ``POST /v1/traces`` into ``store``, the chain API, the web view.

    Without ``writer`` the app makes its own, started and flushed by the app's
    lifespan; with one (shared with the gRPC receiver) the caller runs it.
    ``chains`` is the catalog the API analyses with (a catalog or a YAML path; default
    ``CHAINMAP_CHAINS_FILE``, else the packaged ``chains.example.yaml``).
    ``app.state.store``, ``app.state.span_writer`` and ``app.state.catalog`` are there
    for the routers.
    """
    catalog = resolve_catalog(chains)
    owned = writer is None
    span_writer = writer if writer is not None else new_span_writer(store, queue_spans)
    limit = (
        max_body_bytes
        if max_body_bytes is not None
        else config.env_int(config.CHAINMAP_SERVE_MAX_BODY_BYTES)
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if owned:
            span_writer.start()
        try:
            yield
        finally:
            if owned:
                span_writer.close()

    app = FastAPI(
        title="chainmap",
        summary="OTLP trace ingest and chain analysis",
        lifespan=lifespan,
    )
    app.state.store = store
    app.state.span_writer = span_writer
    app.state.catalog = catalog
    app.include_router(otlp_http_router(span_writer, limit, budget, decode_pool))
    install_api(app)
    install_web(app)
    return app


@dataclass(frozen=True)
class ServeAddresses:
    """Where a started ``chainmap serve`` listens (ports resolved when 0 was asked)."""

    http: str
    grpc: str  # '' when gRPC is disabled


def run_server(
    store_url: str | None = None,
    host: str | None = None,
    http_port: int | None = None,
    grpc_port: int | None = None,
    *,
    max_body_bytes: int | None = None,
    queue_spans: int | None = None,
    apply_schema: bool | None = None,
    chains: ChainCatalog | str | Path | None = None,
    log_level: str = "info",
    on_ready: Callable[[ServeAddresses], None] | None = None,
) -> None:
    """Run ``chainmap serve`` until SIGINT/SIGTERM; every argument defaults to its env var.

    ``grpc_port=0`` disables the gRPC receiver. ``chains`` is the catalog the API and web
    view analyse with (default ``CHAINMAP_CHAINS_FILE``, else the packaged example).
    Raises :class:`ChainDefinitionError` for a bad chains file (before opening the
    store), :class:`StoreLockedError` when another process holds the embedded store,
    ``OSError`` when a port is taken.
    """
    import uvicorn

    host = host or config.env_str(config.CHAINMAP_SERVE_HOST)
    http_port = (
        http_port if http_port is not None else config.env_int(config.CHAINMAP_SERVE_HTTP_PORT)
    )
    grpc_port = (
        grpc_port if grpc_port is not None else config.env_int(config.CHAINMAP_SERVE_GRPC_PORT)
    )
    limit = (
        max_body_bytes
        if max_body_bytes is not None
        else config.env_int(config.CHAINMAP_SERVE_MAX_BODY_BYTES)
    )
    if apply_schema is None:
        apply_schema = config.env_bool(config.CHAINMAP_SCHEMA_AUTO_APPLY)

    catalog = resolve_catalog(chains)
    from chainmap_otel.analysis.rollup import EdgeRollupRefresher

    # Every resource is entered in order and closed in reverse, whatever fails where.
    with ExitStack() as resources:
        resources.callback(_quiet_signals())
        store = resources.enter_context(open_store(store_url))
        if apply_schema:
            from chainmap_otel.storage.schema import apply_schema as apply

            apply(store)
        writer = new_span_writer(store, queue_spans, wal=open_wal(store))
        writer.start()
        resources.callback(_close_writer, writer)
        # Rolls up the edges of closed minutes every 30 s (the first run backfills history).
        rollup = EdgeRollupRefresher(store, catalog)
        rollup.start()
        resources.callback(rollup.stop)
        budget = RequestBudget(max(1, config.env_int(config.CHAINMAP_SERVE_MAX_INFLIGHT_BYTES)))
        processes = config.env_int(config.CHAINMAP_SERVE_DECODE_PROCESSES)
        pool = DecodePool(processes) if processes > 0 else None
        if pool is not None:
            resources.callback(pool.close)
        receiver: OtlpGrpcReceiver | None = None
        if grpc_port:
            receiver = OtlpGrpcReceiver(
                writer, host, grpc_port, max_message_bytes=limit, budget=budget, pool=pool
            )
            receiver.start()
            resources.callback(receiver.stop)
        app = create_app(
            store,
            writer=writer,
            max_body_bytes=limit,
            chains=catalog,
            budget=budget,
            decode_pool=pool,
        )
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=host,
                port=http_port,
                log_level=log_level,
                lifespan="on",
                # A long analysis request must not hold a Ctrl-C hostage: after this, open
                # connections are dropped and the queued spans are still written.
                timeout_graceful_shutdown=10,
            )
        )
        if on_ready is not None:
            _notify_when_started(server, host, receiver, on_ready)
        logger.info(
            "chainmap serve: store %s, %d chains from %s; ingest write-ahead log %s",
            store.url_for_display,
            len(catalog),
            catalog.source,
            "on" if writer.durable else "off",
        )
        try:
            server.run()
        except SystemExit:
            # uvicorn exits when it cannot bind; the reason is already logged.
            raise OSError(
                f"cannot listen for OTLP/HTTP on {host}:{http_port}; free the port or choose "
                "another with CHAINMAP_SERVE_HTTP_PORT"
            ) from None


def _close_writer(writer: SpanWriter) -> None:
    writer.close()
    stats = writer.stats()
    logger.info(
        "chainmap serve stopped: %d spans stored, %d dropped, %d requests refused, "
        "%d kept in the write-ahead log",
        stats.written_spans,
        stats.dropped_spans,
        stats.refused_requests,
        stats.queued_spans,
    )


def _quiet_signals() -> Callable[[], None]:
    """Make SIGINT/SIGTERM harmless after uvicorn's own handling.

    uvicorn re-raises the signal it caught once it has stopped; with the
    default SIGTERM disposition that would kill the process before the queue
    is flushed and the store closed.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def note(signum: int, frame: FrameType | None) -> None:
        logger.info("chainmap serve: signal %d received, shutting down", signum)

    previous = {sig: signal.signal(sig, note) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


def _notify_when_started(
    server: Any,
    host: str,
    receiver: OtlpGrpcReceiver | None,
    on_ready: Callable[[ServeAddresses], None],
) -> None:
    def wait() -> None:
        while not server.started:
            if server.should_exit:
                return
            threading.Event().wait(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        on_ready(ServeAddresses(f"http://{host}:{port}", receiver.address if receiver else ""))

    threading.Thread(target=wait, name="chainmap-serve-ready", daemon=True).start()
