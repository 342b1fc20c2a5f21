"""``ClickHouseSpanExporter``: SDK spans into ``otel_traces``, value for value as the Collector.

Registered as the ``chainmap_clickhouse`` traces exporter, so
``OTEL_TRACES_EXPORTER=chainmap_clickhouse opentelemetry-instrument ...`` stores
spans with no code and no Collector. The store URL comes from the argument or
``CHAINMAP_CLICKHOUSE_URL`` (default: the embedded chDB store in the data dir).

Export never raises. Spans are turned into columns at once and kept in a
bounded buffer (``CHAINMAP_EXPORT_BUFFER_SPANS``) until an insert succeeds; each
export retries with exponential backoff inside its timeout, then reports
FAILURE and keeps the spans for the next attempt. The oldest spans beyond the
buffer are dropped, counted in :attr:`ClickHouseSpanExporter.dropped_spans`
and logged with counts.

``clickhouse_connect`` (and chDB) are imported on first export only: a service
that merely tags spans never loads them.
"""

from __future__ import annotations

import gc
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, detach, set_value
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode

from chainmap_otel import config
from chainmap_otel.errors import ChainmapError
from chainmap_otel.storage.columns import attribute_text

if TYPE_CHECKING:
    from chainmap_otel.storage.store import TraceStore

logger = logging.getLogger(__name__)

#: One batch in column form: ``TRACE_COLUMNS`` order, one list per column.
Columns = list[list[Any]]

_KIND_NAMES: dict[SpanKind, str] = {
    SpanKind.INTERNAL: "Internal",
    SpanKind.SERVER: "Server",
    SpanKind.CLIENT: "Client",
    SpanKind.PRODUCER: "Producer",
    SpanKind.CONSUMER: "Consumer",
}
_STATUS_NAMES: dict[StatusCode, str] = {
    StatusCode.UNSET: "Unset",
    StatusCode.OK: "Ok",
    StatusCode.ERROR: "Error",
}


_JSON_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _text(value: Any) -> str:
    """A non-``str`` attribute value as the Collector stores it (see ``columns.attribute_text``)."""
    kind = type(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return int.__repr__(value)
    if (kind is tuple or kind is list) and float not in map(type, value):
        # The SDK keeps sequences of str/bool/int/float/None: plain JSON, as attribute_text
        # (floats excepted: Go writes 1.0 as 1 and NaN as "NaN").
        try:
            return _JSON_ENCODE(value)
        except (TypeError, ValueError):
            pass
    return attribute_text(value)


def _attribute_map(attributes: Any) -> dict[str, str]:
    if not attributes:
        return {}
    # BoundedAttributes keeps a plain dict in ``_dict``; iterating it skips the
    # Mapping ABC's per-item __getitem__.
    items = getattr(attributes, "_dict", attributes).items()
    return {k: v if type(v) is str else _text(v) for k, v in items}


def _spans_to_arrow(spans: Sequence[ReadableSpan]) -> Any:
    # pyarrow loads with the first export, not with the exporter's module.
    from chainmap_otel.storage.spanbatch import spans_to_arrow

    return spans_to_arrow(spans)


def spans_to_columns(spans: Sequence[ReadableSpan]) -> Columns:
    """Columns of ``otel_traces`` rows for ``spans`` (the exporter's hot path).

    One loop, no per-span helper calls for the common case: ids are formatted
    with ``%``, string attributes pass through, resources are converted once.
    """
    timestamps: list[int] = []
    trace_ids: list[str] = []
    span_ids: list[str] = []
    parent_ids: list[str] = []
    trace_states: list[str] = []
    names: list[str] = []
    kinds: list[str] = []
    services: list[str] = []
    resources: list[dict[str, str]] = []
    scope_names: list[str] = []
    scope_versions: list[str] = []
    attributes: list[dict[str, str]] = []
    durations: list[int] = []
    status_codes: list[str] = []
    status_messages: list[str] = []
    event_times: list[list[int]] = []
    event_names: list[list[str]] = []
    event_attributes: list[list[dict[str, str]]] = []
    link_trace_ids: list[list[str]] = []
    link_span_ids: list[list[str]] = []
    link_states: list[list[str]] = []
    link_attributes: list[list[dict[str, str]]] = []
    resource_cache: dict[int, tuple[dict[str, str], str]] = {}
    kind_names = _KIND_NAMES
    status_names = _STATUS_NAMES
    text = _text
    amap = _attribute_map
    no_events: list[Any] = []
    for span in spans:
        context = span._context
        start = span._start_time or 0
        end = span._end_time
        timestamps.append(start)
        if context is None:
            trace_ids.append("")
            span_ids.append("")
            trace_states.append("")
        else:
            trace_ids.append(f"{context.trace_id:032x}" if context.trace_id else "")
            span_ids.append(f"{context.span_id:016x}" if context.span_id else "")
            state = context.trace_state
            trace_states.append(state.to_header() if state else "")
        parent = span._parent
        parent_ids.append(f"{parent.span_id:016x}" if parent is not None else "")
        names.append(span._name)
        kinds.append(kind_names.get(span._kind, "Unspecified"))
        resource = span._resource
        cached = resource_cache.get(id(resource))
        if cached is None:
            resource_map = amap(resource.attributes if resource is not None else None)
            cached = (resource_map, resource_map.get("service.name", ""))
            resource_cache[id(resource)] = cached
        resources.append(cached[0])
        services.append(cached[1])
        scope = span._instrumentation_scope
        if scope is None:
            scope_names.append("")
            scope_versions.append("")
        else:
            scope_names.append(scope.name or "")
            scope_versions.append(scope.version or "")
        span_attributes = span._attributes
        if span_attributes:
            items = getattr(span_attributes, "_dict", span_attributes).items()
            attributes.append({k: v if type(v) is str else text(v) for k, v in items})
        else:
            attributes.append({})
        durations.append(end - start if end is not None and end > start else 0)
        status = span._status
        status_codes.append(status_names.get(status.status_code, "Unset"))
        status_messages.append(status.description or "")
        events = span._events
        if events:
            event_times.append([event.timestamp for event in events])
            event_names.append([event.name for event in events])
            event_attributes.append([amap(event.attributes) for event in events])
        else:
            event_times.append(no_events)
            event_names.append(no_events)
            event_attributes.append(no_events)
        links = span._links
        if links:
            link_trace_ids.append(
                [f"{link.context.trace_id:032x}" if link.context.trace_id else "" for link in links]
            )
            link_span_ids.append(
                [f"{link.context.span_id:016x}" if link.context.span_id else "" for link in links]
            )
            link_states.append(
                [
                    link.context.trace_state.to_header() if link.context.trace_state else ""
                    for link in links
                ]
            )
            link_attributes.append([amap(link.attributes) for link in links])
        else:
            link_trace_ids.append(no_events)
            link_span_ids.append(no_events)
            link_states.append(no_events)
            link_attributes.append(no_events)
    return [
        timestamps,
        trace_ids,
        span_ids,
        parent_ids,
        trace_states,
        names,
        kinds,
        services,
        resources,
        scope_names,
        scope_versions,
        attributes,
        durations,
        status_codes,
        status_messages,
        event_times,
        event_names,
        event_attributes,
        link_trace_ids,
        link_span_ids,
        link_states,
        link_attributes,
    ]


class ClickHouseSpanExporter(SpanExporter):
    """Writes SDK spans into the trace store's ``otel_traces`` with columnar batch inserts.

    Arguments override the environment: ``url`` (``CHAINMAP_CLICKHOUSE_URL``),
    ``buffer_spans`` (``CHAINMAP_EXPORT_BUFFER_SPANS``), ``auto_apply_schema``
    (``CHAINMAP_SCHEMA_AUTO_APPLY``), ``linger_s`` (``CHAINMAP_EXPORT_LINGER_MS``),
    ``batch_spans`` (``CHAINMAP_EXPORT_BATCH_SPANS``); ``timeout`` is the seconds one
    export may spend retrying.

    Every insert costs a fixed ~25-30 ms in ClickHouse (a part per table and the
    materialized views), ~50 us per span at the SDK's 512-span batches, so
    exports are coalesced: once the store has accepted an insert, ``export()``
    returns SUCCESS when the spans are in the bounded buffer, and a background
    thread inserts them ``linger_s`` later, or at once when ``batch_spans`` are
    waiting (then the exporting thread inserts, which paces the producer).
    ``force_flush()`` and ``shutdown()`` insert everything. Until the store has
    been reached, and again after a failed insert, ``export()`` inserts before it
    returns, so FAILURE still reaches the SDK when the store is down.
    ``linger_s=0`` makes every export insert before it returns.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        timeout: float = 10.0,
        buffer_spans: int | None = None,
        auto_apply_schema: bool | None = None,
        table: str = "otel_traces",
        linger_s: float | None = None,
        batch_spans: int | None = None,
    ) -> None:
        if linger_s is None:
            linger_s = max(0, config.env_int(config.CHAINMAP_EXPORT_LINGER_MS)) / 1000
        if batch_spans is None:
            batch_spans = max(1, config.env_int(config.CHAINMAP_EXPORT_BATCH_SPANS))
        if timeout <= 0:
            raise ValueError(f"timeout must be positive seconds, not {timeout}")
        if buffer_spans is not None and buffer_spans < 1:
            raise ValueError(f"buffer_spans must be at least 1, not {buffer_spans}")
        if linger_s < 0:
            raise ValueError(f"linger_s must be 0 or more seconds, not {linger_s}")
        if batch_spans < 1:
            raise ValueError(f"batch_spans must be at least 1, not {batch_spans}")
        self._url = url
        self._timeout = timeout
        self._buffer_limit = (
            buffer_spans
            if buffer_spans is not None
            else max(1, config.env_int(config.CHAINMAP_EXPORT_BUFFER_SPANS))
        )
        self._auto_apply = (
            auto_apply_schema
            if auto_apply_schema is not None
            else config.env_bool(config.CHAINMAP_SCHEMA_AUTO_APPLY)
        )
        self._table = table
        self._linger = linger_s
        # Never wait for more spans than the buffer may hold.
        self._batch_spans = min(batch_spans, self._buffer_limit)
        self._store: TraceStore | None = None
        self._pending: deque[Any] = deque()  # Arrow tables, oldest first
        self._pending_spans = 0
        self._pending_since = 0.0
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._flusher: threading.Thread | None = None
        self._stopped = threading.Event()
        self._last_error = ""
        #: Spans given up on: beyond the buffer while the store was down, or left at shutdown.
        self.dropped_spans = 0
        #: Spans committed to the store.
        self.exported_spans = 0

    @property
    def buffered_spans(self) -> int:
        """Spans waiting for the store to accept them."""
        return self._pending_spans

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._stopped.is_set():
            logger.warning("ClickHouseSpanExporter is shut down; %d spans not stored", len(spans))
            return SpanExportResult.FAILURE
        token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        # Building a batch allocates hundreds of thousands of acyclic objects; the cyclic
        # collector would walk them repeatedly, so it waits until we're done.
        collecting = gc.isenabled()
        gc.disable()
        try:
            # Built outside the lock: a background insert (which releases the GIL in the
            # engine) overlaps with building the next batch.
            batch = _spans_to_arrow(spans) if spans else None
            with self._lock:
                if batch is not None:
                    self._buffer(batch, len(spans))
                if self._coalescing():
                    self._wake_flusher()
                    return SpanExportResult.SUCCESS
                flushed = self._flush(time.monotonic() + self._timeout)
            return SpanExportResult.SUCCESS if flushed else SpanExportResult.FAILURE
        except Exception:
            logger.exception("ClickHouseSpanExporter failed to export %d spans", len(spans))
            return SpanExportResult.FAILURE
        finally:
            if collecting:
                gc.enable()
            detach(token)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            with self._lock:
                return self._flush(time.monotonic() + timeout_millis / 1000)
        except Exception:
            logger.exception("ClickHouseSpanExporter failed to flush")
            return False
        finally:
            detach(token)

    def shutdown(self) -> None:
        if self._stopped.is_set():
            return
        token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            with self._lock:
                try:
                    self._flush(time.monotonic() + self._timeout)
                except Exception:
                    logger.exception("ClickHouseSpanExporter failed to flush at shutdown")
                self._stopped.set()
                self._wake.notify_all()
                if self._pending_spans:
                    self._drop(self._pending_spans, "at shutdown")
                    self._pending.clear()
                    self._pending_spans = 0
                if self._store is not None:
                    self._store.close()
                    self._store = None
            flusher = self._flusher
            if flusher is not None and flusher is not threading.current_thread():
                flusher.join(self._timeout)
        finally:
            detach(token)

    # -- internals -------------------------------------------------------------------------

    def _coalescing(self) -> bool:
        """Whether export() may leave the insert to the flusher thread (lock held)."""
        return (
            self._linger > 0
            and self._store is not None
            and not self._last_error
            and self._pending_spans < self._batch_spans
        )

    def _wake_flusher(self) -> None:
        if self._flusher is None:
            self._flusher = threading.Thread(
                target=self._flush_in_background, name="chainmap-export-flusher", daemon=True
            )
            self._flusher.start()
        self._wake.notify_all()

    def _flush_in_background(self) -> None:
        token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            with self._lock:
                while not self._stopped.is_set():
                    if not self._pending or self._last_error:
                        # While the store fails, exports insert (and report) themselves.
                        self._wake.wait()
                        continue
                    due = self._pending_since + self._linger - time.monotonic()
                    if due > 0 and self._pending_spans < self._batch_spans:
                        self._wake.wait(due)
                        continue
                    try:
                        self._flush(time.monotonic() + self._timeout)
                    except Exception as exc:
                        self._last_error = f"background flush failed: {exc}"
                        logger.exception("ClickHouseSpanExporter failed to flush in background")
        finally:
            detach(token)

    def _buffer(self, batch: Any, count: int) -> None:
        if not self._pending:
            self._pending_since = time.monotonic()
        self._pending.append(batch)
        self._pending_spans += count
        excess = self._pending_spans - self._buffer_limit
        while excess > 0 and self._pending:
            oldest = self._pending[0]
            size = oldest.num_rows
            if size <= excess:
                self._pending.popleft()
                dropped = size
            else:
                self._pending[0] = oldest.slice(excess)
                dropped = excess
            self._pending_spans -= dropped
            excess -= dropped
            self._drop(dropped, f"beyond the buffer of {self._buffer_limit} spans")

    def _drop(self, count: int, why: str) -> None:
        self.dropped_spans += count
        logger.warning(
            "ClickHouseSpanExporter dropped %d spans %s (%d dropped in total); store %s: %s",
            count,
            why,
            self.dropped_spans,
            self._display_url(),
            self._last_error or "not reached",
        )

    def _flush(self, deadline: float) -> bool:
        delay = 0.05
        attempt = 0
        while self._pending:
            attempt += 1
            try:
                store = self._connected_store(deadline)
                count = store.insert_arrow(self._merged_pending(), table=self._table)
            except ChainmapError as exc:
                self._last_error = str(exc)
                if self._store is not None and not self._store.embedded:
                    self._store.close()
                    self._store = None
            else:
                self._pending.clear()
                self._pending_spans = 0
                self.exported_spans += count
                if self._last_error:
                    logger.info("ClickHouseSpanExporter reached %s again", self._display_url())
                    self._last_error = ""
                return True
            remaining = deadline - time.monotonic()
            if remaining <= delay or self._stopped.wait(delay):
                logger.warning(
                    "ClickHouseSpanExporter could not store %d spans after %d attempts "
                    "(kept for the next export): %s",
                    self._pending_spans,
                    attempt,
                    self._last_error,
                )
                return False
            delay = min(delay * 2, 2.0)
        return True

    def _merged_pending(self) -> Any:
        if len(self._pending) > 1:
            import pyarrow as pa

            merged = pa.concat_tables(self._pending).combine_chunks()
            self._pending.clear()
            self._pending.append(merged)
        return self._pending[0]

    def _connected_store(self, deadline: float) -> TraceStore:
        if self._store is None:
            from chainmap_otel.storage.schema import apply_schema, current_version, latest_version
            from chainmap_otel.storage.store import open_store

            connect_timeout = max(0.5, min(10.0, deadline - time.monotonic()))
            store = open_store(self._url, connect_timeout=connect_timeout)
            try:
                if self._auto_apply and current_version(store) < latest_version():
                    apply_schema(store)
            except BaseException:
                store.close()
                raise
            self._store = store
        return self._store

    def _display_url(self) -> str:
        if self._store is not None:
            return self._store.url_for_display
        from chainmap_otel.storage.store import mask_url

        return mask_url(self._url or config.clickhouse_url())
