"""A chDB database of demo-like chain traffic per test module (dropped at its end, so no
other package's test sees it among the session's databases).

The traffic is ``tests/server/chain_traffic.py``'s (nested B1 > A2 > B3 trading traces,
three of them failed, untagged report traces no chain covers) plus the same trading traces
with every ``chain.*`` attribute removed, as a fleet without chainmap's SDK writes them:
those are assigned to chains only by the entry rules at query time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from chainmap_otel.analysis.timewindow import TimeWindow
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog
from tests.grafana.datasource import QueryContext
from tests.server import chain_traffic
from tests.support.stores import fresh_store

NS = 1_000_000_000
MS = 1_000_000
UNTAGGED_TRADES = 6


@dataclass
class Traffic:
    store: TraceStore
    catalog: ChainCatalog
    ctx: QueryContext
    tagged: list[str]
    untagged: list[str]

    @property
    def window(self) -> TimeWindow:
        return TimeWindow(self.ctx.from_s * NS, self.ctx.to_s * NS)

    def rows(self, sql: str) -> list[dict[str, Any]]:
        result = self.store.query(sql)
        return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


def untagged(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The rows without chain tags: attributes are column 11 of TRACE_COLUMNS order."""
    return [
        (*row[:11], {k: v for k, v in row[11].items() if not k.startswith("chain.")}, *row[12:])
        for row in rows
    ]


def open_database(chdb_path: Path, prefix: str) -> TraceStore:

    store = fresh_store(chdb_path, prefix)
    return store


@pytest.fixture(scope="module")
def hours_traffic(chdb_store: TraceStore, chdb_path: Path) -> Iterator[Traffic]:
    """Trades every 10 minutes for 3 h 40 min from half past the hour 4.5-5.5 hours ago (half
    of them without chain tags), for a 6-hour range whose topology reads whole hours from the
    hour level with minutes before and after them. The first trade is at half past an hour
    whatever the time of day (starting on an hour would leave no minutes before the hours)."""
    store = open_database(chdb_path, "h")
    now_s = int(time.time())
    first_s = (now_s - 5 * 3600) // 3600 * 3600 + 1800
    rows: list[tuple[Any, ...]] = []
    tagged, plain = [], []
    for i in range(23):
        name = f"hour-trade-{i}"
        trace = chain_traffic.trade_trace(name, (first_s + i * 600) * NS, i % 5 == 0, 20)
        rows += untagged(trace) if i % 2 else trace
        (plain if i % 2 else tagged).append(chain_traffic.trace_id(name))
    store.insert_spans(rows=rows)
    ctx = QueryContext(from_s=now_s - 6 * 3600, to_s=now_s + 1, interval_s=300)
    yield Traffic(store, chain_traffic.catalog(), ctx, tagged, plain)
    store.command(f"DROP DATABASE IF EXISTS {store.database}")
    store.close()


@pytest.fixture(scope="module")
def traffic(chdb_store: TraceStore, chdb_path: Path) -> Iterator[Traffic]:
    store = open_database(chdb_path, "g")
    now_s = int(time.time())
    seeded = chain_traffic.seed(store, now_s * NS)
    base = (now_s - 4 * 60) * NS
    names = [f"plain-trade-{i}" for i in range(UNTAGGED_TRADES)]
    rows: list[tuple[Any, ...]] = []
    for i, name in enumerate(names):
        rows += untagged(chain_traffic.trade_trace(name, base + i * 40 * MS, i == 0, 30 + 7 * i))
    store.insert_spans(rows=rows)
    ctx = QueryContext(from_s=now_s - 3600, to_s=now_s + 1, interval_s=60)
    yield Traffic(
        store,
        chain_traffic.catalog(),
        ctx,
        seeded["trades"],
        [chain_traffic.trace_id(n) for n in names],
    )
    store.command(f"DROP DATABASE IF EXISTS {store.database}")
    store.close()
