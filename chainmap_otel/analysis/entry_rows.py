"""The per-minute entry rows every chain-level number is computed from, and the part of a
window that has data.

One definition (:func:`entry_rows_sql`) shared by health, the chain series, ``/metrics``
and Grafana: ``chainmap_chain_minute``'s rows (tagged entry spans, untagged roots
classified by the entry rules) plus the entries below the root
(:mod:`~chainmap_otel.analysis.rollups.entries`), in the window's environment.

Each row carries the stored counts and, next to them, the estimate of the unsampled fleet
(schema 13): ``Adjusted*`` sums each entry span's OTEP 235 adjusted count
(:mod:`chainmap_otel.tagging.sampling`), ``AdjustedLatency`` is a weighted t-digest and
``SampledCalls`` counts the stored entries that carried a sampling threshold. Where that
count is 0 every weight is 1 and the estimate equals the stored numbers.

A long window reads ``chainmap_chain_hour`` (schema 17, the minute rows merged per hour by a
view) for its whole hours and ``chainmap_chain_minute`` for the rest (:data:`HOUR_SPLIT`):
a week merges a few hundred latency states per entry operation instead of ~10,000. Counts
and sums are the same either way; percentiles come from t-digests merged in another order,
so their last digits may differ: every surface tallying a window reads it through the same
split, cut where its own windows start (:func:`hour_cuts`), so they keep agreeing.
"""

from __future__ import annotations

from typing import Any

from chainmap_otel.analysis.membership import EntryRules
from chainmap_otel.analysis.rollups import entries
from chainmap_otel.analysis.sql import DEFAULT_FRAGMENTS, load_sql
from chainmap_otel.analysis.timewindow import TimeWindow, environment_params
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog

#: Points of each chain's series in the chain list (fewer when the window has fewer minutes).
SERIES_POINTS = 30
#: The columns of an entry row after ``chain``, stored then estimated (schema 13).
ROW_COLUMNS = (
    "Minute, Calls, Errors, DurationSum, Latency, LatencyBuckets, AdjustedCalls, "
    "AdjustedErrors, AdjustedDurationSum, AdjustedLatency, AdjustedLatencyBuckets, SampledCalls"
)
_NS = 1_000_000_000
_ROW_ENVIRONMENT = DEFAULT_FRAGMENTS["row_environment"]
_HOUR = 3600

#: How entry rows split ``[{scan_start}, {end})`` (Unix seconds): the whole hours in it are
#: read from ``chainmap_chain_hour``, except those a cut (``{hour_cuts:Array(Int64)}``,
#: Unix seconds: where a window the query tallies starts, or a series' step) falls inside,
#: whose minutes are read as the ragged ends are: from ``chainmap_chain_minute``. The one
#: definition every reader of hour rows binds (health, its series, Grafana's overview).
#: ``(first hour, end of the last hour, hours read by the minute)``.
HOUR_SPLIT = (
    f"intDiv({{scan_start:Int64}} + {_HOUR - 1}, {_HOUR}) * {_HOUR}",
    f"intDiv({{end:Int64}}, {_HOUR}) * {_HOUR}",
    f"arrayMap(c -> intDiv(c, {_HOUR}) * {_HOUR}, "
    f"arrayFilter(c -> c % {_HOUR} != 0, {{hour_cuts:Array(Int64)}}))",
)
_FIRST_HOUR, _AFTER_HOURS, _MINUTE_HOURS = HOUR_SPLIT
#: A minute row outside the hour part (a ragged end or a cut hour).
_MINUTE_PART = (
    f"NOT (Minute >= toDateTime({_FIRST_HOUR}) AND Minute < toDateTime({_AFTER_HOURS}) "
    f"AND NOT has({_MINUTE_HOURS}, intDiv(toUnixTimestamp(Minute), {_HOUR}) * {_HOUR}))"
)
#: An hour row of the hour part.
_HOUR_PART = (
    f"Hour >= toDateTime({_FIRST_HOUR}) AND Hour < toDateTime({_AFTER_HOURS}) "
    f"AND NOT has({_MINUTE_HOURS}, toUnixTimestamp(Hour))"
)


def hour_cuts(*cuts: int) -> list[int]:
    """``{hour_cuts}``: the distinct starts (Unix seconds) of the windows a query tallies
    over its entry rows, where an hour row cannot be split (:data:`HOUR_SPLIT`)."""
    return sorted(set(cuts))


def slo_window_seconds(catalog: ChainCatalog) -> list[int]:
    """Every SLO window of ``catalog`` (each chain's and each environment's own), shortest
    first: health and Grafana's overview cut their hours where each starts, whichever chains
    and environment they judge, so both read one window's rows alike."""
    seconds = set()
    for chain in catalog:
        if chain.slo is not None:
            seconds.add(chain.slo.window_seconds)
            seconds.update(chain.slo.effective(e).window_seconds for e in chain.slo.environments)
    return sorted(seconds)


def entry_rows_sql(
    database: str,
    rules: EntryRules,
    inferred: bool = True,
    live: bool = True,
    hours: bool = False,
) -> str:
    """The per-minute entry rows of the chains ``{chains:Array(String)}`` in
    ``[{scan_start}, {end})`` (Unix seconds) and the environment ``{environment:String}``
    (``''``: all): ``chain`` and :data:`ROW_COLUMNS`. The one definition of what health
    counts, shared by every health query, ``/metrics`` and Grafana: tagged entry rows,
    untagged root rows classified by the rules
    (:class:`~chainmap_otel.analysis.membership.EntryRules`) and, when ``inferred``
    (schema 5), the entries below the root (:mod:`~chainmap_otel.analysis.rollups.entries`):
    rolled up below ``{inf_start:Int64}`` ns, paired live from it (with
    ``entries.live_params``; left out when not ``live``: a range after the window's end,
    where the live SQL finds nothing but still costs its planning, tens of ms). Untagged rows
    no rule could match are left out before they are classified. With ``hours``, the whole
    hours come from ``chainmap_chain_hour`` as rows whose ``Minute`` is the hour's start
    (:data:`HOUR_SPLIT`, binding ``{hour_cuts}``): a query grouping by anything finer than
    its cuts must not ask for them."""
    window = "Minute >= toDateTime({scan_start:Int64}) AND Minute < toDateTime({end:Int64})"
    wanted = f"(ChainId IN {{chains:Array(String)}} OR (ChainId = '' AND {rules.candidate}))"
    chain = f"arrayJoin(if(ChainId != '', [toString(ChainId)], {rules.classify})) AS chain"
    if hours:
        # Classified once, over both tables' rows: the rules' expressions cost planning time.
        fields = "ChainId, ServiceName, SpanName, Route, Path, Method, SpanKind, Environment"
        tagged = "(ChainId IN {chains:Array(String)} OR ChainId = '')"
        source = f"""(
        SELECT {fields}, {ROW_COLUMNS}
        FROM {database}.chainmap_chain_minute
        WHERE {tagged} AND {window} AND {_MINUTE_PART}
        UNION ALL
        SELECT {fields}, {ROW_COLUMNS.replace("Minute,", "Hour AS Minute,", 1)}
        FROM {database}.chainmap_chain_hour
        WHERE {tagged} AND {_HOUR_PART}
    )"""
    else:
        source = f"{database}.chainmap_chain_minute"
    rows = f"""
    SELECT {chain},
        {ROW_COLUMNS}
    FROM {source}
    WHERE {wanted}
      AND {window} AND {_ROW_ENVIRONMENT}"""
    if not inferred:
        return rows
    # The rollup's rows below its watermark and the same SQL live above it, classified once.
    columns = (
        "Minute, ChainId, ServiceName, SpanName, Route, Path, Method, SpanKind, Calls, Errors, "
        "DurationSum, Latency, LatencyBuckets, AboveChains, AboveFields, Environment, "
        "AdjustedCalls, AdjustedErrors, AdjustedDurationSum, AdjustedLatency, "
        "AdjustedLatencyBuckets, SampledCalls"
    )
    paired = (
        f"""
        UNION ALL
        SELECT {columns}
        FROM ({load_sql("inferred_entries", database)})"""
        if live
        else ""
    )
    return f"""{rows}
    UNION ALL
    SELECT arrayJoin({rules.entered}) AS chain, {ROW_COLUMNS}
    FROM (
        SELECT {columns}
        FROM {database}.chainmap_inferred_entry_minute
        WHERE {window} AND Minute < toDateTime(intDiv({{inf_start:Int64}}, 1000000000)){paired}
    )
    WHERE {wanted} AND {window} AND {_ROW_ENVIRONMENT}"""


def bind_live(
    store: TraceStore,
    rules: EntryRules,
    bound: dict[str, Any],
    watermark: int | None,
    start_s: int,
    end_s: int,
) -> bool:
    """Bind the inferred entries' live range, ``[max(watermark, start), end)``; whether the
    live SQL must run: the range is not empty (a window ending below the rollup's watermark
    reads the rollup alone) and a span there may be such an entry
    (``sql/inferred_entry_candidates.sql``: none in a fleet tagged by chainmap whose untagged
    spans are of services no rule names). That check costs a few ms, the live SQL's planning
    alone tens."""
    if watermark is None:
        return False
    first = max(watermark, start_s * _NS)
    live = entries.live_params(first, end_s * _NS)
    bound |= live
    if first >= end_s * _NS:
        return False
    check = load_sql("inferred_entry_candidates", store.database, candidate=rules.candidate)
    found = store.query(check, {**rules.params, **live}).result_rows[0][0]
    return bool(found)


#: The first and last entry span start (Unix ns) among the entry rows (any chain, or an
#: untagged root) of the minutes in a range and an environment: the part of a window that
#: has data.
_DATA_EXTENT_SQL = """SELECT count(), toInt64(toUnixTimestamp64Nano(min(FirstSeen))),
       toInt64(toUnixTimestamp64Nano(max(LastSeen)))
FROM {db}.chainmap_chain_minute
WHERE Minute >= toDateTime({{start:Int64}}) AND Minute < toDateTime({{end:Int64}})
  AND ({{environment:String}} = '' OR Environment = {{environment_value:String}})"""


def data_extent(
    store: TraceStore, start_s: int, end_s: int, environment: str = ""
) -> tuple[int, int] | None:
    """``(first, last)`` entry span start, Unix ns, among the entry rows of the minutes in
    ``[start, end)`` (Unix seconds) in ``environment`` (``""``: all), or None when those
    minutes hold none."""
    count, first, last = store.query(
        _DATA_EXTENT_SQL.format(db=store.database),
        {"start": start_s, "end": end_s, **environment_params(environment)},
    ).result_rows[0]
    if not count:
        return None
    return int(first), int(last)


def observed_window(store: TraceStore, window: TimeWindow) -> TimeWindow:
    """The part of ``window`` (its start rounded down to a minute, as the counts are) that has
    data in its environment: from the first entry span in it to the last, at least one
    second. What rates are divided by (``rate_seconds``), the same for every chain and every
    per-operation rate; without data, the whole window."""
    end_s = -(-window.end_ns // _NS)
    main_start = window.start_ns // _NS // 60 * 60
    extent = data_extent(store, main_start, end_s, window.environment)
    if extent is None:
        return TimeWindow(main_start * _NS, window.end_ns, window.environment)
    start = max(main_start * _NS, extent[0])
    return TimeWindow(start, min(window.end_ns, max(extent[1], start + _NS)), window.environment)


def observed_steps(
    store: TraceStore, start: int, step: int, count: int, environment: str = ""
) -> list[float]:
    """Seconds of each of ``count`` steps of ``step`` seconds from ``start`` that have data
    (:func:`observed_window` of the steps' span): what each sparkline point's rate is divided
    by, so the points agree with the window's rate. A step without data keeps its length."""
    covered = observed_window(
        store, TimeWindow(start * _NS, (start + count * step) * _NS, environment)
    )
    seconds = []
    for index in range(count):
        lo = max((start + index * step) * _NS, covered.start_ns)
        hi = min((start + (index + 1) * step) * _NS, covered.end_ns)
        seconds.append((hi - lo) / _NS if hi - lo >= _NS else float(step if hi <= lo else 1))
    return seconds


def series_steps(window: TimeWindow, points: int = SERIES_POINTS) -> tuple[int, int, int]:
    """``(start, step, count)`` in seconds: up to ``points`` equal steps of whole minutes
    ending at the window's end rounded up to a minute (every sparkline's x axis)."""
    end = -(-window.end_ns // (60 * _NS)) * 60
    minutes = max(1, -(-(window.end_ns - window.start_ns) // (60 * _NS)))
    step = 60 * max(1, -(-minutes // max(1, points)))
    count = max(1, -(-(minutes * 60) // step))
    return end - count * step, step, count


_ENVIRONMENTS_SQL = """SELECT toString(Environment), sum(AdjustedCalls), sum(Calls)
FROM {db}.chainmap_chain_minute
WHERE Minute >= toDateTime({{start:Int64}}) AND Minute < toDateTime({{end:Int64}})
GROUP BY Environment
ORDER BY sum(AdjustedCalls) DESC, Environment"""


def environments(store: TraceStore, window: TimeWindow) -> list[dict[str, Any]]:
    """The environments whose entry spans (any chain, or an untagged root) started in the
    minutes ``window`` touches, the most traffic first: ``{"environment", "traces",
    "stored"}``, ``traces`` the estimate of the unsampled fleet, ``stored`` the entry spans
    stored. ``""`` is the spans whose resource names no environment. The window's own
    environment is not applied (this lists the choices)."""
    end_s = -(-window.end_ns // _NS)
    start_s = window.start_ns // _NS // 60 * 60
    rows = store.query(
        _ENVIRONMENTS_SQL.format(db=store.database), {"start": start_s, "end": end_s}
    ).result_rows
    return [
        {"environment": str(name), "traces": round(float(estimated), 6), "stored": int(stored)}
        for name, estimated, stored in rows
    ]
