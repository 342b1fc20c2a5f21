"""Service topology per chain, with the OpenTelemetry Collector servicegraph semantics.

Edges (paired by ``sql/trace_edges.sql`` in one pass over ``otel_traces``, no JOIN; for
the whole minutes the edge rollup covers, read from it instead, see below):

* a CLIENT span in service A with a child SERVER span in service B: ``A -> B``
  (``connection_type`` ``""``); PRODUCER -> CONSUMER likewise (``messaging_system``);
* a CLIENT span without a server child that carries ``db.system``/``db.system.name``/
  ``db.namespace``/``db.name``: an edge to a **database** node named from ``peer.service``,
  else ``db.system`` (so ``postgresql``), else the namespace/name (``database``);
* any other CLIENT span without a server child: a **virtual** node named from
  ``peer.service``, else ``server.address`` (``net.peer.name``), else ``db.name``, else
  ``unknown`` (``virtual_node``); a PRODUCER without a consumer: a **messaging** node
  (``messaging.system`` when nothing better names it);
* a root SERVER span: an edge from the ``user`` node (``virtual_node``);
* across traces, a CONSUMER span whose span links point to a PRODUCER span of another trace:
  producer service -> consumer service (``messaging_system``, one call per link), its latency
  the **queue wait** (consumer start minus producer end), paired by ``sql/link_edges.sql``
  with producers starting up to :data:`LINK_LOOKBACK_SECONDS` before or after the consumer,
  and counted in the minute the consumer starts in (rolled up like the other edges), for the
  consumer's tag and the producer's chains (an untagged producer's by the membership rule in
  its trace, ``sql/member_chains.sql``); the producer's own trace still shows its edge to the
  messaging node.

That is chainmap's default naming of database and virtual nodes; the servicegraph
connector's (``virtual_node_peer_attributes``, ``database_name_attributes``) is selectable,
see :mod:`chainmap_otel.analysis.naming`.

An edge call is failed when its client or its server span has status Error (both
Collector spellings). Latency is the client span's duration (the server's for ``user``
edges); p50/p95/p99 are t-digest estimates (exact for a handful of calls). A trace counts
for every chain it belongs to (see :mod:`chainmap_otel.analysis.membership`).

Each edge also carries the connector's two latency histograms (``Edge.client_buckets``,
``Edge.server_buckets``: counts per bucket of :data:`edge_rollup.LATENCY_BOUNDS_NS`, and their
sums): the client and server span durations of a paired edge, the client span's for both
of a database edge, the server span's and 0 for a ``user`` edge, 0 and the client span's
for a virtual or messaging node, exactly as the connector observes them (``GET /metrics``
exports them as ``traces_service_graph_request_{server,client}_seconds``).

Window rule: a trace is in the window when its first span starts in it; its spans are
paired when they start within ``edge_rollup.REACH_SECONDS`` of the window (a pair cut further
out shows as a virtual node).

Cost: :mod:`chainmap_otel.analysis.rollups.edges` keeps ``chainmap_edge_minute``, the same pairing
per minute of trace start, and ``chainmap_edge_hour``, its rows merged per hour.
``sql/topology.sql`` reads hour rows for the whole hours of the window the hour level
covers, minute rows for the part-hours at its edges (:func:`split_hours`), and pairs live
only the rest (the minutes since the watermark, the part-minute at the window's start),
merging counts and latency states in one query.
The rollup is only read here (:func:`edge_rollup.analysis_state`); ``chainmap serve`` keeps it
current in the background, so under serve the live part is a few minutes at most.

JSON: ``docs/json-contract.md`` (checked against the real output by
``tests/docs/test_json_contract.py``).

Node ``calls``/``errors`` count the calls the node received (for ``user``: made).

Sampling and environments: a call counts by its **adjusted count**, the sampling weight of
the span that starts the edge (the client or producer span; the root server span of a
``user`` edge), read from OTEP 235's ``ot=th`` in its ``tracestate``
(:mod:`chainmap_otel.tagging.sampling`): ``calls``/``errors`` are these estimates (rounded),
``stored_calls``/``stored_errors`` the calls actually stored, and ``sampled`` says whether
they differ. Unsampled data count 1 per call, as before. Latency percentiles and the
connector histograms stay per stored call (the servicegraph connector does not weight).
An edge belongs to the environment of that same starting span
(``deployment.environment.name``, else ``deployment.environment``); a window with an
environment keeps that environment's edges only.

Chain scope: a chain's topology is the subtree below its entry spans. An edge counts for a
chain when its client span is in the chain (tagged with it, or below a span of the chain:
untagged spans inherit their parent's chains, see ``sql/trace_edges.sql``; an untagged span
with span links also holds the chains of the spans it links to in other traces, one hop,
so the subtree of a consumer whose service tags nothing counts for its producer's chains). The edge into an
entry span comes from outside the chain: its client is shown as ONE node per calling service,
id ``caller:<service>``, type ``caller``, title the service, with the entry edge's counts;
nothing upstream of it is drawn. A chain entering at a root span keeps its ``user`` edge.
All-traffic topology has no caller nodes.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import networkx as nx

from chainmap_otel.analysis.membership import require_chain
from chainmap_otel.analysis.naming import ServiceGraphNaming
from chainmap_otel.analysis.rollups import edges as edge_rollup
from chainmap_otel.analysis.rollups.protocol import ceil_hour, ceil_minute, floor_hour, floor_minute
from chainmap_otel.analysis.sql import DEFAULT_FRAGMENTS, load_sql
from chainmap_otel.analysis.timewindow import TimeWindow, environment_params
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog

NODE_TYPES = ("service", "database", "messaging", "virtual", "user", "caller")
#: A node id used by some edge as a real service wins over the virtual names of others.
_TYPE_RANK = {"service": 4, "user": 3, "caller": 3, "database": 2, "messaging": 1, "virtual": 0}
#: Node id prefix of the caller of a chain's entry span: ``caller:<its service>``.
CALLER_PREFIX = "caller:"
ALL_TRAFFIC = ""
#: How long before a topology window a producer may have published for its consumer in the
#: window to be paired with it through a span link (``sql/link_edges.sql``).
LINK_LOOKBACK_SECONDS = edge_rollup.LINK_LOOKBACK_SECONDS


def iso_time(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    connection_type: str
    calls: int
    errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    first_seen_ns: int = 0
    last_seen_ns: int = 0
    #: The connector's client/server latency histograms: calls per bucket of
    #: ``edge_rollup.LATENCY_BOUNDS_NS`` (not cumulative, the last one +Inf) and sums in ns.
    client_buckets: tuple[int, ...] = ()
    client_sum_ns: int = 0
    server_buckets: tuple[int, ...] = ()
    server_sum_ns: int = 0
    #: The calls and errors stored (``calls``/``errors`` are estimates from sampling
    #: weights; the same numbers when nothing was sampled).
    stored_calls: int | None = None
    stored_errors: int | None = None

    @property
    def sampled(self) -> bool:
        return self.stored_calls is not None and (
            self.stored_calls != self.calls or self.stored_errors != self.errors
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "connection_type": self.connection_type,
            "calls": self.calls,
            "errors": self.errors,
            "stored_calls": self.calls if self.stored_calls is None else self.stored_calls,
            "stored_errors": self.errors if self.stored_errors is None else self.stored_errors,
            "sampled": self.sampled,
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "p99_ms": self.p99_ms,
            "first_seen": iso_time(self.first_seen_ns) if self.first_seen_ns else None,
            "last_seen": iso_time(self.last_seen_ns) if self.last_seen_ns else None,
        }


@dataclass(frozen=True)
class Node:
    id: str
    type: str
    calls: int
    errors: int

    @property
    def title(self) -> str:
        """What to show: the service name (a caller node's id without its prefix)."""
        if self.type == "caller":
            return self.id.removeprefix(CALLER_PREFIX)
        return self.id

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "title": self.title,
            "calls": self.calls,
            "errors": self.errors,
            "error_ratio": round(self.errors / self.calls, 6) if self.calls else 0.0,
        }


@dataclass
class Topology:
    """The service graph of one chain (``chain_id``) or of all traffic (``None``)."""

    chain_id: str | None
    window: TimeWindow
    edges: list[Edge] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)

    def edge_set(self) -> set[tuple[str, str]]:
        return {(e.source, e.target) for e in self.edges}

    @property
    def sampled(self) -> bool:
        """Whether some edge's calls are estimates from sampled traces."""
        return any(e.sampled for e in self.edges)

    def to_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "window": self.window.to_json(),
            "sampled": self.sampled,
            "nodes": [n.to_json() for n in self.nodes],
            "edges": [e.to_json() for e in self.edges],
        }

    def to_graph(self) -> nx.DiGraph:
        """A networkx DiGraph: node attributes ``type/calls/errors``, edge attributes as JSON."""
        graph = nx.DiGraph(chain_id=self.chain_id)
        for node in self.nodes:
            graph.add_node(node.id, type=node.type, calls=node.calls, errors=node.errors)
        for edge in self.edges:
            data = edge.to_json()
            if graph.has_edge(edge.source, edge.target):
                # Several connection types between one pair: keep the busiest, sum the counts.
                held = graph.edges[edge.source, edge.target]
                data["calls"] += held["calls"]
                data["errors"] += held["errors"]
                if held["calls"] > edge.calls:
                    for key in ("connection_type", "p50_ms", "p95_ms", "p99_ms"):
                        data[key] = held[key]
            graph.add_edge(edge.source, edge.target, **data)
        return graph


def bucket_counts(buckets: Mapping[int, int]) -> tuple[int, ...]:
    """A stored ``{upper bound ns: calls}`` map as calls per bucket of
    ``edge_rollup.LATENCY_BOUNDS_NS`` (a key between bounds counts in the next bucket up)."""
    counts = [0] * len(edge_rollup.LATENCY_BOUNDS_NS)
    last = len(counts) - 1
    for bound, calls in buckets.items():
        counts[min(bisect_left(edge_rollup.LATENCY_BOUNDS_NS, int(bound)), last)] += int(calls)
    return tuple(counts)


def build_nodes(edges: Iterable[Edge], target_types: dict[str, str]) -> list[Node]:
    """Nodes of an edge list: types by rank, calls/errors received (``user``: made)."""
    types: dict[str, str] = {}
    calls: dict[str, int] = defaultdict(int)
    errors: dict[str, int] = defaultdict(int)

    def note(node: str, kind: str) -> None:
        if node not in types or _TYPE_RANK[kind] > _TYPE_RANK[types[node]]:
            types[node] = kind

    for edge in edges:
        if edge.source == "user":
            note(edge.source, "user")
        elif edge.source.startswith(CALLER_PREFIX):
            note(edge.source, "caller")
        else:
            note(edge.source, "service")
        note(edge.target, target_types.get(f"{edge.source}\0{edge.target}", "service"))
        calls[edge.target] += edge.calls
        errors[edge.target] += edge.errors
        if edge.source == "user":
            calls["user"] += edge.calls
            errors["user"] += edge.errors
    return [Node(node, types[node], calls[node], errors[node]) for node in sorted(types)]


def topologies(
    store: TraceStore,
    catalog: ChainCatalog,
    window: TimeWindow,
    chain_ids: Iterable[str] | None = None,
    include_all_traffic: bool = True,
    naming: ServiceGraphNaming | None = None,
) -> dict[str | None, Topology]:
    """Topologies of several chains (default: every chain of ``catalog``) in one query.

    The key ``None`` holds all traffic of the window when ``include_all_traffic``.
    """
    wanted = list(catalog.ids if chain_ids is None else chain_ids)
    for chain_id in wanted:
        require_chain(catalog, chain_id)
    chains = wanted + ([ALL_TRAFFIC] if include_all_traffic else [])
    naming = naming or ServiceGraphNaming.from_config()
    state = edge_rollup.analysis_state(store, catalog, naming)
    rows = edge_rows(store, catalog, window, chains, state, naming)
    per_chain: dict[str | None, list[Edge]] = {cid: [] for cid in wanted}
    if include_all_traffic:
        per_chain[None] = []
    target_types: dict[str | None, dict[str, str]] = defaultdict(dict)
    for row in rows:
        chain, source, target, ctype, ttype, calls, errors, latency, first, last = row[:10]
        client_buckets, client_sum, server_buckets, server_sum = row[10:14]
        estimated_calls, estimated_errors = row[14:16]
        key = None if chain == ALL_TRAFFIC else str(chain)
        p50, p95, p99 = (round(float(v) / 1e6, 3) for v in latency)
        per_chain.setdefault(key, []).append(
            Edge(
                str(source),
                str(target),
                str(ctype),
                round(float(estimated_calls)),
                round(float(estimated_errors)),
                p50,
                p95,
                p99,
                int(first),
                int(last),
                bucket_counts(client_buckets),
                int(client_sum),
                bucket_counts(server_buckets),
                int(server_sum),
                int(calls),
                int(errors),
            )
        )
        target_types[key][f"{source}\0{target}"] = str(ttype)
    return {
        key: Topology(key, window, edges, build_nodes(edges, target_types[key]))
        for key, edges in per_chain.items()
    }


def split_window(
    window: TimeWindow, state: edge_rollup.RollupState | None
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """``window`` as (rollup minutes, live head, live tail), each ``[start, end)`` ns.

    The rollup part is the whole minutes of the window inside ``[since, watermark)``;
    the head is what comes before it, the tail what comes after (either may be empty).
    """
    if state is None or not state.covers:
        return (0, 0), (window.start_ns, window.end_ns), (window.end_ns, window.end_ns)
    first = max(ceil_minute(window.start_ns), state.since_ns)
    last = min(floor_minute(window.end_ns), state.watermark_ns)
    if first >= last:
        return (0, 0), (window.start_ns, window.end_ns), (window.end_ns, window.end_ns)
    return (first, last), (window.start_ns, first), (last, window.end_ns)


def split_hours(
    minutes: tuple[int, int], state: edge_rollup.RollupState | None
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """The rollup part ``minutes`` as (hour rows, minute rows before, minute rows after).

    Hours are the whole hours of ``minutes`` the hour level covers; the minute ranges are
    the part-hours around them (all of ``minutes`` when no hour is covered).
    """
    first, last = minutes
    if state is None or not state.hours.covers or first >= last:
        return (0, 0), (first, last), (last, last)
    hour_first = max(ceil_hour(first), state.hours.since_ns)
    hour_last = min(floor_hour(last), state.hours.watermark_ns)
    if hour_first >= hour_last:
        return (0, 0), (first, last), (last, last)
    return (hour_first, hour_last), (first, hour_first), (hour_last, last)


def edge_rows(
    store: TraceStore,
    catalog: ChainCatalog,
    window: TimeWindow,
    wanted: list[str],
    state: edge_rollup.RollupState | None,
    naming: ServiceGraphNaming | None = None,
) -> list[tuple[Any, ...]]:
    """``sql/topology.sql`` rows of ``wanted`` chains: rollup hours and minutes plus the
    live rest.

    ``state`` None (or not covering the window) pairs the whole window live.
    """
    minutes, head, tail = split_window(window, state)
    hours, minute_head, minute_tail = split_hours(minutes, state)
    # Parts with nothing to read are replaced by empty stand-ins: planning the pairing
    # query costs tens of milliseconds even over no spans.
    ranges = edge_rollup.range_params(head, tail)
    params: dict[str, Any] = {}
    # The link edges walk the rules over an untagged producer's trace only where a consumer
    # of the live ranges links to something at all.
    members = False
    if head[0] >= head[1] and tail[0] >= tail[1]:
        inner = edge_rollup.NO_LIVE_SQL
    else:
        linked = edge_rollup.has_links(store, ranges, spans=DEFAULT_FRAGMENTS["link_heir"])
        inner, params = edge_rollup.trace_edges_sql(store, catalog, naming, linked=linked)
        members = edge_rollup.has_links(
            store, ranges, spans=edge_rollup.CONSUMER_SPANS, window=edge_rollup.RANGES_WINDOW
        )
    hour_table = minute_table = edge_rollup.NO_ROLLUP_SQL
    if hours[0] < hours[1]:
        hour_table = f"{store.database}.{edge_rollup.HOUR_TABLE}"
    if minute_head[0] < minute_head[1] or minute_tail[0] < minute_tail[1]:
        minute_table = f"{store.database}.{edge_rollup.EDGE_TABLE}"
    link_sql, link_params = edge_rollup.link_edges_sql(store.database, catalog, members=members)
    sql = load_sql(
        "topology",
        store.database,
        trace_edges=inner,
        edge_hour=hour_table,
        edge_minute=minute_table,
        link_edges=link_sql,
    )
    seconds = {
        f"{name}_{end}": bound // 1_000_000_000
        for name, part in (
            ("hour", hours),
            ("minute_head", minute_head),
            ("minute_tail", minute_tail),
        )
        for end, bound in zip(("start", "end"), part, strict=True)
    }
    bound = {
        **link_params,
        **params,
        **ranges,
        **seconds,
        **edge_rollup.histogram_params(),
        "link_lookback": LINK_LOOKBACK_SECONDS * 1_000_000_000,
        **environment_params(window.environment),
        "wanted": wanted,
        "catalog": state.catalog if state is not None else 0,
    }
    return list(store.query(sql, bound).result_rows)


def topology(
    store: TraceStore,
    catalog: ChainCatalog,
    window: TimeWindow,
    chain_id: str | None = None,
    naming: ServiceGraphNaming | None = None,
) -> Topology:
    """The topology of ``chain_id`` (its traces only), or of all traffic when None; nodes
    named by ``naming`` (default from the environment, see :mod:`.naming`)."""
    if chain_id is None:
        return topologies(store, catalog, window, chain_ids=[], naming=naming)[None]
    return topologies(
        store, catalog, window, chain_ids=[chain_id], include_all_traffic=False, naming=naming
    )[chain_id]
