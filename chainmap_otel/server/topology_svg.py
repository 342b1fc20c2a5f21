"""A topology drawn as inline SVG: a layered left-to-right layout computed server-side.

Layers are longest-path layers of the graph's condensation (nodes of a cycle share a
layer), so every forward edge points right; the order inside a layer comes from a few
barycenter sweeps, which removes most crossings of the small graphs chains have.
Nodes are coloured by type (service, database, messaging, virtual, user) and outlined
red when they received failed calls; edges are labelled calls / errors / p95.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

import networkx as nx

from chainmap_otel.analysis.topology import Topology

__all__ = ["NODE_COLOURS", "Layout", "layered_layout", "topology_svg"]

NODE_COLOURS = {
    "service": "#2f6fb0",
    "database": "#c77d1a",
    "messaging": "#7b4fb3",
    "virtual": "#6b7280",
    "user": "#2e8b57",
}
NODE_W, NODE_H = 168, 44
COL_GAP, ROW_GAP = 190, 36
MARGIN = 24
_SWEEPS = 4


@dataclass(frozen=True)
class Layout:
    """Node centres in SVG units, the layer of each node, and the drawing size."""

    positions: dict[str, tuple[float, float]]
    layers: dict[str, int]
    width: float
    height: float


def _layers(graph: nx.DiGraph) -> dict[str, int]:
    condensed = nx.condensation(graph)
    depth: dict[int, int] = {}
    for component in nx.topological_sort(condensed):
        preds = list(condensed.predecessors(component))
        depth[component] = max((depth[p] + 1 for p in preds), default=0)
    mapping = condensed.graph["mapping"]
    return {str(node): depth[mapping[node]] for node in graph.nodes}


def _barycenter(
    graph: nx.DiGraph, layers: dict[str, int], order: dict[str, float], node: str, forward: bool
) -> float:
    """Mean rank of ``node``'s neighbours in other layers (left ones when ``forward``)."""
    near = graph.predecessors(node) if forward else graph.successors(node)
    ranks = [order[n] for n in near if layers[n] != layers[node]]
    return sum(ranks) / len(ranks) if ranks else order[node]


def layered_layout(graph: nx.DiGraph) -> Layout:
    """Longest-path layers left to right, barycenter order top to bottom."""
    if graph.number_of_nodes() == 0:
        return Layout({}, {}, 2 * MARGIN + NODE_W, 2 * MARGIN + NODE_H)
    layers = _layers(graph)
    columns: dict[int, list[str]] = {}
    for node in sorted(layers, key=lambda n: (graph.nodes[n].get("type") != "user", n)):
        columns.setdefault(layers[node], []).append(node)
    order = {node: float(i) for column in columns.values() for i, node in enumerate(column)}
    for sweep in range(_SWEEPS):
        forward = sweep % 2 == 0
        for layer in sorted(columns, reverse=not forward):
            columns[layer].sort(
                key=lambda n: (_barycenter(graph, layers, order, n, forward), order[n])
            )
            for i, node in enumerate(columns[layer]):
                order[node] = float(i)
    tallest = max(len(c) for c in columns.values())
    height = 2 * MARGIN + tallest * NODE_H + (tallest - 1) * ROW_GAP
    positions: dict[str, tuple[float, float]] = {}
    for layer, column in columns.items():
        used = len(column) * NODE_H + (len(column) - 1) * ROW_GAP
        top = (height - used) / 2
        x = MARGIN + layer * (NODE_W + COL_GAP) + NODE_W / 2
        for i, node in enumerate(column):
            positions[node] = (x, top + i * (NODE_H + ROW_GAP) + NODE_H / 2)
    width = 2 * MARGIN + (max(columns) + 1) * NODE_W + max(columns) * COL_GAP
    return Layout(positions, layers, width, height)


def _short(text: str, limit: int = 22) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _edge_label(data: dict[str, object]) -> str:
    parts = [f"{data.get('calls', 0)} calls"]
    if data.get("errors"):
        parts.append(f"{data['errors']} err")
    p95 = float(data.get("p95_ms", 0) or 0)  # type: ignore[arg-type]
    parts.append(f"p95 {p95:.0f} ms" if p95 >= 10 else f"p95 {p95:.1f} ms")
    return " · ".join(parts)


def topology_svg(topo: Topology, title: str = "") -> str:
    """The topology as a self-contained ``<svg>`` element (no scripts, no external refs)."""
    graph = topo.to_graph()
    layout = layered_layout(graph)
    pos = layout.positions
    label = escape(title or f"topology of {topo.chain_id or 'all traffic'}")
    out = [
        f'<svg class="topology" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'aria-label="{label}" viewBox="0 0 {layout.width:.0f} {layout.height:.0f}" '
        f'width="{layout.width:.0f}" height="{layout.height:.0f}">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" '
        'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>',
    ]
    if not pos:
        out.append(
            f'<text x="{MARGIN}" y="{MARGIN + NODE_H / 2}" class="empty">'
            "no traffic in this window</text></svg>"
        )
        return "".join(out)
    for source, target, data in graph.edges(data=True):
        (x1, y1), (x2, y2) = pos[source], pos[target]
        failed = " failed" if data.get("errors") else ""
        dashed = (
            " async" if data.get("connection_type") in ("messaging_system", "virtual_node") else ""
        )
        if layout.layers[target] > layout.layers[source]:
            sx, sy, tx, ty = x1 + NODE_W / 2, y1, x2 - NODE_W / 2, y2
            bend = (tx - sx) / 2
            path = f"M{sx:.1f},{sy:.1f} C{sx + bend:.1f},{sy:.1f} {tx - bend:.1f},{ty:.1f} {tx:.1f},{ty:.1f}"
            # Labels sit just before the target box: a fan-out's labels then stack
            # with their targets instead of piling up in the middle.
            lx, ly, anchor = tx - 10, ty - 7, "end"
        else:  # same layer (cycle) or backwards: loop below the boxes
            sx, sy, tx, ty = x1, y1 + NODE_H / 2, x2, y2 + NODE_H / 2
            drop = NODE_H + ROW_GAP / 2
            path = f"M{sx:.1f},{sy:.1f} C{sx:.1f},{sy + drop:.1f} {tx:.1f},{ty + drop:.1f} {tx:.1f},{ty:.1f}"
            lx, ly, anchor = (sx + tx) / 2, max(sy, ty) + drop * 0.75, "middle"
        tip = escape(
            f"{source} -> {target}: {_edge_label(data)}"
            + (f" ({data['connection_type']})" if data.get("connection_type") else "")
        )
        out.append(
            f'<g class="edge{failed}{dashed}" data-source="{escape(source)}" '
            f'data-target="{escape(target)}"><title>{tip}</title>'
            f'<path d="{path}" marker-end="url(#arrow)"/>'
            f'<text x="{lx:.1f}" y="{ly:.1f}" text-anchor="{anchor}">{escape(_edge_label(data))}</text></g>'
        )
    for node, data in graph.nodes(data=True):
        x, y = pos[node]
        kind = str(data.get("type", "service"))
        colour = NODE_COLOURS.get(kind, NODE_COLOURS["service"])
        errors = int(data.get("errors", 0))
        calls = int(data.get("calls", 0))
        failed = " failed" if errors else ""
        radius = NODE_H / 2 if kind in ("user", "virtual") else 6
        stat = f"{kind} · {calls} calls" + (f" · {errors} err" if errors else "")
        out.append(
            f'<g class="node {escape(kind)}{failed}" data-node="{escape(node)}">'
            f"<title>{escape(node)} ({escape(stat)})</title>"
            f'<rect x="{x - NODE_W / 2:.1f}" y="{y - NODE_H / 2:.1f}" width="{NODE_W}" '
            f'height="{NODE_H}" rx="{radius:.0f}" fill="{colour}"/>'
            f'<text x="{x:.1f}" y="{y - 3:.1f}" text-anchor="middle" class="name">'
            f"{escape(_short(node))}</text>"
            f'<text x="{x:.1f}" y="{y + 13:.1f}" text-anchor="middle" class="stat">'
            f"{escape(stat)}</text></g>"
        )
    out.append("</svg>")
    return "".join(out)
