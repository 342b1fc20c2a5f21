"""Health from the per-minute aggregates: counts, latency, SLO burn and the alert rules."""

from __future__ import annotations

import time
from typing import Any

import pytest

from chainmap_otel.analysis.health import (
    chain_series,
    decide_status,
    health,
    health_json,
    order_chains,
    slower_fraction_count,
)
from chainmap_otel.analysis.timewindow import parse_window
from chainmap_otel.errors import QueryError
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog
from tests.analysis.conftest import insert_spans

MIN = 60_000  # ms


def entries(
    prefix: str,
    count: int,
    errors: int,
    ago_ms: float,
    durations_ms: list[float] | None = None,
    tagged: bool = True,
    every_ms: float = 0,
) -> list[dict[str, Any]]:
    """``count`` B3 entry spans (``errors`` of them failed) from ``ago_ms`` before the base
    time, one every ``every_ms``."""
    spans = []
    for i in range(count):
        attributes = {"http.route": "/orders", "http.request.method": "POST"}
        if tagged:
            attributes.update(
                {
                    "chain.ids": "B3",
                    "chain.id": "B3",
                    "chain.entry": "true",
                    "chain.entry_ids": "B3",
                }
            )
        spans.append(
            {
                "trace": f"{prefix}{i}",
                "span": "e",
                "service": "trading-engine",
                "kind": "Server",
                "name": "POST /orders",
                "start_ms": -ago_ms + i * every_ms,
                "duration_ms": durations_ms[i] if durations_ms else 10,
                "status": "Error" if i < errors else "Unset",
                "attributes": attributes,
            }
        )
    return spans


@pytest.fixture
def base() -> int:
    # A base time one minute ahead of "now" keeps 'ago' offsets inside whole minutes.
    return time.time_ns()


def b3(store: TraceStore, catalog: ChainCatalog, since: str = "1h") -> dict[str, Any]:
    return health(store, catalog, parse_window(since), ["B3"])[0]


def test_counts_latency_and_errors(store: TraceStore, catalog: ChainCatalog, base: int) -> None:
    durations = [float(i) for i in range(1, 101)]
    insert_spans(store, entries("a", 100, 7, 2 * MIN, durations, every_ms=450), base)
    result = b3(store, catalog)
    assert result["traces"] == 100
    assert result["errors"] == 7
    assert result["error_ratio"] == pytest.approx(0.07)
    # The rate is over the part of the window with data: from the first span to the last,
    # 99 intervals of 450 ms (not the whole minutes the spans fall in).
    assert result["rate_seconds"] == pytest.approx(44.55)
    assert result["rate_per_s"] == pytest.approx(100 / 44.55)
    assert result["p50_ms"] == pytest.approx(50, abs=2)
    assert result["p95_ms"] == pytest.approx(95, abs=2)
    assert result["p99_ms"] == pytest.approx(99, abs=2)
    latency = {o["objective"]: o for o in result["slo"]["objectives"]}
    # p95 < 500 ms: nothing slower than 500 ms, the objective holds.
    assert latency["latency_p95<500ms"]["bad_ratio"] == 0
    assert latency["error_rate"]["bad_ratio"] == pytest.approx(0.07)
    assert result["slo"]["compliant"] is False


def test_untagged_roots_are_classified(store: TraceStore, catalog: ChainCatalog, base: int) -> None:
    insert_spans(store, entries("u", 10, 1, 2 * MIN, tagged=False), base)
    insert_spans(
        store,
        [
            {
                "trace": "g",
                "span": "e",
                "service": "api-gateway",
                "kind": "Server",
                "start_ms": -2 * MIN,
                "attributes": {"http.route": "/api/v1/q"},
            }
        ],
        base,
    )
    by_id = {h["chain_id"]: h for h in health(store, catalog, parse_window("1h"))}
    assert by_id["B3"]["traces"] == 10 and by_id["B3"]["errors"] == 1
    assert by_id["B1"]["traces"] == 1
    # No trace of A2 in the window: "no data", not "healthy".
    assert by_id["A2"]["traces"] == 0 and by_id["A2"]["status"] == "no_data"
    assert by_id["A2"]["reason"].startswith("no traffic in the window; ")


def test_page_on_fast_burn(store: TraceStore, catalog: ChainCatalog, base: int) -> None:
    # B3 error budget 1 %: 15 % errors in the last minutes burn it 15x (> 14.4 on 1h and 5m).
    insert_spans(store, entries("p", 100, 15, 2 * MIN), base)
    result = b3(store, catalog)
    assert result["burn_rates"]["5m"] == pytest.approx(15)
    assert result["burn_rates"]["1h"] == pytest.approx(15)
    assert result["status"] == "critical" and "over 1h" in result["reason"]


def test_just_below_fast_burn_pages_on_the_slower_rule(
    store: TraceStore, catalog: ChainCatalog, base: int
) -> None:
    insert_spans(store, entries("q", 100, 14, 2 * MIN), base)
    result = b3(store, catalog)
    assert result["burn_rates"]["1h"] == pytest.approx(14)
    assert result["status"] == "critical" and "over 6h" in result["reason"]


def test_ticket_on_slow_burn(store: TraceStore, catalog: ChainCatalog, base: int) -> None:
    # Three hours ago: outside 5m/30m/1h, inside 6h and 3d.
    insert_spans(store, entries("s", 100, 2, 180 * MIN), base)
    result = b3(store, catalog)
    assert result["traces"] == 0
    assert result["burn_rates"]["6h"] == pytest.approx(2)
    assert result["burn_rates"]["30m"] == 0
    assert result["status"] == "degraded" and "over 3d" in result["reason"]


def test_just_below_slow_burn(store: TraceStore, catalog: ChainCatalog, base: int) -> None:
    insert_spans(store, entries("t", 100, 1, 180 * MIN), base)
    result = b3(store, catalog)
    assert result["burn_rates"]["6h"] == pytest.approx(1)
    # No rule fires; the hour's window holds none of the traffic three hours ago.
    assert result["status"] == "no_data" and result["traces"] == 0
    assert "every burn rate is below" in result["reason"]
    now = b3(store, catalog, "4h")
    assert now["status"] == "healthy" and now["traces"] == 100


def test_latency_objective_burns(store: TraceStore, catalog: ChainCatalog, base: int) -> None:
    # 10 of 100 traces take 2 s: p95 < 500 ms allows 5 % slow ones -> burn 2x; p99 < 1 s -> 10x.
    durations = [2000.0] * 10 + [10.0] * 90
    insert_spans(store, entries("l", 100, 0, 2 * MIN, durations), base)
    objectives = {o["objective"]: o for o in b3(store, catalog)["slo"]["objectives"]}
    assert objectives["latency_p95<500ms"]["burn_rates"]["1h"] == pytest.approx(2)
    assert objectives["latency_p99<1000ms"]["burn_rates"]["1h"] == pytest.approx(10)
    assert objectives["latency_p99<1000ms"]["budget_remaining"] == pytest.approx(-9)


def test_seven_day_window_and_json(store: TraceStore, catalog: ChainCatalog, base: int) -> None:
    insert_spans(store, entries("w", 5, 0, 3 * 24 * 60 * MIN), base)
    insert_spans(store, entries("x", 5, 0, 2 * MIN), base)
    data = health_json(store, catalog, parse_window("7d"), "B3")
    assert data["chains"][0]["traces"] == 10
    assert set(data["chains"][0]) >= {
        "chain_id",
        "traces",
        "rate_per_s",
        "error_ratio",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "slo",
        "burn_rates",
        "status",
        "reason",
    }


def test_unknown_chain(store: TraceStore, catalog: ChainCatalog) -> None:
    with pytest.raises(QueryError, match="unknown chain id"):
        health(store, catalog, parse_window(), ["nope"])


@pytest.mark.parametrize(
    ("rates", "status", "window"),
    [
        ({"5m": 14.5, "30m": 0, "1h": 14.41, "6h": 0, "3d": 0}, "critical", "1h"),
        ({"5m": 14.5, "30m": 0, "1h": 14.39, "6h": 0, "3d": 0}, "healthy", None),
        ({"5m": 14.39, "30m": 0, "1h": 20, "6h": 0, "3d": 0}, "healthy", None),
        ({"5m": 0, "30m": 6.01, "1h": 0, "6h": 6.01, "3d": 0}, "critical", "6h"),
        ({"5m": 0, "30m": 5.99, "1h": 0, "6h": 6.5, "3d": 0.5}, "healthy", None),
        ({"5m": 0, "30m": 0, "1h": 0, "6h": 1.01, "3d": 1.01}, "degraded", "3d"),
        ({"5m": 0, "30m": 0, "1h": 0, "6h": 1.01, "3d": 0.99}, "healthy", None),
        ({"5m": 0, "30m": 0, "1h": 0, "6h": 0.99, "3d": 5}, "healthy", None),
    ],
)
def test_alert_thresholds(rates: dict[str, float], status: str, window: str | None) -> None:
    decided, reason = decide_status({"error_rate": rates})
    assert decided == status
    if window:
        assert f"over {window}" in reason


def test_slow_count_interpolates_buckets() -> None:
    # 10 ms sits in bucket floor(4 * log2(10000)) = 53.
    assert slower_fraction_count({53: 10}, 5) == 10
    assert slower_fraction_count({53: 10}, 20) == 0
    assert 0 < slower_fraction_count({53: 10}, 10.5) < 10


def test_rate_is_over_the_part_of_the_window_with_data(
    store: TraceStore, catalog: ChainCatalog, base: int
) -> None:
    # Spans 6 and 2 minutes ago; the store holds nothing older.
    insert_spans(store, entries("r", 30, 0, 6 * MIN), base)
    insert_spans(store, entries("s", 30, 0, 2 * MIN), base)
    rates = {
        label: health(store, catalog, parse_window(label), ["B3"])[0]
        for label in ("15m", "1h", "7d")
    }
    assert {r["traces"] for r in rates.values()} == {60}
    assert {r["rate_seconds"] for r in rates.values()} == {240}
    assert [r["rate_per_s"] for r in rates.values()] == [pytest.approx(60 / 240)] * 3
    # A chain idle while the store had traffic gets a true zero over the same stretch.
    idle = health(store, catalog, parse_window("1h"), ["A2"])[0]
    assert idle["rate_per_s"] == 0 and idle["rate_seconds"] == 240


def test_a_chain_without_objectives_is_no_slo_with_its_errors(
    store: TraceStore, catalog: ChainCatalog, base: int
) -> None:
    spans = entries("n", 10, 1, 2 * MIN)
    for span in spans:
        span["service"] = "report-daily"
        span["attributes"] |= {"chain.ids": "C9", "chain.id": "C9", "chain.entry_ids": "C9"}
    insert_spans(store, spans, base)
    result = health(store, catalog, parse_window("1h"), ["C9"])[0]
    assert result["status"] == "no_slo" and "no SLO objectives" in result["reason"]
    assert result["error_ratio"] == pytest.approx(0.1) and result["slo"] is None
    assert decide_status({})[0] == "no_slo"


def test_chain_list_order_and_series(store: TraceStore, catalog: ChainCatalog, base: int) -> None:
    insert_spans(store, entries("p", 100, 15, 2 * MIN), base)  # B3 burns: critical
    ordered = [e["chain_id"] for e in order_chains(health(store, catalog, parse_window("1h")))]
    # critical first; then healthy by criticality (A2 critical, B1 medium); no_slo last.
    assert ordered == ["B3", "A2", "B1", "C9"]
    assert [c["chain_id"] for c in health_json(store, catalog, parse_window("1h"))["chains"]] == (
        ordered
    )
    series = chain_series(store, catalog, parse_window("1h"))
    b3_series = series["B3"]
    assert b3_series["step_seconds"] == 120 and len(b3_series["rate_per_s"]) == 30
    assert len(b3_series["errors"]) == len(b3_series["p95_ms"]) == 30
    assert sum(b3_series["errors"]) == 15
    # Each step's rate is over the part of it with data: rate x seconds gives back the traces.
    assert len(b3_series["seconds"]) == 30 and set(b3_series["seconds"]) <= {1.0, 120.0}
    assert sum(
        rate * seconds
        for rate, seconds in zip(b3_series["rate_per_s"], b3_series["seconds"], strict=True)
    ) == pytest.approx(100)
    busy = [i for i, p95 in enumerate(b3_series["p95_ms"]) if p95 is not None]
    assert len(busy) == 1 and b3_series["p95_ms"][busy[0]] == pytest.approx(10, abs=1)
    assert series["A2"]["errors"] == [0] * 30 and set(series["A2"]["p95_ms"]) == {None}
