"""Slow analyses queue in their own pool; OTLP ingest and /health/detailed keep answering.

Failure injection: the API's store client holds every query of a read thread until the
test releases it (the background snapshot threads pass), so analyses pile up exactly as
40 slow discoveries would.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from chainmap_otel.server import create_app, new_span_writer
from chainmap_otel.storage.store import TraceStore
from tests.server.conftest import ServerThread
from tests.support.otlp_payloads import request_of, sdk_spans

POOL = 2
ANALYSES = 45  # more than FastAPI's default pool of 40 threads


class HeldClient:
    """Failure injection: queries of the read pool's threads wait for ``release``."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.release = threading.Event()
        self.holding = 0
        self.most_held = 0
        self._lock = threading.Lock()

    def query(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        if threading.current_thread().name.startswith("chainmap-read"):
            with self._lock:
                self.holding += 1
                self.most_held = max(self.most_held, self.holding)
            try:
                self.release.wait(120)
            finally:
                with self._lock:
                    self.holding -= 1
        return self._client.query(sql, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_queued_analyses_leave_ingest_and_health_alone(
    store_factory: Callable[[], TraceStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHAINMAP_SERVE_ANALYSIS_THREADS", str(POOL))
    store = store_factory()
    held = HeldClient(store.client)
    writer = new_span_writer(store)
    writer.start()
    server = ServerThread(create_app(TraceStore(held, store.location), writer=writer))
    server.start()
    spans = sdk_spans("bulk", 1000)
    body = request_of(spans).SerializeToString()
    assert len(body) > 256 * 1024  # decoded in FastAPI's pool, not on the event loop
    try:
        with (
            ThreadPoolExecutor(ANALYSES) as pool,
            httpx.Client(base_url=server.url, timeout=120) as client,
        ):
            pending = [
                pool.submit(client.get, "/api/v1/chains/topology", params={"since": "1h"})
                for _ in range(ANALYSES)
            ]
            wait_for(lambda: held.holding == POOL, f"{POOL} analyses to reach the store")
            posted = client.post(
                "/v1/traces", content=body, headers={"Content-Type": "application/x-protobuf"}
            )
            assert posted.status_code == 200, posted.text
            detailed = client.get("/health/detailed")
            assert detailed.status_code == 200 and detailed.json()["span_writer"][
                "accepted"
            ] == len(spans)
            assert held.holding == POOL and not any(f.done() for f in pending)
            held.release.set()
            assert all(f.result().status_code == 200 for f in pending)
        assert held.most_held == POOL
    finally:
        held.release.set()
        server.stop()
        writer.close()
