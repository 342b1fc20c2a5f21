"""The bounded, durable queue between the OTLP receivers and the trace store.

Receivers decode and validate a request into an Arrow table, then hand it to
:meth:`SpanWriter.offer`; with a :class:`~chainmap_otel.ingest.wal.WriteAheadLog`
the table is logged before ``offer`` returns, so the receiver's 2xx means the
spans survive a crash. One writer thread drains the queue in batches through
the shared :class:`~chainmap_otel.ingest.inserter.BatchInserter` (partition-safe
groups, deduplication tokens, bisection of bad spans) and records each commit
in the log. On start the log's uncommitted requests are queued again, the
batch that was in flight first, with its original token.

The queue is bounded by spans and by bytes (the Arrow buffers held in memory):
when full, :meth:`SpanWriter.offer` refuses the whole request and receivers
answer 429 / RESOURCE_EXHAUSTED. :class:`RequestBudget` bounds the bytes of
requests being read and decoded at the same time.

The writer thread outlives every failure: an error recording a batch in the
log, inserting it or anything unexpected is logged, reported by
:meth:`SpanWriter.problems` and retried with backoff on the same batch, so it
resumes by itself once the disk or the store is back and nothing acknowledged
is skipped.
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from chainmap_otel.ingest.engine_decode import decode_bodies, engine_spans
from chainmap_otel.ingest.inserter import (
    BatchInserter,
    BatchOutcome,
    InsertBodies,
    concat,
    senders_of,
)
from chainmap_otel.ingest.wal import WalFullError, WalRecord, WriteAheadLog
from chainmap_otel.storage.arrow import from_ipc, to_ipc

logger = logging.getLogger(__name__)

__all__ = ["RequestBudget", "SpanWriter", "WriterClosedError", "WriterStats"]

#: A pause in arrivals that ends a batch's linger early.
QUIET_S = 0.1
#: Backoff between attempts at a batch the writer failed to handle.
RETRY_BACKOFF_S = 0.5
MAX_RETRY_BACKOFF_S = 30.0
#: Attempts at a batch failing with an unexpected error before it is dropped (counted, logged).
#: Disk and memory errors are retried without limit.
MAX_UNEXPECTED_ATTEMPTS = 5


class WriterClosedError(RuntimeError):
    """The writer is shutting down and accepts no more spans."""


@dataclass(frozen=True, slots=True)
class WriterStats:
    queued_spans: int
    queued_bytes: int
    accepted_spans: int
    written_spans: int
    dropped_spans: int
    refused_requests: int
    #: Stored although their insert failed in a materialized view (aggregates miss them).
    partially_stored_spans: int = 0
    #: Seconds since the oldest acknowledged, not yet stored request arrived (0: none).
    oldest_unstored_age_s: float = 0.0
    #: Bytes of the write-ahead log: unstored records, and its files on disk.
    wal_pending_bytes: int = 0
    wal_disk_bytes: int = 0


@dataclass(slots=True)
class _Entry:
    seq: int
    #: The request's spans: decoded (an Arrow table) or as it came (an OTLP protobuf body
    #: the engine decodes, see :mod:`~chainmap_otel.ingest.engine_decode`).
    table: pa.Table | None
    body: bytes | None
    spans: int
    sender: str
    size: int
    received: float  # wall clock


class RequestBudget:
    """Bytes of request bodies being read and decoded at once, shared by both receivers."""

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
        self.max_bytes = max_bytes
        self._used = 0
        self._lock = threading.Lock()

    def acquire(self, size: int) -> bool:
        """Take ``size`` bytes; False when that would pass the bound (unless nothing is taken)."""
        with self._lock:
            if self._used and self._used + size > self.max_bytes:
                return False
            self._used += size
            return True

    def release(self, size: int) -> None:
        with self._lock:
            self._used = max(0, self._used - size)


class SpanWriter:
    """A bounded span queue drained into the store by one background thread.

    A batch is inserted once ``batch_spans`` are queued, ``linger_s`` after its
    first request arrived, or when no request came for ``quiet_s``, whichever
    comes first (at once when flushing or closing). Without ``wal`` a 2xx only means queued in memory. With ``insert_bodies``
    the writer takes OTLP protobuf bodies as they came (:meth:`offer_body`) and has the
    engine decode each batch's bodies in one insert.
    """

    def __init__(
        self,
        inserter: BatchInserter,
        *,
        wal: WriteAheadLog | None = None,
        max_queued_spans: int = 100_000,
        max_queued_bytes: int = 256 * 1024 * 1024,
        batch_spans: int = 50_000,
        linger_s: float = 1.0,
        quiet_s: float = QUIET_S,
        name: str = "chainmap-span-writer",
        insert_bodies: InsertBodies | None = None,
    ) -> None:
        if max_queued_spans < 1:
            raise ValueError(f"max_queued_spans must be >= 1, got {max_queued_spans}")
        if max_queued_bytes < 1:
            raise ValueError(f"max_queued_bytes must be >= 1, got {max_queued_bytes}")
        if batch_spans < 1:
            raise ValueError(f"batch_spans must be >= 1, got {batch_spans}")
        if linger_s < 0 or quiet_s < 0:
            raise ValueError(f"linger_s and quiet_s must be >= 0, got {linger_s}, {quiet_s}")
        self._inserter = inserter
        self._insert_bodies = insert_bodies
        self._wal = wal
        self._max_queued = max_queued_spans
        self._max_bytes = max_queued_bytes
        self._batch_spans = batch_spans
        self._linger = linger_s
        self._quiet = quiet_s
        self._last_arrival = 0.0  # monotonic
        self._flushing = 0
        self._queue: collections.deque[_Entry] = collections.deque()
        self._queued = 0
        self._queued_bytes = 0
        self._in_flight = 0
        self._cond = threading.Condition()
        self._closing = False
        self._accepted = 0
        self._written = 0
        self._dropped = 0
        self._partial = 0
        self._refused = 0
        self._seq = itertools.count(1)
        self._instance = uuid.uuid4().hex
        self._replay: tuple[int, int] | None = None
        self._batch_received = 0.0  # the in-flight batch's oldest request
        self._failure = ""  # why the last attempt at a batch failed; '' once one succeeds
        self._stage = ""
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @property
    def max_queued_spans(self) -> int:
        return self._max_queued

    @property
    def max_queued_bytes(self) -> int:
        return self._max_bytes

    @property
    def takes_bodies(self) -> bool:
        """Whether :meth:`offer_body` takes OTLP bodies for the engine to decode."""
        return self._insert_bodies is not None

    @property
    def durable(self) -> bool:
        """Whether an accepted request is in the write-ahead log."""
        return self._wal is not None

    def start(self) -> None:
        """Queue what the write-ahead log holds from the last run, then start draining."""
        if self._wal is not None:
            for record in self._wal.open():
                entry = self._replayed(record)
                self._queue.append(entry)
                self._queued += entry.spans
                self._queued_bytes += entry.size
            self._replay = self._wal.inflight
        self._thread.start()

    def _replayed(self, record: WalRecord) -> _Entry:
        payload = record.payload
        body: bytes | None = None
        if payload[:4] == _ARROW_STREAM:
            table: pa.Table | None = from_ipc(payload)
        else:
            # An OTLP body (never starts with 0xff: wire type 7 does not exist).
            count = engine_spans(payload) if self._insert_bodies is not None else None
            if count is not None:
                body, table = payload, None
            else:
                table = decode_bodies([payload])
        if table is not None:
            count = table.num_rows
            size = table.nbytes
        else:
            size = len(payload)
        assert count is not None
        return _Entry(record.seq, table, body, count, record.sender, size, record.written_at)

    def offer(self, table: pa.Table, sender: str = "", ipc: bytes | None = None) -> bool:
        """Queue (and log) all of ``table`` or none of it; False when the queue is full.

        ``ipc`` is the table's Arrow IPC form when the caller has it (a decode
        worker made it), saving its re-encoding for the log. A request larger
        than the whole queue is taken when the queue is empty, so it is never
        refused forever. Raises ``OSError`` when the log cannot be written; the
        request is then not acknowledged (and counted as refused).
        """
        return self._offer(
            table, None, table.num_rows, table.nbytes, sender, lambda: ipc or to_ipc(table)
        )

    def offer_body(self, body: bytes, spans: int, sender: str = "") -> bool:
        """Queue (and log) an OTLP protobuf body of ``spans`` spans, all checked by
        :func:`~chainmap_otel.ingest.engine_decode.engine_spans`, as :meth:`offer` does a
        table; the log keeps the body as it came."""
        if self._insert_bodies is None:
            raise ValueError("this span writer takes decoded tables only (no insert_bodies)")
        return self._offer(None, body, spans, len(body), sender, lambda: body)

    def _offer(
        self,
        table: pa.Table | None,
        body: bytes | None,
        count: int,
        size: int,
        sender: str,
        payload: Callable[[], bytes],
    ) -> bool:
        if self._closing:
            raise WriterClosedError("the span writer is shutting down")
        if not count:
            return True
        with self._cond:
            if self._closing:
                raise WriterClosedError("the span writer is shutting down")
            if self._queued and (
                self._queued + count > self._max_queued
                or self._queued_bytes + size > self._max_bytes
            ):
                self._refused += 1
                return False
            # Reserved now, so concurrent requests cannot overshoot while this one is logged.
            self._queued += count
            self._queued_bytes += size

        def entry(seq: int) -> _Entry:
            return _Entry(seq, table, body, count, sender, size, time.time())

        if self._wal is None:
            self._enqueue(entry(next(self._seq)))
            return True
        logged: list[int] = []

        def on_logged(seq: int) -> None:
            logged.append(seq)
            self._enqueue(entry(seq))

        try:
            self._wal.append(payload(), sender, on_logged)
        except WalFullError:
            self._unreserve(count, size, refused=True)
            return False
        except OSError:
            if logged:
                # Written but not flushed: it will be stored, yet the sender is not told so.
                with self._cond:
                    self._refused += 1
            else:
                self._unreserve(count, size, refused=True)
            raise
        except BaseException:
            if not logged:
                self._unreserve(count, size, refused=False)
            raise
        return True

    def _enqueue(self, entry: _Entry) -> None:
        # Under the log's lock when logging: the queue stays in sequence order.
        with self._cond:
            self._queue.append(entry)
            self._last_arrival = time.monotonic()
            self._accepted += entry.spans
            self._cond.notify_all()

    def _unreserve(self, count: int, size: int, *, refused: bool) -> None:
        with self._cond:
            self._queued -= count
            self._queued_bytes -= size
            if refused:
                self._refused += 1

    def problems(self) -> list[str]:
        """What keeps acknowledged spans from being stored or requests from being logged."""
        found = []
        if self._wal is not None and (wal_problem := self._wal.problem()):
            found.append(wal_problem)
        if self._failure:
            found.append(self._failure)
        if self._inserter.outage:
            found.append(f"the trace store is unavailable, retrying: {self._inserter.outage}")
        if self._thread.ident is not None and not self._thread.is_alive() and not self._closing:
            found.append("the span writer thread stopped; restart chainmap serve")
        return found

    def stats(self) -> WriterStats:
        wal_pending = self._wal.pending_bytes if self._wal is not None else 0
        wal_disk = self._wal.disk_bytes if self._wal is not None else 0
        with self._cond:
            oldest = [entry.received for entry in itertools.islice(self._queue, 1)]
            if self._in_flight:
                oldest.append(self._batch_received)
            return WriterStats(
                queued_spans=self._queued + self._in_flight,
                queued_bytes=self._queued_bytes,
                accepted_spans=self._accepted,
                written_spans=self._written,
                dropped_spans=self._dropped,
                refused_requests=self._refused,
                partially_stored_spans=self._partial,
                oldest_unstored_age_s=max(0.0, time.time() - min(oldest)) if oldest else 0.0,
                wal_pending_bytes=wal_pending,
                wal_disk_bytes=wal_disk,
            )

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every accepted span is written or dropped; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._flushing += 1
            self._cond.notify_all()
            try:
                while self._queue or self._in_flight:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._cond.wait(remaining)
            finally:
                self._flushing -= 1
        return True

    def close(self, timeout: float | None = 30.0) -> None:
        """Refuse new spans, write what is queued, stop the thread.

        With a write-ahead log an unreachable store does not hold shutdown: what
        is not stored stays in the log for the next start.
        """
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._wal is not None:
            self._inserter.stop()
        if self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                self._inserter.stop()
                self._thread.join(5.0)
        left = self.stats().queued_spans
        if self._wal is not None:
            if left:
                logger.warning(
                    "%d acknowledged spans stay in the write-ahead log %s for the next start",
                    left,
                    self._wal.directory,
                )
            self._wal.close()
        elif left:
            logger.error("span writer stopped with %d queued spans not stored", left)

    def _token(self, first: int, last: int) -> str:
        if self._wal is not None:
            return self._wal.token(first, last)
        return f"chainmap-serve-{self._instance}-{first}-{last}"

    def _take_batch(self) -> list[_Entry] | None:
        with self._cond:
            if self._replay is not None:
                first, last = self._replay
                self._replay = None
                batch = []
                while self._queue and self._queue[0].seq <= last:
                    entry = self._queue.popleft()
                    if entry.seq >= first:
                        batch.append(entry)
                if batch:
                    return self._in_flight_now(batch)
            while not self._queue:
                if self._closing:
                    return None
                self._cond.wait()
            # Every insert makes a part (and runs the materialized views): gather
            # requests for a moment rather than inserting each small one alone.
            # Until senders pause: a burst's tail does not wait for the whole linger.
            deadline = time.monotonic() + self._linger
            while self._queued < self._batch_spans and not self._closing and not self._flushing:
                now = time.monotonic()
                remaining = min(deadline - now, self._last_arrival + self._quiet - now)
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            batch = [self._queue.popleft()]
            rows = batch[0].spans
            while self._queue and rows + self._queue[0].spans <= self._batch_spans:
                entry = self._queue.popleft()
                rows += entry.spans
                batch.append(entry)
            return self._in_flight_now(batch)

    def _in_flight_now(self, batch: list[_Entry]) -> list[_Entry]:
        rows = sum(entry.spans for entry in batch)
        self._queued -= rows
        self._queued_bytes -= sum(entry.size for entry in batch)
        self._in_flight = rows
        self._batch_received = min(entry.received for entry in batch)
        return batch

    def _run(self) -> None:
        batch: list[_Entry] | None = None
        attempts = 0
        delay = RETRY_BACKOFF_S
        while True:
            try:
                if batch is None:
                    batch = self._take_batch()
                    if batch is None:
                        return
                if not self._write_batch(batch):
                    self._hand_back(batch)
                    return
            except Exception as exc:
                attempts += 1
                assert batch is not None  # _take_batch raises nothing but a bug
                if not self._retry_batch(batch, exc, attempts, delay):
                    self._hand_back(batch)
                    return
                if attempts > MAX_UNEXPECTED_ATTEMPTS and not _retryable(exc):
                    self._give_up(batch)
                else:
                    delay = min(delay * 2, MAX_RETRY_BACKOFF_S)
                    continue
            if self._failure:
                logger.info("the span writer stores spans again")
            batch, attempts, delay, self._failure = None, 0, RETRY_BACKOFF_S, ""

    def _write_batch(self, batch: list[_Entry]) -> bool:
        """Log, insert and commit one batch; False when stopping with the store down."""
        first, last = batch[0].seq, batch[-1].seq
        if self._wal is not None:
            # Before every attempt: a restart must replay exactly this batch.
            self._stage = f"record a batch in the write-ahead log {self._wal.directory}"
            self._wal.begin(first, last)
        self._stage = "insert a batch"
        token = self._token(first, last)
        outcome = BatchOutcome()
        decoded = [entry for entry in batch if entry.table is not None]
        if decoded:
            outcome = self._inserter.write(
                concat([entry.table for entry in decoded if entry.table is not None]),
                token,
                senders_of([(entry.spans, entry.sender) for entry in decoded]),
            )
        bodies = [entry for entry in batch if entry.body is not None]
        if bodies and not outcome.unfinished:
            insert = self._insert_bodies
            assert insert is not None  # bodies are only queued with it
            of_bodies = self._inserter.write_bodies(
                [entry.body for entry in bodies if entry.body is not None],
                token + "-e",
                [(entry.spans, entry.sender) for entry in bodies],
                insert,
                decode_bodies,
            )
            outcome.merge(of_bodies)
        if outcome.unfinished:
            return False
        self._finish(batch, outcome)
        return True

    def _finish(self, batch: list[_Entry], outcome: BatchOutcome) -> None:
        with self._cond:
            self._in_flight = 0
            self._written += outcome.written
            self._dropped += outcome.dropped
            self._partial += outcome.partial
            self._cond.notify_all()
        if self._wal is not None:
            try:
                self._wal.commit(batch[-1].seq)
            except OSError:
                # Not fatal: the next batch's begin records it; a restart before that
                # replays this one under its token, which the store drops.
                logger.exception("cannot record a commit in %s", self._wal.directory)

    def _retry_batch(
        self, batch: list[_Entry], exc: Exception, attempts: int, delay: float
    ) -> bool:
        """Log the failure and wait ``delay``; False when the writer is stopping meanwhile."""
        where = self._stage
        self._failure = f"the span writer cannot {where}, retrying: {exc}"
        if attempts == 1 or attempts % 10 == 0:
            logger.error(
                "the span writer cannot %s (attempt %d, next in %.1fs): %s",
                where,
                attempts,
                delay,
                exc,
                exc_info=attempts == 1,
            )
        with self._cond:
            if not self._closing:
                self._cond.wait(delay)
            return not self._closing

    def _give_up(self, batch: list[_Entry]) -> None:
        rows = sum(entry.spans for entry in batch)
        logger.error(
            "dropping a batch of %d requests (%d spans) the writer failed %d times to handle",
            len(batch),
            rows,
            MAX_UNEXPECTED_ATTEMPTS + 1,
        )
        self._finish(batch, BatchOutcome(dropped=rows))

    def _hand_back(self, batch: list[_Entry]) -> None:
        # Stopping before the batch was stored: the log keeps it for the next start.
        with self._cond:
            self._in_flight = 0
            self._queued += sum(entry.spans for entry in batch)
            self._cond.notify_all()


#: How an Arrow IPC stream (a decoded request in the log) begins: the continuation marker.
_ARROW_STREAM = b"\xff\xff\xff\xff"


def _retryable(exc: Exception) -> bool:
    """Disk and memory trouble passes; anything else may be the batch itself."""
    return isinstance(exc, OSError | MemoryError)
