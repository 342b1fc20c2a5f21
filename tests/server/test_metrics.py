"""``GET /metrics``' servicegraph latency histograms against what the OpenTelemetry Collector
servicegraph connector emits for the same spans, on a real serve app (uvicorn) and chDB:
paired live, read from the edge rollup, and both at once."""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from chainmap_otel.analysis.rollups import edges as edge_rollup
from chainmap_otel.server import create_app
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog
from tests.analysis.conftest import insert_spans, load_fixture
from tests.server.conftest import ServerThread
from tests.support.catalog import chains_catalog

#: The connector's default ``latency_histogram_buckets`` (seconds), written out as its
#: connector.go has them: chainmap's own constant must produce exactly these.
CONNECTOR_BOUNDS = [
    0.002,
    0.004,
    0.006,
    0.008,
    0.01,
    0.05,
    0.1,
    0.2,
    0.4,
    0.8,
    1,
    1.4,
    2,
    5,
    10,
    15,
]
LABELS = ("client", "server", "connection_type", "chain_id")
SECOND = 1_000_000_000

Series = tuple[str, str, str, str]


@pytest.fixture
def catalog() -> ChainCatalog:
    return chains_catalog()


@pytest.fixture
def store(store_factory: Callable[[], TraceStore]) -> TraceStore:
    return store_factory()


@pytest.fixture
def scrape(
    store: TraceStore, catalog: ChainCatalog, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[], str]]:
    # Each scrape waits for a refresh of the series that started after it: it sees every
    # span inserted before it, however slow the machine.
    monkeypatch.setenv("CHAINMAP_METRICS_FRESH_WAIT", "10s")
    server = ServerThread(create_app(store, chains=catalog))
    server.start()

    def get() -> str:
        response = httpx.get(server.url + "/metrics", timeout=60)
        assert response.status_code == 200, response.text
        return response.text

    yield get
    server.stop()


def connector_histogram(latencies_ns: list[int]) -> dict[str, Any]:
    """What the connector records for these latencies: ``sort.SearchFloat64s(bounds, d)`` on
    the duration in seconds picks the bucket, sum in seconds, one count per request."""
    counts = [0] * (len(CONNECTOR_BOUNDS) + 1)
    for ns in latencies_ns:
        counts[bisect_left(CONNECTOR_BOUNDS, ns / SECOND)] += 1
    cumulative, total = {}, 0
    for bound, count in zip([*CONNECTOR_BOUNDS, float("inf")], counts, strict=True):
        total += count
        cumulative[float(bound)] = float(total)
    return {"buckets": cumulative, "sum": sum(ns / SECOND for ns in latencies_ns), "count": total}


def expected(copies: int) -> dict[str, dict[Series, dict[str, Any]]]:
    """Per histogram, the connector's series for ``copies`` copies of the fixture's traces."""
    out: dict[str, dict[Series, dict[str, Any]]] = {"client": {}, "server": {}}
    for chain, edges in load_fixture("latency_buckets")["expected_latencies"].items():
        for client, server, ctype, client_ns, server_ns in edges:
            series = (client, server, ctype, chain)
            out["client"][series] = connector_histogram(client_ns * copies)
            out["server"][series] = connector_histogram(server_ns * copies)
    return out


def histograms(text: str, side: str) -> dict[Series, dict[str, Any]]:
    family = next(
        f
        for f in text_string_to_metric_families(text)
        if f.name == f"traces_service_graph_request_{side}_seconds"
    )
    assert family.type == "histogram"
    out: dict[Series, dict[str, Any]] = {}
    for sample in family.samples:
        series: Series = tuple(sample.labels[k] for k in LABELS)  # type: ignore[assignment]
        found = out.setdefault(series, {"buckets": {}, "sum": None, "count": None})
        if sample.name.endswith("_bucket"):
            found["buckets"][float(sample.labels["le"])] = sample.value
        elif sample.name.endswith("_sum"):
            found["sum"] = sample.value
        elif sample.name.endswith("_count"):
            found["count"] = sample.value
    return out


def request_totals(text: str) -> dict[Series, float]:
    family = next(
        f for f in text_string_to_metric_families(text) if f.name == "traces_service_graph_request"
    )
    return {
        tuple(s.labels[k] for k in LABELS): s.value  # type: ignore[misc]
        for s in family.samples
        if s.name.endswith("_total")
    }


def assert_connector_histograms(text: str, copies: int) -> None:
    totals = request_totals(text)
    for side, want in expected(copies).items():
        got = histograms(text, side)
        assert sorted(got) == sorted(want), side
        for series, histogram in want.items():
            assert got[series]["buckets"] == histogram["buckets"], (side, series)
            assert got[series]["count"] == histogram["count"] == 3 * copies, (side, series)
            assert got[series]["sum"] == pytest.approx(histogram["sum"], rel=1e-12, abs=1e-12)
            assert totals[series] == got[series]["count"], series


def test_chainmap_buckets_are_the_connectors() -> None:
    assert list(edge_rollup.LATENCY_BUCKETS_SECONDS) == CONNECTOR_BOUNDS
    assert edge_rollup.LATENCY_BOUNDS_NS[:3] == (2_000_000, 4_000_000, 6_000_000)
    assert edge_rollup.LATENCY_BOUNDS_NS[-2:] == (15 * SECOND, 2**64 - 1)


def test_histograms_of_edges_paired_live(
    store: TraceStore, catalog: ChainCatalog, scrape: Callable[[], str]
) -> None:
    insert_spans(store, load_fixture("latency_buckets")["spans"], time.time_ns() - 600 * SECOND)
    assert not edge_rollup.read_state(store, catalog).covers  # nothing rolled up: all live
    assert_connector_histograms(scrape(), copies=1)


def test_histograms_of_edges_from_the_rollup(
    store: TraceStore, catalog: ChainCatalog, scrape: Callable[[], str]
) -> None:
    base = time.time_ns() - 600 * SECOND
    insert_spans(store, load_fixture("latency_buckets")["spans"], base)
    state = edge_rollup.refresh_edges(store, catalog).state
    assert state.since_ns <= base and state.watermark_ns > base + 60 * SECOND
    # The rows hold every edge's buckets: the scrape reads the rollup, pairs nothing live.
    rows = store.query(
        f"SELECT sum(Calls), sum(arraySum(mapValues(ClientBuckets))), "
        f"sum(arraySum(mapValues(ServerBuckets))) FROM {store.database}.chainmap_edge_minute"
    ).result_rows
    assert rows[0][0] > 0 and rows[0][0] == rows[0][1] == rows[0][2]
    assert_connector_histograms(scrape(), copies=1)


def test_histograms_of_rolled_up_and_live_edges_add_up(
    store: TraceStore, catalog: ChainCatalog, scrape: Callable[[], str]
) -> None:
    spans = load_fixture("latency_buckets")["spans"]
    insert_spans(store, spans, time.time_ns() - 600 * SECOND)
    state = edge_rollup.refresh_edges(store, catalog).state
    recent = time.time_ns() - 40 * SECOND  # after the watermark: paired live
    assert recent > state.watermark_ns
    insert_spans(store, [{**s, "trace": s["trace"] + "-recent"} for s in spans], recent)
    assert_connector_histograms(scrape(), copies=2)
