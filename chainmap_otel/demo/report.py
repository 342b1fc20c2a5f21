"""What the demo prints after the load: all of it computed by the analysis library.

Chains observed (with expected edges seen or missing), each chain's topology as a
terminal tree (and Mermaid in the JSON summary) with its hops through a queue, the health table, the top
critical-path contributors of the slowest request/response chain, and the chains
a failing service affects.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.text import Text
from rich.tree import Tree

from chainmap_otel.analysis.by_environment import environment_names
from chainmap_otel.analysis.critical_path import chain_critical_path
from chainmap_otel.analysis.health import health
from chainmap_otel.analysis.impact import chain_subgraph, impact
from chainmap_otel.analysis.instances import QUEUE_WAIT
from chainmap_otel.analysis.timewindow import TimeWindow
from chainmap_otel.analysis.topology import Edge, Topology, topologies
from chainmap_otel.cli.app import fitted_table
from chainmap_otel.errors import QueryError
from chainmap_otel.storage.store import open_store
from chainmap_otel.tagging.definitions import (
    ChainCatalog,
    ChainDefinition,
    ExpectedTopology,
    load_catalog,
)

#: The service whose failures the demo injects, shown in the impact section.
FAILING_SERVICE = "trading-engine"
STATUS_STYLE = {
    "healthy": "green",
    "degraded": "yellow",
    "critical": "bold red",
    "no_data": "dim",
    "no_slo": "dim",
}


@dataclass
class DemoAnalysis:
    window: TimeWindow
    catalog: ChainCatalog
    topologies: dict[str | None, Topology]
    health: list[dict[str, Any]]
    critical_path: dict[str, Any] | None
    critical_paths: dict[str, dict[str, Any]] = field(default_factory=dict)
    impact: dict[str, Any] = field(default_factory=dict)
    #: The deployment environments the platform's spans name (the demo sets ``demo``).
    environments: list[str] = field(default_factory=list)

    def observed(self) -> list[str]:
        return [h["chain_id"] for h in self.health if h["traces"] > 0]

    def chain_json(self, chain_id: str) -> dict[str, Any]:
        chain = self.catalog.by_id[chain_id]
        topology = self.topologies.get(chain_id) or Topology(chain_id, self.window)
        own, entries = chain_subgraph(chain, topology)
        seen = {(str(source), str(target)) for source, target in own.edges}
        expected = _expected_edges(chain.expected)
        entry = next(h for h in self.health if h["chain_id"] == chain_id)
        return {
            "id": chain_id,
            "name": chain.name,
            "category": chain.category,
            "traces": entry["traces"],
            "errors": entry["errors"],
            "entry_services": sorted(entries),
            "nodes": [node.to_json() for node in topology.nodes],
            "edges": [[source, target] for source, target in sorted(seen)],
            "trace_edges": [[s, t] for s, t in sorted(topology.edge_set())],
            "expected_edges": [list(edge) for edge in expected],
            "missing_expected_edges": [list(edge) for edge in expected if edge not in seen],
            "queue_hops": [edge.to_json() for edge in queue_hops(topology)],
            "mermaid": mermaid(topology),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "window": self.window.to_json(),
            "chains_observed": self.observed(),
            "chains": {cid: self.chain_json(cid) for cid in self.observed()},
            "all_traffic_edges": [[s, t] for s, t in sorted(self.topologies[None].edge_set())]
            if None in self.topologies
            else [],
            "environments": self.environments,
            "health": self.health,
            "critical_path": self.critical_path,
            "critical_paths": self.critical_paths,
            "impact": self.impact,
        }


def _expected_edges(expected: ExpectedTopology | None) -> list[tuple[str, str]]:
    return list(expected.edges) if expected is not None else []


def _is_streaming(chain_id: str, catalog: ChainCatalog) -> bool:
    """WebSocket chains: their entry spans last as long as the client stays connected."""
    chain = catalog.by_id[chain_id]
    text = f"{chain.name} {chain.description}".lower()
    return "websocket" in text


def analyse(store_url: str, chains_file: Path, since_ns: int) -> DemoAnalysis:
    """Analyse the spans stored since ``since_ns`` (the demo's start).

    The window starts on a whole minute: health reads per-minute aggregates, and a
    minute only counts when it lies inside the window.
    """
    catalog = load_catalog(chains_file)
    minute = 60 * 1_000_000_000
    window = TimeWindow(since_ns // minute * minute, -(-time.time_ns() // minute) * minute)
    with open_store(store_url) as store:
        tops = topologies(store, catalog, window)
        table = health(store, catalog, window)
        environments = environment_names(store, window)
        observed = [h for h in table if h["traces"] > 0]
        request_chains = [h for h in observed if not _is_streaming(h["chain_id"], catalog)]
        slowest = max(request_chains, key=lambda h: h["p95_ms"], default=None)
        paths: dict[str, dict[str, Any]] = {}
        for entry in request_chains:
            paths[entry["chain_id"]] = chain_critical_path(
                store, catalog, entry["chain_id"], window
            ).to_json()
        try:
            affected = impact(store, catalog, window, FAILING_SERVICE)
        except QueryError as exc:
            affected = {"node": FAILING_SERVICE, "chains": [], "problem": str(exc)}
    return DemoAnalysis(
        window=window,
        catalog=catalog,
        topologies=tops,
        health=table,
        critical_path=paths.get(slowest["chain_id"]) if slowest else None,
        critical_paths=paths,
        impact=affected,
        environments=environments,
    )


def queue_hops(topology: Topology) -> list[Edge]:
    """The chain's hops through a queue: messaging edges from a service to a consumer's
    service (paired through span links across traces, or parent and child in one trace);
    their latency is the time messages waited in the queue when paired through links."""
    services = {node.id for node in topology.nodes if node.type == "service"}
    return [
        edge
        for edge in topology.edges
        if edge.connection_type == "messaging_system" and edge.target in services
    ]


def mermaid(topology: Topology) -> str:
    lines = ["graph LR"]
    for edge in sorted(topology.edges, key=lambda e: (e.source, e.target)):
        label = f"{edge.calls} calls"
        if edge.errors:
            label += f", {edge.errors} errors"
        lines.append(
            f'  {_mermaid_id(edge.source)}["{edge.source}"] -->|{label}| '
            f'{_mermaid_id(edge.target)}["{edge.target}"]'
        )
    return "\n".join(lines)


def _mermaid_id(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name)


def topology_tree(title: str, chain: ChainDefinition, topology: Topology) -> Tree:
    """The chain's own graph (what its entry services reach) as a tree from the entries;
    a node already drawn is marked, not expanded again."""
    graph, entries = chain_subgraph(chain, topology)
    tree = Tree(title)
    expanded: set[str] = set(entries)
    # A node several callers reach shows this branch's calls and all of them: the calls
    # below it are the node's own, from every caller, not this branch's share.
    received = {n: sum(int(d["calls"]) for _, _, d in graph.in_edges(n, data=True)) for n in graph}
    callers = {n: graph.in_degree(n) for n in graph}

    def add(branch: Tree, node: str) -> None:
        edges = sorted(graph.out_edges(node, data=True), key=lambda e: -int(e[2]["calls"]))
        for _, target, data in edges:
            count = int(data["errors"])
            errors = f", [red]{count} error{'s' if count > 1 else ''}[/]" if count else ""
            calls = (
                f"{data['calls']} of its {received[target]} calls"
                if callers[target] > 1
                else f"{data['calls']} calls"
            )
            label = f"{escape(target)} [dim]({calls}{errors}, p95 {data['p95_ms']:.0f} ms)[/]"
            if target in expanded:
                branch.add(label + " [dim]↺[/]")
                continue
            expanded.add(target)
            add(branch.add(label), target)

    for entry in sorted(entries):
        add(tree.add(f"[bold]{escape(entry)}[/] [dim](entry)[/]"), entry)
    return tree


def render(result: DemoAnalysis, console: Console) -> None:
    data = result.to_json()
    observed = data["chains_observed"]
    console.rule(f"[bold]Chains observed: {len(observed)}")
    for chain_id in observed:
        chain = data["chains"][chain_id]
        title = f"[bold]{escape(chain_id)}[/] {escape(chain['name'])} [dim]({chain['traces']} traces)[/]"
        definition = result.catalog.by_id[chain_id]
        console.print(topology_tree(title, definition, result.topologies[chain_id]))
        for hop in chain["queue_hops"]:
            console.print(
                f"  [cyan]continues through a queue:[/] {escape(hop['source'])} -> "
                f"{escape(hop['target'])}, {hop['calls']} messages, queue wait "
                f"p50 {hop['p50_ms']:.0f} ms, p95 {hop['p95_ms']:.0f} ms"
            )
        through = result.critical_paths.get(chain_id, {}).get("through_queues", {})
        if through.get("instances"):
            console.print(
                f"  [cyan]end to end through the queue:[/] {through['instances']} sampled "
                f"instances, p50 {through['p50_ms']:.0f} ms, p95 {through['p95_ms']:.0f} ms, "
                f"{_queue_share(result.critical_paths[chain_id]):.1f} % of the critical path "
                "waiting in queues"
            )
        if chain["missing_expected_edges"]:
            missing = ", ".join(f"{s} -> {t}" for s, t in chain["missing_expected_edges"])
            console.print(f"  [yellow]expected but not seen:[/] {missing}")

    rows = [
        (
            entry["chain_id"],
            entry["name"],
            str(entry["traces"]),
            f"{entry['rate_per_s']:.2f}",
            str(entry["errors"]),
            f"{entry['error_ratio'] * 100:.1f}",
            f"{entry['p50_ms']:.0f}",
            f"{entry['p95_ms']:.0f}",
            f"{entry['p99_ms']:.0f}",
            Text(entry["status"], style=STATUS_STYLE.get(entry["status"], "")),
        )
        for entry in result.health
    ]
    headers = (
        "chain",
        "name",
        "traces",
        "rate/s",
        "errors",
        "err %",
        "p50",
        "p95",
        "p99",
        "status",
    )
    named = [name for name in result.environments if name]
    where = f" in {', '.join(named)}" if named else ""
    title = f"Chain health{where} (latencies in ms)"
    console.print(fitted_table(title, headers, rows, wrap=("name",)))

    path = result.critical_path
    if path is not None:
        shares = [
            (
                share["service"],
                share.get("name", ""),
                f"{share['share'] * 100:.1f} %",
                f"{share['mean_ms']:.1f}",
            )
            for share in path["all"]["operations"][:8]
        ]
        streaming = [c for c in data["chains_observed"] if _is_streaming(c, result.catalog)]
        skipped = (
            f"; WebSocket chains ({', '.join(streaming)}) left out: their entry spans last "
            "as long as the connection"
            if streaming
            else ""
        )
        title = (
            f"Critical path of the slowest request chain by p95, {path['chain_id']} "
            f"({path['all'].get('traces', path['traces'])} traces): where its time goes"
            f"{skipped}"
        )
        console.print(
            fitted_table(
                title, ("service", "operation", "share", "ms/trace"), shares, ("operation",)
            )
        )
    render_impact(result.impact, console)


def _queue_share(path: dict[str, Any]) -> float:
    """The share of a chain's critical-path time spent waiting in queues, in percent."""
    shares = [s["share"] for s in path["all"]["operations"] if s["name"] == QUEUE_WAIT]
    return 100.0 * float(sum(shares))


def render_impact(data: dict[str, Any], console: Console) -> None:
    chains = data.get("chains") or []
    rows = [
        (
            entry["chain_id"],
            entry["name"],
            entry["criticality"],
            entry["relation"],
            " -> ".join(entry.get("path") or []),
            Text(entry.get("status", ""), style=STATUS_STYLE.get(entry.get("status", ""), "")),
        )
        for entry in chains
    ]
    console.print(
        fitted_table(
            f"Impact: the chains that break when {FAILING_SERVICE} fails",
            ("chain", "name", "criticality", "relation", "path", "status"),
            rows,
            wrap=("name", "path"),
        )
    )
