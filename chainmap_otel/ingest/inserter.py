"""The one insert engine of both writers: ``chainmap serve``'s span writer and the SDK exporter.

:meth:`BatchInserter.write` stores one Arrow batch of spans so that a bad span
costs only itself and a retry never stores a row twice:

* rows are split into groups of at most ``max_partitions`` days, so a batch
  spread over many days never meets ClickHouse's "Too many partitions for
  single INSERT block" (``max_partitions_per_insert_block``, 100);
* every insert carries a deduplication token derived from the batch's token,
  so repeating an insert that landed (a timeout, a crash before the commit was
  recorded) is dropped by the engine, materialized views included;
* a failed insert is told apart: when the store does not answer a probe, or
  answers with an error about itself rather than the rows (no space left on
  its disk, out of memory, too many parts), it is unavailable and the insert is
  retried with backoff until it is back (or the writer stops, then the batch is
  handed back undone); otherwise the batch itself is bad and is bisected until
  the offending spans are found; those alone are dropped, counted and logged
  with their sender.

An insert can fail after ClickHouse wrote the ``otel_traces`` part (a
materialized view failing on the block): re-inserting halves would then store
those rows twice. Before bisecting, ``landed`` asks the store whether the
block's spans are there; if so the block counts as stored (its aggregates are
incomplete, which is logged) and is not inserted again.
"""

from __future__ import annotations

import bisect
import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from chainmap_otel.storage.store import TraceStore

logger = logging.getLogger(__name__)

__all__ = ["BatchInserter", "BatchOutcome", "InsertArrow", "Landed", "Probe", "store_landed"]

#: Inserts an Arrow table with a deduplication token (normally ``TraceStore.insert_arrow``).
InsertArrow = Callable[[pa.Table, str], object]
#: Raises when the store cannot be reached.
Probe = Callable[[], object]
#: Whether every span of the table is already in ``otel_traces``.
Landed = Callable[[pa.Table], bool]

#: Days per insert: below ClickHouse's default ``max_partitions_per_insert_block`` of 100.
MAX_PARTITIONS = 90
_DAY_NS = 86_400 * 10**9
#: Offending spans named per batch in the log (all are counted).
_LOGGED_DROPS = 5
#: Insert errors about the store's own state, not the rows: retried, never bisected.
#: ClickHouse codes NOT_ENOUGH_SPACE (243), MEMORY_LIMIT_EXCEEDED (241), TOO_MANY_PARTS
#: (252), CANNOT_WRITE_TO_FILE_DESCRIPTOR (75), CANNOT_FSYNC (80), CANNOT_ALLOCATE_MEMORY
#: (173), TIMEOUT_EXCEEDED (159), and the operating system's words for the same.
_STORE_TROUBLE = re.compile(
    r"\b(NOT_ENOUGH_SPACE|MEMORY_LIMIT_EXCEEDED|TOO_MANY_PARTS|CANNOT_WRITE_TO_FILE_DESCRIPTOR"
    r"|CANNOT_FSYNC|CANNOT_ALLOCATE_MEMORY|TIMEOUT_EXCEEDED)\b|No space left on device"
    r"|Disk quota exceeded|Cannot reserve .* on disk|Read-only file system",
    re.IGNORECASE,
)

#: Errors that share a code with store trouble but are about the rows: "Too many partitions
#: for single INSERT block" is TOO_MANY_PARTS (252) too. Only the engine-decoded path can
#: meet it (its batches are not split by day before the insert); it falls back to Python.
_ROWS_TROUBLE = re.compile(r"Too many partitions for single INSERT block", re.IGNORECASE)


@dataclass
class BatchOutcome:
    """What one :meth:`BatchInserter.write` did: spans stored and dropped, or not finished."""

    written: int = 0
    dropped: int = 0
    #: Stored in ``otel_traces`` although the insert failed (a materialized view refused).
    partial: int = 0
    #: True when the writer stopped while the store was down: nothing more was tried.
    unfinished: bool = False
    reasons: list[str] = field(default_factory=list)

    def merge(self, other: BatchOutcome) -> None:
        self.written += other.written
        self.dropped += other.dropped
        self.partial += other.partial
        self.unfinished = self.unfinished or other.unfinished
        self.reasons.extend(other.reasons[: max(0, _LOGGED_DROPS - len(self.reasons))])


#: Inserts request bodies under a deduplication token, the engine decoding them.
InsertBodies = Callable[[Sequence[bytes], str], object]
#: Decodes request bodies in Python into one Arrow table.
DecodeBodies = Callable[[Sequence[bytes]], pa.Table]


class _Stopped(Exception):
    pass


class BatchInserter:
    """Partition-safe, idempotent, failure-isolating inserts of span batches.

    ``stopping`` ends the waits for an unreachable store at once (shutdown,
    force_flush with a deadline); ``backoff_s``/``max_backoff_s`` pace the
    retries while it is down.
    """

    def __init__(
        self,
        insert: InsertArrow,
        probe: Probe,
        *,
        stopping: threading.Event | None = None,
        landed: Landed | None = None,
        max_partitions: int = MAX_PARTITIONS,
        backoff_s: float = 0.1,
        max_backoff_s: float = 5.0,
    ) -> None:
        if max_partitions < 1:
            raise ValueError(f"max_partitions must be >= 1, got {max_partitions}")
        self._insert = insert
        self._probe = probe
        self._landed = landed
        self.stopping = stopping if stopping is not None else threading.Event()
        self._max_partitions = max_partitions
        self._backoff = backoff_s
        self._max_backoff = max_backoff_s
        self._wake = threading.Event()
        self.last_error = ""
        #: Why the store is unavailable while an insert waits for it ('' otherwise).
        self.outage = ""

    def wake(self) -> None:
        """Cut the current retry wait short (force_flush: try again now)."""
        self._wake.set()

    def stop(self) -> None:
        """Give up waiting for an unreachable store: the batch being written is handed back."""
        self.stopping.set()
        self._wake.set()

    def write(
        self, table: pa.Table, token: str, senders: Sequence[tuple[int, str]] = ()
    ) -> BatchOutcome:
        """Store ``table`` under ``token``; ``senders`` maps row offsets to who sent them.

        ``senders`` holds ``(first row, sender)`` pairs sorted by row. Never raises
        for store errors; ``unfinished`` says the store was down when the writer
        stopped, so the caller keeps the batch.
        """
        outcome = BatchOutcome()
        starts = [start for start, _ in senders]
        names = [name for _, name in senders]

        def sender_of(row: int) -> str:
            index = bisect.bisect_right(starts, row) - 1
            return names[index] if index >= 0 else "unknown sender"

        try:
            groups = _partition_groups(table, self._max_partitions)
            for index, (rows, offsets) in enumerate(groups):
                group_token = token if len(groups) == 1 else f"{token}-p{index}"
                self._write_group(rows, offsets, group_token, outcome, sender_of)
        except _Stopped:
            outcome.unfinished = True
        return outcome

    def write_bodies(
        self,
        bodies: Sequence[bytes],
        token: str,
        parts: Sequence[tuple[int, str]],
        insert: InsertBodies,
        decode: DecodeBodies,
    ) -> BatchOutcome:
        """Store OTLP request bodies with one insert the engine decodes; ``parts`` holds
        ``(spans, sender)`` per body.

        When the store refuses the insert (not an outage), the bodies are decoded in
        Python and written as :meth:`write` writes a table, so one bad span still costs
        only itself (and a batch over too many days is split by partition).
        """
        spans = sum(count for count, _ in parts)
        outcome = BatchOutcome()
        try:
            error = self._insert_until_reachable(lambda: insert(bodies, token), spans)
            if error is None:
                outcome.written = spans
                return outcome
            logger.warning(
                "the store refused an insert of %d requests (%d spans) decoded by the engine; "
                "decoding them in Python to isolate the cause: %s",
                len(bodies),
                spans,
                error,
            )
            table = decode(bodies)
            if self._has_landed(table):
                outcome.written = outcome.partial = table.num_rows
                logger.error(
                    "an insert of %d spans failed after they were stored; not inserting them "
                    "again, so chainmap's aggregates may miss them: %s",
                    table.num_rows,
                    error,
                )
                return outcome
        except _Stopped:
            outcome.unfinished = True
            return outcome
        return self.write(table, f"{token}-py", senders_of(parts))

    def _write_group(
        self,
        table: pa.Table,
        offsets: pa.Array | None,
        token: str,
        outcome: BatchOutcome,
        sender_of: Callable[[int], str],
    ) -> None:
        # Iterative bisection: (table, offsets of its rows in the batch or None for 0.., token).
        work: list[tuple[pa.Table, int, pa.Array | None, str]] = [(table, 0, offsets, token)]
        while work:
            part, base, rows, part_token = work.pop()
            error = self._insert_until_reachable(
                lambda: self._insert(part, part_token),  # noqa: B023 - called at once
                part.num_rows,
            )
            if error is None:
                outcome.written += part.num_rows
                continue
            if self._has_landed(part):
                outcome.written += part.num_rows
                outcome.partial += part.num_rows
                logger.error(
                    "an insert of %d spans failed after they were stored; not inserting them "
                    "again, so chainmap's aggregates may miss them: %s",
                    part.num_rows,
                    error,
                )
                continue
            if part.num_rows == 1:
                row = int(rows[0].as_py()) if rows is not None else base
                self._drop(outcome, row, error, sender_of)
                continue
            half = part.num_rows // 2
            left_rows = rows.slice(0, half) if rows is not None else None
            right_rows = rows.slice(half) if rows is not None else None
            # Right first onto the stack, so the left half is inserted first.
            work.append((part.slice(half), base + half, right_rows, f"{part_token}-r"))
            work.append((part.slice(0, half), base, left_rows, f"{part_token}-l"))

    def _insert_until_reachable(self, insert: Callable[[], object], spans: int) -> str | None:
        """None once ``insert`` ran; the error text when the store is up but refuses the rows."""
        delay = self._backoff
        while True:
            try:
                insert()
            except Exception as exc:
                error = " ".join(str(exc).split())[:500]
            else:
                if self.last_error:
                    logger.info("the trace store accepts inserts again")
                self.last_error = self.outage = ""
                return None
            self.last_error = error
            if not self._unavailable(error):
                self.outage = ""
                return error
            logger.warning(
                "trace store unavailable, retrying an insert of %d spans in %.1fs: %s",
                spans,
                delay,
                error,
            )
            self.outage = error
            if self.stopping.is_set():
                raise _Stopped from None
            if self._wake.wait(delay):
                self._wake.clear()
                delay = self._backoff
            else:
                delay = min(delay * 2, self._max_backoff)
            if self.stopping.is_set():
                raise _Stopped from None

    def _unavailable(self, error: str) -> bool:
        """Whether a failed insert is the store's trouble (wait) rather than the rows' (bisect)."""
        if _ROWS_TROUBLE.search(error):
            return False
        if _STORE_TROUBLE.search(error):
            return True
        try:
            self._probe()
        except Exception:
            return True
        return False

    def _has_landed(self, table: pa.Table) -> bool:
        if self._landed is None:
            return False
        try:
            return self._landed(table)
        except Exception:
            logger.warning("cannot check whether a failed insert was stored", exc_info=True)
            return False

    def _drop(
        self, outcome: BatchOutcome, row: int, error: str, sender_of: Callable[[int], str]
    ) -> None:
        outcome.dropped += 1
        reason = f"span at row {row} from {sender_of(row)}: {error}"
        if len(outcome.reasons) < _LOGGED_DROPS:
            outcome.reasons.append(reason)
            logger.error("dropped a span the trace store refuses: %s", reason)


def _partition_groups(
    table: pa.Table, max_partitions: int
) -> list[tuple[pa.Table, pa.Array | None]]:
    """The rows of ``table`` in groups of at most ``max_partitions`` days, with their offsets."""
    if table.num_rows == 0:
        return []
    nanos = table.column("Timestamp").combine_chunks().cast(pa.int64())
    days = pc.divide(nanos, _DAY_NS)
    distinct = pc.unique(days)
    if len(distinct) <= max_partitions:
        return [(table, None)]
    ordered = sorted(distinct.to_pylist())
    indices = pa.array(range(table.num_rows), pa.int64())
    groups: list[tuple[pa.Table, pa.Array | None]] = []
    for start in range(0, len(ordered), max_partitions):
        chosen = pa.array(ordered[start : start + max_partitions], days.type)
        mask = pc.is_in(days, value_set=chosen)
        groups.append((table.filter(mask), indices.filter(mask)))
    return groups


_LANDED_SQL = (
    'SELECT count() FROM "{db}"."{table}" '
    "WHERE Timestamp >= fromUnixTimestamp64Nano({{lo:Int64}}) "
    "AND Timestamp <= fromUnixTimestamp64Nano({{hi:Int64}}) "
    "AND TraceId IN {{traces:Array(String)}} AND SpanId IN {{spans:Array(String)}}"
)


def store_landed(store: TraceStore, table_name: str = "otel_traces") -> Landed:
    """A :data:`Landed` check against ``store`` (pruned by the batch's time range)."""

    def landed(table: pa.Table) -> bool:
        nanos = table.column("Timestamp").combine_chunks().cast(pa.int64())
        bounds = pc.min_max(nanos).as_py()
        parameters = {
            "lo": bounds["min"],
            "hi": bounds["max"],
            "traces": sorted(set(table.column("TraceId").to_pylist())),
            "spans": sorted(set(table.column("SpanId").to_pylist())),
        }
        sql = _LANDED_SQL.format(db=store.database, table=table_name)
        found = int(store.query(sql, parameters).result_rows[0][0])
        return found >= int(table.num_rows)

    return landed


def concat(tables: Sequence[pa.Table]) -> pa.Table:
    """One contiguous table of several batches (one insert, one part per partition)."""
    if len(tables) == 1:
        return tables[0]
    return pa.concat_tables(tables).combine_chunks()


def senders_of(parts: Sequence[tuple[int, str]]) -> list[tuple[int, str]]:
    """``(row count, sender)`` per part -> ``(first row, sender)`` for :meth:`BatchInserter.write`."""
    out: list[tuple[int, str]] = []
    row = 0
    for count, sender in parts:
        out.append((row, sender))
        row += count
    return out
