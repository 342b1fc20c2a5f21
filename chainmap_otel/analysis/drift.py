"""Drift: a chain's observed topology against the ``expected`` block of its definition.

Observed edges of the chain's subgraph (``user`` edges excluded
unless declared) against its ``expected.edges``: ``new`` edges (observed, not declared)
with calls and first/last seen, ``missing`` edges (declared, not observed in the
window) with the last time they were seen in the ``history`` window, if ever.
JSON: ``docs/json-contract.md`` (checked against the real output by
``tests/docs/test_json_contract.py``).
The observed side is the chain's own subgraph (see :func:`impact.chain_subgraph`).
"""

from __future__ import annotations

from typing import Any

from chainmap_otel.analysis.impact import chain_subgraph
from chainmap_otel.analysis.membership import require_chain
from chainmap_otel.analysis.timewindow import TimeWindow, parse_window
from chainmap_otel.analysis.topology import iso_time, topologies
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog

#: How far back a missing edge's last sighting is looked for, by default.
DEFAULT_HISTORY = "7d"


def history_window(history: str | None, until: str | None) -> TimeWindow:
    """The ``history`` lookback ending at ``until``; a bad value is a ParameterError naming
    ``history`` (or ``until``)."""
    return parse_window(history or DEFAULT_HISTORY, until, parameters=("history", "until"))


def drift(
    store: TraceStore,
    catalog: ChainCatalog,
    window: TimeWindow,
    chain_id: str | None = None,
    history: TimeWindow | None = None,
) -> dict[str, Any]:
    """Observed vs expected edges per chain with an ``expected`` block (or ``chain_id``)."""
    if chain_id is not None:
        chains = [require_chain(catalog, chain_id)]
    else:
        chains = [c for c in catalog if c.expected is not None]
    ids = [c.id for c in chains]
    current = topologies(store, catalog, window, ids, include_all_traffic=False)
    past = topologies(store, catalog, history, ids, include_all_traffic=False) if history else {}
    out = []
    for chain in chains:
        expected = set(chain.expected.edges) if chain.expected else set()
        sub, _ = chain_subgraph(chain, current[chain.id])
        declared_user = any("user" in edge for edge in expected)
        observed = {(s, t) for s, t in sub.edges if declared_user or s != "user"}
        new = [
            {
                "source": s,
                "target": t,
                "calls": sub.edges[s, t]["calls"],
                "first_seen": sub.edges[s, t]["first_seen"],
                "last_seen": sub.edges[s, t]["last_seen"],
            }
            for s, t in sorted(observed - expected)
        ]
        last_seen: dict[tuple[str, str], str] = {}
        if chain.id in past:
            for edge in past[chain.id].edges:
                last_seen[(edge.source, edge.target)] = iso_time(edge.last_seen_ns)
        missing = [
            {"source": s, "target": t, "last_seen": last_seen.get((s, t))}
            for s, t in sorted(expected - observed)
        ]
        services = set(chain.expected.services) if chain.expected else set()
        seen_services = {n for n, d in sub.nodes(data=True) if d.get("type") == "service"}
        out.append(
            {
                "chain_id": chain.id,
                "expected": [list(e) for e in sorted(expected)],
                "observed": [list(e) for e in sorted(observed)],
                "new": new,
                "missing": missing,
                "new_services": sorted(seen_services - services) if services else [],
                "missing_services": sorted(services - seen_services),
                "drifted": bool(new or missing or (services and seen_services != services)),
            }
        )
    return {"window": window.to_json(), "chains": out}
