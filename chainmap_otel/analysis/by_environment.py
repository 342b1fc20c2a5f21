"""Chain health and totals side by side per ``deployment.environment.name``.

The environments are the ones whose entry spans a window holds
(:func:`~chainmap_otel.analysis.entry_rows.environments`); ``""`` stands for the spans whose
resource names none. Health per environment is :func:`~chainmap_otel.analysis.health.health`
of the window in that environment, judged by that environment's objectives. The totals
``/metrics`` exports are additive (calls, errors, durations, latency-bucket counts), so the
part without an environment is what the named ones leave of the whole: every series sums to
the whole without double counting.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from chainmap_otel.analysis.entry_counts import CountedWindows, scope_counts
from chainmap_otel.analysis.entry_rows import environments
from chainmap_otel.analysis.health import chain_totals, health, health_counts, sampling_json
from chainmap_otel.analysis.timewindow import TimeWindow
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog

__all__ = ["environment_names", "health_by_environment", "totals_by_environment"]

#: What float sums subtracted leave of a bucket emptied exactly (weighted counts are floats).
_RESIDUE = 1e-6


def environment_names(store: TraceStore, window: TimeWindow) -> list[str]:
    """The named environments seen in ``window``, sorted; ``""`` last when spans without one
    are seen too."""
    seen = [str(row["environment"]) for row in environments(store, window)]
    named = sorted(name for name in seen if name)
    return [*named, ""] if "" in seen else named


def health_by_environment(
    store: TraceStore,
    catalog: ChainCatalog,
    window: TimeWindow,
    names: Iterable[str],
    counted: Mapping[str, Mapping[str, CountedWindows]] | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """environment -> chain id -> its health entry in that environment (named ones only:
    ``""`` is every environment to a window); the services' counts read once for all
    (``counted``: :func:`~chainmap_otel.analysis.health.health_counts` of ``window`` in every
    environment, when the caller has read them)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    named = [name for name in names if name]
    if counted is None:
        counted = health_counts(store, catalog.ids, window.within("")) if named else {}
    for name in named:
        entries = health(store, catalog, window.within(name), counted=scope_counts(counted, name))
        out[name] = {str(e["chain_id"]): e for e in entries}
    return out


def totals_by_environment(
    store: TraceStore, catalog: ChainCatalog, names: Iterable[str]
) -> dict[str, dict[str, dict[str, Any]]]:
    """environment -> :func:`~chainmap_otel.analysis.health.chain_totals` over every stored
    minute. With no named environment: ``{"": the totals}``; else one entry per named one,
    and ``""`` (the rest of the whole) when ``names`` holds it."""
    wanted = list(names)
    whole = chain_totals(store, catalog)
    named = [name for name in wanted if name]
    if not named:
        return {"": whole}
    out = {name: chain_totals(store, catalog, name) for name in named}
    if "" in wanted:
        out[""] = _remainder(whole, list(out.values()))
    return out


def _remainder(
    whole: Mapping[str, dict[str, Any]], parts: list[dict[str, dict[str, Any]]]
) -> dict[str, dict[str, Any]]:
    rest: dict[str, dict[str, Any]] = {}
    for chain, total in whole.items():
        calls, errors, duration = total["calls"], total["errors"], total["duration_ns"]
        stored = total["sampling"]["stored"]
        buckets = dict(total["buckets"])
        for part in parts:
            found = part.get(chain)
            if found is None:
                continue
            calls -= found["calls"]
            errors -= found["errors"]
            duration -= found["duration_ns"]
            stored -= found["sampling"]["stored"]
            for bucket, count in found["buckets"].items():
                buckets[bucket] = buckets.get(bucket, 0) - count
        if stored > 0:
            rest[chain] = {
                "calls": max(calls, 0.0),
                "errors": max(errors, 0.0),
                "duration_ns": max(duration, 0.0),
                "buckets": {k: v for k, v in buckets.items() if v > _RESIDUE},
                "first_minute": total.get("first_minute"),
                "sampling": sampling_json(stored, calls, int(round(calls) != stored)),
            }
    return rest
