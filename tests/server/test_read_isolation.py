"""Reads are isolated from ingest and from each other (issue 18, item 8).

On a real serve app (uvicorn) over a real chDB store: ``/health/detailed`` answers from its
snapshot while every read is stuck in the store, and says how old the snapshot is (and
that it is stale when its check stops answering); a full read pool answers 503 with
Retry-After instead of queueing more; spans are stored while a read holds its store
connection; ``/metrics`` equals the live computation once refreshed; shutdown does not
wait for a stuck snapshot thread. The slow store is failure injection: a client that
holds the queries of chosen threads (while holding the connection's own lock, as a
long-running query does) until the test releases them.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from chainmap_otel.server import SpanWriter, create_app, new_span_writer
from chainmap_otel.server.api import chains as api
from chainmap_otel.server.api.metrics import StoreSeries
from chainmap_otel.server.http.pool import ReadStores
from chainmap_otel.storage.store import TraceStore, open_store
from chainmap_otel.tagging.definitions import ChainCatalog
from tests.analysis.conftest import insert_spans, load_fixture
from tests.server.conftest import ServerThread
from tests.support.catalog import chains_catalog
from tests.support.otlp_payloads import request_of, sdk_spans

PROTOBUF = {"Content-Type": "application/x-protobuf"}
SECOND = 1_000_000_000


class Hold:
    """Failure injection: queries of threads named ``prefix...`` wait for ``release``."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.release = threading.Event()
        self.fail = threading.Event()  # set: their queries fail instead
        self.holding = 0
        self._lock = threading.Lock()

    def enter(self, connection_lock: Any) -> None:
        """Wait for ``release`` holding the connection's lock, as a running query does."""
        with self._lock:
            self.holding += 1
        try:
            with connection_lock:
                self.release.wait(120)
        finally:
            with self._lock:
                self.holding -= 1


class HeldClient:
    """A store connection whose queries ``hold`` may stop."""

    def __init__(self, client: Any, hold: Hold) -> None:
        self._client = client
        self._hold = hold

    def query(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        if threading.current_thread().name.startswith(self._hold.prefix):
            if self._hold.fail.is_set():
                raise ConnectionError("injected: the store does not answer")
            handle = getattr(getattr(self._client, "_backend", None), "_handle", None)
            self._hold.enter(handle.lock if handle is not None else threading.Lock())
        return self._client.query(sql, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def catalog() -> ChainCatalog:
    return chains_catalog()


Started = tuple[ServerThread, Hold, SpanWriter]


@pytest.fixture
def held_serve(
    store_factory: Callable[[], TraceStore], catalog: ChainCatalog
) -> Iterator[Callable[[str], Started]]:
    """A serve app whose reads run on store connections of their own (one per read
    thread, as ``chainmap serve`` has them); queries of threads named ``prefix`` are held."""
    started: list[tuple[ServerThread, Hold, SpanWriter, ReadStores]] = []

    def start(prefix: str) -> Started:
        store = store_factory()
        url = f"chdb://{store.location.path}?database={store.database}"
        hold = Hold(prefix)

        def connect() -> TraceStore:
            opened = open_store(url)
            return TraceStore(HeldClient(opened.client, hold), opened.location)

        stores = ReadStores(connect, store)
        writer = new_span_writer(store)
        writer.start()
        server = ServerThread(create_app(store, writer=writer, chains=catalog, read_stores=stores))
        server.start()
        started.append((server, hold, writer, stores))
        return server, hold, writer

    yield start
    for server, hold, writer, stores in started:
        hold.release.set()
        server.stop()
        writer.close()
        stores.close()


def test_health_answers_from_its_snapshot_while_every_read_is_stuck(
    held_serve: Callable[[str], Started],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHAINMAP_SERVE_ANALYSIS_THREADS", "2")
    server, held, _ = held_serve("chainmap-read")
    with ThreadPoolExecutor(4) as pool, httpx.Client(base_url=server.url, timeout=120) as client:
        pending = [
            pool.submit(client.get, "/api/v1/chains/topology", params={"since": "1h"})
            for _ in range(4)
        ]
        wait_for(lambda: held.holding == 2, "2 reads to be stuck in the store")
        started = time.monotonic()
        detailed = client.get("/health/detailed")
        # Did not wait for the stuck reads (they hold for up to 120 s).
        assert time.monotonic() - started < 30
        body = detailed.json()
        assert detailed.status_code == 200 and body["status"] == "ok", body
        store = body["store"]
        assert store["reachable"] is True and store["schema_version"] >= 1
        assert 0 <= store["check_age_s"] < api.STORE_CHECK_STALE_S and store["checked_at"]
        assert body["metrics_snapshot"]["refresh_interval_s"] == 15
        assert not any(f.done() for f in pending)
        held.release.set()
        assert [f.result().status_code for f in pending] == [200] * 4


def test_health_says_degraded_when_its_store_check_stops_answering(
    held_serve: Callable[[str], Started],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(api, "STORE_CHECK_STALE_S", 3.0)
    server, held, _ = held_serve("chainmap-store-check")
    # The first check is held: health answers at once that the store was not checked yet.
    first = httpx.get(server.url + "/health/detailed", timeout=60).json()
    assert first["status"] == "degraded" and first["store"]["reachable"] is None
    assert {"component": "store", "reason": "the store has not answered its first check yet"} in (
        first["problems"]
    )
    held.release.set()
    wait_for(
        lambda: httpx.get(server.url + "/health/detailed", timeout=60).json()["status"] == "ok",
        "health to be ok once the store answers",
    )
    held.release.clear()
    wait_for(lambda: held.holding == 1, "the next store check to be stuck")
    time.sleep(3.5)
    body = httpx.get(server.url + "/health/detailed", timeout=60).json()
    assert body["status"] == "degraded"
    assert body["store"]["check_age_s"] > 3.0 and body["store"]["schema_version"] >= 1
    reasons = [p["reason"] for p in body["problems"] if p["component"] == "store"]
    assert len(reasons) == 1 and "has not answered a check for" in reasons[0], body["problems"]


def test_a_full_read_pool_answers_503_with_retry_after(
    held_serve: Callable[[str], Started],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHAINMAP_SERVE_ANALYSIS_THREADS", "1")
    monkeypatch.setenv("CHAINMAP_SERVE_READ_QUEUE", "1")
    server, held, _ = held_serve("chainmap-read")
    with ThreadPoolExecutor(2) as pool, httpx.Client(base_url=server.url, timeout=120) as client:
        running = pool.submit(client.get, "/api/v1/traces", params={"since": "1h"})
        wait_for(lambda: held.holding == 1, "one read to be stuck")
        waiting = pool.submit(client.get, "/api/v1/chains/topology", params={"since": "1h"})
        wait_for(
            lambda: server.server.config.app.state.read_pool.admitted == 2,  # type: ignore[union-attr]
            "a second read to wait for the thread",
        )
        refused = client.get("/api/v1/chains/topology", params={"since": "1h"})
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        detail = refused.json()["detail"]
        assert "CHAINMAP_SERVE_READ_QUEUE" in detail and "retry after" in detail
        # The web pages share the pool, and the health check is not a read.
        assert client.get("/topology").status_code == 503
        assert client.get("/health/detailed").status_code == 200
        held.release.set()
        assert running.result().status_code == 200 and waiting.result().status_code == 200
        text = client.get("/metrics").text
    assert "chainmap_reads_refused_total 2.0" in text
    assert "chainmap_reads_admitted 0.0" in text


def test_spans_are_stored_while_a_read_holds_its_store_connection(
    held_serve: Callable[[str], Started],
) -> None:
    server, held, writer = held_serve("chainmap-read")
    spans = sdk_spans("during-read", 50)
    with ThreadPoolExecutor(1) as pool, httpx.Client(base_url=server.url, timeout=120) as client:
        stuck = pool.submit(client.get, "/api/v1/chains/topology", params={"since": "1h"})
        wait_for(lambda: held.holding == 1, "a read to hold its connection")
        posted = client.post(
            "/v1/traces", content=request_of(spans).SerializeToString(), headers=PROTOBUF
        )
        assert posted.status_code == 200, posted.text
        # The writer inserts on a connection of its own: the held read does not stop it.
        assert writer.flush(timeout=60), "spans were not stored while a read was running"
        assert writer.stats().written_spans == len(spans) and not stuck.done()
        held.release.set()
        assert stuck.result().status_code == 200


def test_metrics_equal_the_live_computation_after_a_refresh(
    store_factory: Callable[[], TraceStore], catalog: ChainCatalog
) -> None:
    store = store_factory()
    server = ServerThread(create_app(store, chains=catalog))
    server.start()
    try:
        insert_spans(store, load_fixture("latency_buckets")["spans"], time.time_ns() - 600 * SECOND)
        refresher = server.server.config.app.state.metrics_refresher  # type: ignore[union-attr]
        before = refresher.refreshes
        wait_for(lambda: refresher.refreshes >= before + 2, "two refreshes after the insert")
        scraped = httpx.get(server.url + "/metrics", timeout=60).text
        registry = CollectorRegistry(auto_describe=False)
        live = StoreSeries.compute(store, catalog)

        class Live:
            def collect(self) -> Any:
                return live.families

        registry.register(Live())  # type: ignore[arg-type]
        expected = samples(generate_latest(registry).decode())
        got = {key: value for key, value in samples(scraped).items() if key in expected}
        assert expected and got == expected
        assert any(
            name == "chainmap_chain_requests_total" and v > 0 for (name, _), v in got.items()
        )
        ages = samples(scraped)
        age = ages[("chainmap_metrics_age_seconds", ())]
        assert 0 <= age < 60 and ages[("chainmap_store_up", ())] == 1
        health = httpx.get(server.url + "/health/detailed", timeout=60).json()
        assert health["metrics_snapshot"]["error"] is None
        assert health["metrics_snapshot"]["refresh_interval_s"] == 15
    finally:
        server.stop()


def test_a_failed_refresh_keeps_the_last_series_and_says_the_store_is_down(
    held_serve: Callable[[str], Started], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHAINMAP_METRICS_FRESH_WAIT", "10s")
    server, hold, _ = held_serve("chainmap-metrics-refresh")
    hold.release.set()
    good = samples(httpx.get(server.url + "/metrics", timeout=60).text)
    assert good[("chainmap_store_up", ())] == 1
    chains = {k: v for k, v in good.items() if k[0].startswith("chainmap_chain_requests")}
    assert chains
    hold.fail.set()
    bad = samples(httpx.get(server.url + "/metrics", timeout=60).text)
    assert bad[("chainmap_store_up", ())] == 0
    assert {k: v for k, v in bad.items() if k in chains} == chains
    assert bad[("chainmap_metrics_age_seconds", ())] >= good[("chainmap_metrics_age_seconds", ())]
    health = httpx.get(server.url + "/health/detailed", timeout=60).json()
    assert "injected: the store does not answer" in health["metrics_snapshot"]["error"]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_shutdown_does_not_wait_for_a_stuck_snapshot_thread(
    held_serve: Callable[[str], Started],
) -> None:
    server, held, _ = held_serve("chainmap-metrics-refresh")
    wait_for(lambda: held.holding == 1, "the metrics refresh to be stuck")
    # A scrape still answers (serve's own series, no store series yet) without waiting.
    text = httpx.get(server.url + "/metrics", timeout=60).text
    assert "chainmap_metrics_age_seconds NaN" in text and "chainmap_spans_received_total" in text
    started = time.monotonic()
    server.stop()
    # The refresh is held for 120 s; shutdown gave it 5 s.
    assert not server.thread.is_alive() and time.monotonic() - started < 60


@pytest.mark.skipif(
    sys.platform != "linux",
    reason=(
        "os.setpriority on a thread's native id lowers one thread's priority on Linux only; "
        "on this platform the read threads keep serve's priority"
    ),
)
def test_read_threads_run_below_ingest_priority(
    held_serve: Callable[[str], Started], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHAINMAP_SERVE_READ_NICE", "3")
    server, _, _ = held_serve("none")
    assert httpx.get(server.url + "/api/v1/traces", timeout=60).status_code == 200
    state = server.server.config.app.state  # type: ignore[union-attr]
    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    def nice_of(threads: list[threading.Thread]) -> set[int]:
        return {os.getpriority(os.PRIO_PROCESS, t.native_id or 0) for t in threads}

    assert nice_of(state.read_pool._workers) == {min(19, base + 3)}
    assert nice_of([state.metrics_refresher._thread]) == {min(19, base + 3)}
    # Health's store check keeps the server's priority.
    assert nice_of([state.store_check._thread]) == {base}
