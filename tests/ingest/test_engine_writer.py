"""The span writer with the engine decoding OTLP bodies, on real chDB and a real log.

Bodies are logged as they came and survive a restart (replayed by a writer with the engine
path, and by one without it), batches mix bodies with decoded tables, a batch spread over
more days than one insert may hold is stored whole, and a span the store refuses costs only
itself when the engine's insert fails and the bodies are decoded in Python.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow.compute as pc

from chainmap_otel.errors import ChainmapError
from chainmap_otel.ingest.decode import decode_protobuf
from chainmap_otel.ingest.engine_decode import decode_bodies, engine_spans
from chainmap_otel.ingest.inserter import BatchInserter
from chainmap_otel.ingest.wal import WriteAheadLog
from chainmap_otel.server.app import new_span_writer
from chainmap_otel.storage.store import TraceStore
from tests.ingest.receivers.test_decode_differential import START, Builder, request, service

DAY_NS = 86_400 * 10**9


def body_of(name: str, spans: int, builder: Builder, day_step: int = 0) -> bytes:
    made = [
        builder.span(
            f"{name} {index}",
            start_time_unix_nano=START + index * day_step * DAY_NS,
            end_time_unix_nano=START + index * day_step * DAY_NS + 5,
        )
        for index in range(spans)
    ]
    return request((service(name), made)).SerializeToString()


def count(store: TraceStore, where: str = "1") -> int:
    sql = f"SELECT count() FROM {store.database}.otel_traces WHERE {where}"
    return int(store.query(sql).result_rows[0][0])


def _unreachable(store: TraceStore) -> Callable[[], None]:
    """Make ``store`` refuse every call like a store that is down; returns the repair."""
    saved = {name: getattr(store, name) for name in ("insert_select", "insert_arrow", "query")}

    def down(*args: Any, **kwargs: Any) -> Any:
        raise ChainmapError("connection refused (injected)")

    for name in saved:
        setattr(store, name, down)

    def repair() -> None:
        for name, method in saved.items():
            setattr(store, name, method)

    return repair


def _log_while_down(store: TraceStore, directory: Path, offers: Callable[[Any], None]) -> None:
    writer = new_span_writer(store, wal=WriteAheadLog(directory, 100_000_000), engine_decode=True)
    repair = _unreachable(store)
    try:
        writer.start()
        offers(writer)
        writer.close(timeout=60)
    finally:
        repair()
    assert writer.stats().dropped_spans == 0


def test_logged_bodies_are_stored_after_a_restart_with_or_without_the_engine(
    store_factory: Callable[[], TraceStore], tmp_path: Path
) -> None:
    store = store_factory()
    b = Builder()
    directory = tmp_path / "wal"
    table = decode_protobuf(body_of("decoded", 2, b)).table
    first, second = body_of("first", 3, b), body_of("second", 4, b)

    def offers(writer: Any) -> None:
        assert writer.takes_bodies
        assert writer.offer_body(first, 3, "a sender")
        assert writer.offer(table, "another sender")
        assert writer.offer_body(second, 4, "a sender")

    _log_while_down(store, directory, offers)
    assert count(store) == 0
    plain = new_span_writer(store, wal=WriteAheadLog(directory, 100_000_000))
    assert not plain.takes_bodies
    plain.start()
    assert plain.flush(timeout=60)
    plain.close()
    assert count(store, "ServiceName = 'first'") == 3
    assert count(store, "ServiceName = 'second'") == 4
    assert count(store, "ServiceName = 'decoded'") == 2

    later = body_of("later", 5, b)
    _log_while_down(store, directory, lambda writer: writer.offer_body(later, 5, "a sender"))
    engine = new_span_writer(store, wal=WriteAheadLog(directory, 100_000_000), engine_decode=True)
    engine.start()
    assert engine.flush(timeout=60)
    stats = engine.stats()
    engine.close()
    assert (stats.written_spans, stats.dropped_spans) == (5, 0)
    assert count(store, "ServiceName = 'later'") == 5
    assert count(store) == 14


def test_a_batch_over_more_days_than_one_insert_holds_is_stored_whole(
    store_factory: Callable[[], TraceStore],
) -> None:
    store = store_factory()
    body = body_of("days", 150, Builder(), day_step=1)
    assert engine_spans(body) == 150
    writer = new_span_writer(store, engine_decode=True)
    writer.start()
    assert writer.offer_body(body, 150, "a sender")
    assert writer.flush(timeout=120)
    stats = writer.stats()
    writer.close()
    assert (stats.written_spans, stats.dropped_spans) == (150, 0)
    assert count(store, "ServiceName = 'days'") == 150


def test_a_span_the_store_refuses_costs_only_itself() -> None:
    b = Builder()
    bodies = [body_of("fine", 6, b), body_of("poison", 1, b), body_of("also fine", 5, b)]
    stored: list[str] = []
    engine_calls: list[str] = []

    def engine(batch: Sequence[bytes], token: str) -> None:
        engine_calls.append(token)
        raise ChainmapError("Code: 27. Cannot parse input (injected)")

    def insert(table: Any, token: str) -> None:
        names = table.column("SpanName").to_pylist()
        if any(name.startswith("poison") for name in names):
            raise ChainmapError("Code: 27. Cannot parse input (injected)")
        stored.extend(names)

    inserter = BatchInserter(insert, lambda: None, stopping=threading.Event())
    outcome = inserter.write_bodies(
        bodies, "token", [(6, "a"), (1, "b"), (5, "c")], engine, decode_bodies
    )
    assert engine_calls == ["token"]
    assert (outcome.written, outcome.dropped) == (11, 1)
    assert "from b" in outcome.reasons[0]
    assert sorted(stored) == sorted(
        [f"fine {i}" for i in range(6)] + [f"also fine {i}" for i in range(5)]
    )


def test_an_outage_during_an_engine_insert_is_waited_out() -> None:
    body = body_of("waited", 3, Builder())
    down = threading.Event()
    down.set()
    attempts: list[int] = []

    def engine(batch: Sequence[bytes], token: str) -> None:
        attempts.append(len(batch))
        if len(attempts) == 3:
            down.clear()
        if down.is_set():
            raise ChainmapError("connection refused (injected)")

    def probe() -> None:
        if down.is_set():
            raise ChainmapError("connection refused (injected)")

    inserter = BatchInserter(lambda table, token: None, probe, backoff_s=0.001)
    outcome = inserter.write_bodies([body], "t", [(3, "a")], engine, decode_bodies)
    assert (outcome.written, outcome.dropped, len(attempts)) == (3, 0, 3)


def test_python_fallback_decodes_bodies_into_one_table() -> None:
    b = Builder()
    table = decode_bodies([body_of("x", 2, b), body_of("y", 3, b)])
    assert table.num_rows == 5
    assert pc.count_distinct(table.column("ServiceName")).as_py() == 2
    assert decode_bodies([]).num_rows == 0
