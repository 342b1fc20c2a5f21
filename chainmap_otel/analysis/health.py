"""Chain health, SLO compliance and error-budget burn, from the per-minute aggregates only.

Every number comes from per-minute entry rows
(:func:`~chainmap_otel.analysis.entry_rows.entry_rows_sql`), in the window's environment:
``chainmap_chain_minute`` (one row per chain, minute and entry operation; see the storage
schema) and the entries
below the root (:mod:`~chainmap_otel.analysis.rollups.entries`), so a 7-day window reads about as
many rows as a 1-hour one reads spans' worth of work. Tagged entry spans are rows of their
chain; untagged spans (``ChainId = ''``) are classified at query time by the chains' entry
rules over the row's service, kind, name, route, path and method (rules that need other
attributes cannot match these rows), minus the chains their ancestors hold.

Definitions:

* ``traces``: entry spans of the chain in the window (one per trace that enters it).
  The aggregates are per minute, so every window (the main one and each burn-rate window)
  rounds its start down to a whole minute: a window starting mid-minute still counts that
  minute's traffic.
* ``rate_per_s`` = traces / ``rate_seconds``, the part of the window that has data: from
  the first entry span in the window (any chain, or an untagged root span; the window's
  start rounded down to its minute, as the counts are) to the last one, at least a second.
  A store that started receiving spans 90 s ago reads the same rate over 15m, 1h or 7d; a
  chain idle while others had traffic gets a true 0. Without any data, the whole window.
  Each sparkline point is divided by the part of its step that has data in the same way
  (:func:`observed_steps`), so a partly elapsed last step does not read as a drop.
* ``status`` ``no_slo``: the chain defines no objectives, so there is no verdict; its
  traces, error ratio and latency are still reported. ``no_data``: no trace of the chain
  in the window and no burn-rate rule firing from older traffic (an idle chain is not
  called healthy).
* ``error_ratio``: a trace **fails when its chain's entry span has status Error**
  (either Collector spelling): errors / traces. Errors deeper in the trace that the
  entry span absorbed do not count, as for any request-level SLI.
* ``p50_ms``/``p95_ms``/``p99_ms``: entry-span duration quantiles (merged t-digests).
* Sampling: every count above is the estimate of the unsampled fleet: each entry span
  counts its OTEP 235 adjusted count (``1/p`` from ``ot=th`` in its tracestate, 1 without),
  so rates, error ratios, burn rates and slow fractions (from the weighted latency buckets)
  are estimates, and percentiles come from the weighted t-digest when an entry in the window
  was sampled (the stored digest otherwise, so unsampled data read exactly as stored).
  ``traces`` and ``errors`` are the estimates rounded; ``sampling``
  (:func:`sampling_json`) gives the stored count and the coverage.
* Counted entries: where the services counted the chain's entries before sampling
  (:mod:`~chainmap_otel.analysis.entry_counts`, read in one query for the window and every
  burn window), the counts replace the traces over each window they cover (counting had
  begun by its start or by the chain's first stored trace in it): the window's ``traces``,
  ``errors``, ``rate_per_s`` and ``error_ratio``, and each burn window's error-rate burn.
  Latency objectives, the SLO window and percentiles stay the traces'. ``counted``
  (:func:`counted_json`) says what was counted and which windows the counts cover.
* SLO objectives from the chain's ``slo`` block: ``error_rate`` (budget = that ratio)
  and each ``latency_ms`` percentile ``pNN: T`` read as "at most (100-NN) % of traces
  slower than T" (budget = 1 - NN/100; slow traces counted from ``LatencyBuckets``,
  interpolated inside the quarter-power-of-two bucket that straddles T).
* ``burn_rates``: for 5m, 30m, 1h, 6h and 3d ending at the window's end, the worst
  objective's bad-event ratio divided by its budget; ``error_budget_remaining`` =
  1 - bad ratio / budget over the SLO window (negative when overspent).
* ``status``/``reason``, per objective, the Google SRE workbook multi-window,
  multi-burn-rate rules: 1h and 5m both above 14.4 -> ``critical``; 6h and 30m both
  above 6 -> ``critical``; 3d and 6h both above 1 -> ``degraded``; else ``healthy``
  (``no_slo`` without objectives); ``no_data`` instead of those two when the window holds
  no trace of the chain.

JSON: ``docs/json-contract.md`` (checked against the real output by
``tests/docs/test_json_contract.py``);
chains in :func:`order_chains` order. :func:`chain_series` gives the chain list's series.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chainmap_otel.analysis.entry_counts import CountedWindows, counted_windows, scope_counts
from chainmap_otel.analysis.entry_rows import (
    SERIES_POINTS,
    bind_live,
    entry_rows_sql,
    hour_cuts,
    observed_steps,
    observed_window,
    series_steps,
    slo_window_seconds,
)
from chainmap_otel.analysis.membership import EntryRules, require_chain
from chainmap_otel.analysis.rollups import entries
from chainmap_otel.analysis.timewindow import TimeWindow, environment_params
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog, ChainDefinition

#: Burn-rate lookback windows (label, seconds).
BURN_WINDOWS: tuple[tuple[str, int], ...] = (
    ("5m", 300),
    ("30m", 1800),
    ("1h", 3600),
    ("6h", 21600),
    ("3d", 259200),
)
#: (long window, short window, threshold, status) in the order they are checked.
ALERT_RULES: tuple[tuple[str, str, float, str], ...] = (
    ("1h", "5m", 14.4, "critical"),
    ("6h", "30m", 6.0, "critical"),
    ("3d", "6h", 1.0, "degraded"),
)
STATUSES = ("no_slo", "no_data", "healthy", "degraded", "critical")
#: Chain lists sort by this (worst first), then by criticality.
STATUS_ORDER = {"critical": 0, "degraded": 1, "healthy": 2, "no_data": 3, "no_slo": 4}
CRITICALITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3}
_NS = 1_000_000_000


def slower_fraction_count(buckets: Mapping[int, float], threshold_ms: float) -> float:
    """Calls slower than ``threshold_ms`` in a (weighted) LatencyBuckets map (bucket ->
    count)."""
    if not buckets:
        return 0.0
    keys = np.fromiter(buckets.keys(), dtype=np.float64)
    counts = np.fromiter(buckets.values(), dtype=np.float64)
    # Bucket b holds durations in [1000 * 2^(b/4), 1000 * 2^((b+1)/4)) ns.
    position = 4 * np.log2(max(threshold_ms * 1e6, 1000.0) / 1000)
    above = np.clip(keys + 1 - position, 0.0, 1.0)
    return float((counts * above).sum())


@dataclass(frozen=True)
class Tally:
    """Calls, errors and latency buckets of one chain over one window: the estimate of the
    unsampled fleet (sums of adjusted counts; the stored counts when nothing was sampled)."""

    calls: float = 0
    errors: float = 0
    buckets: Mapping[int, float] = field(default_factory=dict)


def objective_ratios(
    chain: ChainDefinition, tally: Tally, counted: tuple[int, int] | None = None
) -> dict[str, tuple[float, float]]:
    """objective name -> (bad-event ratio, budget) for the chain's SLO over one tally; the
    error-rate objective from ``counted`` (entries, errors the services counted) when given."""
    slo = chain.slo
    out: dict[str, tuple[float, float]] = {}
    if slo is None:
        return out
    calls = tally.calls
    if slo.error_rate is not None:
        if counted is not None:
            entries, failed = counted
            out["error_rate"] = (failed / entries if entries else 0.0, slo.error_rate)
        else:
            out["error_rate"] = (tally.errors / calls if calls else 0.0, slo.error_rate)
    for percentile, threshold in slo.latency_ms.items():
        budget = 1 - int(percentile[1:]) / 100
        slow = slower_fraction_count(tally.buckets, threshold) / calls if calls else 0.0
        out[f"latency_{percentile}<{threshold:g}ms"] = (slow, budget)
    return out


def decide_status(burns: Mapping[str, Mapping[str, float]]) -> tuple[str, str]:
    """Status and reason from burn rates per objective (objective -> window -> burn)."""
    for long, short, threshold, status in ALERT_RULES:
        for objective, rates in burns.items():
            if rates[long] > threshold and rates[short] > threshold:
                return status, (
                    f"{objective}: burn rate {rates[long]:.2f}x over {long} and "
                    f"{rates[short]:.2f}x over {short} both above {threshold:g}x"
                )
    if not burns:
        return "no_slo", "no SLO objectives defined for this chain: nothing to judge it against"
    return "healthy", "every burn rate is below its multi-window alert threshold"


def _window_columns(names: Sequence[str]) -> str:
    """Calls, errors and latency buckets per window: the burn windows bound as ``w0``, ``w1``,
    ...; the ``slo`` window per chain (chains' SLO windows differ) from ``slo_chains`` /
    ``slo_starts``."""
    parts = []
    for i, name in enumerate(names):
        cond = (
            "Minute >= toDateTime(transform(chain, {slo_chains:Array(String)}, "
            "{slo_starts:Array(Int64)}, {end:Int64}))"
            if name == "slo"
            else f"Minute >= toDateTime({{w{i}:Int64}})"
        )
        parts.append(
            f"sumIf(AdjustedCalls, {cond}), sumIf(AdjustedErrors, {cond}), "
            f"sumMapIf(AdjustedLatencyBuckets, {cond})"
        )
    return ",\n       ".join(parts)


#: The window's own minutes (the others are the burn-rate and SLO lookbacks).
_MAIN = "Minute >= toDateTime({main_start:Int64})"
#: Percentiles from the weighted digest where entries were sampled; from the stored one
#: (exactly as before sampling was read) where none was.
_SERIES_QUANTILES = (
    "if(sum(SampledCalls) > 0, quantilesTDigestWeightedMerge(0.5, 0.95, 0.99)(AdjustedLatency), "
    "quantilesTDigestMerge(0.5, 0.95, 0.99)(Latency))"
)


def sampling_json(stored: int, estimated: float, sampled: int) -> dict[str, Any]:
    """What a number rests on: ``sampled`` (some stored entry carried a sampling threshold),
    ``stored`` entries, the ``estimated`` unsampled count they stand for and ``coverage``,
    stored / estimated (1 without traffic)."""
    return {
        "sampled": sampled > 0,
        "stored": stored,
        "estimated": _round(estimated),
        "coverage": _round(stored / estimated) if estimated else 1.0,
    }


def sampling_note(sampling: Mapping[str, Any] | None) -> str:
    """``"sampled, ~N% stored"`` for a sampled number (what the chain list, the chain page
    and ``chainmap health`` print next to its traces); ``""`` when nothing was sampled."""
    if not sampling or not sampling.get("sampled"):
        return ""
    return f"sampled, ~{float(sampling['coverage']):.0%} stored"


def _health_sql(
    database: str, rules: EntryRules, windows: Sequence[str], inferred: bool, live: bool
) -> str:
    return f"""
SELECT chain,
       sumIf(AdjustedCalls, {_MAIN}) AS calls,
       sumIf(AdjustedErrors, {_MAIN}) AS errors,
       if(sumIf(SampledCalls, {_MAIN}) > 0,
          quantilesTDigestWeightedMergeIf(0.5, 0.95, 0.99)(AdjustedLatency, {_MAIN}),
          quantilesTDigestMergeIf(0.5, 0.95, 0.99)(Latency, {_MAIN})),
       sumIf(Calls, {_MAIN}) AS stored,
       sumIf(SampledCalls, {_MAIN}) AS sampled,
       {_window_columns(windows)}
FROM ({entry_rows_sql(database, rules, inferred, live, hours=True)}
)
WHERE chain IN {{chains:Array(String)}}
GROUP BY chain"""


def _series_sql(database: str, rules: EntryRules, inferred: bool, live: bool) -> str:
    return f"""
SELECT chain,
       intDiv(toUnixTimestamp(Minute) - {{scan_start:Int64}}, {{step:Int64}}) AS bucket,
       sum(AdjustedCalls), sum(AdjustedErrors), {_SERIES_QUANTILES}
FROM ({entry_rows_sql(database, rules, inferred, live, hours=True)}
)
WHERE chain IN {{chains:Array(String)}}
GROUP BY chain, bucket
ORDER BY chain, bucket"""


def chain_totals(
    store: TraceStore, catalog: ChainCatalog, environment: str = ""
) -> dict[str, dict[str, Any]]:
    """Per chain over every stored minute, from health's entry rows (:func:`entry_rows_sql`):
    ``calls``, ``errors``, ``duration_ns``, ``buckets`` (log-scale latency bucket -> count)
    and ``first_minute``; chains without an entry are left out."""
    rules = EntryRules.compile(catalog)
    end_s = -(-time.time_ns() // _NS) + 60
    bound: dict[str, Any] = {
        **rules.params,
        "chains": list(catalog.ids),
        "scan_start": 0,
        "end": end_s,
        **environment_params(environment),
    }
    watermark = entries.analysis_watermark(store)
    if watermark is not None:
        bound |= entries.live_params(watermark, end_s * _NS)
    rows_sql = entry_rows_sql(store.database, rules, watermark is not None)
    sql = f"""
SELECT chain, sum(AdjustedCalls), sum(AdjustedErrors), sum(AdjustedDurationSum),
       sumMap(AdjustedLatencyBuckets), min(Minute), sum(Calls), sum(SampledCalls)
FROM ({rows_sql}
)
WHERE chain IN {{chains:Array(String)}}
GROUP BY chain"""
    totals = {}
    for chain, calls, errors, duration_ns, (keys, values), first, stored, sampled in store.query(
        sql, bound
    ).result_rows:
        totals[str(chain)] = {
            "calls": float(calls),
            "errors": float(errors),
            "duration_ns": float(duration_ns),
            "buckets": dict(zip(keys, values, strict=True)),
            "first_minute": first,
            "sampling": sampling_json(int(stored), float(calls), int(sampled)),
        }
    return totals


def _round(value: float) -> float:
    return round(float(value), 6)


def chain_health(
    chain: ChainDefinition,
    window: TimeWindow,
    main: Tally,
    quantiles: Sequence[float],
    tallies: Mapping[str, Tally],
    sampling: Mapping[str, Any],
    counted: Mapping[str, tuple[int, int]] | None = None,
) -> dict[str, Any]:
    """One chain's health entry from its tallies (``tallies``: burn windows and ``slo``) and
    what they rest on (``sampling``, :func:`sampling_json`); ``counted``: the burn windows the
    services' counts cover, label -> (entries, errors), which the error-rate burn reads."""
    burns: dict[str, dict[str, float]] = {}
    objectives: list[dict[str, Any]] = []
    slo_ratios = objective_ratios(chain, tallies["slo"])
    counted = counted or {}
    for objective, (bad, budget) in slo_ratios.items():
        rates = {
            label: objective_ratios(chain, tallies[label], counted.get(label))[objective][0]
            / budget
            for label, _ in BURN_WINDOWS
        }
        burns[objective] = rates
        objectives.append(
            {
                "objective": objective,
                "budget": budget,
                "bad_ratio": _round(bad),
                "compliant": bad <= budget,
                "budget_remaining": _round(1 - bad / budget),
                "burn_rates": {k: _round(v) for k, v in rates.items()},
            }
        )
    status, reason = decide_status(burns)
    if main.calls == 0 and status in ("healthy", "no_slo"):
        status, reason = "no_data", "no traffic in the window; " + reason
    worst = (
        {label: _round(max(r[label] for r in burns.values())) for label, _ in BURN_WINDOWS}
        if burns
        else None
    )
    slo = chain.slo
    p50, p95, p99 = (round(float(q) / 1e6, 3) for q in quantiles) if main.calls else (0.0, 0.0, 0.0)
    return {
        "chain_id": chain.id,
        "name": chain.name,
        "criticality": chain.criticality,
        "traces": round(main.calls),
        "rate_per_s": _round(main.calls / window.seconds),
        "rate_seconds": _round(window.seconds),
        "errors": round(main.errors),
        "error_ratio": _round(main.errors / main.calls) if main.calls else 0.0,
        "p50_ms": p50,
        "p95_ms": p95,
        "p99_ms": p99,
        "slo": None
        if slo is None
        else {
            "window_seconds": slo.window_seconds,
            "compliant": all(o["compliant"] for o in objectives),
            "error_budget_remaining": min(
                (o["budget_remaining"] for o in objectives), default=None
            ),
            "objectives": objectives,
        },
        "burn_rates": worst,
        "status": status,
        "reason": reason,
        "sampling": dict(sampling),
    }


def _window_starts(window: TimeWindow) -> tuple[int, list[int]]:
    """The window's end (Unix seconds, rounded up) and the starts of the main window and the
    burn windows (:data:`BURN_WINDOWS` order), rounded down to their minutes: every minute a
    window touches counts, so one starting mid-minute still sees that minute's traffic."""
    end_s = -(-window.end_ns // _NS)
    main_start = window.start_ns // _NS // 60 * 60
    return end_s, [main_start] + [(end_s - seconds) // 60 * 60 for _, seconds in BURN_WINDOWS]


def health_counts(
    store: TraceStore, chain_ids: Iterable[str], window: TimeWindow
) -> dict[str, dict[str, CountedWindows]]:
    """The services' counts :func:`health` reads for ``window`` and its burn windows, per
    environment (:func:`~chainmap_otel.analysis.entry_counts.counted_windows`), in one query:
    read once with ``window.environment`` ``""``, they serve every environment's health
    (:func:`~chainmap_otel.analysis.entry_counts.scope_counts`)."""
    end_s, starts = _window_starts(window)
    return counted_windows(store, list(chain_ids), starts, end_s, window.environment)


def health(
    store: TraceStore,
    catalog: ChainCatalog,
    window: TimeWindow,
    chain_ids: Iterable[str] | None = None,
    counted: Mapping[str, CountedWindows] | None = None,
) -> list[dict[str, Any]]:
    """Health of each chain (default: all of ``catalog``) for ``window``: one query of the
    entry rows and one of the services' counts (``counted``: already read by
    :func:`health_counts` and :func:`~chainmap_otel.analysis.entry_counts.scope_counts` for
    this window and environment, then not read again)."""
    chains = [
        require_chain(catalog, cid).in_environment(window.environment)
        for cid in (catalog.ids if chain_ids is None else chain_ids)
    ]
    if not chains:
        return []
    end_s, window_starts = _window_starts(window)
    main_start = window_starts[0]
    starts = {label: window_starts[i + 1] for i, (label, _) in enumerate(BURN_WINDOWS)}
    slo_seconds = max((c.slo.window_seconds for c in chains if c.slo is not None), default=0)
    names = [label for label, _ in BURN_WINDOWS] + ["slo"]
    rules = EntryRules.compile(catalog)
    bound: dict[str, Any] = {
        **rules.params,
        "chains": [c.id for c in chains],
        "end": end_s,
        "main_start": main_start,
        **environment_params(window.environment),
    }
    for i, label in enumerate(names[:-1]):
        bound[f"w{i}"] = starts[label]
    scan_start = min([main_start, end_s - BURN_WINDOWS[-1][1], end_s - slo_seconds])
    bound["scan_start"] = scan_start
    watermark = entries.analysis_watermark(store)
    live = bind_live(store, rules, bound, watermark, scan_start, end_s)
    # Each chain's SLO window ends with the others' and starts where its own length says.
    bound["slo_chains"] = [c.id for c in chains]
    bound["slo_starts"] = [
        (end_s - (c.slo.window_seconds if c.slo else 0)) // 60 * 60 for c in chains
    ]
    slo_cuts = ((end_s - seconds) // 60 * 60 for seconds in slo_window_seconds(catalog))
    bound["hour_cuts"] = hour_cuts(main_start, *starts.values(), *slo_cuts)
    covered = observed_window(store, window)
    rows = store.query(
        _health_sql(store.database, rules, names, watermark is not None, live),
        bound,
    ).result_rows
    if counted is None:
        counted = scope_counts(
            health_counts(store, [c.id for c in chains], window), window.environment
        )
    found = {str(row[0]): row for row in rows}
    results: dict[str, dict[str, Any]] = {}
    for chain in chains:
        row = found.get(chain.id)
        tallies: dict[str, Tally] = {}
        if row is None:
            main, quantiles = Tally(), [0.0, 0.0, 0.0]
            tallies = {name: Tally() for name in names}
            sampling = sampling_json(0, 0.0, 0)
        else:
            main, quantiles = Tally(float(row[1]), float(row[2])), list(row[3])
            sampling = sampling_json(int(row[4]), main.calls, int(row[5]))
            for i, name in enumerate(names):
                calls, errors, (keys, values) = row[6 + 3 * i : 9 + 3 * i]
                tallies[name] = Tally(
                    float(calls), float(errors), dict(zip(keys, values, strict=True))
                )
        count = counted.get(chain.id)
        burn_counts: dict[str, tuple[int, int]] = {}
        if count is not None:
            if count.covered[0]:
                main = Tally(float(count.entries[0]), float(count.errors[0]), main.buckets)
            for i, (label, _) in enumerate(BURN_WINDOWS, start=1):
                if count.covered[i]:
                    burn_counts[label] = (count.entries[i], count.errors[i])
        entry = chain_health(chain, covered, main, quantiles, tallies, sampling, burn_counts)
        entry["counted"] = counted_json(count, int(sampling["stored"]))
        results[chain.id] = entry
    return [results[c.id] for c in chains]


def counted_json(count: CountedWindows | None, stored: int) -> dict[str, Any] | None:
    """What the services counted of the chain in the window (``None`` where no service
    counted it): ``entries``, ``errors`` and the histogram's ``p50_ms``/``p95_ms`` in the
    window, ``trace_coverage`` (stored entry traces / counted entries), ``window`` (the counts
    cover the window, so its ``traces``, ``errors``, ``rate_per_s`` and ``error_ratio`` are
    these) and ``burn`` (burn window -> whether its error-rate burn reads the counts)."""
    if count is None:
        return None
    main = count.main(stored)
    return {
        "entries": main.entries,
        "errors": main.errors,
        "p50_ms": main.p50_ms,
        "p95_ms": main.p95_ms,
        "trace_coverage": _round(main.stored / main.entries) if main.entries else None,
        "window": count.covered[0],
        "burn": {label: count.covered[i] for i, (label, _) in enumerate(BURN_WINDOWS, start=1)},
    }


def order_chains(entries: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Health entries worst status first (critical, degraded, healthy, no_data, no_slo), then by
    criticality (critical first), then by id: the order of every chain list."""
    return sorted(
        entries,
        key=lambda e: (
            STATUS_ORDER.get(str(e["status"]), len(STATUS_ORDER)),
            CRITICALITY_ORDER.get(str(e["criticality"]), len(CRITICALITY_ORDER)),
            str(e["chain_id"]),
        ),
    )


def chain_series(
    store: TraceStore,
    catalog: ChainCatalog,
    window: TimeWindow,
    chain_ids: Iterable[str] | None = None,
    points: int = SERIES_POINTS,
) -> dict[str, dict[str, Any]]:
    """Per chain, up to ``points`` equal steps of whole minutes ending at the window's end
    (rounded up to a minute), oldest first:
    ``{"start", "step_seconds", "seconds", "rate_per_s", "errors", "p95_ms"}``: ``seconds``
    is the part of each step that has data (:func:`observed_steps`), what its rate is divided
    by; a step without traffic has rate 0, errors 0 and p95 ``None``. From the same entry rows
    as :func:`health`."""
    chains = [
        require_chain(catalog, cid).id for cid in (catalog.ids if chain_ids is None else chain_ids)
    ]
    start, step, count = series_steps(window, points)
    end = start + count * step
    rules = EntryRules.compile(catalog)
    bound = {
        **rules.params,
        "chains": chains,
        "scan_start": start,
        "end": end,
        "step": step,
        "hour_cuts": hour_cuts(*(start + i * step for i in range(count + 1))),
        **environment_params(window.environment),
    }
    watermark = entries.analysis_watermark(store)
    live = bind_live(store, rules, bound, watermark, start, end)
    observed = (
        observed_steps(store, start, step, count, window.environment)
        if chains
        else [float(step)] * count
    )
    out: dict[str, dict[str, Any]] = {
        cid: {
            "start": TimeWindow(start * _NS, start * _NS).to_json()["since"],
            "step_seconds": step,
            "seconds": [_round(s) for s in observed],
            "rate_per_s": [0.0] * count,
            "errors": [0] * count,
            "p95_ms": [None] * count,
        }
        for cid in chains
    }
    if not chains:
        return out
    for chain, bucket, calls, errors, quantiles in store.query(
        _series_sql(store.database, rules, watermark is not None, live), bound
    ).result_rows:
        series, index = out.get(str(chain)), int(bucket)
        if series is None or not 0 <= index < count:
            continue
        series["rate_per_s"][index] = _round(float(calls) / observed[index])
        series["errors"][index] = round(float(errors))
        series["p95_ms"][index] = round(float(quantiles[1]) / 1e6, 3) if calls else None
    return out


def health_json(
    store: TraceStore, catalog: ChainCatalog, window: TimeWindow, chain_id: str | None = None
) -> dict[str, Any]:
    """``{"window": ..., "chains": [...]}`` (see the module docstring)."""
    ids = None if chain_id is None else [chain_id]
    entries = order_chains(health(store, catalog, window, ids))
    return {"window": window.to_json(), "chains": [dict(e) for e in entries]}
