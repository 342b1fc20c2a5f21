"""``ClickHouseSpanExporter``: SDK spans into ``otel_traces``, value for value as the Collector.

Registered as the ``chainmap_clickhouse`` traces exporter, so
``OTEL_TRACES_EXPORTER=chainmap_clickhouse opentelemetry-instrument ...`` stores
spans with no code and no Collector. Its settings (the store URL, buffer, linger, batch
size) are resolved once, from the arguments or the ``CHAINMAP_*`` variables
(:class:`ExporterSettings`).

Built on the SDK's model (``BatchSpanProcessor``): ``export()`` only puts the
spans on a bounded queue and returns, so the application never waits for the
store; the lock covers the queue alone. One worker thread owns the store: it
gathers exports for ``linger_s`` (or until ``batch_spans`` wait), turns them
into an Arrow table and inserts it through the shared
:class:`~chainmap_otel.ingest.inserter.BatchInserter` (partition-safe groups,
a deduplication token per batch, bisection of spans the store refuses), waiting
with backoff while the store is down. ``force_flush`` and ``shutdown`` wake a
waiting retry at once; ``shutdown`` returns within ``timeout`` whatever the store does.
Every call to a server store has ``timeout`` as its socket timeout, and a call still
running after ``timeout`` (a store that accepts connections and never answers) is logged.

Every span handed to ``export`` is counted exactly once: ``buffered_spans`` (queued or
being inserted), ``exported_spans`` or, by reason, in
:attr:`ClickHouseSpanExporter.drop_counts` (``dropped_spans`` is their sum) and
logged: ``buffer_full`` (the oldest beyond ``CHAINMAP_EXPORT_BUFFER_SPANS``
while the store was slow or down), ``invalid`` (a value Arrow cannot hold, such
as a lone surrogate, or a time outside 1970..2106), ``refused`` (the store
refused the span itself) and ``shutdown`` (still queued when ``shutdown`` gave up).

After ``os.fork()`` the child starts with an empty queue and no connection (the
parent's spans stay the parent's) and its worker starts with its first export.

``clickhouse_connect`` (and chDB) are imported on first insert only: a service
that merely tags spans never loads them.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, detach, set_value
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from chainmap_otel import config
from chainmap_otel.storage.columns import MAX_TIME_NANOS

if TYPE_CHECKING:
    from chainmap_otel.ingest.inserter import BatchInserter
    from chainmap_otel.storage.store import TraceStore

logger = logging.getLogger(__name__)

#: Reasons a span is not stored, the keys of ``drop_counts``.
DROP_REASONS = ("buffer_full", "invalid", "refused", "shutdown")
#: Offending spans named per batch in the log (all are counted).
_LOGGED_INVALID = 5


@dataclass(frozen=True)
class ExporterSettings:
    """What a :class:`ClickHouseSpanExporter` runs with, resolved once at construction:
    argument > environment (``CHAINMAP_*``, see :mod:`chainmap_otel.config`) > default.

    A malformed or out-of-range variable is logged and its default used (``config``); an
    argument outside the variable's declared range is a ``ValueError`` naming the rule.
    """

    #: The trace store (``CHAINMAP_CLICKHOUSE_URL``, else the embedded store in the data dir).
    url: str
    #: Seconds ``shutdown`` waits for queued spans; the socket timeout of a server store.
    timeout: float
    #: Spans held while the store is slow or down (``CHAINMAP_EXPORT_BUFFER_SPANS``).
    buffer_spans: int
    #: Apply a missing or older schema on first use (``CHAINMAP_SCHEMA_AUTO_APPLY``).
    auto_apply_schema: bool
    table: str
    #: How long small exports are gathered into one insert (``CHAINMAP_EXPORT_LINGER_MS``).
    linger_s: float
    #: Spans that make an insert at once (``CHAINMAP_EXPORT_BATCH_SPANS``, at most the buffer).
    batch_spans: int

    @classmethod
    def from_env(cls, **overrides: Any) -> ExporterSettings:
        """The settings from the environment, with ``overrides`` (None: not given) on top."""
        unknown = set(overrides) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"unknown exporter settings: {', '.join(sorted(unknown))}")
        given = {k: v for k, v in overrides.items() if v is not None}
        timeout = given.get("timeout", _DEFAULT_TIMEOUT_S)
        if timeout <= 0:
            raise ValueError(f"timeout must be positive seconds, not {timeout}")
        for name, (var, scale, rule) in _BOUNDED.items():
            if name in given and not var.within(given[name] * scale):
                raise ValueError(f"{name} must be {rule}, not {given[name]} ({var.name})")
        settings = cls(
            **{
                "url": config.clickhouse_url(),
                "timeout": _DEFAULT_TIMEOUT_S,
                "buffer_spans": config.env_int(config.CHAINMAP_EXPORT_BUFFER_SPANS),
                "auto_apply_schema": config.env_bool(config.CHAINMAP_SCHEMA_AUTO_APPLY),
                "table": "otel_traces",
                "linger_s": config.env_int(config.CHAINMAP_EXPORT_LINGER_MS) / 1000,
                "batch_spans": config.env_int(config.CHAINMAP_EXPORT_BATCH_SPANS),
                **given,
            }
        )
        if settings.batch_spans > settings.buffer_spans:
            settings = replace(settings, batch_spans=settings.buffer_spans)
        return settings


_DEFAULT_TIMEOUT_S = 10.0
#: Arguments bounded by their variable's range: (variable, argument -> variable unit, rule).
_BOUNDED = {
    "buffer_spans": (config.CHAINMAP_EXPORT_BUFFER_SPANS, 1, "at least 1"),
    "linger_s": (config.CHAINMAP_EXPORT_LINGER_MS, 1000, "0 or more seconds"),
    "batch_spans": (config.CHAINMAP_EXPORT_BATCH_SPANS, 1, "at least 1"),
}


class ClickHouseSpanExporter(SpanExporter):
    """Writes SDK spans into the trace store's ``otel_traces`` from one worker thread.

    Arguments override the environment (see :class:`ExporterSettings`, resolved once and
    kept as :attr:`settings`): ``url``, ``buffer_spans``, ``auto_apply_schema``,
    ``linger_s``, ``batch_spans``; ``timeout`` is the seconds ``shutdown`` waits for queued
    spans to be stored. ``settings`` gives them all at once instead.

    Every insert costs a fixed ~25-30 ms in ClickHouse (a part per table and the
    materialized views), so exports are gathered: the SDK's 512-span batches of
    one linger make one insert.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        timeout: float | None = None,
        buffer_spans: int | None = None,
        auto_apply_schema: bool | None = None,
        table: str | None = None,
        linger_s: float | None = None,
        batch_spans: int | None = None,
        settings: ExporterSettings | None = None,
    ) -> None:
        arguments = {
            "url": url,
            "timeout": timeout,
            "buffer_spans": buffer_spans,
            "auto_apply_schema": auto_apply_schema,
            "table": table,
            "linger_s": linger_s,
            "batch_spans": batch_spans,
        }
        if settings is None:
            settings = ExporterSettings.from_env(**arguments)
        elif any(value is not None for value in arguments.values()):
            raise TypeError("pass either settings or individual arguments, not both")
        #: What this exporter runs with.
        self.settings = settings
        self._instance = uuid.uuid4().hex
        self._batches = itertools.count(1)
        #: Spans committed to the store.
        self.exported_spans = 0
        self._counts = dict.fromkeys(DROP_REASONS, 0)
        self._reset()
        ref = weakref.WeakMethod(self._after_fork_in_child)
        os.register_at_fork(after_in_child=lambda: _call(ref))

    def _reset(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[Sequence[ReadableSpan]] = deque()
        self._queued = 0
        self._in_flight = 0
        self._flushing = 0
        self._stopped = False
        self._abandoned = False
        self._worker: threading.Thread | None = None
        self._store: TraceStore | None = None
        self._inserter: BatchInserter | None = None

    def _after_fork_in_child(self) -> None:
        # The parent's queue, lock and connection are the parent's: start afresh.
        self._reset()

    # -- the SDK's interface ---------------------------------------------------------------

    @property
    def buffered_spans(self) -> int:
        """Spans queued or being inserted."""
        with self._cond:
            return self._queued + self._in_flight

    @property
    def drop_counts(self) -> dict[str, int]:
        """Spans not stored, by reason (see the module docstring)."""
        with self._cond:
            return dict(self._counts)

    @property
    def dropped_spans(self) -> int:
        with self._cond:
            return sum(self._counts.values())

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Queue ``spans`` for the worker; never waits for the store."""
        try:
            with self._cond:
                if self._stopped:
                    logger.warning(
                        "ClickHouseSpanExporter is shut down; %d spans not stored", len(spans)
                    )
                    return SpanExportResult.FAILURE
                if spans:
                    self._queue.append(spans)
                    self._queued += len(spans)
                    self._trim()
                    self._ensure_worker()
                    self._cond.notify_all()
            return SpanExportResult.SUCCESS
        except Exception:
            logger.exception("ClickHouseSpanExporter failed to queue %d spans", len(spans))
            return SpanExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Store everything queued so far; False when that takes longer than the timeout."""
        return self._drain(time.monotonic() + timeout_millis / 1000)

    def shutdown(self, timeout: float | None = None) -> None:
        """Store what is queued, for at most ``timeout`` seconds in all (default: the
        constructor's); what is not stored by then is counted as dropped (``shutdown``)."""
        deadline = time.monotonic() + (
            self.settings.timeout if timeout is None else max(0.0, timeout)
        )
        with self._cond:
            if self._stopped:
                return
            self._stopped = True
            self._cond.notify_all()
        self._drain(deadline)
        inserter = self._inserter
        if inserter is not None:
            inserter.stop()
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(max(0.0, deadline - time.monotonic()))
        with self._cond:
            if self._queued:
                self._drop("shutdown", self._queued, "still queued at shutdown")
                self._queue.clear()
                self._queued = 0
            if self._in_flight and worker is not None and worker.is_alive():
                # The worker is stuck in a call to the store: count its batch as dropped now
                # and no longer as buffered, so the numbers are exact when shutdown returns
                # (corrected if it lands after all).
                self._drop("shutdown", self._in_flight, "being inserted when shutdown gave up")
                self._in_flight = 0
                self._abandoned = True
        if self._store is not None and (worker is None or not worker.is_alive()):
            self._store.close()
            self._store = None

    # -- the queue (lock held) ---------------------------------------------------------------

    def _trim(self) -> None:
        excess = self._queued + self._in_flight - self.settings.buffer_spans
        while excess > 0 and self._queue:
            oldest = self._queue[0]
            if len(oldest) <= excess:
                self._queue.popleft()
                dropped = len(oldest)
            else:
                self._queue[0] = oldest[excess:]
                dropped = excess
            self._queued -= dropped
            excess -= dropped
            self._drop(
                "buffer_full", dropped, f"beyond the buffer of {self.settings.buffer_spans} spans"
            )

    def _drop(self, reason: str, count: int, why: str) -> None:
        self._counts[reason] += count
        logger.warning(
            "ClickHouseSpanExporter dropped %d spans %s (%d dropped in total); store %s: %s",
            count,
            why,
            sum(self._counts.values()),
            self._display_url(),
            (self._inserter.last_error if self._inserter else "") or "not reached",
        )

    def _ensure_worker(self) -> None:
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(
                target=self._run, name="chainmap-export-worker", daemon=True
            )
            self._worker.start()

    def _drain(self, deadline: float) -> bool:
        with self._cond:
            self._flushing += 1
            self._cond.notify_all()
            try:
                while self._queued or self._in_flight:
                    if self._inserter is not None:
                        self._inserter.wake()
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or (self._worker is None or not self._worker.is_alive()):
                        return False
                    self._cond.wait(min(remaining, 0.5))
                return True
            finally:
                self._flushing -= 1

    def _take(self) -> list[ReadableSpan] | None:
        with self._cond:
            while not self._queue:
                if self._stopped:
                    return None
                self._cond.wait()
            deadline = time.monotonic() + self.settings.linger_s
            while (
                self._queued < self.settings.batch_spans
                and not self._flushing
                and not self._stopped
                and (remaining := deadline - time.monotonic()) > 0
            ):
                self._cond.wait(remaining)
            batch: list[ReadableSpan] = []
            while self._queue and len(batch) < self.settings.batch_spans:
                head = self._queue.popleft()
                room = self.settings.batch_spans - len(batch)
                if len(head) > room:
                    self._queue.appendleft(head[room:])
                    head = head[:room]
                batch.extend(head)
            self._queued -= len(batch)
            self._in_flight = len(batch)
            return batch

    # -- the worker ----------------------------------------------------------------------------

    def _run(self) -> None:
        token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            _import_worker_modules(self.settings.url)
            inserter = self._new_inserter()
            while True:
                batch = self._take()
                if batch is None:
                    return
                self._write(inserter, batch)
        except Exception:
            logger.exception("ClickHouseSpanExporter worker stopped")
        finally:
            detach(token)

    def _new_inserter(self) -> BatchInserter:
        from chainmap_otel.ingest.inserter import BatchInserter, store_landed

        def insert(table: Any, batch_token: str) -> None:
            store = self._connected_store()
            store.insert_arrow(table, table=self.settings.table, deduplication_token=batch_token)

        def probe() -> None:
            try:
                self._connected_store().query("SELECT 1")
            except Exception:
                if self._store is not None and not self._store.embedded:
                    self._store.close()
                    self._store = None
                raise

        def landed(table: Any) -> bool:
            return store_landed(self._connected_store(), self.settings.table)(table)

        inserter = BatchInserter(insert, probe, landed=landed)
        with self._cond:
            self._inserter = inserter
            if self._stopped:
                inserter.stop()
        return inserter

    def _write(self, inserter: BatchInserter, batch: list[ReadableSpan]) -> None:
        table, invalid, reasons = _to_arrow(batch)
        written = refused = unfinished = 0
        if table is not None and table.num_rows:
            # A socket timeout bounds each read of a call, not the call: say so when a call
            # outlives the timeout (a store that accepts connections and never answers).
            stalled = threading.Timer(self.settings.timeout, self._log_stall, (table.num_rows,))
            stalled.daemon = True
            stalled.start()
            try:
                outcome = inserter.write(
                    table, f"chainmap-export-{self._instance}-{next(self._batches)}"
                )
            finally:
                stalled.cancel()
            written, refused = outcome.written, outcome.dropped
            if outcome.unfinished:
                unfinished = table.num_rows - written - refused
        with self._cond:
            self._in_flight = 0
            self.exported_spans += written
            if self._abandoned:
                # Counted as dropped by shutdown: what landed after all moves to exported.
                self._counts["shutdown"] -= written
                self._cond.notify_all()
                return
            if invalid:
                self._drop("invalid", invalid, "the store cannot hold: " + "; ".join(reasons))
            if refused:
                self._drop("refused", refused, "the store refused")
            if unfinished:
                self._drop("shutdown", unfinished, "not stored when shutdown gave up")
            self._cond.notify_all()

    def _log_stall(self, spans: int) -> None:
        with self._cond:
            buffered = self._queued + self._in_flight
        logger.warning(
            "ClickHouseSpanExporter: the trace store %s has not stored %d spans within %gs "
            "(%s); %d spans are buffered, up to %d, older ones are dropped beyond that",
            self._display_url(),
            spans,
            self.settings.timeout,
            (self._inserter.last_error if self._inserter else "") or "no answer yet",
            buffered,
            self.settings.buffer_spans,
        )

    def _connected_store(self) -> TraceStore:
        if self._store is None:
            from chainmap_otel.storage.schema import apply_schema, current_version, latest_version
            from chainmap_otel.storage.store import open_store

            store = open_store(
                self.settings.url,
                connect_timeout=min(10.0, self.settings.timeout),
                send_receive_timeout=self.settings.timeout,
            )
            try:
                if self.settings.auto_apply_schema and current_version(store) < latest_version():
                    apply_schema(store)
            except BaseException:
                store.close()
                raise
            self._store = store
        return self._store

    def _display_url(self) -> str:
        if self._store is not None:
            return self._store.url_for_display
        from chainmap_otel.storage.location import mask_url

        return mask_url(self.settings.url)


#: Held while the worker imports what it needs (the first export pulls in pyarrow and the
#: store's driver, kept out of a process that never exports) and by ``os.fork()`` around the
#: fork: a child forked in the middle of those imports would inherit half-initialised
#: modules and its own worker would die on them.
_WORKER_IMPORTS = threading.Lock()
os.register_at_fork(
    before=_WORKER_IMPORTS.acquire,
    after_in_parent=_WORKER_IMPORTS.release,
    after_in_child=_WORKER_IMPORTS.release,
)


def _import_worker_modules(url: str) -> None:
    with _WORKER_IMPORTS:
        import chainmap_otel.ingest.inserter
        import chainmap_otel.ingest.sdk_spans
        import chainmap_otel.storage.schema
        import chainmap_otel.storage.store  # noqa: F401

        if not url.startswith("chdb:"):
            import clickhouse_connect  # noqa: F401


def _call(ref: weakref.WeakMethod[Any]) -> None:
    method = ref()
    if method is not None:
        method()


def _to_arrow(spans: Sequence[ReadableSpan]) -> tuple[Any, int, list[str]]:
    """The storable spans as one Arrow table, how many were not, and why (a few of them).

    The whole batch converts in one pass; only when that fails is each span
    converted alone, so one bad span costs only itself.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from chainmap_otel.ingest.sdk_spans import spans_to_arrow

    reasons: list[str] = []
    try:
        table = spans_to_arrow(spans)
    except Exception:
        tables = []
        for span in spans:
            try:
                tables.append(spans_to_arrow([span]))
            except Exception as exc:
                if len(reasons) < _LOGGED_INVALID:
                    reasons.append(f"span {span.name[:80]!r}: {str(exc)[:120]}")
        table = pa.concat_tables(tables).combine_chunks() if tables else None
    invalid = len(spans) - (table.num_rows if table is not None else 0)
    if table is None:
        return None, invalid, reasons
    start = table.column("Timestamp").cast(pa.int64())
    end = pc.add(start, table.column("Duration").cast(pa.int64()))
    ok = pc.and_(pc.greater(start, 0), pc.less_equal(end, MAX_TIME_NANOS))
    kept = table.filter(ok)
    outside = table.num_rows - kept.num_rows
    if outside:
        reasons.append(f"{outside} span(s) start before 1970 or end after 2106-02-07")
    return kept, invalid + outside, reasons
