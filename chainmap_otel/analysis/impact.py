"""Impact: which chains a node takes down when it fails.

Impact and drift (:mod:`chainmap_otel.analysis.drift`) read a chain's **own** part of its traces' topology: the subgraph reachable from the
chain's entry services (the nodes matching a ``service`` pattern of its entry rules).
Trace-level membership puts the outer chains' edges into a nested chain's topology
(B3 inside B1 sees the gateway); reachability from B3's entry keeps what B3 calls.

Impact (:func:`impact`): for a node (service, database, virtual node), each chain whose
entry reaches it: ``relation`` ``entry`` (the chain starts there), ``direct`` (an entry
calls it) or ``transitive``, the shortest ``path`` from the entry, the chain's
criticality and current health status. Most critical first;
JSON: ``docs/json-contract.md`` (checked against the real output by
``tests/docs/test_json_contract.py``).
"""

from __future__ import annotations

from typing import Any

import networkx as nx

from chainmap_otel.analysis.health import health
from chainmap_otel.analysis.timewindow import TimeWindow
from chainmap_otel.analysis.topology import Topology, topologies
from chainmap_otel.errors import NotFoundError
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import CRITICALITIES, ChainCatalog, ChainDefinition


def entry_nodes(chain: ChainDefinition, graph: nx.DiGraph) -> set[str]:
    """Nodes of ``graph`` where ``chain`` can begin (its entry rules' service patterns)."""
    found: set[str] = set()
    for rule in chain.entry:
        for node, data in graph.nodes(data=True):
            if data.get("type") != "service":
                continue
            if rule.service is None or rule.service.matches(node):
                found.add(node)
    return found


def chain_subgraph(chain: ChainDefinition, topo: Topology) -> tuple[nx.DiGraph, set[str]]:
    """The part of ``topo`` reachable from the chain's entry nodes, and those nodes."""
    graph = topo.to_graph()
    entries = entry_nodes(chain, graph)
    reach = set(entries)
    for node in entries:
        reach |= nx.descendants(graph, node)
    return graph.subgraph(reach).copy(), entries


def impact(
    store: TraceStore, catalog: ChainCatalog, window: TimeWindow, node: str
) -> dict[str, Any]:
    """Chains reaching ``node`` in ``window``; NotFoundError when no trace shows it."""
    per_chain = topologies(store, catalog, window)
    hits: list[dict[str, Any]] = []
    for chain in catalog:
        sub, entries = chain_subgraph(chain, per_chain[chain.id])
        if node not in sub:
            continue
        best: list[str] | None = None
        for entry in sorted(entries):
            try:
                path = nx.shortest_path(sub, entry, node)
            except nx.NetworkXNoPath:
                continue
            if best is None or len(path) < len(best):
                best = path
        if best is None:
            continue
        depth = len(best) - 1
        relation = "entry" if depth == 0 else "direct" if depth == 1 else "transitive"
        hits.append(
            {
                "chain_id": chain.id,
                "name": chain.name,
                "criticality": chain.criticality,
                "relation": relation,
                "depth": depth,
                "path": best,
            }
        )
    if not hits:
        seen = per_chain[None].to_graph()
        if node not in seen:
            known = ", ".join(sorted(n for n in seen.nodes if n != "user")[:20]) or "none"
            raise NotFoundError(
                "node",
                node,
                f"node {node!r} appears in no trace of the window {window.to_json()['since']} .. "
                f"{window.to_json()['until']}; nodes seen: {known}",
            )
    statuses = {
        h["chain_id"]: h for h in health(store, catalog, window, [h["chain_id"] for h in hits])
    }
    for hit in hits:
        hit["status"] = statuses[hit["chain_id"]]["status"]
        hit["reason"] = statuses[hit["chain_id"]]["reason"]
    hits.sort(key=lambda h: (CRITICALITIES.index(h["criticality"]), h["depth"], h["chain_id"]))
    return {"node": node, "window": window.to_json(), "chains": hits}
