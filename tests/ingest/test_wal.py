"""The ingest write-ahead log on real files, and the span writer replaying it into real chDB."""

from __future__ import annotations

import errno
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from chainmap_otel.errors import ChainmapError
from chainmap_otel.ingest.decode import decode_protobuf
from chainmap_otel.ingest.wal import WalFullError, WriteAheadLog
from chainmap_otel.server.app import new_span_writer
from chainmap_otel.storage.arrow import from_ipc, to_ipc
from chainmap_otel.storage.store import TraceStore
from tests.support.otlp_payloads import request_of, sdk_spans
from tests.support.volumes import fill, small_volume


def _table(service: str = "svc", count: int = 2) -> Any:
    table = decode_protobuf(request_of(sdk_spans(service, count)).SerializeToString()).to_arrow()
    assert table is not None
    return table


@pytest.mark.parametrize("fsync", ["fsync", "none"])
def test_appended_records_come_back_after_reopening(tmp_path: Path, fsync: str) -> None:
    log = WriteAheadLog(tmp_path, 10_000_000, fsync)
    assert log.open() == []
    first = log.append(b"one", "10.0.0.1:5000")
    second = log.append(b"two", "10.0.0.2:5000")
    log.close()
    again = WriteAheadLog(tmp_path, 10_000_000, fsync)
    records = again.open()
    assert [(r.seq, r.sender, r.payload) for r in records] == [
        (first, "10.0.0.1:5000", b"one"),
        (second, "10.0.0.2:5000", b"two"),
    ]
    assert again.append(b"three", "x") == second + 1
    again.close()


def test_committed_records_are_not_replayed_and_their_segments_go(tmp_path: Path) -> None:
    log = WriteAheadLog(tmp_path, 10_000_000, segment_bytes=64)
    log.open()
    seqs = [log.append(b"x" * 50, "s") for _ in range(4)]  # one segment each
    assert len(list(tmp_path.glob("*.wal"))) == 4
    log.begin(seqs[0], seqs[2])
    log.commit(seqs[2])
    assert len(list(tmp_path.glob("*.wal"))) == 1
    log.close()
    again = WriteAheadLog(tmp_path, 10_000_000, segment_bytes=64)
    assert [r.seq for r in again.open()] == [seqs[3]]
    assert again.inflight is None
    again.close()


def test_a_torn_last_record_is_cut_off(tmp_path: Path) -> None:
    log = WriteAheadLog(tmp_path, 10_000_000)
    log.open()
    log.append(b"whole", "s")
    log.append(b"torn-record", "s")
    log.close()
    segment = next(tmp_path.glob("*.wal"))
    data = segment.read_bytes()
    segment.write_bytes(data[:-4])  # a crash in the middle of the second write
    again = WriteAheadLog(tmp_path, 10_000_000)
    assert [r.payload for r in again.open()] == [b"whole"]
    assert again.append(b"next", "s") == 2
    again.close()
    assert [r.payload for r in WriteAheadLog(tmp_path, 10_000_000).open()] == [b"whole", b"next"]


def test_a_full_log_refuses_with_a_clear_error(tmp_path: Path) -> None:
    log = WriteAheadLog(tmp_path, 200)
    log.open()
    log.append(b"x" * 150, "s")  # an empty log takes even an oversized record
    with pytest.raises(WalFullError, match="CHAINMAP_SERVE_QUEUE_BYTES"):
        log.append(b"y" * 100, "s")
    log.commit(1)
    log.append(b"y" * 100, "s")
    log.close()


def test_one_process_owns_a_log(tmp_path: Path) -> None:
    log = WriteAheadLog(tmp_path, 1000)
    log.open()
    other = WriteAheadLog(tmp_path, 1000)
    with pytest.raises(ChainmapError, match="CHAINMAP_SERVE_WAL_DIR"):
        other.open()
    log.close()


def test_concurrent_appends_share_flushes_and_keep_every_record(tmp_path: Path) -> None:
    log = WriteAheadLog(tmp_path, 100_000_000)
    log.open()
    order: list[int] = []
    lock = threading.Lock()

    def append(index: int) -> None:
        for _ in range(50):
            seq = log.append(f"{index}".encode(), "s", lambda s: order.append(s))
            with lock:
                assert seq > 0

    threads = [threading.Thread(target=append, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()
    assert order == sorted(order) == list(range(1, 401))  # on_logged runs in sequence order
    assert len(WriteAheadLog(tmp_path, 100_000_000).open()) == 400


def test_arrow_ipc_round_trips_a_span_table() -> None:
    table = _table()
    assert from_ipc(to_ipc(table)).equals(table)


def _count(store: TraceStore, where: str = "1") -> int:
    return int(store.query(f"SELECT count() FROM otel_traces WHERE {where}").result_rows[0][0])


def test_a_batch_in_flight_at_a_crash_is_stored_once_after_replay(
    store_factory: Callable[[], TraceStore], tmp_path: Path
) -> None:
    """The insert landed, the commit was never recorded (kill -9 between the two)."""
    store = store_factory()
    directory = tmp_path / "wal"
    tables = [_table("replayed", 3) for _ in range(3)]
    log = WriteAheadLog(directory, 100_000_000)
    log.open()
    seqs = [log.append(to_ipc(t), "sender") for t in tables]
    log.begin(seqs[0], seqs[1])
    first_two = pa.concat_tables(tables[:2]).combine_chunks()
    store.insert_arrow(first_two, deduplication_token=log.token(seqs[0], seqs[1]))
    log.close()  # no commit: as if the process died right after the insert

    writer = new_span_writer(store, wal=WriteAheadLog(directory, 100_000_000))
    writer.start()
    assert writer.flush(timeout=60)
    writer.close()
    assert _count(store) == 18
    unique = store.query("SELECT uniqExact(SpanId) FROM otel_traces").result_rows
    assert int(unique[0][0]) == 18
    summary = store.query("SELECT sum(SpanCount) FROM chainmap_trace_summary").result_rows
    assert int(summary[0][0]) == 18
    assert WriteAheadLog(directory, 100_000_000).open() == []


def test_an_unreachable_store_keeps_acknowledged_spans_in_the_log(
    store_factory: Callable[[], TraceStore], tmp_path: Path
) -> None:
    store = store_factory()
    directory = tmp_path / "wal"
    writer = new_span_writer(store, wal=WriteAheadLog(directory, 100_000_000))
    broken = threading.Event()
    real_insert = store.insert_arrow
    real_query = store.query

    def failing_insert(table: Any, **kwargs: Any) -> int:
        if broken.is_set():
            raise ChainmapError("connection refused (injected)")
        return real_insert(table, **kwargs)

    def failing_query(sql: str, parameters: Any = None) -> Any:
        if broken.is_set():
            raise ChainmapError("connection refused (injected)")
        return real_query(sql, parameters)

    store.insert_arrow = failing_insert  # type: ignore[method-assign]
    store.query = failing_query  # type: ignore[method-assign]
    broken.set()
    writer.start()
    assert writer.offer(_table("kept", 5), "a sender")
    writer.close(timeout=60)
    assert writer.stats().queued_spans == 10  # kept, not dropped
    assert writer.stats().dropped_spans == 0
    broken.clear()
    assert _count(store) == 0

    again = new_span_writer(store, wal=WriteAheadLog(directory, 100_000_000))
    again.start()
    assert again.flush(timeout=60)
    again.close()
    assert _count(store, "ServiceName = 'kept'") == 10


def test_segments_rotate_by_age_so_committed_space_is_freed(tmp_path: Path) -> None:
    log = WriteAheadLog(tmp_path, 10_000_000, segment_bytes=10_000_000, segment_age_s=0.05)
    log.open()
    first = log.append(b"x" * 100, "s")
    time.sleep(0.2)  # past the segment age
    second = log.append(b"y" * 100, "s")
    assert len(list(tmp_path.glob("*.wal"))) == 2
    log.begin(first, second)
    log.commit(second)
    time.sleep(0.2)
    log.commit(second)  # the open segment is old and all stored now: it goes too
    assert list(tmp_path.glob("*.wal")) == []
    assert log.disk_bytes == 0
    assert log.append(b"z", "s") == second + 1
    log.close()
    assert [r.seq for r in WriteAheadLog(tmp_path, 10_000_000).open()] == [second + 1]


def test_a_full_volume_refuses_appends_keeps_what_it_took_and_recovers(tmp_path: Path) -> None:
    with small_volume(tmp_path / "vol", 1 << 20) as volume:
        log = WriteAheadLog(volume / "wal", 100_000_000, segment_bytes=64 * 1024)
        log.open()
        taken = []
        with pytest.raises(OSError) as refused:
            for index in range(1000):
                taken.append(log.append(index.to_bytes(4, "big") * 2500, "s"))
        assert refused.value.errno == errno.ENOSPC
        assert "is full" in log.problem()
        # Recording the state needs no space, so the writer can still commit and free.
        log.begin(taken[0], taken[-1])
        log.commit(taken[-1])
        assert log.problem() == ""
        again = log.append(b"after", "s")
        assert again == taken[-1] + 1
        log.close()
        reopened = WriteAheadLog(volume / "wal", 100_000_000)
        assert [(r.seq, r.payload) for r in reopened.open()] == [(again, b"after")]
        reopened.close()


def test_records_before_a_refused_append_survive_a_crash(tmp_path: Path) -> None:
    with small_volume(tmp_path / "vol", 1 << 20) as volume:
        log = WriteAheadLog(volume / "wal", 100_000_000)
        log.open()
        payloads = []
        with pytest.raises(OSError):
            for index in range(1000):
                payload = index.to_bytes(4, "big") * 3000
                log.append(payload, "s")
                payloads.append(payload)
        fill(volume)
        with pytest.raises(OSError):
            log.append(b"z" * 100, "s")
        # No close: as after kill -9. Every acknowledged record is there, nothing else.
        reopened = WriteAheadLog(volume / "wal", 100_000_000)
        log._lock_file.close()  # type: ignore[union-attr]  # the dead process's flock
        assert [r.payload for r in reopened.open()] == payloads
        reopened.close()


def test_a_log_of_the_previous_state_format_is_replayed(tmp_path: Path) -> None:
    log = WriteAheadLog(tmp_path, 10_000_000)
    log.open()
    seqs = [log.append(b"r%d" % i, "s") for i in range(3)]
    log.close()
    (tmp_path / "state.slots").unlink()
    (tmp_path / "state.json").write_text(
        json.dumps({"instance": "abc", "committed": seqs[0], "inflight": [seqs[1], seqs[1]]})
    )
    again = WriteAheadLog(tmp_path, 10_000_000)
    assert [r.seq for r in again.open()] == seqs[1:]
    assert again.inflight == (seqs[1], seqs[1])
    assert again.instance == "abc"
    assert not (tmp_path / "state.json").exists()
    again.close()


def test_the_writer_outlives_a_log_it_cannot_record_a_batch_in(
    store_factory: Callable[[], TraceStore], tmp_path: Path
) -> None:
    store = store_factory()
    log = WriteAheadLog(tmp_path / "wal", 100_000_000)
    writer = new_span_writer(store, wal=log)
    failures = {"left": 3}
    real_begin = log.begin

    def begin(first: int, last: int) -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise OSError(errno.EIO, "Input/output error (injected)")
        real_begin(first, last)

    log.begin = begin  # type: ignore[method-assign]
    writer.start()
    assert writer.offer(_table("outlived", 5), "a sender")
    assert writer.flush(timeout=120)
    assert failures["left"] == 0
    assert writer.problems() == []
    assert writer.offer(_table("after", 2), "a sender")
    writer.close()
    assert _count(store, "ServiceName = 'outlived'") == 10
    assert _count(store, "ServiceName = 'after'") == 4
    assert writer.stats().dropped_spans == 0
