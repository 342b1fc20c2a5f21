"""The test fleet's chains, defined once: the chains file every analysis, serve and CLI test
reads (each suite takes the chains it needs, in this order)."""

from __future__ import annotations

from chainmap_otel.tagging.definitions import ChainCatalog, parse_catalog

#: One chains-file entry per chain id, in file order.
CHAIN_ENTRIES = {
    "B1": """\
  - id: B1
    name: API request
    category: api
    criticality: high
    entry:
      - service: api-gateway
        kind: server
        route: /api/v1/*
    slo:
      latency_ms: {p95: 800, p99: 1500}
      error_rate: 0.02
      window: 30d
""",
    "A2": """\
  - id: A2
    name: AI trading decision
    category: ai_decision
    criticality: critical
    entry:
      - service: ai-orchestration
        kind: server
        route: /decisions*
    slo:
      latency_ms: {p95: 1200}
      error_rate: 0.02
      window: 7d
    expected:
      edges:
        - ai-orchestration -> ai-market-model
        - ai-orchestration -> trading-engine
""",
    "B3": """\
  - id: B3
    name: Trade execution
    category: trading
    criticality: critical
    description: Risk check, order placement and persistence of an order.
    entry:
      - service: trading-engine
        kind: server
        route: /orders*
        method: [POST]
    slo:
      latency_ms: {p95: 500, p99: 1000}
      error_rate: 0.01
      window: 30d
    expected:
      edges:
        - trading-engine -> database-service
        - database-service -> postgresql
""",
    "C1": """\
  - id: C1
    name: WebSocket market stream
    category: user_experience
    criticality: medium
    entry:
      - service: data-bridge
        route: /ws/market*
        kind: server
""",
    "C9": """\
  - id: C9
    name: Legacy reports
    category: batch
    criticality: low
    entry:
      - service: {regex: "^report-[a-z]+$"}
        attributes:
          job.type: "nightly*"
""",
}

#: The chains of the analysis suites (span fixtures) and of the served fleet (chain_traffic).
ANALYSIS_CHAINS = ("B1", "A2", "B3", "C9")
SERVED_CHAINS = ("B1", "A2", "B3", "C1")
#: Where the chains come from, as the catalog and the API report it.
SOURCE = "test-chains.yaml"


def chains_yaml(ids: tuple[str, ...] = ANALYSIS_CHAINS) -> str:
    """The chains file holding ``ids``."""
    return "version: 1\nchains:\n" + "".join(CHAIN_ENTRIES[i] for i in ids)


def chains_catalog(ids: tuple[str, ...] = ANALYSIS_CHAINS) -> ChainCatalog:
    """The parsed catalog of ``ids``."""
    return parse_catalog(chains_yaml(ids), source=SOURCE)
