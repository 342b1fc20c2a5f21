"""The bounded queue between the OTLP receivers and the trace store.

Receivers decode a request, then hand its rows to :class:`SpanWriter` without
waiting for ClickHouse; one writer thread drains the queue and inserts in
batches. This is what lets many processes share one embedded chDB store: only
the process running ``chainmap serve`` opens it, everyone else sends OTLP.

When the queue is full :meth:`SpanWriter.offer` refuses the whole request, so
receivers answer 429 / RESOURCE_EXHAUSTED and the client retries later.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["SpanWriter", "WriterClosedError", "WriterStats"]

Row = tuple[Any, ...]
InsertRows = Callable[[list[Row]], object]

#: Store insert attempts per batch before its spans are dropped (and counted).
INSERT_ATTEMPTS = 4
#: First retry delay in seconds; doubled after each failed attempt.
RETRY_BACKOFF_S = 0.5


class WriterClosedError(RuntimeError):
    """The writer is shutting down and accepts no more spans."""


@dataclass(frozen=True, slots=True)
class WriterStats:
    queued_spans: int
    accepted_spans: int
    written_spans: int
    dropped_spans: int
    refused_requests: int


class SpanWriter:
    """A bounded span queue drained into the store by one background thread.

    ``insert`` receives lists of rows in ``TRACE_COLUMNS`` order (normally
    ``TraceStore.insert_spans``); it only ever runs on the writer thread. A batch
    is inserted once ``batch_spans`` are queued or ``linger_s`` after its first
    request arrived, whichever comes first (at once when flushing or closing).
    """

    def __init__(
        self,
        insert: InsertRows,
        *,
        max_queued_spans: int = 100_000,
        batch_spans: int = 20_000,
        linger_s: float = 0.5,
        name: str = "chainmap-span-writer",
    ) -> None:
        if max_queued_spans < 1:
            raise ValueError(f"max_queued_spans must be >= 1, got {max_queued_spans}")
        if batch_spans < 1:
            raise ValueError(f"batch_spans must be >= 1, got {batch_spans}")
        if linger_s < 0:
            raise ValueError(f"linger_s must be >= 0, got {linger_s}")
        self._insert = insert
        self._max_queued = max_queued_spans
        self._batch_spans = batch_spans
        self._linger = linger_s
        self._flushing = 0
        self._queue: collections.deque[Sequence[Row]] = collections.deque()
        self._queued = 0
        self._in_flight = 0
        self._cond = threading.Condition()
        self._closing = False
        self._accepted = 0
        self._written = 0
        self._dropped = 0
        self._refused = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @property
    def max_queued_spans(self) -> int:
        return self._max_queued

    def start(self) -> None:
        self._thread.start()

    def offer(self, rows: Sequence[Row]) -> bool:
        """Queue all of ``rows`` or none of them; False when the queue is full.

        A request larger than the whole queue is taken when the queue is empty,
        so it is never refused forever.
        """
        if not rows:
            if self._closing:
                raise WriterClosedError("the span writer is shutting down")
            return True
        with self._cond:
            if self._closing:
                raise WriterClosedError("the span writer is shutting down")
            if self._queued and self._queued + len(rows) > self._max_queued:
                self._refused += 1
                return False
            self._queue.append(rows)
            self._queued += len(rows)
            self._accepted += len(rows)
            self._cond.notify_all()
        return True

    def stats(self) -> WriterStats:
        with self._cond:
            return WriterStats(
                queued_spans=self._queued + self._in_flight,
                accepted_spans=self._accepted,
                written_spans=self._written,
                dropped_spans=self._dropped,
                refused_requests=self._refused,
            )

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every accepted span is written or dropped; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._flushing += 1
            self._cond.notify_all()
            try:
                while self._queued or self._in_flight:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._cond.wait(remaining)
            finally:
                self._flushing -= 1
        return True

    def close(self, timeout: float | None = 30.0) -> None:
        """Refuse new spans, write what is queued, stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.error(
                    "span writer did not finish within %ss; %d queued spans are lost",
                    timeout,
                    self.stats().queued_spans,
                )

    def _take_batch(self) -> list[Row] | None:
        with self._cond:
            while not self._queue:
                if self._closing:
                    return None
                self._cond.wait()
            # Every insert makes a part (and runs the materialized views): gather
            # requests for a moment rather than inserting each small one alone.
            deadline = time.monotonic() + self._linger
            while (
                self._queued < self._batch_spans
                and not self._closing
                and not self._flushing
                and (remaining := deadline - time.monotonic()) > 0
            ):
                self._cond.wait(remaining)
            batch: list[Row] = list(self._queue.popleft())
            while self._queue and len(batch) + len(self._queue[0]) <= self._batch_spans:
                batch.extend(self._queue.popleft())
            self._queued -= len(batch)
            self._in_flight = len(batch)
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take_batch()
            if batch is None:
                return
            written = self._write(batch)
            with self._cond:
                self._in_flight = 0
                if written:
                    self._written += len(batch)
                else:
                    self._dropped += len(batch)
                self._cond.notify_all()

    def _write(self, batch: list[Row]) -> bool:
        delay = RETRY_BACKOFF_S
        for attempt in range(1, INSERT_ATTEMPTS + 1):
            try:
                self._insert(batch)
                return True
            except Exception:
                if attempt == INSERT_ATTEMPTS:
                    logger.exception(
                        "dropping %d spans after %d failed inserts into the trace store",
                        len(batch),
                        attempt,
                    )
                    return False
                logger.warning(
                    "insert of %d spans failed (attempt %d of %d); retrying in %.1fs",
                    len(batch),
                    attempt,
                    INSERT_ATTEMPTS,
                    delay,
                    exc_info=True,
                )
                with self._cond:
                    if self._closing:
                        delay = min(delay, 0.1)
                time.sleep(delay)
                delay *= 2
        return False
