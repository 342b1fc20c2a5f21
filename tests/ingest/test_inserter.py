"""The shared insert engine on real chDB: partition-safe groups, tokens, bisection, no duplicates."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from chainmap_otel.errors import StoreError
from chainmap_otel.ingest.inserter import BatchInserter, senders_of, store_landed
from chainmap_otel.storage.arrow import rows_to_arrow
from chainmap_otel.storage.store import TraceStore

DAY_NS = 86_400 * 10**9


def _rows(count: int, name: str = "ok", *, days: int = 1, first: int = 1) -> list[tuple[Any, ...]]:
    now = time.time_ns()
    return [
        (
            now - (i % days) * DAY_NS,
            f"{first + i:032x}",
            f"{first + i:016x}",
            "",
            "",
            name,
            "Server",
            "batching",
            {"service.name": "batching"},
            "",
            "",
            {},
            1000,
            "Unset",
            "",
            [],
            [],
            [],
            [],
            [],
            [],
            [],
        )
        for i in range(count)
    ]


def _table(rows: list[tuple[Any, ...]]) -> pa.Table:
    table = rows_to_arrow(rows)
    assert table is not None
    return table


def _count(store: TraceStore) -> tuple[int, int]:
    rows = store.query("SELECT count(), uniqExact(SpanId) FROM otel_traces").result_rows
    return int(rows[0][0]), int(rows[0][1])


def _inserter(store: TraceStore, **kwargs: Any) -> BatchInserter:
    return BatchInserter(
        lambda table, token: store.insert_arrow(table, deduplication_token=token),
        lambda: store.query("SELECT 1"),
        landed=store_landed(store),
        **kwargs,
    )


def test_a_batch_over_101_days_is_stored_in_partition_safe_groups(
    store_factory: Callable[[], TraceStore],
) -> None:
    store = store_factory()
    outcome = _inserter(store).write(_table(_rows(505, days=101)), "t-days")
    assert (outcome.written, outcome.dropped) == (505, 0)
    assert _count(store) == (505, 505)


def test_when_the_engine_refuses_a_block_it_is_bisected_and_nothing_is_lost(
    store_factory: Callable[[], TraceStore],
) -> None:
    store = store_factory()
    # Grouping off: ClickHouse itself refuses the block ("Too many partitions").
    outcome = _inserter(store, max_partitions=10_000).write(_table(_rows(202, days=101)), "t-b")
    assert (outcome.written, outcome.dropped) == (202, 0)
    assert _count(store) == (202, 202)


def test_only_the_offending_spans_are_dropped_and_named_with_their_sender(
    store_factory: Callable[[], TraceStore],
) -> None:
    store = store_factory()

    def refuse_poison(table: pa.Table, token: str) -> None:
        # Failure injection: the store refuses any block holding a 'poison' span.
        if pc.any(pc.equal(table.column("SpanName"), "poison")).as_py():
            raise StoreError("Code: 6. Cannot parse (injected)")
        store.insert_arrow(table, deduplication_token=token)

    inserter = BatchInserter(
        refuse_poison, lambda: store.query("SELECT 1"), landed=store_landed(store)
    )
    good = _rows(120)
    bad = _rows(2, "poison", first=10_000)
    rows = good[:40] + bad[:1] + good[40:100] + bad[1:] + good[100:]
    senders = senders_of([(40, "good-a"), (1, "evil:1"), (60, "good-b"), (1, "evil:2"), (20, "c")])
    outcome = inserter.write(_table(rows), "t-poison", senders)
    assert (outcome.written, outcome.dropped) == (120, 2)
    assert _count(store) == (120, 120)
    assert any("evil:1" in reason for reason in outcome.reasons)
    assert any("evil:2" in reason for reason in outcome.reasons)


def test_a_failure_after_the_rows_were_written_does_not_store_them_twice(
    store_factory: Callable[[], TraceStore],
) -> None:
    store = store_factory()
    calls: list[int] = []

    def lands_then_fails(table: pa.Table, token: str) -> None:
        # Failure injection: the part is written, then a materialized view throws.
        calls.append(table.num_rows)
        store.insert_arrow(table, deduplication_token=token)
        if len(calls) == 1:
            raise StoreError("Code: 407. Value overflow in a materialized view (injected)")

    inserter = BatchInserter(
        lands_then_fails, lambda: store.query("SELECT 1"), landed=store_landed(store)
    )
    outcome = inserter.write(_table(_rows(40)), "t-landed")
    assert (outcome.written, outcome.partial, outcome.dropped) == (40, 40, 0)
    assert _count(store) == (40, 40)


def test_repeating_a_batch_under_its_token_stores_it_once(
    store_factory: Callable[[], TraceStore],
) -> None:
    store = store_factory()
    table = _table(_rows(50, days=3))
    inserter = _inserter(store)
    inserter.write(table, "t-repeat")
    inserter.write(table, "t-repeat")
    assert _count(store) == (50, 50)
    summary = store.query("SELECT sum(SpanCount) FROM chainmap_trace_summary").result_rows
    assert int(summary[0][0]) == 50


def test_an_unreachable_store_is_waited_for_until_stopping() -> None:
    attempts: list[int] = []

    def down(table: pa.Table, token: str) -> None:
        attempts.append(1)
        if len(attempts) >= 3:
            inserter.stop()
        raise StoreError("connection refused (injected)")

    def probe() -> None:
        raise StoreError("connection refused (injected)")

    inserter = BatchInserter(down, probe, backoff_s=0.001)
    outcome = inserter.write(_table(_rows(10)), "t-down")
    assert outcome.unfinished and (outcome.written, outcome.dropped) == (0, 0)
    assert len(attempts) == 3
    assert "connection refused" in inserter.last_error


@pytest.mark.parametrize("max_partitions", [0, -1])
def test_bad_arguments_say_what_is_wrong(max_partitions: int) -> None:
    with pytest.raises(ValueError, match="max_partitions must be >= 1"):
        BatchInserter(lambda t, k: None, lambda: None, max_partitions=max_partitions)
