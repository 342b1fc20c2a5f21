"""RED per operation inside a chain: the chain's spans only (tagged, or below a span whose
rules match at query time), the entry operation agreeing with chain health, the series
adding up to the totals."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from chainmap_otel.analysis.health import health
from chainmap_otel.analysis.operations import chain_operations
from chainmap_otel.analysis.timewindow import parse_window
from chainmap_otel.errors import QueryError
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog
from tests.analysis.conftest import insert_spans, load_fixture


def traces(fixture: str, count: int, failing: int) -> list[dict[str, Any]]:
    """``count`` copies of the fixture's trace, the first ``failing`` with B3's entry failed."""
    spans = []
    for index in range(count):
        for span in load_fixture(fixture)["spans"]:
            copied = copy.deepcopy(span)
            copied["trace"] = f"{span['trace']}-{index}"
            copied["start_ms"] = index * 1000 + span.get("start_ms", 0)
            if index < failing and span["span"] == "te":
                copied["status"] = "Error"
            spans.append(copied)
    return spans


@pytest.mark.parametrize("fixture", ["nested_chains", "nested_chains_untagged"])
def test_the_chains_operations_with_the_entry_agreeing_with_health(
    store: TraceStore, catalog: ChainCatalog, now_ns: int, fixture: str
) -> None:
    insert_spans(store, traces(fixture, 6, failing=2), now_ns)
    window = parse_window("1h")
    found = chain_operations(store, catalog, window, "B3")
    rows = {(o.service, o.operation, o.kind): o for o in found.operations}
    # B3 begins at trading-engine: nothing of the gateway or the orchestrator above it.
    assert set(rows) == {
        ("trading-engine", "server te", "server"),
        ("trading-engine", "client tec", "client"),
        ("database-service", "server ds", "server"),
        ("database-service", "client q", "client"),
    }
    assert found.total == 4
    assert {key: (o.calls, o.errors) for key, o in rows.items()} == {
        ("trading-engine", "server te", "server"): (6, 2),
        ("trading-engine", "client tec", "client"): (6, 0),
        ("database-service", "server ds", "server"): (6, 0),
        ("database-service", "client q", "client"): (6, 0),
    }
    entry = rows[("trading-engine", "server te", "server")]
    (b3,) = health(store, catalog, window, ["B3"])
    assert (entry.calls, entry.errors, entry.rate_per_s) == (
        b3["traces"],
        b3["errors"],
        b3["rate_per_s"],
    )
    assert found.rate_seconds == b3["rate_seconds"]
    assert entry.p50_ms == 140.0 and rows[("database-service", "client q", "client")].p99_ms == 50.0
    for operation in found.operations:
        steps = zip(operation.series_rate_per_s, found.series_seconds, strict=True)
        assert round(sum(rate * seconds for rate, seconds in steps)) == operation.calls
        assert sum(operation.series_errors) == operation.errors
        assert {p for p in operation.series_p95_ms if p is not None} == {operation.p95_ms}
    # The outer chain holds every span of the trace.
    assert chain_operations(store, catalog, window, "B1").total == 8


def test_busiest_first_within_the_limit_and_an_unknown_chain(
    store: TraceStore, catalog: ChainCatalog, now_ns: int
) -> None:
    insert_spans(store, traces("nested_chains", 3, failing=0), now_ns)
    # One more trace of the chain with a second query under the database call: the query
    # operation becomes the busiest.
    more = traces("nested_chains", 1, failing=0)
    query = next(s for s in more if s["span"] == "q")
    more.append({**query, "span": "q2", "parent": "ds"})
    insert_spans(store, [{**s, "trace": "more"} for s in more], now_ns)
    found = chain_operations(store, catalog, parse_window("1h"), "B1", limit=2)
    assert found.total == 8 and len(found.operations) == 2
    assert [(o.operation, o.calls) for o in found.operations] == [
        ("client q", 5),
        ("client aoc", 4),  # ties: by service (ai-orchestration first), then operation
    ]
    with pytest.raises(QueryError, match="unknown chain id 'NOPE'"):
        chain_operations(store, catalog, parse_window("1h"), "NOPE")
