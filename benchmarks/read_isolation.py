"""What ingest costs the reads of ``chainmap serve``: idle against 80 % of capacity, one run.

    python benchmarks/read_isolation.py [--load 0.8] [--seconds 45] [--capacity-spans 60000]

One ``chainmap serve`` (embedded chDB, write-ahead log on, its defaults otherwise):

1. capacity: the committed OTLP/HTTP rate of 4 keep-alive clients posting pre-encoded
   512-span requests as fast as serve takes them (as ``ingest_throughput.py`` measures
   it, but every request with trace ids of its own; this also stores the data the reads
   read);
2. idle: for ``--seconds``, one client per read asks in a loop (``PAUSE_S`` apart):
   ``/health/detailed``, ``/metrics``, the all-traffic topology and a trace search (both
   over the last 15 minutes); p50 and p99 of each;
3. loaded: the same reads while the 4 clients post at ``--load`` of the capacity just
   measured (each paced to its share);
4. idle again, on the larger store the loaded phase left (topology and search read more
   rows than in 2).

Targets (issue 18): under load ``/health/detailed`` p99 <= 200 ms, ``/metrics`` p99 <= 1 s,
topology and trace search p99 <= 3x their idle p99. Ratios are printed against both idle
phases; the load average of the machine at each phase is printed too.
"""

from __future__ import annotations

import argparse
import http.client
import os
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest_throughput import CLIENTS, SERVE, Server, blast, make_batch, wait_written

READS = {
    "health": "/health/detailed",
    "metrics": "/metrics",
    "topology": "/api/v1/chains/topology?since=15m",
    "search": "/api/v1/traces?since=15m&limit=20",
}
TARGETS = {"health": 0.200, "metrics": 1.0}
#: Between two asks of one read: a load balancer's health check, a fast Prometheus, an
#: operator or a dashboard clicking through.
PAUSE_S = {"health": 0.1, "metrics": 1.0, "topology": 1.0, "search": 1.0}


class UniqueTraces:
    """``payload`` with new trace ids on every call: stored copies are distinct traces.

    Resending one pre-encoded request (as ``ingest_throughput.py`` does) stores the same
    512 spans again and again; analyses that pair spans by trace then join every copy with
    every other. The ids' offsets are found once, so a new body costs a join of slices.
    """

    def __init__(self, payload: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(payload)
        ids = {
            span.trace_id
            for resource in request.resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        }
        self.payload = payload
        self.offsets: list[tuple[int, bytes]] = []
        for trace_id in ids:
            at = payload.find(trace_id)
            while at >= 0:
                self.offsets.append((at, trace_id))
                at = payload.find(trace_id, at + len(trace_id))
        self.offsets.sort()
        self.ids = ids

    def __call__(self) -> bytes:
        new = {trace_id: os.urandom(16) for trace_id in self.ids}
        parts, last = [], 0
        for at, trace_id in self.offsets:
            parts += [self.payload[last:at], new[trace_id]]
            last = at + len(trace_id)
        parts.append(self.payload[last:])
        return b"".join(parts)


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f} (5 min {five:.1f})"


def read_loop(
    port: int, path: str, pause: float, until: float, out: list[float], errors: list[str]
) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    while time.monotonic() < until:
        started = time.perf_counter()
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
        except OSError as exc:
            errors.append(f"{path}: {exc}")
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            continue
        if response.status == 200:
            out.append(time.perf_counter() - started)
        else:
            errors.append(f"{path}: HTTP {response.status}")
        time.sleep(pause)
    connection.close()


def measure_reads(port: int, seconds: float) -> tuple[dict[str, list[float]], list[str]]:
    """Every read in its own loop for ``seconds``; latencies (s) per read, and failures."""
    until = time.monotonic() + seconds
    latencies: dict[str, list[float]] = {name: [] for name in READS}
    errors: list[str] = []
    threads = [
        threading.Thread(
            target=read_loop, args=(port, path, PAUSE_S[name], until, latencies[name], errors)
        )
        for name, path in READS.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors


def report(phase: str, latencies: dict[str, list[float]], errors: list[str]) -> None:
    cells = ", ".join(
        f"{name} p50 {percentile(v, 0.5) * 1000:.0f} ms p99 {percentile(v, 0.99) * 1000:.0f} ms "
        f"(n={len(v)})"
        for name, v in latencies.items()
        if v
    )
    print(f"{phase}: {cells}")
    if errors:
        print(f"  {len(errors)} failed reads, e.g. {errors[:3]}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--load", type=float, default=0.8, help="fraction of capacity")
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds per read phase")
    parser.add_argument("--capacity-spans", type=int, default=60_000)
    parser.add_argument("--batch", type=int, default=512, help="spans per request")
    args = parser.parse_args(argv)
    payload = UniqueTraces(encode_spans(make_batch(args.batch)).SerializeToString())
    check = ExportTraceServiceRequest.FromString(payload())
    assert len({s.trace_id for s in check.resource_spans[0].scope_spans[0].spans}) == len(
        payload.ids
    ), "every trace id of the batch is replaced"
    with tempfile.TemporaryDirectory(prefix="chainmap-read-bench-") as tmp:
        server = Server(SERVE, [f"chdb://{Path(tmp) / 'store'}"])
        try:
            print(f"load average at start {load_average()}")
            requests = max(CLIENTS, args.capacity_spans // args.batch)
            start = time.perf_counter()
            accepted, refused = blast(server.port, payload, requests)
            wait_written(server, accepted * args.batch)
            capacity = accepted * args.batch / (time.perf_counter() - start)
            print(
                f"capacity: {accepted * args.batch} spans committed at {capacity:,.0f} spans/s "
                f"({refused} requests refused and retried)"
            )
            print(f"load average before idle {load_average()}")
            idle, idle_errors = measure_reads(server.port, args.seconds)
            report("idle", idle, idle_errors)

            rate = args.load * capacity
            interval = CLIENTS * args.batch / rate
            posts = int(args.seconds / interval) * CLIENTS
            sent: list[tuple[int, int]] = []
            ingest = threading.Thread(
                target=lambda: sent.append(blast(server.port, payload, posts, interval))
            )
            print(f"load average before loaded {load_average()}")
            began = time.perf_counter()
            ingest.start()
            loaded, loaded_errors = measure_reads(server.port, args.seconds)
            ingest.join()
            took = time.perf_counter() - began
            offered = posts * args.batch / took
            report(
                f"loaded ({args.load:.0%} of capacity: {rate:,.0f} spans/s asked)",
                loaded,
                loaded_errors,
            )
            print(
                f"  ingest during it: {sent[0][0] * args.batch} spans acknowledged in {took:.0f}s "
                f"= {offered:,.0f} spans/s ({sent[0][1]} requests refused and retried)"
            )
            wait_written(server, (accepted + sent[0][0]) * args.batch)
            print(f"load average after loaded {load_average()}")
            after, after_errors = measure_reads(server.port, args.seconds)
            report("idle after", after, after_errors)
            print(f"load average at end {load_average()}")
        finally:
            server.stop()

    print("p99 under load against the targets and the idle p99s:")
    for name in READS:
        if not loaded[name] or not idle[name] or not after[name]:
            print(f"  {name}: no samples")
            continue
        p99 = percentile(loaded[name], 0.99)
        before_ratio = p99 / percentile(idle[name], 0.99)
        after_ratio = p99 / percentile(after[name], 0.99)
        line = (
            f"  {name:8} p99 {p99 * 1000:7.0f} ms   x idle {before_ratio:5.2f}   "
            f"x idle after {after_ratio:5.2f}"
        )
        if name in TARGETS:
            met = p99 <= TARGETS[name]
            line += f"   target <= {TARGETS[name] * 1000:.0f} ms: {'met' if met else 'MISSED'}"
        else:
            line += f"   target <= 3x idle: {'met' if before_ratio <= 3 else 'MISSED'} (idle)"
            line += f", {'met' if after_ratio <= 3 else 'MISSED'} (idle after)"
        print(line)


if __name__ == "__main__":
    main()
