"""A real ``chainmap serve`` stack in-process: uvicorn on a free port, the gRPC receiver,
the span writer, and a chDB store on a database of the test's own."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from chainmap_otel.ingest.entry_counts import EntryCountWriter
from chainmap_otel.ingest.inserter import BatchInserter
from chainmap_otel.server import OtlpGrpcReceiver, SpanWriter, create_app, new_span_writer
from chainmap_otel.storage.store import TraceStore


class ServerThread:
    """uvicorn serving ``app`` on 127.0.0.1 and a free port, in a thread."""

    def __init__(self, app: FastAPI) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = ""

    def start(self, timeout: float = 15.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start within {timeout}s")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


@dataclass
class Serving:
    store: TraceStore
    writer: SpanWriter
    url: str
    grpc_address: str

    @property
    def traces_url(self) -> str:
        return f"{self.url}/v1/traces"

    def stored(self, where: str = "1", parameters: dict[str, Any] | None = None) -> int:
        """Rows in otel_traces once everything accepted so far is written."""
        assert self.writer.flush(timeout=30), "the span writer did not drain within 30s"
        result = self.store.query(f"SELECT count() FROM otel_traces WHERE {where}", parameters)
        return int(result.result_rows[0][0])

    def stored_for(self, service: str) -> int:
        return self.stored("ServiceName = {s:String}", {"s": service})


ServeFactory = Callable[..., Serving]


@pytest.fixture
def serve(store_factory: Callable[[], TraceStore]) -> Iterator[ServeFactory]:
    """Start the receivers; ``insert`` replaces the store insert (failure injection only)."""
    started: list[tuple[ServerThread, OtlpGrpcReceiver, SpanWriter]] = []

    def start(
        max_body_bytes: int = 1024 * 1024,
        queue_spans: int = 10_000,
        insert: Callable[[TraceStore, Any, str], object] | None = None,
    ) -> Serving:
        store = store_factory()
        if insert is None:
            writer = new_span_writer(store, queue_spans)
        else:
            inserter = BatchInserter(
                lambda table, token: insert(store, table, token),
                lambda: store.query("SELECT 1"),
            )
            writer = SpanWriter(inserter, max_queued_spans=queue_spans)
        writer.start()
        counts = EntryCountWriter(store)
        receiver = OtlpGrpcReceiver(
            writer, "127.0.0.1", 0, max_message_bytes=max_body_bytes, entry_counts=counts
        )
        receiver.start()
        server = ServerThread(
            create_app(store, writer=writer, max_body_bytes=max_body_bytes, entry_counts=counts)
        )
        server.start()
        started.append((server, receiver, writer))
        return Serving(store, writer, server.url, receiver.address)

    yield start
    for server, receiver, writer in started:
        server.stop()
        receiver.stop(grace=1)
        writer.close()
