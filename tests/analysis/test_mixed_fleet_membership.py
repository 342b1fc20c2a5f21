"""One membership rule in a mixed fleet, through ``chainmap ingest`` and the read commands.

Each trace is one OTLP/JSON file as a fleet of Python services (tagged by the chainmap
distro) and a Node service (untagged, or tagged only at its root the way the Collector's
generated OTTL tags it) would send it. For every chain, ``chainmap health`` counts, ``chainmap
traces --chain`` finds and ``chainmap topology --chain`` draws the same traces: an untagged hop
neither makes a second entry nor cuts the subtree below it, and rules read route, path and
method as the span processor does (stable and old HTTP conventions, query strings dropped).
"""

from __future__ import annotations

import importlib
import itertools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from chainmap_otel.cli import COMMAND_MODULES, app
from chainmap_otel.storage.store import TraceStore

runner = CliRunner()

CHAINS_YAML = """
version: 1
chains:
  - id: P1
    name: Gateway request
    category: api
    criticality: high
    entry:
      - service: py-gateway
        kind: server
        route: /api/*
  - id: T1
    name: Trade
    category: trading
    criticality: critical
    entry:
      - service: py-trading
        kind: server
        route: /trade
  - id: N1
    name: Quote of one symbol
    category: data_flow
    criticality: medium
    entry:
      - service: node-quotes
        kind: server
        path: /quotes/AAPL
  - id: R1
    name: Ping
    category: api
    criticality: low
    entry:
      - service: node-quotes
        kind: server
        route: /ping
  - id: M1
    name: Quote deletion
    category: api
    criticality: low
    entry:
      - service: node-quotes
        kind: server
        method: [DELETE]
"""

_KINDS = {"internal": 1, "server": 2, "client": 3}
_ids = itertools.count(1)


@dataclass
class Span:
    service: str
    kind: str
    name: str
    attributes: dict[str, str] = field(default_factory=dict)
    children: list[Span] = field(default_factory=list)
    error: bool = False


def tagged(chains: str, entry: str = "") -> dict[str, str]:
    """The attributes the chainmap processor sets (``entry`` = the chains entered here)."""
    attributes = {"chain.id": chains.split(",")[-1], "chain.ids": chains}
    if entry:
        attributes.update({"chain.entry": "true", "chain.entry_ids": entry})
    return attributes


def ottl_tagged(chain: str) -> dict[str, str]:
    """What the Collector's generated OTTL sets on an entry span (one span at a time)."""
    return {
        "chain.id": chain,
        "chain.ids": chain,
        "chain.entry": "true",
        "chain.entry_ids": chain,
        "chain.tagged_by": "collector",
    }


def otlp_json(root: Span, start_ns: int) -> dict[str, Any]:
    """The trace as one OTLP/JSON request: each child starts 1 ms into its parent and lasts
    2 ms less, so the tree nests."""
    trace_id = f"{next(_ids):032x}"
    by_service: dict[str, list[dict[str, Any]]] = {}

    def add(span: Span, parent: str, start: int, duration: int) -> None:
        span_id = f"{next(_ids):016x}"
        by_service.setdefault(span.service, []).append(
            {
                "traceId": trace_id,
                "spanId": span_id,
                "parentSpanId": parent,
                "name": span.name,
                "kind": _KINDS[span.kind],
                "startTimeUnixNano": str(start),
                "endTimeUnixNano": str(start + duration),
                "attributes": [
                    {"key": k, "value": {"stringValue": v}} for k, v in span.attributes.items()
                ],
                "status": {"code": 2} if span.error else {},
            }
        )
        for child in span.children:
            add(child, span_id, start + 1_000_000, duration - 2_000_000)

    add(root, "", start_ns, 40_000_000)
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": service}}]
                },
                "scopeSpans": [{"scope": {"name": "test"}, "spans": spans}],
            }
            for service, spans in by_service.items()
        ]
    }


def db_call(chains: str | None) -> Span:
    attributes = {"db.system": "postgresql", "db.name": "trades"}
    if chains:
        attributes.update(tagged(chains))
    return Span("py-trading", "client", "INSERT trades", attributes)


def py_trading(chains: str, entry: str) -> Span:
    return Span(
        "py-trading",
        "server",
        "POST /trade",
        {"http.route": "/trade", "http.method": "POST", **tagged(chains, entry)},
        [db_call(chains)],
    )


def node_hop(root_attributes: dict[str, str], child: Span, name: str = "GET") -> Span:
    """A Node SERVER span calling ``child`` through a Node CLIENT span."""
    client = Span("node-quotes", "client", "POST", {"http.request.method": "POST"}, [child])
    return Span("node-quotes", "server", name, root_attributes, [client])


def case_double_counting() -> Span:
    """py-gateway (P1) -> node (untagged) -> py-trading (P1,T1, entry T1)."""
    node = node_hop(
        {"http.route": "/internal/route", "url.path": "/internal/route"}, py_trading("P1,T1", "T1")
    )
    client = Span("py-gateway", "client", "GET", {"http.method": "GET", **tagged("P1")}, [node])
    return Span(
        "py-gateway",
        "server",
        "GET /api/orders",
        {"http.route": "/api/orders", "http.method": "GET", **tagged("P1", "P1")},
        [client],
    )


def case_path(root_tags: dict[str, str]) -> Span:
    """Untagged Node root, route template /quotes/:symbol, path /quotes/AAPL."""
    attributes = {
        "http.route": "/quotes/:symbol",
        "url.path": "/quotes/AAPL",
        "http.request.method": "GET",
        **root_tags,
    }
    return Span("node-quotes", "server", "GET /quotes/:symbol", attributes)


def case_query_string(root_tags: dict[str, str]) -> Span:
    """Old conventions (JS SDK 1.x): http.target with a query, no route, no url.path."""
    return Span(
        "node-quotes",
        "server",
        "GET",
        {"http.target": "/ping?src=x", "http.method": "GET", **root_tags},
    )


def case_method(root_tags: dict[str, str]) -> Span:
    """Stable and old method attributes at once (http/dup), lower-case as some SDKs send."""
    attributes = {
        "http.request.method": "delete",
        "http.method": "delete",
        "url.path": "/quotes/MSFT",
        "http.target": "/quotes/MSFT",
        **root_tags,
    }
    return Span("node-quotes", "server", "DELETE", attributes)


def case_truncated(root_tags: dict[str, str]) -> Span:
    """Untagged Node root (N1 by its path) -> py-trading (T1 only: N1 never entered the
    baggage) -> postgresql."""
    return node_hop(
        {
            "http.route": "/quotes/:symbol",
            "url.path": "/quotes/AAPL",
            "http.request.method": "GET",
            **root_tags,
        },
        py_trading("T1", "T1"),
    )


@pytest.fixture(autouse=True)
def _commands() -> None:
    for module in COMMAND_MODULES:
        importlib.import_module(module)


class Fleet:
    """A fresh database of the session's embedded store, fed through ``chainmap ingest`` and
    read through the CLI."""

    def __init__(self, tmp_path: Path, store: TraceStore, age_s: int = 20 * 60) -> None:
        self.tmp_path = tmp_path
        self.url = f"chdb://{store.location.path}?database={store.database}"
        self.chains = tmp_path / "chains.yaml"
        self.chains.write_text(CHAINS_YAML, encoding="utf-8")
        self.start_ns = time.time_ns() - age_s * 10**9
        self.since = f"{age_s // 3600 + 1}h"
        self.files = 0

    def ingest(self, *roots: Span) -> None:
        for root in roots:
            self.files += 1
            path = self.tmp_path / f"trace{self.files}.json"
            path.write_text(json.dumps(otlp_json(root, self.start_ns)), encoding="utf-8")
            self.start_ns += 10**9
            result = runner.invoke(app, ["ingest", str(path), "--store", self.url])
            assert result.exit_code == 0, result.output

    def read(self, *args: str) -> Any:
        result = runner.invoke(
            app,
            [
                *args,
                "--format",
                "json",
                "--store",
                self.url,
                "--chains",
                str(self.chains),
                "--since",
                self.since,
            ],
        )
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def health(self, chain: str) -> int:
        (row,) = [h for h in self.read("health")["chains"] if h["chain_id"] == chain]
        return int(row["traces"])

    def searched(self, chain: str) -> int:
        return len(self.read("traces", "--chain", chain, "--limit", "100")["traces"])

    def topology(self, chain: str) -> tuple[int, set[tuple[str, str]]]:
        """The chain's traces as the span-level analyses see them (critical path's count)
        and its topology's edges."""
        graph = self.read("topology", "--chain", chain)
        edges = {(e["source"], e["target"]) for e in graph["edges"]}
        return self.read("critical-path", "--chain", chain)["traces"], edges

    def agree(self, chain: str, traces: int, rollups: bool = False) -> set[tuple[str, str]]:
        """Health count = search count = traces in the topology = ``traces``, read live and,
        with ``rollups``, again from the rollups once refreshed (the spans are minutes old);
        the edges."""
        in_topology, edges = self.topology(chain)
        assert (self.health(chain), self.searched(chain), in_topology) == (traces,) * 3
        if not rollups:
            return edges
        result = runner.invoke(app, ["rollup", "refresh", "--store", self.url])
        assert result.exit_code == 0, result.output
        in_topology, rolled_up = self.topology(chain)
        assert (self.health(chain), self.searched(chain), in_topology) == (traces,) * 3
        assert rolled_up == edges
        return edges


@pytest.fixture
def fleet(tmp_path: Path, store: TraceStore) -> Fleet:
    return Fleet(tmp_path, store)


@pytest.fixture
def old_fleet(tmp_path: Path, store: TraceStore) -> Fleet:
    """Spans two hours old: every rollup (entries, merged traces, edges) covers them once
    refreshed."""
    return Fleet(tmp_path, store, age_s=2 * 3600)


def test_an_untagged_hop_makes_no_second_entry(old_fleet: Fleet) -> None:
    fleet = old_fleet
    fleet.ingest(case_double_counting())
    fleet.agree("P1", 1, rollups=True)
    edges = fleet.agree("T1", 1)
    assert ("py-trading", "postgresql") in edges


@pytest.mark.parametrize("form", ["untagged", "ottl"])
def test_path_rules_read_the_path_not_the_route_template(fleet: Fleet, form: str) -> None:
    tags = ottl_tagged("N1") if form == "ottl" else {}
    fleet.ingest(case_path(tags), case_path(tags))
    fleet.agree("N1", 2)
    fleet.agree("R1", 0)


@pytest.mark.parametrize("form", ["untagged", "ottl"])
def test_route_rules_ignore_the_query_string(fleet: Fleet, form: str) -> None:
    tags = ottl_tagged("R1") if form == "ottl" else {}
    fleet.ingest(case_query_string(tags))
    fleet.agree("R1", 1)
    fleet.agree("N1", 0)


@pytest.mark.parametrize("form", ["untagged", "ottl"])
def test_method_rules_read_either_convention(fleet: Fleet, form: str) -> None:
    tags = ottl_tagged("M1") if form == "ottl" else {}
    fleet.ingest(case_method(tags))
    fleet.agree("M1", 1)


@pytest.mark.parametrize("form", ["untagged", "ottl"])
def test_a_chain_entered_at_an_untagged_root_keeps_its_whole_subtree(
    fleet: Fleet, form: str
) -> None:
    tags = ottl_tagged("N1") if form == "ottl" else {}
    fleet.ingest(case_truncated(tags))
    edges = fleet.agree("N1", 1)
    assert {
        ("user", "node-quotes"),
        ("node-quotes", "py-trading"),
        ("py-trading", "postgresql"),
    } <= edges
    assert ("py-trading", "postgresql") in fleet.agree("T1", 1)


def test_a_chain_matched_below_the_root_at_an_untagged_service_counts_everywhere(
    old_fleet: Fleet,
) -> None:
    """py-gateway (P1) -> untagged Node span the N1 rules match: N1 is entered at the Node
    span, untagged or tagged by the generated OTTL, and every surface counts it once."""
    fleet = old_fleet
    quote = case_path({})
    client = Span("py-gateway", "client", "GET", {"http.method": "GET", **tagged("P1")}, [quote])
    gateway = {"http.route": "/api/quotes", "http.method": "GET", **tagged("P1", "P1")}
    fleet.ingest(Span("py-gateway", "server", "GET /api/quotes", gateway, [client]))
    fleet.agree("N1", 1, rollups=True)
    quote.attributes.update(ottl_tagged("N1"))
    fleet.ingest(Span("py-gateway", "server", "GET /api/quotes", gateway, [client]))
    fleet.agree("N1", 2, rollups=True)
    fleet.agree("P1", 2)


def test_an_untagged_span_below_a_match_is_no_second_entry(old_fleet: Fleet) -> None:
    """Untagged root the N1 rules match -> untagged span they match again: one N1 entry,
    however deep the untagged hops (the ancestors' fields are kept for the rules)."""
    hops = node_hop({"http.route": "/relay", "url.path": "/relay"}, case_path({}))
    for _ in range(3):
        hops = node_hop({"http.route": "/relay", "url.path": "/relay"}, hops)
    root = case_path({})
    root.children.append(hops)
    fleet = old_fleet
    fleet.ingest(root)
    fleet.agree("N1", 1, rollups=True)


@pytest.mark.parametrize("form", ["untagged", "ottl"])
def test_a_rule_matching_a_span_and_its_descendant_enters_once(old_fleet: Fleet, form: str) -> None:
    """A rule matching a Node span and, below it, another of the trace (a rule without a
    kind matches a SERVER span and its CLIENT call): the generated OTTL marks both, one span
    at a time; the chain is entered once, at the first from the root down."""
    tags = ottl_tagged("N1") if form == "ottl" else {}
    inner = case_path(dict(tags))
    root = case_path(dict(tags))
    root.children.append(Span("node-quotes", "client", "GET", {"http.method": "GET"}, [inner]))
    below = Span("py-gateway", "server", "GET /api/quotes", tagged("P1", "P1"), [root])
    old_fleet.ingest(root, below)
    old_fleet.agree("N1", 2, rollups=True)
