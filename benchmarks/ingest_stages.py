"""Where serve's ingest time goes, stage by stage: the engine path next to the Python path.

The same pre-encoded protobuf requests (512 spans each, the batch of
``ingest_throughput.py``) through each stage of both paths, in one run:

* request path: ``engine_spans`` (the lean check; the body is logged as it came) vs
  ``decode_protobuf`` + ``to_ipc`` (the decode worker's job today), CPU µs per span;
* write-ahead log: appending the body vs appending the Arrow IPC record, fsync per request,
  wall µs per span;
* insert: one engine ``INSERT ... SELECT`` of all bodies (``Protobuf`` format, with the four
  materialized views) vs ``insert_arrow`` of the decoded tables, process CPU µs per span
  (chDB's threads included) and wall.

Each engine figure is printed with its ratio to the Python figure of the same round;
medians of ``--rounds``.

Usage: python benchmarks/ingest_stages.py [--requests 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from chainmap_otel.ingest.decode import decode_protobuf
from chainmap_otel.ingest.engine_decode import engine_spans, insert_bodies
from chainmap_otel.ingest.inserter import concat
from chainmap_otel.ingest.wal import WriteAheadLog
from chainmap_otel.storage.arrow import to_ipc
from chainmap_otel.storage.schema import apply_schema
from chainmap_otel.storage.store import TraceStore, open_store

sys.path.insert(0, str(Path(__file__).parent))
from ingest_throughput import make_batch


def cpu_per_span(work: Callable[[], object], spans: int) -> float:
    start = time.process_time()
    work()
    return (time.process_time() - start) / spans * 1e6


def wall_per_span(work: Callable[[], object], spans: int) -> float:
    start = time.perf_counter()
    work()
    return (time.perf_counter() - start) / spans * 1e6


def decode_all(bodies: list[bytes], tables: list[Any], ipcs: list[bytes]) -> None:
    for body in bodies:
        table = decode_protobuf(body).table
        tables.append(table)
        ipcs.append(to_ipc(table))


def append_all(log: WriteAheadLog, records: list[bytes]) -> None:
    for record in records:
        log.append(record, "bench")


def run_round(
    store: TraceStore,
    tmp: Path,
    bodies: list[bytes],
    round_: int,
    record: Callable[[str, float], None],
) -> None:
    spans = 512 * len(bodies)
    record("check", cpu_per_span(partial(list, map(engine_spans, bodies)), spans))
    tables: list[Any] = []
    ipcs: list[bytes] = []
    record("decode", cpu_per_span(partial(decode_all, bodies, tables, ipcs), spans))
    for name, records in (("wal body", bodies), ("wal arrow", ipcs)):
        log = WriteAheadLog(tmp / f"wal-{name}-{round_}", 10**10, "fsync")
        log.open()
        record(name, wall_per_span(partial(append_all, log, records), spans))
        log.close()
    start = time.perf_counter()
    engine = partial(insert_bodies, store, bodies, f"e{round_}")
    record("insert engine", cpu_per_span(engine, spans))
    record("insert engine wall", (time.perf_counter() - start) / spans * 1e6)
    table = concat(tables)
    start = time.perf_counter()
    arrow = partial(store.insert_arrow, table, deduplication_token=f"a{round_}")
    record("insert arrow", cpu_per_span(arrow, spans))
    record("insert arrow wall", (time.perf_counter() - start) / spans * 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=100, help="requests per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    # Distinct requests (ids differ), as from a fleet.
    bodies = [encode_spans(make_batch(512)).SerializeToString() for _ in range(args.requests)]
    spans = 512 * len(bodies)
    results: dict[str, list[float]] = {}

    def record(name: str, value: float) -> None:
        results.setdefault(name, []).append(value)

    with tempfile.TemporaryDirectory(prefix="chainmap-stages-") as tmp:
        with open_store(f"chdb://{tmp}/store") as store:
            apply_schema(store, progress=lambda line: None)
            for round_ in range(args.rounds):
                run_round(store, Path(tmp), bodies, round_, record)
    median = {name: statistics.median(values) for name, values in results.items()}
    print(f"{spans} spans in {len(bodies)} requests, medians of {args.rounds} rounds (µs/span)")
    pairs = (
        ("request path (CPU)", "check", "decode"),
        ("write-ahead log, fsync (wall)", "wal body", "wal arrow"),
        ("insert, 4 views (process CPU)", "insert engine", "insert arrow"),
        ("insert, 4 views (wall)", "insert engine wall", "insert arrow wall"),
    )
    print(f"{'stage':32} {'engine path':>12} {'python path':>12} {'ratio':>7}")
    for label, engine, python in pairs:
        print(
            f"{label:32} {median[engine]:12.2f} {median[python]:12.2f} "
            f"{median[engine] / median[python]:6.2f}x"
        )
    engine_total = median["check"] + median["wal body"] + median["insert engine"]
    python_total = median["decode"] + median["wal arrow"] + median["insert arrow"]
    print(
        f"{'sum of the three':32} {engine_total:12.2f} {python_total:12.2f} "
        f"{engine_total / python_total:6.2f}x"
    )


if __name__ == "__main__":
    main()
