"""Topology renderings: Mermaid flowchart, Graphviz dot, Grafana Node Graph frames, terminal text.

Grafana's Node Graph panel reads two frames. Nodes: ``id``, ``title``, ``subtitle``,
``mainstat`` (calls), ``secondarystat`` (error ratio), ``arc__success`` and ``arc__failed``
(fractions that sum to 1). Edges: ``id``, ``source``, ``target``, ``mainstat`` (calls),
``secondarystat`` (p95 ms). Every edge endpoint is a node id.
"""

from __future__ import annotations

import re
from typing import Any

from chainmap_otel.analysis.topology import Topology

_MERMAID_SHAPES = {
    "user": ("([", "])"),
    "caller": ("([", "])"),
    "database": ("[(", ")]"),
    "messaging": ("[/", "/]"),
    "virtual": ("{{", "}}"),
    "service": ("[", "]"),
}


def _mermaid_id(index: int) -> str:
    return f"n{index}"


def _label(text: str) -> str:
    return re.sub(r'["<>]', "'", text)


def to_mermaid(topo: Topology) -> str:
    """A ``flowchart LR``: node shapes by type, edge labels ``calls / errors / p95``."""
    ids = {node.id: _mermaid_id(i) for i, node in enumerate(topo.nodes)}
    lines = ["flowchart LR"]
    for node in topo.nodes:
        left, right = _MERMAID_SHAPES.get(node.type, ("[", "]"))
        lines.append(f'    {ids[node.id]}{left}"{_label(node.title)}"{right}')
    for edge in topo.edges:
        label = f"{edge.calls} calls"
        if edge.errors:
            label += f", {edge.errors} err"
        label += f", p95 {edge.p95_ms:g} ms"
        arrow = "-.->" if edge.connection_type in ("messaging_system", "virtual_node") else "-->"
        lines.append(f'    {ids[edge.source]} {arrow}|"{_label(label)}"| {ids[edge.target]}')
    for node in topo.nodes:
        if node.errors:
            lines.append(f"    style {ids[node.id]} stroke:#d33,stroke-width:2px")
    return "\n".join(lines) + "\n"


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_DOT_SHAPES = {
    "user": "ellipse",
    "caller": "ellipse",
    "database": "cylinder",
    "messaging": "parallelogram",
    "virtual": "hexagon",
    "service": "box",
}


def to_dot(topo: Topology) -> str:
    """A Graphviz ``digraph`` (``dot -Tsvg``)."""
    name = f"chain_{topo.chain_id}" if topo.chain_id else "all_traffic"
    lines = [f"digraph {_dot_quote(name)} {{", "  rankdir=LR;"]
    for node in topo.nodes:
        color = ', color="red"' if node.errors else ""
        lines.append(f"  {_dot_quote(node.id)} [shape={_DOT_SHAPES.get(node.type, 'box')}{color}];")
    for edge in topo.edges:
        label = f"{edge.calls} calls, {edge.errors} err, p95 {edge.p95_ms:g}ms"
        style = ', style="dashed"' if edge.connection_type else ""
        lines.append(
            f"  {_dot_quote(edge.source)} -> {_dot_quote(edge.target)} "
            f"[label={_dot_quote(label)}{style}];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_grafana(topo: Topology) -> dict[str, Any]:
    """Node Graph frames: ``{"nodes": [...], "edges": [...]}`` (field names as Grafana reads)."""
    nodes = []
    for node in topo.nodes:
        failed = node.errors / node.calls if node.calls else 0.0
        nodes.append(
            {
                "id": node.id,
                "title": node.title,
                "subtitle": node.type,
                "mainstat": node.calls,
                "secondarystat": round(failed, 6),
                "arc__success": round(1.0 - failed, 6),
                "arc__failed": round(failed, 6),
            }
        )
    edges = [
        {
            "id": f"{edge.source}->{edge.target}:{edge.connection_type or 'request'}",
            "source": edge.source,
            "target": edge.target,
            "mainstat": edge.calls,
            "secondarystat": edge.p95_ms,
        }
        for edge in topo.edges
    ]
    return {"nodes": nodes, "edges": edges}


def to_text(topo: Topology) -> str:
    """A terminal tree: each node followed by what it calls (cycles and repeats marked)."""
    children: dict[str, list[Any]] = {}
    targets = set()
    for edge in sorted(topo.edges, key=lambda e: (e.source, -e.calls, e.target)):
        children.setdefault(edge.source, []).append(edge)
        targets.add(edge.target)
    roots = sorted(n.id for n in topo.nodes if n.id not in targets) or sorted(children)[:1]
    lines: list[str] = []
    shown: set[str] = set()
    stack: list[tuple[str, str, str]] = [(root, "", "") for root in reversed(roots)]
    while stack:
        node, prefix, label = stack.pop()
        repeat = node in shown
        lines.append(
            f"{prefix}{node}{label}{' (see above)' if repeat and node in children else ''}"
        )
        if repeat:
            continue
        shown.add(node)
        kids = children.get(node, [])
        indent = prefix.replace("└─ ", "   ").replace("├─ ", "│  ")
        for i, edge in enumerate(reversed(kids)):
            branch = "└─ " if i == 0 else "├─ "
            err = f", {edge.errors} err" if edge.errors else ""
            stack.append(
                (
                    edge.target,
                    indent + branch,
                    f"  [{edge.calls} calls{err}, p95 {edge.p95_ms:g} ms]",
                )
            )
    return "\n".join(lines) + "\n"
