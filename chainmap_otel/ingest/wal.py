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

A full volume never wedges the log. The state (instance, commit, batch in
flight) lives in two fixed slots of a file allocated when the log is opened,
overwritten in place, so recording a commit needs no free space. A segment is
closed once it reaches ``segment_bytes`` or ``segment_age_s``, whichever comes
first, and deleted once all its records are committed, so stored spans free
their space within that bound. An append that fails (``ENOSPC``, a read-only or
broken volume) is cut off the segment again and raises ``OSError``: the
request is not acknowledged, the records before it stay intact, and
:meth:`WriteAheadLog.problem` says why until the volume takes writes again.

The log is also bounded by bytes: :meth:`WriteAheadLog.append` raises
:class:`WalFullError` when the uncommitted records would exceed the bound and
the receivers answer 429 / RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import struct
import threading
import time
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
#: Default size and age after which a segment is closed (so it can be deleted once committed).
SEGMENT_BYTES = 8 * 1024 * 1024
SEGMENT_AGE_S = 10.0
_HEADER = struct.Struct("<QIIH")  # seq, payload length, crc32(payload), sender length
_STATE_FILE = "state.slots"
_LEGACY_STATE_FILE = "state.json"
_SLOT_BYTES = 512
_SLOT_HEADER = struct.Struct("<4sII")  # magic, crc32(document), document length
_SLOT_MAGIC = b"CMWS"
_LOCK_FILE = ".lock"
_SUFFIX = ".wal"
#: Errors that mean "the volume is full", cleared as soon as it has room again.
_FULL = (errno.ENOSPC, errno.EDQUOT)


class WalFullError(ChainmapError):
    """The write-ahead log holds as many unstored bytes as it may."""


@dataclass(frozen=True, slots=True)
class WalRecord:
    """One acknowledged request: its sequence number, sender and Arrow IPC payload."""

    seq: int
    sender: str
    payload: bytes
    #: When the record was written, as far as the log knows (its segment's mtime on replay).
    written_at: float = 0.0

    @property
    def size(self) -> int:
        return _HEADER.size + len(self.sender.encode()) + len(self.payload)


@dataclass
class _Segment:
    first_seq: int
    path: Path
    last_seq: int
    size: int
    opened: float = 0.0  # monotonic


@dataclass
class _WriteFailure:
    error: OSError
    needed: int


class WriteAheadLog:
    """An append-only, size-bounded log of acknowledged requests in ``directory``.

    One process owns a directory (an exclusive ``flock``). :meth:`open` must be
    called first; it returns the records not yet committed, oldest first.
    """

    def __init__(
        self,
        directory: str | Path,
        max_bytes: int,
        fsync: str = "fsync",
        *,
        segment_bytes: int = SEGMENT_BYTES,
        segment_age_s: float = SEGMENT_AGE_S,
    ) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
        if fsync not in FSYNC_MODES:
            raise ValueError(f"fsync must be one of {', '.join(FSYNC_MODES)}, got {fsync!r}")
        if segment_bytes < 1:
            raise ValueError(f"segment_bytes must be >= 1, got {segment_bytes}")
        if segment_age_s <= 0:
            raise ValueError(f"segment_age_s must be > 0, got {segment_age_s}")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.segment_age_s = segment_age_s
        self._fsync = fsync == "fsync"
        self._lock = threading.Lock()
        self._synced = threading.Condition(self._lock)
        self._segments: list[_Segment] = []
        self._fd = -1  # the last segment's, while it takes appends
        self._state_fd = -1
        self._generation = 0
        self._next_seq = 1
        self._written = 0  # bytes appended since open, the group-commit clock
        self._durable = 0
        self._syncing = False
        self._pending_sizes: dict[int, int] = {}
        self._pending_bytes = 0
        self._committed = 0
        self._inflight: tuple[int, int] | None = None
        self._lock_file: IO[str] | None = None
        self._failure: _WriteFailure | None = None
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
        self._generation = int(state.get("generation", 0))
        self._committed = int(state.get("committed", 0))
        inflight = state.get("inflight")
        self._inflight = (int(inflight[0]), int(inflight[1])) if inflight else None
        records: list[WalRecord] = []
        for path in sorted(self.directory.glob(f"*{_SUFFIX}"), key=_segment_seq):
            segment = _Segment(_segment_seq(path), path, _segment_seq(path) - 1, 0)
            written_at = path.stat().st_mtime
            for record, end in _read_segment(path, written_at):
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
        self._open_state_file()
        self._write_state()
        (self.directory / _LEGACY_STATE_FILE).unlink(missing_ok=True)
        self._drop_committed_segments()
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
        """Bytes of acknowledged records not yet committed."""
        return self._pending_bytes

    @property
    def disk_bytes(self) -> int:
        """Bytes of the segment files (committed records not yet reclaimed included)."""
        with self._lock:
            return sum(segment.size for segment in self._segments)

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
        bound is not refused forever), ``OSError`` when the volume refuses the
        write (nothing of the request stays in the log).
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
            header = _HEADER.pack(seq, len(payload), zlib.crc32(payload), len(sender_bytes))
            self._write_record(seq, header + sender_bytes + payload)
            self._next_seq += 1
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

    def _write_record(self, seq: int, data: bytes) -> None:
        # Under the lock. A failed write is cut off again; when the volume is full the
        # segment is closed, so its committed records can be reclaimed, and the write is
        # tried once more if that freed space.
        for attempt in (1, 2):
            try:
                self._ensure_segment(seq)
                _write_all(self._fd, data)
            except OSError as exc:
                freed = self._undo_failed_write(exc)
                if attempt == 1 and freed:
                    continue
                if self._failure is None:
                    logger.error(
                        "cannot write the ingest write-ahead log %s; refusing requests until it "
                        "can: %s",
                        self.directory,
                        exc,
                    )
                self._failure = _WriteFailure(exc, len(data))
                raise
            if self._failure is not None:
                logger.info("the ingest write-ahead log %s takes writes again", self.directory)
                self._failure = None
            return

    def _undo_failed_write(self, exc: OSError) -> int:
        """Cut a partly written record off the open segment; returns the bytes freed."""
        if self._fd < 0:
            return 0
        segment = self._segments[-1]
        try:
            os.ftruncate(self._fd, segment.size)
        except OSError:
            # Cannot cut it off: no record may follow it in this segment.
            logger.warning("write-ahead log %s: cannot truncate after %s", segment.path, exc)
            self._close_segment()
            return 0
        if exc.errno in _FULL and segment.size:
            self._close_segment()
            before = sum(s.size for s in self._segments)
            self._drop_committed_segments()
            return before - sum(s.size for s in self._segments)
        return 0

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
                except OSError as exc:
                    # A rotation closed the segment meanwhile, flushing it first.
                    if exc.errno != errno.EBADF:
                        raise
                finally:
                    self._synced.acquire()
                    self._syncing = False
                    self._durable = max(self._durable, target)
                    self._synced.notify_all()

    def _ensure_segment(self, seq: int) -> None:
        if self._fd >= 0:
            current = self._segments[-1]
            if current.size < self.segment_bytes and (
                time.monotonic() - current.opened < self.segment_age_s
            ):
                return
            self._close_segment()
        if self._segments and self._segments[-1].first_seq == seq:
            # An empty segment left by a failed first write: reuse its file.
            self._segments.pop()
        path = self.directory / f"{seq:020d}{_SUFFIX}"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._segments.append(_Segment(seq, path, seq - 1, 0, time.monotonic()))
        if self._fsync:
            _sync_directory(self.directory)

    def _close_segment(self) -> None:
        """Stop appending to the last segment (flushed: later syncs flush the next one)."""
        fd, self._fd = self._fd, -1
        if fd < 0:
            return
        try:
            if self._fsync:
                os.fdatasync(fd)
        finally:
            os.close(fd)

    def problem(self) -> str:
        """Why the last append failed, or '' once the volume takes writes again."""
        with self._lock:
            failure = self._failure
            if failure is None:
                return ""
            if failure.error.errno in _FULL:
                try:
                    stats = os.statvfs(self.directory)
                except OSError:
                    free = 0
                else:
                    free = stats.f_bavail * stats.f_frsize
                if free >= failure.needed + 2 * _SLOT_BYTES:
                    self._failure = None
                    return ""
                return (
                    f"the volume of the ingest write-ahead log {self.directory} is full "
                    f"({free} bytes free, a request needed {failure.needed}): "
                    "free space there or move CHAINMAP_SERVE_WAL_DIR"
                )
            if _directory_takes_writes(self.directory):
                self._failure = None
                return ""
            return (
                f"the ingest write-ahead log {self.directory} cannot be written "
                f"({failure.error.strerror or failure.error}): fix the volume or move "
                "CHAINMAP_SERVE_WAL_DIR"
            )

    # -- the writer's side -------------------------------------------------------------------

    def begin(self, first: int, last: int) -> None:
        """Record that the batch ``first..last`` is about to be inserted."""
        with self._lock:
            self._inflight = (first, last)
            self._write_state()

    def commit(self, last: int) -> None:
        """Record that every record up to ``last`` is stored (or given up on).

        Raises ``OSError`` when the state cannot be written; the commit is then
        recorded with the next :meth:`begin`.
        """
        with self._lock:
            for seq in [s for s in self._pending_sizes if s <= last]:
                self._pending_bytes -= self._pending_sizes.pop(seq)
            self._committed = max(self._committed, last)
            self._inflight = None
            self._write_state()
            if self._fd >= 0:
                current = self._segments[-1]
                full = current.size >= self.segment_bytes
                old = time.monotonic() - current.opened >= self.segment_age_s
                if current.last_seq <= self._committed and (full or old):
                    self._close_segment()
            self._drop_committed_segments()

    def close(self) -> None:
        with self._lock:
            self._close_segment()
            if self._state_fd >= 0:
                os.close(self._state_fd)
                self._state_fd = -1
            if self._lock_file is not None:
                self._lock_file.close()
                self._lock_file = None

    # -- files -------------------------------------------------------------------------------

    def _read_state(self) -> dict[str, Any]:
        path = self.directory / _STATE_FILE
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return self._read_legacy_state()
        except OSError as exc:
            raise ChainmapError(
                f"the ingest write-ahead log state {path} is unreadable ({exc}); move the "
                "directory aside to start with an empty log"
            ) from None
        slots = [_decode_slot(data[i * _SLOT_BYTES : (i + 1) * _SLOT_BYTES]) for i in (0, 1)]
        valid = [slot for slot in slots if slot is not None]
        if not valid:
            if not data.strip(b"\0"):
                return {}  # allocated, never written: a crash right at the first open
            raise ChainmapError(
                f"the ingest write-ahead log state {path} is corrupt; move the directory "
                "aside to start with an empty log"
            )
        return max(valid, key=lambda slot: int(slot.get("generation", 0)))

    def _read_legacy_state(self) -> dict[str, Any]:
        path = self.directory / _LEGACY_STATE_FILE
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

    def _open_state_file(self) -> None:
        path = self.directory / _STATE_FILE
        self._state_fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        if os.fstat(self._state_fd).st_size < 2 * _SLOT_BYTES:
            # Both slots take their space now, so no later state write needs any.
            os.posix_fallocate(self._state_fd, 0, 2 * _SLOT_BYTES)
            if self._fsync:
                os.fsync(self._state_fd)
                _sync_directory(self.directory)

    def _write_state(self) -> None:
        # The slot not holding the newest state is overwritten, so a torn write leaves
        # the other one readable.
        generation = self._generation + 1
        state: dict[str, Any] = {
            "generation": generation,
            "instance": self.instance,
            "committed": self._committed,
        }
        if self._inflight is not None:
            state["inflight"] = list(self._inflight)
        os.pwrite(self._state_fd, _encode_slot(state), (generation % 2) * _SLOT_BYTES)
        if self._fsync:
            os.fdatasync(self._state_fd)
        self._generation = generation

    def _drop_committed_segments(self) -> None:
        # Every segment not taking appends whose records are all committed.
        keep: list[_Segment] = []
        for index, segment in enumerate(self._segments):
            current = index == len(self._segments) - 1 and self._fd >= 0
            if not current and segment.last_seq <= self._committed:
                segment.path.unlink(missing_ok=True)
            else:
                keep.append(segment)
        self._segments = keep


def _encode_slot(state: dict[str, Any]) -> bytes:
    document = json.dumps(state, separators=(",", ":")).encode()
    slot = _SLOT_HEADER.pack(_SLOT_MAGIC, zlib.crc32(document), len(document)) + document
    if len(slot) > _SLOT_BYTES:
        raise ValueError(f"write-ahead log state of {len(slot)} bytes does not fit a slot")
    return slot.ljust(_SLOT_BYTES, b"\0")


def _decode_slot(data: bytes) -> dict[str, Any] | None:
    if len(data) < _SLOT_HEADER.size:
        return None
    magic, crc, length = _SLOT_HEADER.unpack_from(data)
    document = data[_SLOT_HEADER.size : _SLOT_HEADER.size + length]
    if magic != _SLOT_MAGIC or len(document) != length or zlib.crc32(document) != crc:
        return None
    try:
        state = json.loads(document)
    except ValueError:
        return None
    return state if isinstance(state, dict) else None


def _segment_seq(path: Path) -> int:
    try:
        return int(path.name[: -len(_SUFFIX)])
    except ValueError:
        return 0


def _read_segment(path: Path, written_at: float = 0.0) -> Iterator[tuple[WalRecord, int]]:
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
        yield WalRecord(seq, sender, payload, written_at), end
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


def _directory_takes_writes(directory: Path) -> bool:
    probe = directory / ".write-probe"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"x")
        finally:
            os.close(fd)
            probe.unlink(missing_ok=True)
    except OSError:
        return False
    return True
