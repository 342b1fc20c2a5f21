"""OTLP protobuf decoding in worker processes, so decoding is not bound to one core by the GIL.

Decoding a request is Python work (one loop iteration per span and
attribute); inside ``chainmap serve``'s process it competes for the GIL with
the HTTP server and with the engine reading the Arrow batches it inserts. A
:class:`DecodePool` runs :func:`~chainmap_otel.ingest.decode.decode_protobuf`
in ``spawn``-ed processes (never ``fork``: the parent holds the engine) and
returns the accepted spans as Arrow IPC bytes, which are exactly what the
write-ahead log stores, so the parent only maps them (no copy, no re-encoding).

Workers never outlive ``chainmap serve``: each asks Linux for SIGKILL when its
parent dies (``PR_SET_PDEATHSIG``), and exits at once if the parent is already
gone. Every worker is started by the constructor, in the constructing thread,
because the signal follows the thread that started the worker: construct the
pool in a thread that lives as long as the pool (``chainmap serve``: the main
thread). The
multiprocessing resource tracker then sees its pipe close and exits too.

``CHAINMAP_SERVE_DECODE_PROCESSES=0`` decodes in-process instead.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
from concurrent.futures import Future, ProcessPoolExecutor

from chainmap_otel.ingest.decode import DecodedSpans
from chainmap_otel.processes import set_parent_death_signal

logger = logging.getLogger(__name__)

__all__ = ["DecodePool", "decode_in_worker"]

#: A worker's answer: Arrow IPC of the accepted spans, rejected count, reasons, and the
#: span count when the engine path takes the body as it is (None: decoded here).
Decoded = tuple[bytes | None, int, list[str], int | None]


def decode_in_worker(body: bytes, engine: bool = False) -> Decoded:
    """In a worker: the request's accepted spans as Arrow IPC, the rejected count and reasons;
    with ``engine``, only the span count when the engine path takes the body.

    Raises :class:`~chainmap_otel.errors.IngestError` (pickled back) for a malformed body.
    """
    from chainmap_otel.ingest.decode import decode_protobuf
    from chainmap_otel.ingest.engine_decode import engine_spans
    from chainmap_otel.storage.arrow import to_ipc

    if engine:
        count = engine_spans(body)
        if count is not None:
            return None, 0, [], count
    decoded = decode_protobuf(body)
    ipc = to_ipc(decoded.table) if decoded.table is not None else None
    return ipc, decoded.rejected, decoded.reasons, None


def _die_with_parent(parent: int) -> None:
    """Worker initializer: killed when ``parent`` dies; gone at once if it already has."""
    set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def _warm() -> None:
    import chainmap_otel.ingest.decode
    import chainmap_otel.ingest.engine_decode
    import chainmap_otel.storage.arrow

    chainmap_otel.ingest.engine_decode.engine_spans(b"")


def as_decoded(result: Decoded, body: bytes) -> tuple[DecodedSpans, bytes | None]:
    """The parent's side: ``DecodedSpans`` over the mapped table, and the IPC bytes for the
    log; or over ``body`` itself when the engine path takes it."""
    from chainmap_otel.storage.arrow import from_ipc

    ipc, rejected, reasons, engine_spans = result
    if engine_spans is not None:
        return DecodedSpans(body=body, body_spans=engine_spans), None
    decoded = DecodedSpans(rejected=rejected, reasons=reasons)
    if ipc is not None:
        decoded.table = from_ipc(ipc)
    return decoded, ipc


class DecodePool:
    """``processes`` decoding workers, started (and warmed up) at construction."""

    def __init__(self, processes: int) -> None:
        if processes < 1:
            raise ValueError(f"processes must be >= 1, got {processes}")
        self.processes = processes
        self._pool = ProcessPoolExecutor(
            processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_die_with_parent,
            initargs=(os.getpid(),),
        )
        # Submitted before any finishes, so each submit starts a worker in this thread.
        for warming in [self._pool.submit(_warm) for _ in range(processes)]:
            warming.result(timeout=120)

    def submit(self, body: bytes, engine: bool = False) -> Future[Decoded]:
        return self._pool.submit(decode_in_worker, body, engine)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
