"""Where ``chainmap serve`` answers reads: a bounded pool, on store connections of its own.

Reads (the chain API, trace search, the web pages) run ClickHouse queries that can take
seconds. Two things kept them from answering while ingest was busy, and this module
removes both:

* they queued for the store connection the span writer inserts on: clickhouse-connect
  serialises the calls on one client, so a read waited for every insert ahead of it (and
  a long read held inserts back). :class:`ReadStores` gives every read thread a
  connection of its own (chDB runs queries on separate connections in parallel), so
  nothing on the write path waits for a read, nor a read for an insert;
* they had no bound: a burst of slow analyses piled up without limit. :class:`ReadPool`
  runs at most ``CHAINMAP_SERVE_ANALYSIS_THREADS`` reads at once with at most
  ``CHAINMAP_SERVE_READ_QUEUE`` waiting; a read beyond that is answered at once with
  503 and ``Retry-After`` instead of waiting behind the others. Its threads run at a
  lower OS priority (``CHAINMAP_SERVE_READ_NICE``, Linux) so ingest keeps its CPU.

``APIRouter(route_class=ReadRoute)`` puts every plain ``def`` endpoint of a router in
the app's pool (``app.state.read_pool``).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from dataclasses import dataclass
from queue import Empty, SimpleQueue
from typing import Any, Generic, TypeVar

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute

from chainmap_otel import config
from chainmap_otel.storage.store import TraceStore

logger = logging.getLogger(__name__)

__all__ = [
    "ReadPool",
    "ReadPoolFull",
    "ReadRoute",
    "ReadStores",
    "Refresher",
    "Snapshot",
    "lower_priority",
]

T = TypeVar("T")

#: Seconds a refused read is told to wait before it asks again.
RETRY_AFTER_S = 1


def lower_priority(nice: int | None = None) -> None:
    """Lower the calling thread's OS priority by ``nice`` (default
    ``CHAINMAP_SERVE_READ_NICE``); Linux only, where a thread's native id is a process id
    for ``setpriority``. A refusal is logged, not raised."""
    if nice is None:
        nice = config.env_int(config.CHAINMAP_SERVE_READ_NICE)
    if not nice or sys.platform != "linux":
        return
    try:
        thread = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(19, current + nice))
    except OSError as exc:
        logger.warning("%s keeps its priority: %s", threading.current_thread().name, exc)


class ReadPoolFull(HTTPException):
    """503 with ``Retry-After``: every read thread is busy and the queue is full."""

    def __init__(self, threads: int, queue: int) -> None:
        super().__init__(
            503,
            f"chainmap serve is already running {threads} reads with {queue} more waiting; "
            f"retry after {RETRY_AFTER_S} s, narrow the time window, or raise "
            "CHAINMAP_SERVE_ANALYSIS_THREADS / CHAINMAP_SERVE_READ_QUEUE",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )


class ReadPool:
    """``threads`` worker threads and at most ``queue`` reads waiting for one.

    Arguments default to ``CHAINMAP_SERVE_ANALYSIS_THREADS``,
    ``CHAINMAP_SERVE_READ_QUEUE`` and ``CHAINMAP_SERVE_READ_NICE``; ``on_thread_start``
    runs first in each worker thread (it claims a store connection of its own).
    """

    def __init__(
        self,
        threads: int | None = None,
        queue: int | None = None,
        nice: int | None = None,
        on_thread_start: Callable[[], None] | None = None,
    ) -> None:
        self.threads = (
            threads
            if threads is not None
            else config.env_int(config.CHAINMAP_SERVE_ANALYSIS_THREADS)
        )
        self.queue = (
            queue if queue is not None else config.env_int(config.CHAINMAP_SERVE_READ_QUEUE)
        )
        self.nice = nice if nice is not None else config.env_int(config.CHAINMAP_SERVE_READ_NICE)
        if self.threads < 1 or self.queue < 0 or not 0 <= self.nice <= 19:
            raise ValueError(
                f"ReadPool needs threads >= 1, queue >= 0 and nice in 0..19; got "
                f"{self.threads}, {self.queue}, {self.nice}"
            )
        self._on_thread_start = on_thread_start
        self._jobs: SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._closed = False
        self._lock = threading.Lock()
        self._admitted = 0
        self.refused = 0

    def _work(self) -> None:
        # Daemon threads: a read stuck in the store never holds the process's exit.
        if self._on_thread_start is not None:
            self._on_thread_start()
        lower_priority(self.nice)
        while (job := self._jobs.get()) is not None:
            future, call = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(call())
            except BaseException as exc:
                future.set_exception(exc)

    @property
    def admitted(self) -> int:
        """Reads running or waiting for a thread."""
        return self._admitted

    async def run(self, call: Callable[[], T]) -> T:
        """``call()`` on a read thread; raises :class:`ReadPoolFull` rather than queue more."""
        with self._lock:
            if self._admitted >= self.threads + self.queue:
                self.refused += 1
                raise ReadPoolFull(self.threads, self.queue)
            if self._closed:
                raise HTTPException(503, "chainmap serve is shutting down; retry elsewhere")
            self._admitted += 1
            if len(self._workers) < self.threads:
                worker = threading.Thread(
                    target=self._work, name=f"chainmap-read-{len(self._workers)}", daemon=True
                )
                self._workers.append(worker)
                worker.start()
        future: Future[T] = Future()
        future.add_done_callback(lambda _: self._release())
        self._jobs.put((future, functools.partial(contextvars.copy_context().run, call)))
        return await asyncio.wrap_future(future)

    def _release(self) -> None:
        with self._lock:
            self._admitted -= 1

    def close(self) -> None:
        """Cancel the waiting reads; running ones finish on their own, then their threads end."""
        with self._lock:
            self._closed = True
            workers = len(self._workers)
        while True:
            try:
                job = self._jobs.get_nowait()
            except Empty:
                break
            if job is not None:
                job[0].cancel()
        for _ in range(workers):
            self._jobs.put(None)


_POOL: contextvars.ContextVar[ReadPool | None] = contextvars.ContextVar(
    "chainmap_read_pool", default=None
)


def _in_read_pool(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(endpoint):
        return endpoint

    @functools.wraps(endpoint)
    async def run(*args: Any, **kwargs: Any) -> Any:
        pool = _POOL.get()
        call = functools.partial(endpoint, *args, **kwargs)
        if pool is None:  # an app without a pool (a router mounted elsewhere)
            return await asyncio.to_thread(call)
        return await pool.run(call)

    return run


class ReadRoute(APIRoute):
    """A route whose plain ``def`` endpoint runs in ``app.state.read_pool``.

    ``APIRouter(route_class=ReadRoute)`` puts every endpoint of a router there.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, _in_read_pool(endpoint), **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def in_pool(request: Request) -> Response:
            token = _POOL.set(getattr(request.app.state, "read_pool", None))
            try:
                return await handler(request)
            finally:
                _POOL.reset(token)

        return in_pool


class ReadStores:
    """A client that hands each read thread a store connection of its own.

    ``open_store`` opens one more connection to the same store; it is called once per
    thread that :meth:`claim` s one (the read pool's workers, the snapshot threads), at
    that thread's first query. Any other thread shares one connection, so the number
    of connections stays bounded. :meth:`store` is the :class:`TraceStore` the read
    side uses; :meth:`close` closes every connection opened.
    """

    def __init__(self, open_store: Callable[[], TraceStore], like: TraceStore) -> None:
        self._open = open_store
        self._like = like
        self._lock = threading.Lock()
        self._claimed: set[int] = set()
        self._opened: dict[int | None, TraceStore] = {}
        self._closed = False

    def claim(self) -> None:
        """Give the calling thread a connection of its own (opened at its first query)."""
        with self._lock:
            self._claimed.add(threading.get_ident())

    def _client(self) -> Any:
        ident = threading.get_ident()
        key: int | None = ident if ident in self._claimed else None
        with self._lock:
            found = self._opened.get(key)
            if found is not None:
                return found.client
            if self._closed:
                raise RuntimeError("the read connections are closed")
        opened = self._open()
        with self._lock:
            kept = None if self._closed else self._opened.setdefault(key, opened)
        if kept is not opened:  # closed meanwhile, or another thread opened the shared one
            opened.close()
        if kept is None:
            raise RuntimeError("the read connections are closed")
        return kept.client

    def store(self) -> TraceStore:
        return TraceStore(_ThreadClient(self), self._like.location)

    @property
    def connections(self) -> int:
        return len(self._opened)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            opened, self._opened = list(self._opened.values()), {}
        for store in opened:
            try:
                store.close()
            except Exception as exc:
                logger.warning("closing a read connection: %s", exc)


class _ThreadClient:
    """The calling thread's clickhouse-connect client of a :class:`ReadStores`."""

    def __init__(self, stores: ReadStores) -> None:
        self._stores = stores

    def close(self) -> None:
        """Closed with :meth:`ReadStores.close`, not by a store view."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stores._client(), name)


# --------------------------------------------------------------------------- snapshots


@dataclass(frozen=True)
class Snapshot(Generic[T]):
    """One refresh of a :class:`Refresher`: ``error`` when it failed, and then ``value`` is
    the last one computed (None if none was)."""

    value: T | None
    error: str | None
    started: float  # time.monotonic() when this refresh started
    finished: float  # ... and when it ended
    at: float  # time.time() when it ended
    value_started: float  # time.monotonic() when the computation of ``value`` started

    def age_s(self, now: float | None = None) -> float:
        """How old ``value`` may be: seconds since its computation started."""
        return max(0.0, (time.monotonic() if now is None else now) - self.value_started)


class Refresher(Generic[T]):
    """A thread that keeps the newest :class:`Snapshot` of ``compute()`` in memory.

    It computes every ``interval_s``, and sooner when :meth:`newer` asks for it.
    Readers take :attr:`latest` and never wait for the store; :meth:`stop` returns within
    its timeout even while ``compute()`` is stuck in a query (the thread is a daemon and
    its result is discarded). ``on_start`` runs first in the thread (it claims a store
    connection of its own).
    """

    def __init__(
        self,
        name: str,
        compute: Callable[[], T],
        interval_s: float,
        on_start: Callable[[], None] | None = None,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"Refresher {name}: interval_s must be > 0, got {interval_s}")
        self.name = name
        self.interval_s = interval_s
        self._compute = compute
        self._on_start = on_start
        self._wanted = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.latest: Snapshot[T] | None = None
        self.refreshes = 0
        self.failures = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        if self._on_start is not None:
            self._on_start()
        while not self._stop.is_set():
            self._wanted.clear()
            started = time.monotonic()
            value: T | None = None
            error: str | None = None
            try:
                value = self._compute()
            except Exception as exc:
                error = str(exc) or type(exc).__name__
                self.failures += 1
                logger.warning("%s failed: %s", self.name, error)
            if self._stop.is_set():
                return
            finished = time.monotonic()
            value_started = started
            previous = self.latest
            if error is not None and previous is not None:
                # A failed refresh keeps the last value (its age grows) and says why.
                value, value_started = previous.value, previous.value_started
            self.latest = Snapshot(value, error, started, finished, time.time(), value_started)
            self.refreshes += 1
            self._wanted.wait(max(0.0, started + self.interval_s - time.monotonic()))
            # However often it is asked, it rests as long as it worked: at most half the time.
            self._stop.wait(max(0.0, 2 * finished - started - time.monotonic()))

    async def newer(self, than: float, timeout: float) -> Snapshot[T] | None:
        """The newest snapshot, after waiting up to ``timeout`` s for one started at or
        after ``than`` (``time.monotonic()``), asking for a refresh if there is none yet.
        Polls, so no thread waits; the event loop stays free."""
        deadline = time.monotonic() + timeout
        while True:
            latest = self.latest
            if latest is not None and latest.started >= than:
                return latest
            if time.monotonic() >= deadline or self._stop.is_set():
                return latest
            self._wanted.set()
            await asyncio.sleep(0.02)

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop the thread; False (and a warning) if it did not end within ``timeout``."""
        self._stop.set()
        self._wanted.set()
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        if thread.is_alive():
            logger.warning(
                "%s did not stop within %gs (a store call is still running); leaving it",
                self.name,
                timeout,
            )
            return False
        return True
