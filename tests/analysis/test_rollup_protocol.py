"""The slice protocol every rollup follows (edges, inferred entries, merged traces, critical
paths): each
honours ``stop``, each is locked per store the same way, and ``rewind_rollups`` moves them
all back. The per-rollup behaviours (interrupted slices, hours, watermarks, rewinds) are
pinned by test_edge_rollup.py, test_inferred_entries.py, test_trace_rollup.py and
test_critical_path_rollup.py."""

from __future__ import annotations

import threading
import time

from chainmap_otel.analysis.rollups import critical_paths, entries, protocol, refresh
from chainmap_otel.analysis.rollups import edges as edge_rollup
from chainmap_otel.analysis.rollups import traces as trace_rollup
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog
from tests.analysis.conftest import insert_spans, load_fixture

MINUTE = 60 * 10**9
HOUR = 60 * MINUTE
DAY = 24 * HOUR
TABLES = (
    edge_rollup.EDGE_TABLE,
    edge_rollup.HOUR_TABLE,
    entries.TABLE,
    trace_rollup.TABLE,
    critical_paths.TABLE,
)


def pinned_until() -> int:
    """Yesterday's midnight (UTC): whole hours, whatever the clock reads."""
    return time.time_ns() // DAY * DAY - DAY


def fill(store: TraceStore, until: int) -> int:
    """Nested-chain traces every half hour of the four hours before ``until - SLACK``, so
    every rollup (the merged traces close an hour earlier) has several slices due. Their
    spans carry the chain ids but not where each chain is entered: the inferred-entry
    rollup has rows to write."""
    first = until - trace_rollup.SLACK_NS - 4 * HOUR
    for index in range(8):
        spans = [
            {
                **span,
                "trace": f"{span['trace']}-{index}",
                "attributes": {
                    k: v for k, v in span["attributes"].items() if not k.startswith("chain.entry")
                },
            }
            for span in load_fixture("nested_chains")["spans"]
        ]
        insert_spans(store, spans, first + index * 30 * MINUTE)
    return first


def rows(store: TraceStore) -> dict[str, tuple[int, int]]:
    """Rows per table, and the calls the edge tables count."""
    counts = {}
    for table in TABLES:
        calls = "sum(Calls)" if table.startswith("chainmap_edge") else "0"
        row = store.query(f"SELECT count(), {calls} FROM {store.database}.{table}").result_rows
        counts[table] = (int(row[0][0]), int(row[0][1]))
    return counts


def levels(store: TraceStore, catalog: ChainCatalog) -> dict[str, tuple[int, ...]]:
    """(since, watermark, pending) of every level of every rollup."""
    edges = edge_rollup.read_state(store, catalog)
    return {
        "minutes": (edges.since_ns, edges.watermark_ns, edges.pending_ns),
        "hours": tuple(edges.hours),
        "entries": tuple(entries.read_state(store)),
        "traces": tuple(trace_rollup.read_state(store)),
        "critical_paths": tuple(critical_paths.read_state(store)),
    }


def test_every_rollup_stops_between_slices(store: TraceStore, catalog: ChainCatalog) -> None:
    until = pinned_until()
    first = protocol.floor_minute(fill(store, until))
    stop = threading.Event()
    stop.set()
    refresh.refresh_rollups(store, catalog, until, stop=stop)
    # Each rollup found where its data starts, and rolled up no slice of it.
    assert rows(store) == dict.fromkeys(TABLES, (0, 0))
    state = levels(store, catalog)
    assert state["minutes"] == state["entries"] == state["traces"] == (first,) * 3
    assert state["critical_paths"] == (first,) * 3
    assert state["hours"] == (0, 0, 0)
    refresh.refresh_rollups(store, catalog, until)
    assert all(count for count, _ in rows(store).values()), rows(store)
    state = levels(store, catalog)
    assert state["minutes"] == state["entries"] == state["critical_paths"] == (first, until, until)
    assert state["traces"] == (first, until - trace_rollup.SLACK_NS, until - trace_rollup.SLACK_NS)
    assert state["hours"][1] == until


def test_one_lock_per_rollup_and_store(store: TraceStore, catalog: ChainCatalog) -> None:
    """A rewind waits for the refresh (or rewind) of the same rollup in progress; another
    rollup of the store is not held up."""
    until = pinned_until()
    fill(store, until)
    refresh.refresh_rollups(store, catalog, until)
    rewound = threading.Event()

    def rewind() -> None:
        edge_rollup.rewind_edges(store, until - HOUR)
        rewound.set()

    waiting = threading.Thread(target=rewind)
    with edge_rollup.JOB.locked(store):
        waiting.start()
        assert entries.rewind_entries(store, until - HOUR)  # not held up
        assert not rewound.wait(0.5)
        assert edge_rollup.read_state(store, catalog).watermark_ns == until
    waiting.join(60)
    assert rewound.is_set()
    assert edge_rollup.read_state(store, catalog).watermark_ns == until - HOUR


def test_rewind_rollups_moves_every_rollup_back(store: TraceStore, catalog: ChainCatalog) -> None:
    until = pinned_until()
    first = protocol.floor_minute(fill(store, until))
    assert refresh.rewind_rollups(store, first) == []  # nothing rolled up yet
    refresh.refresh_rollups(store, catalog, until)
    before = rows(store)
    point = first + 90 * MINUTE + 30 * 10**9
    assert refresh.rewind_rollups(store, point) == ["edges", "entries", "traces", "critical_paths"]
    minute = protocol.floor_minute(point)
    state = levels(store, catalog)
    for name in ("minutes", "entries", "traces", "critical_paths"):
        assert state[name] == (first, minute, minute), name
    assert state["hours"][1:] == (protocol.floor_hour(point),) * 2
    refresh.refresh_rollups(store, catalog, until)
    assert rows(store) == before  # rolled up again, counted once
    assert refresh.rewind_rollups(store, until) == []  # not passed
