"""Every rollup of closed slices, refreshed together: the edges
(:mod:`~chainmap_otel.analysis.rollups.edges`), the inferred entries
(:mod:`~chainmap_otel.analysis.rollups.entries`), the merged traces
(:mod:`~chainmap_otel.analysis.rollups.traces`) and the critical paths
(:mod:`~chainmap_otel.analysis.rollups.critical_paths`), by ``chainmap schema apply`` (after the DDL),
``chainmap rollup refresh`` and ``chainmap serve``'s background loop, and rewound together
(:func:`rewind_rollups`) by ``chainmap ingest`` after it stored spans below their
watermarks. Reads never refresh.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from chainmap_otel.analysis.rollups import critical_paths, edges, entries
from chainmap_otel.analysis.rollups import traces as trace_rollup
from chainmap_otel.analysis.rollups.protocol import ProgressCallback, closed_until
from chainmap_otel.errors import StoreError
from chainmap_otel.storage.schema import SchemaReport, apply_schema
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog

logger = logging.getLogger(__name__)

__all__ = [
    "REFRESH_INTERVAL_SECONDS",
    "RollupRefresher",
    "apply_schema_with_rollup",
    "refresh_rollups",
    "rewind_rollups",
]

#: How often ``chainmap serve`` refreshes the rollups.
REFRESH_INTERVAL_SECONDS = 30


def apply_schema_with_rollup(
    store: TraceStore,
    catalog: ChainCatalog,
    cluster: str | None = None,
    ttl_days: int | None = None,
    progress: ProgressCallback | None = None,
    until_ns: int | None = None,
) -> SchemaReport:
    """``apply_schema`` then backfill every rollup (:func:`refresh_rollups`, ``catalog``'s
    edges) from the stored spans."""
    report = apply_schema(store, cluster=cluster, ttl_days=ttl_days, progress=progress)
    refresh_rollups(store, catalog, until_ns, progress=progress)
    return report


def refresh_rollups(
    store: TraceStore,
    catalog: ChainCatalog,
    until_ns: int | None = None,
    *,
    progress: ProgressCallback | None = None,
    stop: threading.Event | None = None,
    walk: bool = True,
) -> edges.RefreshReport:
    """Refresh every rollup of closed slices: the edges, the inferred entries and (unless
    ``walk`` is false) the critical paths up to ``until_ns`` (default ``now - LAG``), the
    merged traces up to ``until_ns - SLACK`` (a trace's rows arrive up to its slack later).
    ``stop`` ends each between two slices; tables an older schema lacks are skipped. Returns
    what the edge rollup did."""
    until = until_ns if until_ns is not None else closed_until()
    report = edges.refresh_edges(store, catalog, until, progress=progress, stop=stop)
    entries.refresh_entries(store, until, stop=stop, progress=progress)
    trace_rollup.refresh_traces(store, until - trace_rollup.SLACK_NS, stop, progress)
    if walk:
        critical_paths.refresh_critical_paths(store, until, stop=stop, progress=progress)
    return report


def rewind_rollups(store: TraceStore, start_ns: int) -> list[str]:
    """Move every rollup back to ``start_ns`` (spans were stored there after the rollups
    passed it, e.g. by ``chainmap ingest``): the edges of every classification, the inferred
    entries, the merged traces and the critical paths; the next refresh rolls that part up
    again and reads pair
    it live until then. Returns the names of the rollups moved back."""
    rollups = (edges.JOB, entries.JOB, trace_rollup.JOB, critical_paths.JOB)
    return [rollup.name for rollup in rollups if rollup.rewind(store, start_ns)]


class RollupRefresher:
    """Refreshes every rollup (:func:`refresh_rollups`) every ``interval`` seconds in daemon
    threads (``serve``): the critical paths in a thread of their own, because their walk is
    Python (about 50-100k spans/s against the edges' 150-200k): when ingest runs flat out
    they may trail, and the critical-path aggregate then computes more of its window live,
    but they never hold back the edges, entries and merged traces, and the walk runs while
    the engine answers the other rollups' queries."""

    def __init__(
        self, store: TraceStore, catalog: ChainCatalog, interval: float = REFRESH_INTERVAL_SECONDS
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.interval = interval
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._threads = [
            threading.Thread(target=self._run, name="chainmap-rollups", daemon=True),
            threading.Thread(target=self._walk, name="chainmap-critical-paths", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop after the slice in progress (so the store can be closed)."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _run(self) -> None:
        self._loop(
            lambda say: refresh_rollups(
                self.store, self.catalog, stop=self._stop, progress=say, walk=False
            )
        )

    def _walk(self) -> None:
        self._loop(
            lambda say: critical_paths.refresh_critical_paths(
                self.store, stop=self._stop, progress=say
            )
        )

    def _loop(self, refresh: Callable[[ProgressCallback], object]) -> None:
        while not self._stop.is_set():
            try:
                refresh(lambda line: logger.info("%s", line))
            except StoreError as exc:
                logger.warning(
                    "rollups not refreshed (topology, health and trace search read live "
                    "instead): %s",
                    exc,
                )
            except Exception:
                logger.exception("rollup refresh of %s failed", self.store.url_for_display)
            self._stop.wait(self.interval)
