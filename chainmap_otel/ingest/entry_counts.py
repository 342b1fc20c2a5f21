"""Chain entry counts into ``chainmap_entry_counts`` (schema 15): OTLP points made deltas.

A delta point is stored as it came. A cumulative point holds everything since its series
started (``start_time_unix_nano``), so what it adds is its value minus the previous point of
the same series with the same start:

* no previous point (a new series): the whole value, which is everything counted since the
  start;
* another start time, a smaller value, or other bucket bounds: the counting process
  restarted (or was reset), so again the whole value;
* a point not newer than the previous one (a retried or reordered export): nothing.

The previous point comes from an in-memory map of each series' last point, and on a miss
(serve restarted, or the map was trimmed) from the table itself: every stored cumulative row
keeps the point as received next to the increase computed from it, written by one insert,
so a serve restart, a crash after the insert, or a retry of an answered export never counts
a series twice. The computation and the insert run under one lock (the points of one series
may arrive on concurrent requests); metric volumes are small (a point per chain, service
and minute), so the request waits for its insert: a 2xx means the counts are stored.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from chainmap_otel.ingest.metric_points import DecodedPoints, EntryPoint
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.entry_counts import ENTRIES

logger = logging.getLogger(__name__)

__all__ = ["TABLE", "EntryCountStats", "EntryCountWriter"]

TABLE = "chainmap_entry_counts"
#: Series whose last point is kept in memory (a miss costs one lookup in the table).
MAX_SERIES = 100_000
_COLUMNS: dict[str, str] = {
    "Minute": "DateTime",
    "ChainId": "LowCardinality(String)",
    "ServiceName": "LowCardinality(String)",
    "Environment": "LowCardinality(String)",
    "Entries": "UInt64",
    "Errors": "UInt64",
    "DurationCount": "UInt64",
    "DurationSumMs": "Float64",
    "DurationBuckets": "Map(Float64, UInt64)",
    "Series": "UInt64",
    "SeriesStart": "DateTime64(9)",
    "PointTime": "DateTime64(9)",
    "Total": "UInt64",
    "TotalSum": "Float64",
    "TotalBounds": "Array(Float64)",
    "TotalBuckets": "Array(UInt64)",
}
_LAST_SQL = """SELECT Series,
    argMax(tuple(toUnixTimestamp64Nano(SeriesStart), toUnixTimestamp64Nano(PointTime), Total,
                 TotalSum, TotalBounds, TotalBuckets), PointTime)
FROM {db}.chainmap_entry_counts
WHERE Series IN {{series:Array(UInt64)}}
GROUP BY Series"""
_NS = 1_000_000_000


@dataclass(frozen=True)
class _Last:
    start_ns: int
    time_ns: int
    total: int
    total_sum: float
    bounds: tuple[float, ...]
    buckets: tuple[int, ...]


@dataclass(frozen=True)
class EntryCountStats:
    """What the metrics receiver did since serve started (``/metrics`` shows them)."""

    stored_points: int
    dropped_points: int
    rejected_points: int


class EntryCountWriter:
    """Stores the entry points of decoded requests in ``store``'s ``chainmap_entry_counts``."""

    def __init__(self, store: TraceStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._last: OrderedDict[int, _Last] = OrderedDict()
        self._stored = self._dropped = self._rejected = 0

    def stats(self) -> EntryCountStats:
        return EntryCountStats(self._stored, self._dropped, self._rejected)

    def write(self, decoded: DecodedPoints) -> int:
        """Store ``decoded``'s points; the rows inserted. A store failure raises
        :class:`~chainmap_otel.errors.StoreError` and leaves nothing counted."""
        with self._lock:
            self._dropped += decoded.dropped
            self._rejected += decoded.rejected
            if not decoded.points:
                return 0
            self._load_missing(decoded.points)
            rows: dict[str, list[Any]] = {name: [] for name in _COLUMNS}
            seen: dict[int, _Last] = {}
            for point in sorted(decoded.points, key=lambda p: p.time_ns):
                if point.cumulative:
                    previous = seen.get(point.series) or self._last.get(point.series)
                    now = _Last(
                        point.start_ns,
                        point.time_ns,
                        point.value,
                        point.sum_ms,
                        point.bounds,
                        point.buckets,
                    )
                    if previous is not None and point.time_ns <= previous.time_ns:
                        continue
                    seen[point.series] = now
                    delta = _increase(point, previous)
                else:
                    delta = point
                _append(rows, point, delta)
            count = self._store.insert_columns(TABLE, rows, list(_COLUMNS.values()))
            for series, last in seen.items():
                self._last[series] = last
                self._last.move_to_end(series)
            while len(self._last) > MAX_SERIES:
                self._last.popitem(last=False)
            self._stored += count
            return count

    def _load_missing(self, points: list[EntryPoint]) -> None:
        missing = sorted({p.series for p in points if p.cumulative and p.series not in self._last})
        if not missing:
            return
        result = self._store.query(_LAST_SQL.format(db=self._store.database), {"series": missing})
        for series, (start, time, total, total_sum, bounds, buckets) in result.result_rows:
            self._last[int(series)] = _Last(
                int(start),
                int(time),
                int(total),
                float(total_sum),
                tuple(bounds),
                tuple(buckets),
            )


def _increase(point: EntryPoint, previous: _Last | None) -> EntryPoint:
    """What a cumulative point adds to its series' previous point (see the module doc)."""
    if (
        previous is None
        or previous.start_ns != point.start_ns
        or point.value < previous.total
        or point.bounds != previous.bounds
        or len(point.buckets) != len(previous.buckets)
        or any(now < before for now, before in zip(point.buckets, previous.buckets, strict=True))
    ):
        return point
    return EntryPoint(
        point.instrument,
        False,
        point.series,
        point.start_ns,
        point.time_ns,
        point.chain_id,
        point.service,
        point.environment,
        point.error,
        point.value - previous.total,
        max(point.sum_ms - previous.total_sum, 0.0),
        point.bounds,
        tuple(now - before for now, before in zip(point.buckets, previous.buckets, strict=True)),
    )


def _append(rows: dict[str, list[Any]], point: EntryPoint, delta: EntryPoint) -> None:
    counter = point.instrument == ENTRIES
    rows["Minute"].append(point.time_ns // _NS // 60 * 60)
    rows["ChainId"].append(point.chain_id)
    rows["ServiceName"].append(point.service)
    rows["Environment"].append(point.environment)
    rows["Entries"].append(delta.value if counter else 0)
    rows["Errors"].append(delta.value if counter and point.error else 0)
    rows["DurationCount"].append(0 if counter else delta.value)
    rows["DurationSumMs"].append(0.0 if counter else delta.sum_ms)
    buckets: dict[float, int] = {}
    if not counter:
        for bound, count in zip((*point.bounds, float("inf")), delta.buckets, strict=False):
            if count:
                buckets[float(bound)] = count
    rows["DurationBuckets"].append(buckets)
    rows["Series"].append(point.series if point.cumulative else 0)
    rows["SeriesStart"].append(point.start_ns if point.cumulative else 0)
    rows["PointTime"].append(point.time_ns)
    rows["Total"].append(point.value if point.cumulative else 0)
    rows["TotalSum"].append(point.sum_ms if point.cumulative else 0.0)
    rows["TotalBounds"].append(list(point.bounds) if point.cumulative else [])
    rows["TotalBuckets"].append(list(point.buckets) if point.cumulative else [])
