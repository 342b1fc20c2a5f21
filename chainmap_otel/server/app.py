"""The FastAPI application and process runner of ``chainmap serve``.

``create_app`` builds the app around an open :class:`TraceStore`; routers are
added with ``include_router`` so surfaces (chain API, health, web view) stay
separate modules. ``run_server`` owns the process: it opens the store (the only
process that does, for an embedded chDB store), applies the schema, starts the
OTLP/HTTP and OTLP/gRPC receivers, and on SIGINT/SIGTERM stops accepting,
writes every queued span and closes the store. A serve killed with ``kill -9``
leaves nothing running: its children die with it, and the next serve on the
same data directory stops whatever it recorded that survived
(:mod:`chainmap_otel.server.serve_record`).
"""

from __future__ import annotations

import logging
import re
import signal
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from fastapi import Depends, FastAPI

from chainmap_otel import config
from chainmap_otel.ingest.engine_decode import insert_bodies
from chainmap_otel.ingest.entry_counts import EntryCountWriter
from chainmap_otel.ingest.inserter import BatchInserter, store_landed
from chainmap_otel.ingest.receivers.decode_pool import DecodePool
from chainmap_otel.ingest.receivers.otlp_grpc import OtlpGrpcReceiver
from chainmap_otel.ingest.receivers.otlp_http import otlp_http_router
from chainmap_otel.ingest.wal import FSYNC_MODES, WriteAheadLog
from chainmap_otel.ingest.writer import RequestBudget, SpanWriter
from chainmap_otel.registry.reload import CatalogHolder
from chainmap_otel.server.api.alerts import install_alerts_api
from chainmap_otel.server.api.chains import install_api, resolve_catalog, store_check_refresher
from chainmap_otel.server.api.coverage import install_coverage_api
from chainmap_otel.server.api.environments import install_environments_api
from chainmap_otel.server.api.metrics import install_metrics, store_series_refresher
from chainmap_otel.server.api.registry import install_registry_api
from chainmap_otel.server.api.search import traces_router
from chainmap_otel.server.api.trace import install_trace_api
from chainmap_otel.server.http.auth import (
    AllowedHostsMiddleware,
    BearerToken,
    GrpcBearerInterceptor,
    allowed_hosts_for,
    require_bearer,
    tls_files,
    warn_if_exposed,
)
from chainmap_otel.server.http.listener import timed_protocol
from chainmap_otel.server.http.pool import ReadPool, ReadStores, lower_priority
from chainmap_otel.server.operations import Operations, ServeState
from chainmap_otel.server.serve_record import ServeRecord, reap_orphans
from chainmap_otel.server.settings import ServeSettings
from chainmap_otel.server.web.pages import install_web
from chainmap_otel.storage.advert import advertise_server, withdraw_server
from chainmap_otel.storage.store import TraceStore, open_store
from chainmap_otel.tagging.definitions import ChainCatalog

logger = logging.getLogger(__name__)

__all__ = ["ServeAddresses", "create_app", "new_span_writer", "open_wal", "run_server"]

#: How long shutdown waits for a snapshot thread stuck in a store call before leaving it.
SNAPSHOT_STOP_TIMEOUT_S = 5.0


def new_span_writer(
    store: TraceStore,
    queue_spans: int | None = None,
    *,
    queue_bytes: int | None = None,
    wal: WriteAheadLog | None = None,
    engine_decode: bool = False,
) -> SpanWriter:
    """A (not yet started) writer into ``store``'s ``otel_traces``, durable with ``wal``;
    with ``engine_decode`` (and an embedded store) it takes OTLP protobuf bodies for the
    engine to decode in batches."""

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

    def insert_batch(bodies: Sequence[bytes], token: str) -> None:
        insert_bodies(store, bodies, token)

    inserter = BatchInserter(insert, probe, landed=store_landed(store))
    return SpanWriter(
        inserter,
        wal=wal,
        max_queued_spans=spans,
        max_queued_bytes=size,
        insert_bodies=insert_batch if engine_decode and store.inserts_select else None,
    )


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
    segment_bytes = config.env_int(config.CHAINMAP_SERVE_WAL_SEGMENT_BYTES)
    if segment_bytes < 1:
        logger.warning(
            "%s=%d must be >= 1; using %s",
            config.CHAINMAP_SERVE_WAL_SEGMENT_BYTES.name,
            segment_bytes,
            config.CHAINMAP_SERVE_WAL_SEGMENT_BYTES.default,
        )
        segment_bytes = int(config.CHAINMAP_SERVE_WAL_SEGMENT_BYTES.default)
    segment_age = config.env_seconds(config.CHAINMAP_SERVE_WAL_SEGMENT_AGE)
    if segment_age <= 0:
        logger.warning(
            "%s must be longer than 0; using %s",
            config.CHAINMAP_SERVE_WAL_SEGMENT_AGE.name,
            config.CHAINMAP_SERVE_WAL_SEGMENT_AGE.default,
        )
        segment_age = config.parse_seconds(config.CHAINMAP_SERVE_WAL_SEGMENT_AGE.default) or 10.0
    return WriteAheadLog(
        directory,
        config.env_int(config.CHAINMAP_SERVE_QUEUE_BYTES),
        fsync,
        segment_bytes=segment_bytes,
        segment_age_s=segment_age,
    )


def create_app(
    store: TraceStore,
    *,
    writer: SpanWriter | None = None,
    max_body_bytes: int | None = None,
    queue_spans: int | None = None,
    chains: ChainCatalog | str | Path | None = None,
    budget: RequestBudget | None = None,
    query_timeout_s: float | None = None,
    ingest_token: BearerToken | None = None,
    allowed_hosts: Sequence[str] | None = None,
    operations: Operations | None = None,
    decode_pool: DecodePool | None = None,
    read_stores: ReadStores | None = None,
    entry_counts: EntryCountWriter | None = None,
) -> FastAPI:
    """The ``chainmap serve`` app: ``POST /v1/traces`` into ``store``, the chain API, the web view.

    Without ``writer`` the app makes its own, started and flushed by the app's
    lifespan; with one (shared with the gRPC receiver) the caller runs it.
    ``chains`` is the catalog the API analyses with (a catalog or a YAML path; default
    ``CHAINMAP_CHAINS_FILE``, else the packaged ``chains.example.yaml``).
    ``app.state.store``, ``app.state.span_writer`` and ``app.state.catalog`` are there
    for the routers; ``app.state.catalog`` is read through a swappable holder (the
    registry's hot reload swaps it). Analysis reads ``app.state.store``, whose queries stop
    after ``query_timeout_s`` (default ``CHAINMAP_QUERY_TIMEOUT_S``). ``ingest_token``
    (default ``CHAINMAP_INGEST_TOKEN``) guards ``POST /v1/traces``; ``allowed_hosts``
    (default ``CHAINMAP_ALLOWED_HOSTS``, unset: any) are the Host names answered.
    ``operations`` (registry, monitor, alerts) is optional. Reads run in the app's read
    pool on connections from ``read_stores`` (one per read thread; without it, on
    ``store``'s own connection); ``/health/detailed`` and ``/metrics`` answer from
    snapshots that the lifespan's threads refresh. ``POST /v1/metrics`` stores the services'
    chain entry counts with ``entry_counts`` (default: a writer on ``store``).
    """
    catalog = operations.holder.current if operations is not None else resolve_catalog(chains)
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
        app.state.store_check.start()
        app.state.metrics_refresher.start()
        try:
            yield
        finally:
            app.state.metrics_refresher.stop(SNAPSHOT_STOP_TIMEOUT_S)
            app.state.store_check.stop(SNAPSHOT_STOP_TIMEOUT_S)
            app.state.read_pool.close()
            if owned:
                span_writer.close()

    app = FastAPI(
        title="chainmap",
        summary="OTLP trace ingest and chain analysis",
        lifespan=lifespan,
        # /docs is served by install_web from local Swagger UI files (no CDN); ReDoc has none.
        docs_url=None,
        redoc_url=None,
    )
    timeout = (
        query_timeout_s
        if query_timeout_s is not None
        else config.env_float(config.CHAINMAP_QUERY_TIMEOUT_S)
    )
    app.state = ServeState()
    app.state.catalogs = operations.holder if operations is not None else CatalogHolder(catalog)
    app.state.operations = operations
    reads = read_stores.store() if read_stores is not None else store
    claim = read_stores.claim if read_stores is not None else None
    app.state.store = reads.with_query_timeout(timeout)
    app.state.read_pool = ReadPool(on_thread_start=claim)
    app.state.store_check = store_check_refresher(app.state, claim)
    app.state.metrics_refresher = store_series_refresher(
        app.state, on_start=lambda: _read_thread(claim)
    )
    app.state.span_writer = span_writer
    app.state.entry_counts = entry_counts if entry_counts is not None else EntryCountWriter(store)
    token = (
        ingest_token
        if ingest_token is not None
        else BearerToken.from_env(config.CHAINMAP_INGEST_TOKEN)
    )
    guard = [Depends(require_bearer(token))] if token.enabled else None
    app.include_router(
        otlp_http_router(span_writer, limit, budget, decode_pool, app.state.entry_counts),
        dependencies=guard,
    )
    install_registry_api(app)
    install_alerts_api(app)
    install_api(app)
    app.include_router(traces_router())
    install_trace_api(app)
    install_coverage_api(app)
    install_environments_api(app)
    install_metrics(app)
    install_web(app)
    # Without a bind address to go by, only CHAINMAP_ALLOWED_HOSTS restricts the names.
    hosts = allowed_hosts if allowed_hosts is not None else allowed_hosts_for("0.0.0.0")
    if hosts is not None:
        app.add_middleware(AllowedHostsMiddleware, allowed=hosts)
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
    ``OSError`` when a port is taken, ``ValueError`` for unusable TLS files. Security
    settings come from the environment: ``CHAINMAP_INGEST_TOKEN``, ``CHAINMAP_TLS_*``,
    ``CHAINMAP_ALLOWED_HOSTS``; listening beyond loopback without a token logs a warning.
    """
    import uvicorn

    settings = ServeSettings.from_env(
        store_url=store_url,
        host=host or None,
        http_port=http_port,
        grpc_port=grpc_port,
        max_body_bytes=max_body_bytes,
        queue_spans=queue_spans,
        apply_schema=apply_schema,
    )
    store_url, host, limit = settings.store_url, settings.host, settings.max_body_bytes
    catalog = resolve_catalog(chains)
    tls = tls_files()
    token = BearerToken.from_env(config.CHAINMAP_INGEST_TOKEN)
    warn_if_exposed(host, token, tls)
    from chainmap_otel.analysis.rollups.refresh import RollupRefresher

    # Every resource is entered in order and closed in reverse, whatever fails where.
    with ExitStack() as resources:
        resources.callback(_quiet_signals())
        # What a serve killed with kill -9 left running in this data directory goes first.
        reap_orphans(config.data_dir())
        record = ServeRecord(config.data_dir())
        record.update()
        resources.callback(record.remove)
        store = resources.enter_context(open_store(store_url))
        adverts: list[Path | None] = []
        resources.callback(_withdraw_all, adverts)
        if settings.apply_schema:
            from chainmap_otel.storage.schema import apply_schema as apply

            apply(store)
        writer = new_span_writer(
            store,
            settings.queue_spans,
            queue_bytes=settings.queue_bytes,
            wal=open_wal(store),
            engine_decode=settings.engine_decode,
        )
        writer.start()
        resources.callback(_close_writer, writer)
        # The writer's connection is the writer's alone: a query on it would wait for
        # inserts, and an insert for the query. Reads get one per read thread, and the
        # rollup and monitor one of their own.
        read_stores = ReadStores(lambda: open_store(store_url), store)
        resources.callback(read_stores.close)
        background = resources.enter_context(open_store(store_url))
        # Rolls up the edges of closed minutes every 30 s (the first run backfills history).
        rollup = RollupRefresher(background, catalog)
        rollup.start()
        resources.callback(rollup.stop)
        operations: Operations | None = None
        if settings.registry_on:
            # Registry listener, monitor and notifier; stopped before the rollup and store.
            # Only chains the user named seed an empty registry (the bundled example does not).
            given = chains is not None or bool(config.env_str(config.CHAINMAP_CHAINS_FILE))
            operations = Operations(
                background,
                CatalogHolder(catalog),
                seed=catalog if given else None,
                registry_url=settings.registry_url or None,
            )
            operations.holder.subscribe(lambda new: setattr(rollup, "catalog", new))
            operations.start()
            resources.callback(operations.stop)
        budget = RequestBudget(settings.max_inflight_bytes)
        processes = settings.decode_processes
        pool = DecodePool(processes) if processes > 0 else None
        if pool is not None:
            resources.callback(pool.close)
            record.update()
        # Chain entry counts (/v1/metrics) insert and look up on a connection of their own.
        entry_counts = EntryCountWriter(resources.enter_context(open_store(store_url)))
        receiver: OtlpGrpcReceiver | None = None
        if settings.grpc_port:
            receiver = OtlpGrpcReceiver(
                writer,
                host,
                settings.grpc_port,
                max_message_bytes=limit,
                budget=budget,
                interceptors=(GrpcBearerInterceptor(token),) if token.enabled else (),
                credentials=tls.grpc_credentials() if tls is not None else None,
                pool=pool,
                entry_counts=entry_counts,
            )
            receiver.start()
            resources.callback(receiver.stop)
        app = create_app(
            store,
            writer=writer,
            max_body_bytes=limit,
            chains=catalog,
            budget=budget,
            ingest_token=token,
            allowed_hosts=allowed_hosts_for(host),
            operations=operations,
            decode_pool=pool,
            read_stores=read_stores,
            entry_counts=entry_counts,
        )
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=host,
                port=settings.http_port,
                log_level=log_level,
                lifespan="on",
                http=timed_protocol(),
                timeout_keep_alive=settings.idle_timeout_s,
                ssl_certfile=tls.cert if tls else None,
                ssl_keyfile=tls.key if tls else None,
                # A long analysis request must not hold a Ctrl-C hostage: after this, open
                # connections are dropped and the queued spans are still written.
                timeout_graceful_shutdown=10,
            )
        )

        def announce(addresses: ServeAddresses) -> None:
            if operations is not None:
                operations.listen_url = addresses.http
            if on_ready is not None:
                on_ready(addresses)

        ready = _advertising(store, announce, adverts)
        if ready is not None:
            _notify_when_started(server, "https" if tls else "http", host, receiver, ready)
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
                f"cannot listen for OTLP/HTTP on {host}:{settings.http_port}; free the port or choose "
                "another with CHAINMAP_SERVE_HTTP_PORT"
            ) from None


def _read_thread(claim: Callable[[], None] | None) -> None:
    """A background reader: a store connection of its own and the read threads' priority."""
    if claim is not None:
        claim()
    lower_priority()


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


def _withdraw_all(adverts: list[Path | None]) -> None:
    for advert in adverts:
        withdraw_server(advert)


def _advertising(
    store: TraceStore,
    on_ready: Callable[[ServeAddresses], None] | None,
    adverts: list[Path | None],
) -> Callable[[ServeAddresses], None] | None:
    """``on_ready`` that first advertises the API URL in an embedded store's directory, so
    read commands of other processes use the API (``chainmap_otel.storage.advert``)."""
    if not store.embedded:
        return on_ready

    def ready(addresses: ServeAddresses) -> None:
        url = re.sub(r"^(https?)://(0\.0\.0\.0|\[::\]|::)(?=:)", r"\1://127.0.0.1", addresses.http)
        adverts.append(advertise_server(store.location.path, url, store.database))
        if on_ready is not None:
            on_ready(addresses)

    return ready


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
    scheme: str,
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
        on_ready(ServeAddresses(f"{scheme}://{host}:{port}", receiver.address if receiver else ""))

    threading.Thread(target=wait, name="chainmap-serve-ready", daemon=True).start()
