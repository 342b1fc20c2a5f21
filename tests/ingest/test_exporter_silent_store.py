"""The exporter against a store that accepts connections and never answers (a TCP listener
standing in for a hung ClickHouse HTTP endpoint): the stall is logged within the exporter's
timeout, ``shutdown`` returns within its timeout, and every span handed in is counted
exactly once, as buffered, exported or dropped, at every moment."""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from chainmap_otel.ingest.exporter import ClickHouseSpanExporter

TIMEOUT_S = 2.0
#: Generous for a loaded 2-core machine; the promise is "within the timeout".
MARGIN_S = 5.0
SPANS = 3072


class SilentStore:
    """Accepts every connection, reads nothing, answers nothing; closes them at the end."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/otel"
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.listener.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def silent() -> Iterator[SilentStore]:
    store = SilentStore()
    yield store
    store.close()


def spans(count: int) -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "checkout"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    for i in range(count):
        with tracer.start_as_current_span(f"op-{i % 7}"):
            pass
    provider.shutdown()
    return list(memory.get_finished_spans())


def accounted(exporter: ClickHouseSpanExporter) -> int:
    return exporter.buffered_spans + exporter.exported_spans + exporter.dropped_spans


def test_a_silent_store_is_logged_and_shutdown_keeps_its_timeout(
    silent: SilentStore, caplog: pytest.LogCaptureFixture
) -> None:
    handed = spans(SPANS)
    exporter = ClickHouseSpanExporter(
        silent.url, timeout=TIMEOUT_S, linger_s=0, batch_spans=1024, buffer_spans=100_000
    )
    with caplog.at_level(logging.WARNING, logger="chainmap_otel.ingest.exporter"):
        started = time.monotonic()
        for i in range(0, SPANS, 512):
            assert exporter.export(handed[i : i + 512]) is SpanExportResult.SUCCESS
            assert accounted(exporter) == i + 512
        deadline = started + TIMEOUT_S + MARGIN_S
        while "has not stored" not in caplog.text and time.monotonic() < deadline:
            assert accounted(exporter) == SPANS
            time.sleep(0.05)
        # The batch in flight is as large as what was queued when the worker took it.
        assert re.search(r"has not stored (512|1024) spans within 2s", caplog.text), caplog.text
        assert silent.url.removesuffix("/otel") in caplog.text
        assert exporter.exported_spans == 0

        began = time.monotonic()
        exporter.shutdown(timeout=TIMEOUT_S)
        assert time.monotonic() - began < TIMEOUT_S + MARGIN_S

    # Nothing buffered any more; every span once, as dropped at shutdown.
    assert exporter.buffered_spans == 0
    assert exporter.exported_spans + exporter.dropped_spans == SPANS
    assert exporter.drop_counts == {"buffer_full": 0, "invalid": 0, "refused": 0, "shutdown": SPANS}
    # The worker's hung call ends later (the store goes away): the counts stay exact.
    silent.close()
    time.sleep(TIMEOUT_S)
    assert accounted(exporter) == SPANS


def test_shutdown_uses_the_constructor_timeout_as_one_deadline(silent: SilentStore) -> None:
    exporter = ClickHouseSpanExporter(silent.url, timeout=TIMEOUT_S, linger_s=0)
    exporter.export(spans(10))
    time.sleep(0.2)  # the worker is in its call to the store
    began = time.monotonic()
    exporter.shutdown()
    # One deadline for the drain and the worker's join, not one each.
    assert time.monotonic() - began < TIMEOUT_S + MARGIN_S
    assert (exporter.buffered_spans, exporter.dropped_spans) == (0, 10)
