"""Rollups of closed time slices: the protocol the inferred-entry and merged-trace rollups
share (the edge rollup, keyed by classification and with an hour level, runs its own copy
in :mod:`chainmap_otel.analysis.rollups.edges`).

A rollup materialises, once, what a query would otherwise compute live for every minute it
reads. Its progress is one row of ``chainmap_rollup_state`` (``Catalog`` 0): the rollup covers
``[Since, Watermark)`` (Unix ns, whole minutes), readers read the rollup's table below the
watermark and compute live above it. A refresh cuts ``[watermark, until)`` into slices
aligned to ``slice_seconds`` (none crosses a day partition) and, for each, writes
``Pending = end``, inserts, then writes ``Watermark = end``; a refresh that finds ``Pending >
Watermark`` (a crash between the two) deletes that slice's rows and redoes it, so a re-run
never counts twice. Stretches without data are skipped, not rolled up hour by hour. Reads
never write: refreshes run in ``chainmap serve``'s background loop, ``chainmap schema apply``
and ``chainmap rollup refresh``, one refresher per store (one lock per rollup in a process).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chainmap_otel import config
from chainmap_otel.storage.store import TraceStore, validate_identifier

__all__ = ["SliceRollup", "cluster_parts", "floor_minute"]

_NS = 1_000_000_000
_MINUTE_NS = 60 * _NS

_STATE_SQL = """SELECT min(Since), max(Watermark), max(Pending)
FROM {db}.chainmap_rollup_state
WHERE Rollup = {{rollup:String}} AND Catalog = 0"""
_WRITE_STATE_SQL = """INSERT INTO {db}.chainmap_rollup_state
    (Rollup, Catalog, Since, Watermark, Pending, Updated)
SELECT {{rollup:String}}, 0, {{since:Int64}}, {{watermark:Int64}}, {{pending:Int64}}, now()
SETTINGS insert_distributed_sync = 1"""
_DELETE_STATE_SQL = """ALTER TABLE {db}.chainmap_rollup_state{local} {on_cluster}
DELETE WHERE Rollup = {{rollup:String}} AND Catalog = 0
SETTINGS mutations_sync = 2"""


def cluster_parts() -> dict[str, str]:
    """``{local}``/``{on_cluster}`` of a rollup's ALTER statements: the shard tables and
    ``ON CLUSTER`` when ``CHAINMAP_CLICKHOUSE_CLUSTER`` is set."""
    cluster = config.env_str(config.CHAINMAP_CLICKHOUSE_CLUSTER)
    if not cluster:
        return {"local": "", "on_cluster": ""}
    return {
        "local": "_local",
        "on_cluster": f"ON CLUSTER {validate_identifier(cluster, 'cluster')}",
    }


def floor_minute(ns: int) -> int:
    return ns - ns % _MINUTE_NS


@dataclass(frozen=True)
class SliceRollup:
    """One rollup of closed slices.

    ``insert`` rolls up the slice bound as ``params(start, end)``; ``delete`` (an ``ALTER
    TABLE ... DELETE`` with ``{local}``/``{on_cluster}`` and ``{{start:Int64}}``/
    ``{{end:Int64}}`` ns) removes a slice's rows; ``next_data`` is a query answering
    ``count(), first`` (ns) for the data in ``[{{start:Int64}}, {{until:Int64}})``.
    """

    name: str
    table: str
    insert: Callable[[TraceStore], str]
    params: Callable[[int, int], dict[str, Any]]
    delete: str
    next_data: str
    slice_seconds: int = 3600
    _lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    def read_state(self, store: TraceStore) -> tuple[int, int, int]:
        """``(since, watermark, pending)`` in ns (zeros before the first refresh)."""
        since, watermark, pending = store.query(
            _STATE_SQL.format(db=store.database), {"rollup": self.name}
        ).result_rows[0]
        return int(since or 0), int(watermark or 0), int(pending or 0)

    def analysis_watermark(self, store: TraceStore) -> int | None:
        """The watermark readers read the rollup below (never refreshed here); None when the
        store has no table for this rollup (an older schema version)."""
        if not store.table_exists(self.table):
            return None
        return self.read_state(store)[1]

    def refresh(self, store: TraceStore, until_ns: int, stop: threading.Event | None = None) -> int:
        """Roll up ``[watermark, until)`` (``until`` floored to a minute); returns the new
        watermark. Idempotent and cheap (one or two small queries) when nothing is due."""
        until = floor_minute(until_ns)
        insert = self.insert(store)
        with self._lock:
            since, watermark, pending = self.read_state(store)

            def run_slice(first: int, start: int, end: int) -> None:
                self._write_state(store, first, start, end)
                store.command(insert, self.params(start, end))
                self._write_state(store, first, end, end)

            if since and pending > watermark:
                self._delete(store, self.delete, {"start": watermark, "end": pending})
                run_slice(since, watermark, pending)
                watermark = pending
            start = watermark
            if not since:
                first = self._next_data(store, 0, until)
                # No data yet: start after ``until``, so readers never scan an empty past.
                since = start = until if first is None else floor_minute(first)
                if first is None:
                    self._write_state(store, since, start, start)
            slice_ns = self.slice_seconds * _NS
            while start < until:
                if stop is not None and stop.is_set():
                    break
                end = min(until, (start // slice_ns + 1) * slice_ns)
                if self._next_data(store, start, end) is None:
                    following = self._next_data(store, end, until)
                    start = until if following is None else max(end, floor_minute(following))
                    self._write_state(store, since, start, start)
                    continue
                run_slice(since, start, end)
                start = end
            return start

    def rewind(self, store: TraceStore, start_ns: int) -> bool:
        """Roll up again from ``start_ns`` (data stored there after its slice was rolled up,
        e.g. files ingested): that part's rows are deleted and the watermark moved back.
        True when the rollup had passed ``start_ns``."""
        if not store.table_exists(self.table):
            return False
        start = floor_minute(start_ns)
        with self._lock:
            since, watermark, pending = self.read_state(store)
            if not since or max(watermark, pending) <= start:
                return False
            self._delete(store, self.delete, {"start": start, "end": (2**32 - 1) * _NS})
            self._delete(store, _DELETE_STATE_SQL, {"rollup": self.name})
            self._write_state(store, min(since, start), start, start)
            return True

    def invalidate(self, store: TraceStore) -> None:
        """Drop every row and the state: the next refresh rebuilds from the oldest data."""
        if not store.table_exists(self.table):
            return
        with self._lock:
            self._delete(store, self.delete, {"start": 0, "end": (2**32 - 1) * _NS})
            self._delete(store, _DELETE_STATE_SQL, {"rollup": self.name})

    def _delete(self, store: TraceStore, template: str, params: dict[str, Any]) -> None:
        store.command(template.format(db=store.database, **cluster_parts()), params)

    def _write_state(self, store: TraceStore, since: int, watermark: int, pending: int) -> None:
        store.command(
            _WRITE_STATE_SQL.format(db=store.database),
            {"rollup": self.name, "since": since, "watermark": watermark, "pending": pending},
        )

    def _next_data(self, store: TraceStore, start_ns: int, until_ns: int) -> int | None:
        count, first = store.query(
            self.next_data.format(db=store.database), {"start": start_ns, "until": until_ns}
        ).result_rows[0]
        return int(first) if count else None
