"""The edge rollup: service-graph edges per minute, materialised from closed time slices.

Live topology pairs every span of the window (``sql/trace_edges.sql``), which costs ~100x a
plain scan of the spans. ``chainmap_edge_minute`` (schema version 3) holds the result of that
same pairing, grouped per minute of trace start, chain set and edge, so topology reads a few
rows per minute instead of every span and pairs live only the minutes the rollup does not
cover yet (:mod:`chainmap_otel.analysis.topology`).

Why a job and not a materialized view: an edge needs both spans of a client/server pair,
and the client span usually arrives *after* its server child (it ends later), so no insert
block is guaranteed to hold both. :func:`refresh_edges` runs ``trace_edges.sql`` -- the one
source of the pairing semantics -- over closed slices ``[watermark, until)``:

* **Attribution.** A trace belongs to the minute it starts in (its earliest span). A slice
  keeps the traces that start in it and reads their spans from :data:`REACH_SECONDS` before
  to :data:`REACH_SECONDS` after the slice, so a pair cut by a slice boundary still pairs;
  the spans read before the slice reveal the traces that started earlier (they belong to
  the previous slice and are skipped). Spans starting more than the reach after their
  trace's first span are cut off, as a window edge cuts a pair in live topology: they form
  a fragment counted in the minute of its own first span. Live topology uses the same rule,
  so the two give the same edges.
* **Closed slices.** ``until`` defaults to ``now - LAG_SECONDS`` (whole minutes,
  :data:`~chainmap_otel.analysis.rollups.protocol.LAG_SECONDS`), so spans may arrive up to
  ``LAG_SECONDS - REACH_SECONDS`` after they started and still be paired: a client span that
  lands after its server child within that delay pairs normally. Spans arriving later than
  that into a slice already rolled up are not counted by the rollup; whole traces stored
  later (``chainmap ingest`` of old files) are, once :func:`rewind_edges` has moved every
  classification back to them, which the command does.
* **Membership.** Untagged spans are classified with the catalog's rules while pairing, so
  rows carry the trace's whole chain set (tagged and classified) and a fingerprint of the
  rules (``Catalog``, :func:`catalog_fingerprint`). Each classification has its own rows and
  watermark; a catalog seen for the first time is backfilled from the oldest span.
* **Protocol.** :mod:`~chainmap_otel.analysis.rollups.protocol`, two levels under the states
  ``edges`` and ``edges_hour``, keyed by the classification: pending/watermark per slice (an
  interrupted slice's minutes deleted and redone: slices are whole minutes, so those rows
  belong to it alone), empty stretches skipped, one lock, ``stop``, rewind.
* **Reads never write.** Analysis only reads the rollup (:func:`analysis_state`) and pairs
  live whatever lies past its watermark, so a topology request never waits behind a
  backfill or needs write access. Refreshes run in ``chainmap serve``'s background loop
  (:class:`~chainmap_otel.analysis.rollups.refresh.RollupRefresher`, every 30 s), in ``chainmap
  schema apply`` and in ``chainmap rollup refresh``.
* **Links, environments, sampling.** A slice also inserts the span-link edges
  (``sql/link_edges.sql``) whose consumer starts in it, per minute of the consumer's start;
  a link pairs with a producer within :data:`LINK_LOOKBACK_SECONDS` of its consumer, so
  slices and live pairing find the same links. The same rule gives an untagged span with
  span links the chains of the spans it links to (``sql/linked_chains.sql``, read while
  pairing: a consumer in a service that tags nothing counts for its producer's chains), and
  a link edge from an untagged producer counts for the chains the producer belongs to by the
  membership rule in its trace (``sql/member_chains.sql``). Rows are split by
  ``Environment`` (that of the span starting the edge) and carry
  ``EstimatedCalls``/``EstimatedErrors``, the summed sampling weights, next to the stored
  counts (schema version 14).
* **Hours.** Merging one t-digest state per minute and edge costs ~0.3 s for 7 days whatever
  the span count, so ``chainmap_edge_hour`` (schema version 4) holds the minute rows merged
  per hour (``sql/edge_hour.sql``: counts summed, states merged with -MergeState), written
  once an hour lies wholly inside the minute level's ``[since, watermark)``, in day-aligned
  slices: the protocol's second level. Topology reads hour rows for the whole hours of a
  window, minute rows for the part-hours at its edges and pairs live the rest. A store at
  schema version 3 has no hour table: the minute level alone is used.
* **Histograms.** Both levels also keep the servicegraph connector's client and server
  latency histograms per row (schema version 7: bucket counts keyed by the bucket's upper
  bound in ns, :data:`LATENCY_BOUNDS_NS`, and the sums), so ``/metrics`` reads them over
  every stored minute without pairing. Version 7 empties both levels and removes their
  states (rows rolled up before it have no buckets): the next refresh rebuilds them from
  the oldest span.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chainmap_otel.analysis.membership import SqlParams, classify_expression
from chainmap_otel.analysis.naming import ServiceGraphNaming
from chainmap_otel.analysis.rollups.protocol import (
    Level,
    LevelState,
    ProgressCallback,
    SliceRollup,
    SliceWork,
    closed_until,
)
from chainmap_otel.analysis.sql import DEFAULT_FRAGMENTS, load_sql
from chainmap_otel.errors import StoreError
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog

ROLLUP = "edges"
HOUR_ROLLUP = "edges_hour"
EDGE_TABLE = "chainmap_edge_minute"
HOUR_TABLE = "chainmap_edge_hour"
STATE_TABLE = "chainmap_rollup_state"
#: Spans of a trace are read this far before and after the slice its first span starts in.
REACH_SECONDS = 60
#: Backfill slice length (slices are aligned to it, so none crosses a day partition).
SLICE_SECONDS = 3600
#: A slice with fewer spans grows by whole slices (up to a day): each slice's pairing query
#: costs a fixed ~0.2 s to plan, which sparse hours would otherwise pay one by one.
SLICE_SPANS = 500_000
#: Hour-level slice length: at most a day of minute rows merged per insert.
HOUR_SLICE_SECONDS = 86400
#: Version of the pairing semantics in ``trace_edges.sql``, part of every fingerprint: rows
#: rolled up under older semantics (2: per-edge chain scope and caller edges; 3: chains
#: propagate through tagged spans too, the membership rule; 4: rows carry the environment
#: and the sampling-weighted counts, and hold the span-link edges; 5: an untagged span with
#: span links holds the chains of the spans it links to, so an untagged consumer's edges
#: count for its producer's chains; 6: a link edge from an untagged producer counts for the
#: chains the producer belongs to by the membership rule in its trace; 7: a tagged span with
#: span links that marks an entry of its own holds the linked spans' chains too) are not read.
PAIRING_VERSION = 7
#: How far apart a producer and its linked consumer may start to pair as a link edge
#: (``sql/link_edges.sql``; a rule of the link, so live pairing and slices agree).
LINK_LOOKBACK_SECONDS = 3600
#: Upper bounds (seconds) of the edge latency histograms: the servicegraph connector's
#: default ``latency_histogram_buckets``, also used for the chain latency histogram.
LATENCY_BUCKETS_SECONDS = (
    0.002,
    0.004,
    0.006,
    0.008,
    0.01,
    0.05,
    0.1,
    0.2,
    0.4,
    0.8,
    1.0,
    1.4,
    2.0,
    5.0,
    10.0,
    15.0,
)
#: The same bounds in ns and a last one for +Inf (max UInt64): the keys of the rollup's
#: ``ClientBuckets``/``ServerBuckets`` maps. A duration goes to the first bound >= it, as
#: the connector's ``sort.SearchFloat64s`` (comparing whole ns is the same comparison).
LATENCY_BOUNDS_NS = (*(round(b * 1_000_000_000) for b in LATENCY_BUCKETS_SECONDS), 2**64 - 1)

_NS = 1_000_000_000

#: trace_edges' span filter: the spans of two ranges (head and tail of a window, or a slice).
SPAN_WINDOW_SQL = (
    "(Timestamp >= fromUnixTimestamp64Nano({read_head_start:Int64}) "
    "AND Timestamp < fromUnixTimestamp64Nano({read_head_end:Int64})) "
    "OR (Timestamp >= fromUnixTimestamp64Nano({read_tail_start:Int64}) "
    "AND Timestamp < fromUnixTimestamp64Nano({read_tail_end:Int64}))"
)
#: trace_edges' trace filter: traces whose first span starts in the head or the tail range.
TRACE_WINDOW_SQL = (
    "(start_ns >= {head_start:Int64} AND start_ns < {head_end:Int64}) "
    "OR (start_ns >= {tail_start:Int64} AND start_ns < {tail_end:Int64})"
)
#: The type of trace_edges.sql's ``edges``: (source, target, connection_type, failed,
#: latency_ns (client span; the server's for ``user`` edges), target_type, chains, entry,
#: server_ns, client_ns, weight, environment): server_ns and client_ns are the connector's
#: server and client latencies, weight and environment those of the span starting the edge.
EDGE_TUPLES = (
    "Array(Tuple(String, String, String, UInt8, UInt64, String, Array(String), UInt8, "
    "UInt64, UInt64, Float64, String))"
)
#: Stands in for chainmap_edge_minute or chainmap_edge_hour where it is not read (no rows).
NO_ROLLUP_SQL = (
    "(SELECT * FROM (SELECT toUInt64(0) AS Catalog, toDateTime(0) AS Minute, "
    "toDateTime(0) AS Hour, '' AS Source, "
    "'' AS Target, '' AS ConnectionType, '' AS TargetType, CAST([], 'Array(String)') AS ChainIds, "
    "'' AS Environment, toUInt64(0) AS Calls, toUInt64(0) AS Errors, "
    "toFloat64(0) AS EstimatedCalls, toFloat64(0) AS EstimatedErrors, "
    "initializeAggregation('quantilesTDigestState(0.5, 0.95, 0.99)', toUInt64(0)) AS Latency, "
    "toInt64(0) AS FirstSeen, toInt64(0) AS LastSeen, "
    "CAST(map(), 'Map(UInt64, UInt64)') AS ClientBuckets, toUInt64(0) AS ClientSum, "
    "CAST(map(), 'Map(UInt64, UInt64)') AS ServerBuckets, toUInt64(0) AS ServerSum) WHERE 0)"
)

#: Stands in for trace_edges.sql when no part of a window is paired live (no rows).
NO_LIVE_SQL = (
    "SELECT * FROM (SELECT '' AS TraceId, "
    f"CAST([], '{EDGE_TUPLES}') AS edges, "
    "CAST([], 'Array(String)') AS trace_chains, toInt64(0) AS start_ns) WHERE 0"
)

MINUTES = Level(
    name=ROLLUP,
    table=EDGE_TABLE,
    delete="""ALTER TABLE {db}.chainmap_edge_minute{local} {on_cluster}
DELETE WHERE Catalog IN {{catalogs:Array(UInt64)}}
    AND Minute >= toDateTime(intDiv({{start:Int64}}, 1000000000))
    AND Minute < toDateTime(intDiv({{end:Int64}}, 1000000000))
SETTINGS mutations_sync = 2""",
    next_data="""SELECT count(), toUnixTimestamp64Nano(min(Timestamp))
FROM {db}.otel_traces
WHERE Timestamp >= fromUnixTimestamp64Nano({{start:Int64}})
  AND Timestamp < fromUnixTimestamp64Nano({{until:Int64}}) AND TraceId != ''""",
    label="edge rollup",
    work="pairing traces",
    slice_seconds=SLICE_SECONDS,
    slice_rows=SLICE_SPANS,
)
HOURS = Level(
    name=HOUR_ROLLUP,
    table=HOUR_TABLE,
    delete="""ALTER TABLE {db}.chainmap_edge_hour{local} {on_cluster}
DELETE WHERE Catalog IN {{catalogs:Array(UInt64)}}
    AND Hour >= toDateTime(intDiv({{start:Int64}}, 1000000000))
    AND Hour < toDateTime(intDiv({{end:Int64}}, 1000000000))
SETTINGS mutations_sync = 2""",
    next_data="""SELECT count(), toUnixTimestamp(min(Minute)) * 1000000000
FROM {db}.chainmap_edge_minute
WHERE Catalog = {{catalog:UInt64}}
  AND Minute >= toDateTime(intDiv({{start:Int64}}, 1000000000))
  AND Minute < toDateTime(intDiv({{until:Int64}}, 1000000000))""",
    label="edge rollup",
    work="merging hours",
    slice_seconds=HOUR_SLICE_SECONDS,
    grain_seconds=3600,
)
#: The edge rollup: minute rows paired from the spans, hour rows merged from the minutes.
JOB = SliceRollup(ROLLUP, (MINUTES, HOURS))


@dataclass(frozen=True)
class RollupState:
    """What the rollup of one classification covers: trace starts in ``[since, watermark)``
    per minute, and ``hours`` of it per hour."""

    catalog: int
    since_ns: int = 0
    watermark_ns: int = 0
    pending_ns: int = 0
    hours: LevelState = field(default_factory=LevelState)

    @property
    def covers(self) -> bool:
        return self.watermark_ns > self.since_ns > 0


@dataclass
class RefreshReport:
    """What :func:`refresh_edges` did."""

    state: RollupState
    slices: int = 0
    hour_slices: int = 0
    recovered: bool = False
    seconds: float = 0.0


def catalog_fingerprint(catalog: ChainCatalog, naming: ServiceGraphNaming | None = None) -> int:
    """UInt64 identifying how ``catalog`` classifies untagged spans (its compiled rules) and
    how nodes are named (``naming``, default from the environment)."""
    classify, params = classify_expression(catalog)
    naming = naming or ServiceGraphNaming.from_config()
    text = json.dumps(
        [PAIRING_VERSION, classify, sorted(params.items()), naming.key()],
        default=str,
        sort_keys=True,
    )
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def trace_edges_sql(
    store: TraceStore,
    catalog: ChainCatalog,
    naming: ServiceGraphNaming | None = None,
    *,
    linked: bool = True,
) -> tuple[str, dict[str, Any]]:
    """``trace_edges.sql`` for two ranges of trace starts (see :func:`range_params`);
    ``linked`` False where :func:`has_links` found no ``link_heir`` span, which alone needs
    the lookup of chains through span links (``unlinked_spans.sql`` then stands in for it)."""
    fragments = {"span_window": SPAN_WINDOW_SQL, "trace_window": TRACE_WINDOW_SQL}
    if not linked:
        fragments["linked_spans"] = load_sql("unlinked_spans", store.database, **fragments)
    return pairing_sql(store, catalog, naming, **fragments)


_LINKS_SQL = """SELECT count() > 0 FROM {db}.otel_traces
WHERE `Links.TraceId.size0` > 0 AND ({spans}) AND ({window})"""

#: The spans ``link_edges.sql`` pairs with an untagged producer through their links.
CONSUMER_SPANS = "SpanKind IN ('Consumer', 'SPAN_KIND_CONSUMER')"
#: The spans starting in the ranges of :func:`range_params` (not widened by its reach).
RANGES_WINDOW = (
    "(Timestamp >= fromUnixTimestamp64Nano({head_start:Int64}) "
    "AND Timestamp < fromUnixTimestamp64Nano({head_end:Int64})) "
    "OR (Timestamp >= fromUnixTimestamp64Nano({tail_start:Int64}) "
    "AND Timestamp < fromUnixTimestamp64Nano({tail_end:Int64}))"
)


def has_links(
    store: TraceStore,
    params: Mapping[str, int],
    *,
    spans: str = "1",
    window: str = SPAN_WINDOW_SQL,
) -> bool:
    """Whether a span of ``window`` (a filter on ``Timestamp`` bound by ``params``; default
    the ranges :func:`range_params` reads) passing ``spans`` has span links: the links'
    lengths alone, a few ms, where planning or running a lookup through links costs tens.
    A fleet without queues has none. ``spans`` ``link_heir``: a span chains may reach
    through a link (``linked_chains.sql``); :data:`CONSUMER_SPANS`: one ``link_edges.sql``
    may pair with an untagged producer."""
    sql = _LINKS_SQL.format(db=store.database, spans=spans, window=window)
    return bool(store.query(sql, dict(params)).result_rows[0][0])


def pairing_sql(
    store: TraceStore,
    catalog: ChainCatalog,
    naming: ServiceGraphNaming | None = None,
    **fragments: str,
) -> tuple[str, dict[str, Any]]:
    """``trace_edges.sql`` with the catalog's classifier and the node naming filled in
    (``naming`` default from the environment), and its bound parameters (the window's
    aside: the fragments' own and ``link_lookback``)."""
    classify, params = classify_expression(catalog)
    names = SqlParams("sg")
    sql = load_sql(
        "trace_edges",
        store.database,
        classify=classify,
        **(naming or ServiceGraphNaming.from_config()).fragments(names),
        **fragments,
    )
    return sql, {**params, **names.values, "link_lookback": LINK_LOOKBACK_SECONDS * _NS}


def slice_sql(
    store: TraceStore,
    catalog: ChainCatalog,
    naming: ServiceGraphNaming | None = None,
    *,
    linked: bool = True,
    members: bool = True,
) -> tuple[str, dict[str, Any]]:
    """``edge_rollup.sql`` (a minute slice's insert: paired edges and link edges) and its
    parameters but the slice's (:func:`range_params`) and ``catalog``; ``linked`` and
    ``members`` as :func:`trace_edges_sql` and :func:`link_edges_sql` take them (the same
    parameters either way)."""
    sql, params = trace_edges_sql(store, catalog, naming, linked=linked)
    insert = load_sql(
        "edge_rollup",
        store.database,
        trace_edges=sql,
        link_edges=link_edges_sql(store.database, catalog, members=members)[0],
    )
    return insert, {
        **params,
        **histogram_params(),
        "link_lookback": LINK_LOOKBACK_SECONDS * _NS,
    }


#: ``member_chains.sql``'s stand-in where no consumer links to anything: no span's chains.
NO_MEMBERS_SQL = (
    "SELECT '' AS p_trace, '' AS p_span, toInt64(0) AS p_start, "
    "CAST([], 'Array(String)') AS p_chains WHERE 0"
)


def link_edges_sql(
    database: str, catalog: ChainCatalog, *, members: bool = True
) -> tuple[str, dict[str, Any]]:
    """``link_edges.sql`` with the catalog's classifier (an untagged producer's chains by the
    membership rule) and its parameters but the ranges and ``link_lookback``; ``members``
    False where :func:`has_links` found no linking consumer (no rule walk then)."""
    if not members:
        return load_sql("link_edges", database, member_chains=NO_MEMBERS_SQL), {}
    classify, params = classify_expression(catalog)
    return load_sql("link_edges", database, classify=classify), params


def histogram_params() -> dict[str, list[int]]:
    """Bind value of ``{latency_bounds_ns:Array(UInt64)}`` (edge_rollup.sql, topology.sql)."""
    return {"latency_bounds_ns": list(LATENCY_BOUNDS_NS)}


def range_params(
    head: tuple[int, int], tail: tuple[int, int] | None = None, reach_ns: int = REACH_SECONDS * _NS
) -> dict[str, int]:
    """Bind values of :data:`SPAN_WINDOW_SQL`/:data:`TRACE_WINDOW_SQL` for trace starts in
    ``head`` or ``tail`` (``[start, end)`` ns; empty when ``start >= end``)."""
    out: dict[str, int] = {}
    for name, (start, end) in (("head", head), ("tail", tail or (0, 0))):
        empty = start >= end
        out[f"{name}_start"], out[f"{name}_end"] = (0, 0) if empty else (start, end)
        out[f"read_{name}_start"] = 0 if empty else start - reach_ns
        out[f"read_{name}_end"] = 0 if empty else end + reach_ns
    return out


def read_state(
    store: TraceStore, catalog: ChainCatalog | int, naming: ServiceGraphNaming | None = None
) -> RollupState:
    """The rollup state of ``catalog`` (a catalog or its fingerprint) under ``naming``."""
    fingerprint = catalog if isinstance(catalog, int) else catalog_fingerprint(catalog, naming)
    minutes, hours = JOB.states(store, fingerprint)
    return RollupState(fingerprint, *minutes, hours=hours)


def refresh_edges(
    store: TraceStore,
    catalog: ChainCatalog,
    until_ns: int | None = None,
    *,
    progress: ProgressCallback | None = None,
    stop: threading.Event | None = None,
    naming: ServiceGraphNaming | None = None,
) -> RefreshReport:
    """Roll up the edges of the traces started before ``until_ns`` (default ``now - LAG``),
    then merge the hours wholly inside the minute level.

    Idempotent; cheap (one small query) when nothing new is due. ``stop`` ends a long
    backfill between slices. Raises :class:`StoreError` when the store refuses.
    """
    started = time.perf_counter()
    naming = naming or ServiceGraphNaming.from_config()
    fingerprint = catalog_fingerprint(catalog, naming)
    # The slice's INSERT, per kind of slice: a slice without spans that need the lookups
    # through span links (each a few-ms check) is spared their planning, 45-120 ms.
    pairing: dict[tuple[bool, bool], tuple[str, dict[str, Any]]] = {}

    def minute_sql(start: int, end: int) -> str:
        ranges = range_params((start, end))
        kind = (
            has_links(store, ranges, spans=DEFAULT_FRAGMENTS["link_heir"]),
            has_links(store, ranges, spans=CONSUMER_SPANS, window=RANGES_WINDOW),
        )
        if kind not in pairing:
            pairing[kind] = slice_sql(store, catalog, naming, linked=kind[0], members=kind[1])
        return pairing[kind][0]

    def minute_params(start: int, end: int) -> dict[str, Any]:
        # Every kind binds the same parameters; the slice's SQL was picked just before.
        params = next(iter(pairing.values()))[1]
        return {**params, **range_params((start, end)), "catalog": fingerprint}

    def hour_params(start: int, end: int) -> dict[str, Any]:
        return {"catalog": fingerprint, "start": start // _NS, "end": end // _NS}

    minutes, hours = JOB.refresh(
        store,
        until_ns if until_ns is not None else closed_until(),
        (
            SliceWork(minute_sql, minute_params),
            SliceWork.same(lambda: load_sql("edge_hour", store.database), hour_params),
        ),
        key=fingerprint,
        stop=stop,
        progress=progress,
    )
    return RefreshReport(
        RollupState(fingerprint, *minutes.state, hours=hours.state),
        slices=minutes.slices,
        hour_slices=hours.slices,
        recovered=minutes.recovered or hours.recovered,
        seconds=time.perf_counter() - started,
    )


def analysis_state(
    store: TraceStore, catalog: ChainCatalog, naming: ServiceGraphNaming | None = None
) -> RollupState | None:
    """The rollup state analysis reads (never refreshed here); None without a rollup table.

    None when the store has no edge rollup (schema older than version 3). Whatever the
    state does not cover yet is paired live by topology.
    """
    naming = naming or ServiceGraphNaming.from_config()
    try:
        return read_state(store, catalog, naming)
    except StoreError:
        if store.table_exists(STATE_TABLE):
            raise
        return None


def invalidate_edges(store: TraceStore, catalog: ChainCatalog) -> None:
    """Drop ``catalog``'s rollup rows and state; the next refresh rebuilds it from the start."""
    JOB.invalidate(store, catalog_fingerprint(catalog))


def rewind_edges(store: TraceStore, start_ns: int) -> bool:
    """Pair again the traces from ``start_ns`` on, for every classification (``chainmap
    ingest`` stored spans there after the rollup passed it); True when the rollup had."""
    return JOB.rewind(store, start_ns)
