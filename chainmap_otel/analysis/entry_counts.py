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

:func:`counted_windows` reads the counts of several windows that end together (a health
window and its burn-rate windows) in one query, for one environment or per environment (the
monitor's evaluation reads every environment at once), and says for each window whether the
counts **cover** it: whether counting had begun by the window's first minute, or by the first
stored entry trace of the chain in it. Points are stamped when exported, up to an export
interval after the entries they count, so counting is taken to have begun
:data:`EXPORT_SLACK_S` before the first minute counted. In a window that counts do not cover
(counting began while it ran, or some environment with the chain's traces counts nothing) the
counts would undercount the traces beside them, so readers use the traces there instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chainmap_otel.analysis.sql import load_sql
from chainmap_otel.analysis.timewindow import (
    UNNAMED_ENVIRONMENT,
    TimeWindow,
    environment_params,
)
from chainmap_otel.storage.store import TraceStore

__all__ = [
    "EXPORT_SLACK_S",
    "CountedTotal",
    "CountedWindows",
    "EntryCount",
    "counted_totals",
    "counted_windows",
    "entry_counts",
    "estimate_quantile",
    "scope_counts",
]

_NS = 1_000_000_000
#: How long before its first counted minute a chain's counting is taken to have begun: the
#: SDK's default export interval (60 s) plus the minute a point is stamped in.
EXPORT_SLACK_S = 120
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


@dataclass(frozen=True)
class CountedWindows:
    """One chain's counted entries over windows that end together (in the order of their
    starts; the first is the main window): ``entries`` and ``errors`` per window, ``covered``
    per window (module docstring), and the main window's duration histogram (upper bound in
    ms -> count), timed entries and duration sum. ``counting`` is False for an environment
    that holds the chain's traces but counted nothing (kept so that a merge over every
    environment is not called covered)."""

    chain_id: str
    entries: tuple[int, ...]
    errors: tuple[int, ...]
    covered: tuple[bool, ...]
    histogram: Mapping[float, int]
    timed: int
    duration_sum_ms: float
    counting: bool = True

    def main(self, stored: int) -> EntryCount:
        """The main window's counts as an :class:`EntryCount` (``stored``: its entry traces)."""
        return EntryCount(
            chain_id=self.chain_id,
            entries=self.entries[0],
            errors=self.errors[0],
            p50_ms=estimate_quantile(0.5, self.histogram),
            p95_ms=estimate_quantile(0.95, self.histogram),
            mean_ms=self.duration_sum_ms / self.timed if self.timed else None,
            stored=stored,
        )


def counted_windows(
    store: TraceStore, chains: list[str], starts: list[int], end_s: int, environment: str = ""
) -> dict[str, dict[str, CountedWindows]]:
    """environment -> chain -> its :class:`CountedWindows` for the windows
    ``[start, end_s)`` of ``starts`` (Unix seconds, rounded down to whole minutes; the first is
    the main window), in ``environment`` (``""``: every environment, each apart; merge them
    with :func:`scope_counts`). Chains no service counted in the windows are left out; an
    environment with the chain's traces but no counts is kept with zero counts, uncovered."""
    minutes = [start // 60 * 60 for start in starts]
    if not chains:
        return {}
    params: dict[str, Any] = {
        "chains": chains,
        "starts": minutes,
        "after_minute": -(-end_s // 60) * 60,
        "export_slack_s": EXPORT_SLACK_S,
        **environment_params(environment),
    }
    if not store.query(load_sql("entry_counts_any", store.database), params).result_rows[0][0]:
        return {}
    rows = store.query(load_sql("entry_counts_windows", store.database), params).result_rows
    counted_chains = {str(row[0]) for row in rows if row[2]}
    out: dict[str, dict[str, CountedWindows]] = {}
    for chain, env, entries, errors, timed, duration_sum, buckets, covered in rows:
        if str(chain) not in counted_chains:
            continue
        bounds, per_bucket = buckets if buckets else ((), ())
        out.setdefault(str(env), {})[str(chain)] = CountedWindows(
            chain_id=str(chain),
            entries=tuple(int(n) for n in entries) or (0,) * len(minutes),
            errors=tuple(int(n) for n in errors) or (0,) * len(minutes),
            covered=tuple(bool(c) for c in covered),
            histogram={float(b): int(c) for b, c in zip(bounds, per_bucket, strict=True)},
            timed=int(timed or 0),
            duration_sum_ms=float(duration_sum or 0.0),
            counting=bool(entries),
        )
    return out


def scope_counts(
    by_environment: Mapping[str, Mapping[str, CountedWindows]], environment: str
) -> dict[str, CountedWindows]:
    """Chain -> counts of :func:`counted_windows`' answer for one environment filter: that
    environment's (``UNNAMED_ENVIRONMENT``: the rows naming none), or for ``""`` every
    environment summed, a window covered only where every environment's is; chains not
    counted in that scope are left out."""
    if environment:
        name = "" if environment == UNNAMED_ENVIRONMENT else environment
        return {c: w for c, w in by_environment.get(name, {}).items() if w.counting}
    merged: dict[str, CountedWindows] = {}
    for counts in by_environment.values():
        for chain, found in counts.items():
            before = merged.get(chain)
            if before is None:
                merged[chain] = found
                continue
            histogram = dict(before.histogram)
            for bound, count in found.histogram.items():
                histogram[bound] = histogram.get(bound, 0) + count
            merged[chain] = CountedWindows(
                chain,
                tuple(a + b for a, b in zip(before.entries, found.entries, strict=True)),
                tuple(a + b for a, b in zip(before.errors, found.errors, strict=True)),
                tuple(a and b for a, b in zip(before.covered, found.covered, strict=True)),
                histogram,
                before.timed + found.timed,
                before.duration_sum_ms + found.duration_sum_ms,
                before.counting or found.counting,
            )
    return merged


@dataclass(frozen=True)
class CountedTotal:
    """One chain's counted entries in one environment over every stored minute."""

    chain_id: str
    environment: str
    entries: int
    errors: int
    timed: int
    duration_sum_ms: float
    histogram: Mapping[float, int]


def counted_totals(store: TraceStore, chain_ids: list[str]) -> list[CountedTotal]:
    """Per chain of ``chain_ids`` and environment the services counted it in, everything
    stored (what ``/metrics`` exports), ordered by chain and environment."""
    if not chain_ids:
        return []
    rows = store.query(
        load_sql("entry_counts_totals", store.database), {"chains": chain_ids}
    ).result_rows
    return [
        CountedTotal(
            str(chain),
            str(environment),
            int(entries),
            int(errors),
            int(timed),
            float(duration_sum),
            {float(b): int(c) for b, c in zip(bounds, counts, strict=True)},
        )
        for chain, environment, entries, errors, timed, duration_sum, (bounds, counts) in rows
    ]
