"""``GET /api/v1/traces/compare`` on chain traffic in chDB under a real uvicorn: two traces,
a trace against its chain's typical trace, and one-line errors for bad input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chainmap_otel.server import create_app
from chainmap_otel.storage.store import TraceStore
from tests.server import chain_traffic
from tests.support.stores import fresh_store

COMPARE = "/api/v1/traces/compare"


@pytest.fixture(scope="module")
def web(chdb_store: TraceStore, chdb_path: Path) -> Iterator[tuple[httpx.Client, dict[str, Any]]]:

    store = fresh_store(chdb_path)
    inserted = chain_traffic.seed(store)
    try:
        with chain_traffic.serving(create_app(store, chains=chain_traffic.catalog())) as client:
            yield client, inserted
    finally:
        store.command(f"DROP DATABASE IF EXISTS {store.database}")
        store.close()


def test_two_trades_compare_span_by_span(web: tuple[httpx.Client, dict[str, Any]]) -> None:
    client, inserted = web
    # Trade 0 failed and its database insert took 40 ms; trade 5 succeeded in 65 ms.
    base, failed = inserted["trades"][5], inserted["trades"][0]
    response = client.get(COMPARE, params={"a": base, "b": failed})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["a"]["trace_id"] == base and body["b"]["trace_id"] == failed
    assert body["typical"] is None
    assert (body["matched"], body["added"], body["missing"]) == (10, 0, 0)
    # The five spans trade 0 failed on (gateway, its client, orchestration, its client,
    # trading engine) fail only in b.
    assert body["errors"] == {"both": 0, "only_a": 0, "only_b": 5}
    assert body["a"]["error_count"] == 0 and body["b"]["error_count"] == 5
    insert = next(n for n in body["nodes"] if n["operation"] == "INSERT orders")
    assert insert["duration_diff_ms"] == pytest.approx(-25.0)
    assert insert["depth"] == 7 and insert["service"] == "database-service"
    store_call = next(n for n in body["nodes"] if n["operation"] == "POST /orders/store")
    # Its only child shrank by as much as it did: its own time did not move.
    assert store_call["duration_diff_ms"] == pytest.approx(-25.0)
    assert store_call["self_diff_ms"] == pytest.approx(0.0)
    trace = client.get(f"/api/v1/traces/{failed}").json()
    assert {n["b"]["span_id"] for n in body["nodes"]} == {s["span_id"] for s in trace["spans"]}


def test_a_trade_against_its_chains_typical_trace(
    web: tuple[httpx.Client, dict[str, Any]],
) -> None:
    client, inserted = web
    failed = inserted["trades"][0]
    body = client.get(COMPARE, params={"b": failed, "chain": "B3", "since": "1h"}).json()
    # Every B3 entry span lasts 170 ms: all are nearest the median, the lowest id wins among
    # the trades without an error.
    ok = sorted(inserted["trades"][chain_traffic.FAILED_TRADES :])
    assert body["a"]["trace_id"] == ok[0]
    assert body["typical"]["chain_id"] == "B3" and body["typical"]["median_ms"] == 170.0
    assert body["typical"]["traces"] == chain_traffic.TRADES
    assert body["typical"]["window"]["seconds"] == 3600
    assert body["b"]["trace_id"] == failed and body["errors"]["only_b"] == 5


@pytest.mark.parametrize(
    ("params", "status", "text"),
    [
        ({}, 400, "give the trace to compare (query parameter b)"),
        ({"b": "ab" * 16}, 400, "give the baseline trace (query parameter a) or a chain"),
        ({"b": "ab" * 16, "a": "cd" * 16, "chain": "B3"}, 400, "not both"),
        ({"b": "nope", "a": "cd" * 16}, 400, "query parameter b 'nope' is not 32 hex"),
        ({"b": "ab" * 16, "a": "cd" * 16}, 404, f"trace {'cd' * 16} not found"),
        ({"b": "ab" * 16, "chain": "ZZ"}, 404, "unknown chain"),
        ({"b": "ab" * 16, "chain": "C1"}, 404, "chain C1 has no typical trace"),
        ({"b": "ab" * 16, "chain": "B3", "since": "soon"}, 400, "query parameter since"),
        ({"b": "ab" * 16, "a": "cd" * 16, "max_spans": "0"}, 400, "max_spans='0'"),
    ],
)
def test_bad_comparisons_get_one_line_errors(
    web: tuple[httpx.Client, dict[str, Any]], params: dict[str, str], status: int, text: str
) -> None:
    response = web[0].get(COMPARE, params=params)
    assert response.status_code == status, response.text
    assert text in response.json()["detail"]


def test_the_cli_reads_the_comparison_through_serve(
    web: tuple[httpx.Client, dict[str, Any]],
) -> None:
    import importlib
    import json

    from typer.testing import CliRunner

    from chainmap_otel.cli import COMMAND_MODULES, app

    for module in COMMAND_MODULES:
        importlib.import_module(module)
    client, inserted = web
    failed = inserted["trades"][0]
    args = ["traces", "compare", failed, "--chain", "B3", "--server", str(client.base_url)]
    result = CliRunner().invoke(app, [*args, "-f", "json"])
    assert result.exit_code == 0, result.output
    api = client.get(COMPARE, params={"b": failed, "chain": "B3"}).json()
    read = json.loads(result.stdout)
    # The window ends "now" at each call: all but its bounds must agree.
    for body in (read, api):
        body["typical"].pop("window")
    assert read == api and api["b"]["trace_id"] == failed
