"""Analysis of stored traces: topology, critical path, health, impact, drift, discovery,
trace search, coverage of the chain rules.

Computation runs as SQL inside ClickHouse (files under ``sql/``); results become
networkx graphs and plain JSON-ready dicts. Field names of every JSON result are
documented in the module that produces it and in ``docs/json-contract.md``.
"""

from __future__ import annotations

from chainmap_otel.analysis.coverage import Coverage, coverage
from chainmap_otel.analysis.critical_path import (
    ChainCriticalPath,
    chain_critical_path,
    critical_path,
)
from chainmap_otel.analysis.discovery import Discovery, discover, proposals_yaml
from chainmap_otel.analysis.drift import drift
from chainmap_otel.analysis.health import health, health_json
from chainmap_otel.analysis.impact import impact
from chainmap_otel.analysis.membership import classify_expression, trace_chains
from chainmap_otel.analysis.render import to_dot, to_grafana, to_mermaid, to_text
from chainmap_otel.analysis.timewindow import TimeWindow, parse_window
from chainmap_otel.analysis.topology import Topology, topologies, topology
from chainmap_otel.analysis.traces import TraceQuery, TraceSearch, search_traces

__all__ = [
    "ChainCriticalPath",
    "Coverage",
    "Discovery",
    "TimeWindow",
    "Topology",
    "TraceQuery",
    "TraceSearch",
    "chain_critical_path",
    "classify_expression",
    "coverage",
    "critical_path",
    "discover",
    "drift",
    "health",
    "health_json",
    "impact",
    "parse_window",
    "proposals_yaml",
    "search_traces",
    "to_dot",
    "to_grafana",
    "to_mermaid",
    "to_text",
    "topologies",
    "topology",
    "trace_chains",
]
