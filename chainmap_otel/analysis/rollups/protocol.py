"""Rollups of closed time slices: the one protocol every rollup follows.

A rollup materialises, once, what a query would otherwise compute live for every minute it
reads: the service-graph edges (:mod:`~chainmap_otel.analysis.rollups.edges`), the chain
entries below the root (:mod:`~chainmap_otel.analysis.rollups.entries`), the merged traces
(:mod:`~chainmap_otel.analysis.rollups.traces`). The protocol:

* **Levels.** A rollup writes one or more tables (:class:`Level`). The first is
  computed from the stored data; each next one from the level before (the edge rollup's
  hour rows merge its minute rows) and covers only whole grains (hours) of it. A level's
  progress is one row of ``chainmap_rollup_state`` per key (``Rollup`` = the level's name,
  ``Catalog`` = the key: the classification for the edges, 0 otherwise): the level covers
  ``[Since, Watermark)`` (Unix ns, whole grains), readers read its table below the watermark
  and compute live above it.
* **Floor.** Slices are closed: they end :data:`LAG_SECONDS` before now (a rollup may ask
  for more), so spans still arriving have that long to land. :func:`closed_until`.
* **Slices.** A refresh cuts ``[watermark, until)`` into slices aligned to the level's
  ``slice_seconds`` (a slice with little data grows by whole slices, ``slice_rows``; none
  crosses a day partition) and, for each, writes ``Pending = end``,
  inserts, then writes ``Watermark = end``; a refresh that finds ``Pending > Watermark`` (a
  crash between the two) deletes that slice's rows and redoes it, so a re-run never counts
  twice. Stretches without data are skipped, not rolled up one slice at a time. A level
  that has rolled up nothing yet starts at its first data (a later level no earlier than
  the first whole grain of the level before); until there is some, it stays where it is:
  at the first ``until`` (so readers never scan an empty past and a rewind can move it
  back).
* **Lock.** One lock per rollup and store serialises its refreshes, rewinds and
  invalidations within a process; across processes run one refresher per store (``chainmap
  serve``; an embedded store has a single process by construction).
* **Stop.** A refresh ends between two slices once its ``stop`` event is set.
* **Rewind.** Data stored after its slice was rolled up (``chainmap ingest`` of old files)
  moves every key of every level back to it (:meth:`SliceRollup.rewind`): the rows from
  there are deleted and the next refresh rolls them up again. A later level whose ``Since``
  is at or after that point restarts from the level before.

Reads never write: refreshes run in ``chainmap serve``'s background loop, ``chainmap schema
apply`` and ``chainmap rollup refresh`` (:mod:`~chainmap_otel.analysis.rollups.refresh`).
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

from chainmap_otel.storage.location import validate_identifier
from chainmap_otel.storage.store import TraceStore

logger = logging.getLogger(__name__)

__all__ = [
    "LAG_SECONDS",
    "Level",
    "LevelRun",
    "LevelState",
    "ProgressCallback",
    "SliceRollup",
    "SliceWork",
    "ceil_hour",
    "ceil_minute",
    "closed_until",
    "floor_hour",
    "floor_minute",
]

#: Slices end this long before now: the delay spans may take to arrive (and still pair).
LAG_SECONDS = 120

#: Receives one human-readable line per rollup step.
ProgressCallback = Callable[[str], None]

_NS = 1_000_000_000
_MINUTE_NS = 60 * _NS
_HOUR_NS = 3600 * _NS
_DAY_NS = 24 * _HOUR_NS
#: The end of "every row from here on" (the last second a DateTime holds).
_END_OF_TIME_NS = (2**32 - 1) * _NS

_STATE_SQL = """SELECT `Rollup`, Catalog, min(Since), max(Watermark), max(Pending)
FROM {db}.chainmap_rollup_state
WHERE `Rollup` IN {{rollups:Array(String)}}
  AND (Catalog = {{catalog:UInt64}} OR {{every_catalog:UInt8}})
GROUP BY `Rollup`, Catalog"""
_WRITE_STATE_SQL = """INSERT INTO {db}.chainmap_rollup_state
    (Rollup, Catalog, Since, Watermark, Pending, Updated)
SELECT {{rollup:String}}, {{catalog:UInt64}}, {{since:Int64}}, {{watermark:Int64}},
       {{pending:Int64}}, now()
SETTINGS insert_distributed_sync = 1"""
_DELETE_STATE_SQL = """ALTER TABLE {db}.chainmap_rollup_state{local} {on_cluster}
DELETE WHERE `Rollup` = {{rollup:String}} AND Catalog IN {{catalogs:Array(UInt64)}}
SETTINGS mutations_sync = 2"""

_LOCKS: dict[tuple[str, str, str], threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def closed_until(now_ns: int | None = None) -> int:
    """The end of the last closed slice: ``now - LAG_SECONDS`` (refreshes floor it)."""
    return (now_ns if now_ns is not None else time.time_ns()) - LAG_SECONDS * _NS


def floor_minute(ns: int) -> int:
    return ns - ns % _MINUTE_NS


def ceil_minute(ns: int) -> int:
    return -floor_minute(-ns)


def floor_hour(ns: int) -> int:
    return ns - ns % _HOUR_NS


def ceil_hour(ns: int) -> int:
    return -floor_hour(-ns)


class LevelState(NamedTuple):
    """What a level covers: ``[since, watermark)`` ns; ``pending`` past the watermark while
    a slice is being written (or was, when a refresh was interrupted). Zeros: no state."""

    since_ns: int = 0
    watermark_ns: int = 0
    pending_ns: int = 0

    @property
    def covers(self) -> bool:
        return self.watermark_ns > self.since_ns > 0

    @property
    def interrupted(self) -> bool:
        return bool(self.since_ns) and self.pending_ns > self.watermark_ns


@dataclass
class LevelRun:
    """What one refresh of a level did."""

    state: LevelState
    slices: int = 0
    recovered: bool = False


@dataclass(frozen=True)
class SliceWork:
    """What rolling up one slice of a level runs: the INSERT ``sql(start, end)`` for the
    slice ``[start, end)`` (ns) bound with ``params(start, end)``; or, for a rollup computed
    in Python (the critical paths), ``run(start, end)``, which reads and inserts itself.
    ``sql`` may pick its text per slice (a lookup only some slices' data needs); one that
    never differs is built once, when a slice is first due (:meth:`same`)."""

    sql: Callable[[int, int], str] | None = None
    params: Callable[[int, int], Mapping[str, Any]] | None = None
    run: Callable[[int, int], None] | None = None

    def __post_init__(self) -> None:
        if (self.run is None) == (self.sql is None or self.params is None):
            raise ValueError("SliceWork takes either sql and params or run")

    @classmethod
    def same(
        cls, build: Callable[[], str], params: Callable[[int, int], Mapping[str, Any]]
    ) -> SliceWork:
        """Every slice runs the INSERT ``build()`` gives, built once, when first due."""
        once = functools.cache(build)
        return cls(lambda start, end: once(), params)


@dataclass(frozen=True)
class Level:
    """One table a rollup writes slice by slice.

    ``delete`` (an ``ALTER TABLE ... DELETE`` with ``{local}``/``{on_cluster}``) removes the
    rows of ``[{{start:Int64}}, {{end:Int64}})`` ns of the keys ``{{catalogs:Array(UInt64)}}``;
    ``next_data`` answers ``count(), first`` (ns) for the data the level is made from in
    ``[{{start:Int64}}, {{until:Int64}})`` (and key ``{{catalog:UInt64}}``). Both may leave
    out the parameters they do not need. ``label`` and ``work`` name it in progress lines.
    """

    name: str
    table: str
    delete: str
    next_data: str
    label: str
    work: str
    slice_seconds: int = 3600
    grain_seconds: int = 60
    #: A slice holding fewer rows of its data than this grows by whole slices up to the end
    #: of its day: a slice's query costs a fixed ~0.2 s to plan, so a backfill of sparse
    #: data in hour slices would be paid mostly for planning (0: never grows).
    slice_rows: int = 0

    def floor(self, ns: int) -> int:
        grain = self.grain_seconds * _NS
        return ns - ns % grain

    def ceil(self, ns: int) -> int:
        return -self.floor(-ns)

    def read(self, store: TraceStore, key: int = 0) -> LevelState:
        """The level's state for ``key`` (zeros before its first refresh)."""
        return _read_states(store, (self.name,), key).get((self.name, key), LevelState())

    def write(self, store: TraceStore, state: LevelState, key: int = 0) -> None:
        store.command(
            _WRITE_STATE_SQL.format(db=store.database),
            {
                "rollup": self.name,
                "catalog": key,
                "since": state.since_ns,
                "watermark": state.watermark_ns,
                "pending": state.pending_ns,
            },
        )

    def refresh(
        self,
        store: TraceStore,
        state: LevelState,
        work: SliceWork,
        until_ns: int,
        *,
        key: int = 0,
        start_ns: int | None = None,
        stop: threading.Event | None = None,
        say: ProgressCallback,
    ) -> LevelRun:
        """Roll up ``[watermark, until)`` (``until`` floored to the grain) from ``state``, the
        level's current state; until it has rolled up a slice, the level starts at its first
        data from ``start_ns`` on (a later level: the first whole grain of the level before).
        Call it under the rollup's lock (:meth:`SliceRollup.refresh`)."""
        run = LevelRun(state)

        def mark(since: int, watermark: int, pending: int) -> None:
            run.state = LevelState(since, watermark, pending)
            self.write(store, run.state, key)

        def roll(since: int, start: int, end: int) -> None:
            mark(since, start, end)
            if work.run is not None:
                work.run(start, end)
            else:
                assert work.sql is not None and work.params is not None
                store.command(work.sql(start, end), dict(work.params(start, end)))
            mark(since, end, end)

        if state.interrupted:
            say(f"{self.label}: redoing the interrupted slice ending {_iso(state.pending_ns)}")
            self.delete_rows(store, [key], state.watermark_ns, state.pending_ns)
            roll(state.since_ns, state.watermark_ns, state.pending_ns)
            run.recovered = True
        until = self.floor(until_ns)
        since, start = run.state.since_ns, run.state.watermark_ns
        if not since:
            if not store.table_exists(self.table):
                return run  # a schema older than the level: readers read live
            since = start = start_ns or 0
        if since == start:
            # Nothing rolled up yet: start at the first data; none yet, stay (at ``until``
            # when the level has no state).
            first = self._next_data(store, key, start, until) if start < until else None
            if first is None:
                if not run.state.since_ns:
                    mark(max(start, until), max(start, until), max(start, until))
                return run
            since = start = max(start, self.floor(first))
            if since != run.state.since_ns:
                if run.state.since_ns:  # readers take the least ``Since`` of the rows
                    _delete_states(store, self.name, [key])
                mark(since, start, start)
        slice_ns = self.slice_seconds * _NS
        total = max(1, -(-(until - start) // slice_ns))
        if start < until:
            say(f"{self.label}: {self.work} from {_iso(start)} to {_iso(until)}")
        while start < until:
            if stop is not None and stop.is_set():
                break
            end = self._slice_end(store, key, start, until)
            if self._next_data(store, key, start, end) is None:
                following = self._next_data(store, key, end, until)
                start = until if following is None else max(end, self.floor(following))
                mark(since, start, start)
                continue
            roll(since, start, end)
            run.slices += 1
            start = end
            if run.slices % 24 == 0 or start >= until:
                say(f"  {self.label}: {run.slices}/{total} slices, up to {_iso(start)}")
        return run

    def _slice_end(self, store: TraceStore, key: int, start_ns: int, until_ns: int) -> int:
        """The end of the slice starting at ``start_ns``: the next slice boundary, or as many
        whole slices more as hold at most :attr:`slice_rows` rows of data, up to the end of
        the day (slices never cross a day partition) and ``until_ns``."""
        slice_ns = self.slice_seconds * _NS
        end = min(until_ns, (start_ns // slice_ns + 1) * slice_ns)
        limit = min(until_ns, (start_ns // _DAY_NS + 1) * _DAY_NS)
        if not self.slice_rows or end >= limit:
            return end
        # The most whole slices after the first holding at most slice_rows: binary search.
        low, high = 0, -(-(limit - end) // slice_ns)
        while low < high:
            middle = (low + high + 1) // 2
            if self._count_data(store, key, start_ns, min(limit, end + middle * slice_ns)) > (
                self.slice_rows
            ):
                high = middle - 1
            else:
                low = middle
        return min(limit, end + low * slice_ns)

    def _count_data(self, store: TraceStore, key: int, start_ns: int, end_ns: int) -> int:
        params = {"catalog": key, "start": start_ns, "until": end_ns}
        count, _ = store.query(
            self.next_data.format(db=store.database), _bound(self.next_data, params)
        ).result_rows[0]
        return int(count)

    def delete_rows(
        self, store: TraceStore, keys: Sequence[int], start_ns: int, end_ns: int
    ) -> None:
        params = {"catalogs": list(keys), "start": start_ns, "end": end_ns}
        store.command(
            self.delete.format(db=store.database, **store.cluster_parts()),
            _bound(self.delete, params),
        )

    def _next_data(self, store: TraceStore, key: int, start_ns: int, until_ns: int) -> int | None:
        """Start of the first data in ``[start, until)``: empty stretches are skipped."""
        params = {"catalog": key, "start": start_ns, "until": until_ns}
        count, first = store.query(
            self.next_data.format(db=store.database), _bound(self.next_data, params)
        ).result_rows[0]
        return int(first) if count else None


@dataclass(frozen=True)
class SliceRollup:
    """A rollup: its levels, the first made from the stored data, each next one from the
    level before; the unit of locking, refreshing, rewinding and invalidating."""

    name: str
    levels: tuple[Level, ...]

    @contextmanager
    def locked(self, store: TraceStore) -> Iterator[None]:
        key = (store.url_for_display, store.database, self.name)
        with _LOCKS_GUARD:
            lock = _LOCKS.setdefault(key, threading.Lock())
        with lock:
            yield

    def states(self, store: TraceStore, key: int = 0) -> tuple[LevelState, ...]:
        """Every level's state for ``key``, in one query."""
        names = tuple(level.name for level in self.levels)
        found = _read_states(store, names, key)
        return tuple(found.get((name, key), LevelState()) for name in names)

    def refresh(
        self,
        store: TraceStore,
        until_ns: int,
        work: Sequence[SliceWork],
        *,
        key: int = 0,
        stop: threading.Event | None = None,
        progress: ProgressCallback | None = None,
    ) -> tuple[LevelRun, ...]:
        """Roll up every level, ``work[i]`` for ``levels[i]``: the first up to ``until_ns``,
        each next one over the whole grains the level before covers. Idempotent and cheap
        (one small query) when nothing is due. Raises :class:`StoreError` when the store
        refuses."""
        say = progress or (lambda line: logger.debug("%s", line))
        runs: list[LevelRun] = []
        with self.locked(store):
            states = self.states(store, key)
            for level, level_work, state in zip(self.levels, work, states, strict=True):
                if not runs:
                    run = level.refresh(
                        store, state, level_work, until_ns, key=key, stop=stop, say=say
                    )
                else:
                    source = runs[-1].state
                    if not source.covers:
                        runs.append(LevelRun(state))
                        continue
                    run = level.refresh(
                        store,
                        state,
                        level_work,
                        source.watermark_ns,
                        key=key,
                        start_ns=level.ceil(source.since_ns),
                        stop=stop,
                        say=say,
                    )
                runs.append(run)
        return tuple(runs)

    def rewind(self, store: TraceStore, start_ns: int) -> bool:
        """Roll up again from ``start_ns``, for every key: data was stored there after its
        slice was rolled up (files ingested). Each level's rows from ``start_ns`` (floored to
        its grain) are deleted and its watermark moved back; a later level whose ``since``
        is not before that restarts from the level before. True when a level had passed
        ``start_ns``."""
        moved = False
        with self.locked(store):
            names = tuple(level.name for level in self.levels)
            found = _read_states(store, names, None)
            for index, level in enumerate(self.levels):
                point = level.floor(start_ns)
                passed = {
                    key: state
                    for (name, key), state in found.items()
                    if name == level.name
                    and state.since_ns
                    and max(state.watermark_ns, state.pending_ns) > point
                }
                if not passed or not store.table_exists(level.table):
                    continue
                keys = sorted(passed)
                level.delete_rows(store, keys, point, _END_OF_TIME_NS)
                _delete_states(store, level.name, keys)
                for key, state in passed.items():
                    if index == 0:
                        since = min(state.since_ns, point)
                        level.write(store, LevelState(since, point, point), key)
                    elif point > state.since_ns:
                        level.write(store, LevelState(state.since_ns, point, point), key)
                moved = True
        return moved

    def invalidate(self, store: TraceStore, key: int = 0) -> None:
        """Drop ``key``'s rows and state in every level: the next refresh rebuilds it from
        the oldest data. Levels whose table the store lacks are left alone."""
        with self.locked(store):
            for level in self.levels:
                if store.table_exists(level.table):
                    level.delete_rows(store, [key], 0, _END_OF_TIME_NS)
                    _delete_states(store, level.name, [key])


def _read_states(
    store: TraceStore, names: Sequence[str], key: int | None
) -> dict[tuple[str, int], LevelState]:
    """The states of the levels ``names`` for ``key`` (every key when None)."""
    rows = store.query(
        _STATE_SQL.format(db=validate_identifier(store.database, "database")),
        {"rollups": list(names), "catalog": key or 0, "every_catalog": int(key is None)},
    ).result_rows
    return {
        (str(name), int(catalog)): LevelState(int(since or 0), int(mark or 0), int(pending or 0))
        for name, catalog, since, mark, pending in rows
    }


def _delete_states(store: TraceStore, name: str, keys: Sequence[int]) -> None:
    store.command(
        _DELETE_STATE_SQL.format(db=store.database, **store.cluster_parts()),
        {"rollup": name, "catalogs": list(keys)},
    )


def _bound(template: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The values of ``params`` that ``template`` binds (``{name:Type}``)."""
    used = set(re.findall(r"\{\{?(\w+):", template))
    return {name: value for name, value in params.items() if name in used}


def _iso(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ns / _NS))
