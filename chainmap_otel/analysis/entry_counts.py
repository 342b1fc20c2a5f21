"""Chain entries as the services counted them, before sampling, and the traces' coverage.

The services' chainmap distro counts every entry of a chain (sampled or not) and serve
stores the counts per minute (``chainmap_entry_counts``, schema 15; see
:mod:`chainmap_otel.tagging.entry_counts` and :mod:`chainmap_otel.ingest.entry_counts`).
:func:`entry_counts` reads them for a window: per chain the entries, errors and latency
percentiles estimated from the duration histogram, and the trace coverage, the stored entry
traces over the counted entries (``0.1`` under a 10 % sampler; near 1 without sampling).

Counts are kept per minute, so the window is widened to whole minutes, and the stored
traces are counted over the same minutes. Percentiles are estimated like Prometheus'
``histogram_quantile``: linear within the bucket that holds the rank, the highest finite
bound when the rank falls in the overflow bucket.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chainmap_otel.analysis.sql import load_sql
from chainmap_otel.analysis.timewindow import TimeWindow
from chainmap_otel.storage.store import TraceStore

__all__ = ["EntryCount", "entry_counts", "estimate_quantile"]

_NS = 1_000_000_000
_HAS_ENVIRONMENT_SQL = """SELECT count() FROM system.columns
WHERE database = {db:String} AND table = 'chainmap_chain_minute' AND name = 'Environment'"""


@dataclass(frozen=True)
class EntryCount:
    """One chain's counted entries in a window (``stored``: its entry traces in the store)."""

    chain_id: str
    entries: int
    errors: int
    p50_ms: float | None
    p95_ms: float | None
    mean_ms: float | None
    stored: int

    @property
    def error_ratio(self) -> float | None:
        return self.errors / self.entries if self.entries else None

    @property
    def coverage(self) -> float | None:
        """Stored entry traces per counted entry (None when nothing was counted)."""
        return self.stored / self.entries if self.entries else None

    def to_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "entries": self.entries,
            "errors": self.errors,
            "error_ratio": self.error_ratio,
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "mean_ms": self.mean_ms,
            "stored_entries": self.stored,
            "coverage": self.coverage,
        }


def estimate_quantile(q: float, buckets: Mapping[float, int]) -> float | None:
    """The ``q`` quantile (0..1) of a histogram given as upper bound (ms, ``inf`` last) ->
    count; None when it is empty."""
    ordered = sorted((bound, count) for bound, count in buckets.items() if count > 0)
    total = sum(count for _, count in ordered)
    if total == 0:
        return None
    rank = q * total
    below, lower = 0, 0.0
    for bound, count in ordered:
        if below + count >= rank:
            if math.isinf(bound):
                return lower
            return lower + (bound - lower) * ((rank - below) / count)
        below += count
        lower = bound
    return lower


def _minutes(window: TimeWindow) -> dict[str, int]:
    """The whole minutes the window touches, ``[first_minute, after_minute)`` in seconds."""
    start_s = window.start_ns // _NS
    end_s = -(-window.end_ns // _NS)
    return {"first_minute": start_s // 60 * 60, "after_minute": -(-end_s // 60) * 60}


def entry_counts(
    store: TraceStore, window: TimeWindow, stored: Mapping[str, int] | None = None
) -> dict[str, EntryCount]:
    """Per chain with counted entries in ``window`` (and ``window.environment``, ``""``: all):
    the counts, latency estimates and coverage. ``stored`` gives the stored entry traces per
    chain when the caller has them; otherwise they are counted over the same minutes."""
    minutes = _minutes(window)
    params: dict[str, Any] = {**window.params(), **minutes}
    rows = store.query(load_sql("entry_counts", store.database), params).result_rows
    if not rows:
        return {}
    chains = [str(row[0]) for row in rows]
    found = dict(stored) if stored is not None else _stored(store, window, chains, params)
    out: dict[str, EntryCount] = {}
    for chain, entries, errors, timed, duration_sum, buckets in rows:
        bounds, per_bucket = buckets
        histogram = {float(b): int(c) for b, c in zip(bounds, per_bucket, strict=True)}
        out[str(chain)] = EntryCount(
            chain_id=str(chain),
            entries=int(entries),
            errors=int(errors),
            p50_ms=estimate_quantile(0.5, histogram),
            p95_ms=estimate_quantile(0.95, histogram),
            mean_ms=float(duration_sum) / int(timed) if timed else None,
            stored=int(found.get(str(chain), 0)),
        )
    return out


def _stored(
    store: TraceStore, window: TimeWindow, chains: list[str], params: dict[str, Any]
) -> dict[str, int]:
    if not window.environment:
        sql = load_sql("entry_counts_stored", store.database, row_environment="1")
    elif store.query(_HAS_ENVIRONMENT_SQL, {"db": store.database}).result_rows[0][0]:
        sql = load_sql("entry_counts_stored", store.database)
    else:
        sql = load_sql("entry_counts_stored_spans", store.database)
    rows = store.query(sql, {**params, "chains": chains}).result_rows
    return {str(chain): int(count) for chain, count in rows}
