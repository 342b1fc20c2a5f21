"""The ingest write-ahead log: what ``chainmap serve`` has acknowledged but not yet stored.

A receiver answers 2xx only after the request's accepted spans are appended
here, so a crash of the server (``kill -9`` included) loses nothing it
acknowledged: the next start replays the log. Records are Arrow IPC streams of
validated spans, each with a sequence number, its length, a CRC32 and the
sender's address, appended to segment files ``<first seq>.wal``.

Durability (``CHAINMAP_SERVE_WAL_FSYNC``):

* ``fsync`` (default): the record is on stable storage before the 2xx;
  concurrent requests share one ``fdatasync`` (group commit), so the cost is
  one disk flush per group of requests, not per request.
* ``none``: the record is in the operating system's page cache before the 2xx;
  it survives any crash of ``chainmap serve`` but not of the machine.

Exactly-once replay: before a batch of records ``first..last`` is inserted
the writer records it as *in flight* (:meth:`WriteAheadLog.begin`); after the
insert it records the commit (:meth:`WriteAheadLog.commit`). A restart
re-inserts the in-flight batch with the same records in the same order and the
same insert deduplication token, so ClickHouse drops it if the first attempt
had landed. The token carries the log's random instance id, so a new log never
collides with the tokens of an old one.

The log is bounded by bytes: :meth:`WriteAheadLog.append` raises
:class:`WalFullError` when the uncommitted records would exceed the bound and
the receivers answer 429 / RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import struct
import threading
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from chainmap_otel.errors import ChainmapError

logger = logging.getLogger(__name__)

__all__ = ["FSYNC_MODES", "WalFullError", "WalRecord", "WriteAheadLog"]

#: ``CHAINMAP_SERVE_WAL_FSYNC`` values.
FSYNC_MODES = ("fsync", "none")
#: Segment files are started anew once they pass this size.
SEGMENT_BYTES = 64 * 1024 * 1024
_HEADER = struct.Struct("<QIIH")  # seq, payload length, crc32(payload), sender length
_STATE_FILE = "state.json"
_LOCK_FILE = ".lock"
_SUFFIX = ".wal"


class WalFullError(ChainmapError):
    """The write-ahead log holds as many unstored bytes as it may."""


@dataclass(frozen=True, slots=True)
class WalRecord:
    """One acknowledged request: its sequence number, sender and Arrow IPC payload."""

    seq: int
    sender: str
    payload: bytes

    @property
    def size(self) -> int:
        return _HEADER.size + len(self.sender.encode()) + len(self.payload)


@dataclass
class _Segment:
    first_seq: int
    path: Path
    last_seq: int
    size: int


class WriteAheadLog:
    """An append-only, size-bounded log of acknowledged requests in ``directory``.

    One process owns a directory (an exclusive ``flock``). :meth:`open` must be
    called first; it returns the records not yet committed, oldest first.
    """

    def __init__(self, directory: str | Path, max_bytes: int, fsync: str = "fsync") -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
        if fsync not in FSYNC_MODES:
            raise ValueError(f"fsync must be one of {', '.join(FSYNC_MODES)}, got {fsync!r}")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self._fsync = fsync == "fsync"
        self._lock = threading.Lock()
        self._synced = threading.Condition(self._lock)
        self._segments: list[_Segment] = []
        self._fd = -1
        self._next_seq = 1
        self._written = 0  # bytes appended since open, the group-commit clock
        self._durable = 0
        self._syncing = False
        self._pending_sizes: dict[int, int] = {}
        self._pending_bytes = 0
        self._committed = 0
        self._inflight: tuple[int, int] | None = None
        self._lock_file: IO[str] | None = None
        self.instance = ""

    # -- start-up ----------------------------------------------------------------------------

    def open(self) -> list[WalRecord]:
        """Lock the directory, read its state, return the uncommitted records to replay."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(self.directory / _LOCK_FILE, "a+")  # noqa: SIM115
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock_file.close()
            self._lock_file = None
            raise ChainmapError(
                f"the ingest write-ahead log {self.directory} is used by another chainmap "
                "serve; stop it or give this one its own CHAINMAP_SERVE_WAL_DIR"
            ) from None
        state = self._read_state()
        self.instance = str(state.get("instance") or uuid.uuid4().hex)
        self._committed = int(state.get("committed", 0))
        inflight = state.get("inflight")
        self._inflight = (int(inflight[0]), int(inflight[1])) if inflight else None
        records: list[WalRecord] = []
        for path in sorted(self.directory.glob(f"*{_SUFFIX}"), key=_segment_seq):
            segment = _Segment(_segment_seq(path), path, _segment_seq(path) - 1, 0)
            for record, end in _read_segment(path):
                segment.last_seq = record.seq
                segment.size = end
                if record.seq > self._committed:
                    records.append(record)
            if path.stat().st_size != segment.size:
                # A record torn by a crash was never acknowledged: cut it off.
                logger.warning("write-ahead log %s: dropping a torn record at its end", path)
                with open(path, "r+b") as handle:
                    handle.truncate(segment.size)
            self._segments.append(segment)
        last = max((s.last_seq for s in self._segments), default=self._committed)
        self._next_seq = max(last, self._committed) + 1
        for record in records:
            self._pending_sizes[record.seq] = record.size
            self._pending_bytes += record.size
        self._drop_committed_segments()
        self._write_state()
        if records:
            logger.info(
                "write-ahead log %s: replaying %d acknowledged requests (%d bytes)",
                self.directory,
                len(records),
                self._pending_bytes,
            )
        return records

    @property
    def inflight(self) -> tuple[int, int] | None:
        """The batch ``(first, last)`` that was being inserted when the log was last closed."""
        return self._inflight

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    def token(self, first: int, last: int) -> str:
        """The insert deduplication token of the batch of records ``first..last``."""
        return f"chainmap-wal-{self.instance}-{first}-{last}"

    # -- the receivers' side -----------------------------------------------------------------

    def append(
        self, payload: bytes, sender: str, on_logged: Callable[[int], None] | None = None
    ) -> int:
        """Log one request; returns its sequence number once it is durable.

        ``on_logged(seq)`` runs under the log's lock right after the write, so
        callers can queue records in sequence order. Raises :class:`WalFullError`
        when the log is full (unless it is empty, so a request larger than the
        bound is not refused forever).
        """
        sender_bytes = sender.encode("utf-8", "replace")[:512]
        size = _HEADER.size + len(sender_bytes) + len(payload)
        with self._lock:
            if self._pending_bytes and self._pending_bytes + size > self.max_bytes:
                raise WalFullError(
                    f"the ingest write-ahead log holds {self._pending_bytes} unstored bytes "
                    f"(limit {self.max_bytes}, CHAINMAP_SERVE_QUEUE_BYTES); retry later"
                )
            seq = self._next_seq
            self._next_seq += 1
            header = _HEADER.pack(seq, len(payload), zlib.crc32(payload), len(sender_bytes))
            self._ensure_segment(seq)
            _write_all(self._fd, header + sender_bytes + payload)
            segment = self._segments[-1]
            segment.last_seq = seq
            segment.size += size
            self._pending_sizes[seq] = size
            self._pending_bytes += size
            self._written += size
            mark = self._written
            if on_logged is not None:
                on_logged(seq)
        if self._fsync:
            self._sync_through(mark)
        return seq

    def _sync_through(self, mark: int) -> None:
        # Group commit: one caller flushes for everyone who wrote before it started.
        with self._synced:
            while self._durable < mark:
                if self._syncing:
                    self._synced.wait()
                    continue
                self._syncing = True
                target, fd = self._written, self._fd
                self._synced.release()
                try:
                    os.fdatasync(fd)
                finally:
                    self._synced.acquire()
                    self._syncing = False
                    self._durable = max(self._durable, target)
                    self._synced.notify_all()

    def _ensure_segment(self, seq: int) -> None:
        if self._fd >= 0 and self._segments[-1].size < SEGMENT_BYTES:
            return
        if self._fd >= 0:
            if self._fsync:
                os.fdatasync(self._fd)
            os.close(self._fd)
        path = self.directory / f"{seq:020d}{_SUFFIX}"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._segments.append(_Segment(seq, path, seq - 1, 0))
        if self._fsync:
            _sync_directory(self.directory)

    # -- the writer's side -------------------------------------------------------------------

    def begin(self, first: int, last: int) -> None:
        """Record that the batch ``first..last`` is about to be inserted."""
        with self._lock:
            self._inflight = (first, last)
            self._write_state()

    def commit(self, last: int) -> None:
        """Record that every record up to ``last`` is stored (or given up on)."""
        with self._lock:
            for seq in [s for s in self._pending_sizes if s <= last]:
                self._pending_bytes -= self._pending_sizes.pop(seq)
            self._committed = max(self._committed, last)
            self._inflight = None
            self._write_state()
            self._drop_committed_segments()

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                if self._fsync:
                    os.fdatasync(self._fd)
                os.close(self._fd)
                self._fd = -1
            if self._lock_file is not None:
                self._lock_file.close()
                self._lock_file = None

    # -- files -------------------------------------------------------------------------------

    def _read_state(self) -> dict[str, Any]:
        path = self.directory / _STATE_FILE
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ChainmapError(
                f"the ingest write-ahead log state {path} is unreadable ({exc}); move the "
                "directory aside to start with an empty log"
            ) from None
        return state if isinstance(state, dict) else {}

    def _write_state(self) -> None:
        state = {"instance": self.instance, "committed": self._committed}
        if self._inflight is not None:
            state["inflight"] = list(self._inflight)  # type: ignore[assignment]
        path = self.directory / _STATE_FILE
        temporary = path.with_suffix(".tmp")
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(state, handle)
            handle.flush()
            if self._fsync:
                os.fdatasync(handle.fileno())
        os.replace(temporary, path)
        if self._fsync:
            _sync_directory(self.directory)

    def _drop_committed_segments(self) -> None:
        # Every segment but the one being written whose records are all committed.
        keep: list[_Segment] = []
        for index, segment in enumerate(self._segments):
            current = index == len(self._segments) - 1 and self._fd >= 0
            if not current and segment.last_seq <= self._committed:
                segment.path.unlink(missing_ok=True)
            else:
                keep.append(segment)
        self._segments = keep


def _segment_seq(path: Path) -> int:
    try:
        return int(path.name[: -len(_SUFFIX)])
    except ValueError:
        return 0


def _read_segment(path: Path) -> Iterator[tuple[WalRecord, int]]:
    """The intact records of a segment with the offset after each; stops at a torn one."""
    data = path.read_bytes()
    offset = 0
    while offset + _HEADER.size <= len(data):
        seq, length, crc, sender_length = _HEADER.unpack_from(data, offset)
        start = offset + _HEADER.size
        end = start + sender_length + length
        if end > len(data):
            return
        payload = data[start + sender_length : end]
        if zlib.crc32(payload) != crc:
            return
        sender = data[start : start + sender_length].decode("utf-8", "replace")
        yield WalRecord(seq, sender, payload), end
        offset = end


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
