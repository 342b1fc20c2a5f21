"""``chainmap serve`` next to Jaeger v2 on the same OTLP load, in one run.

    make jaeger && python benchmarks/jaeger_compare.py [--spans 100000] [--rounds 3]

Jaeger (``github.com/jaegertracing/jaeger/cmd/jaeger`` v1.75.0, an OpenTelemetry Collector
with Jaeger's storage exporter and query extension, built by ``make jaeger`` into
``.build/jaeger``) is what a user would run instead of ``chainmap serve`` to receive OTLP and
look traces up. Both get the same pre-encoded OTLP/HTTP protobuf requests (``--batch`` spans
each, four services' FastAPI-like traces from ingest_throughput.py, every request its own
trace ids) from the same 4 keep-alive clients, each tool alone on the machine:

* **committed spans/s**: from the first request until every span of a check set of traces
  (the last trace of every ``--check-every``-th request and of each client's last request)
  comes back from the tool's own trace-by-id API (``GET /api/v1/traces/{id}``, Jaeger's
  ``GET /api/traces/{id}``);
* **trace-by-id latency**: the same ``--lookups`` random traces fetched from each, one
  keep-alive client, median and p99;
* **search-by-service latency**: the newest 20 traces of a service in the last hour
  (``GET /api/v1/traces?service=``, Jaeger's ``GET /api/traces?service=&limit=20``),
  ``--searches`` times over the four services, median and p99.

Jaeger runs with each storage named by ``--jaeger-storage``: ``memory`` (its quick-start
default: nothing on disk, a ring of ``max_traces``) and ``badger`` (its embedded on-disk
store, the like-for-like peer of chainmap's embedded chDB plus write-ahead log). Its pipeline
is its shipped one (OTLP receiver -> batch -> jaeger_storage_exporter).

Correctness on the way: every trace fetched from a tool must hold exactly the span ids (and
parents) that were sent; mismatches are listed and make the run fail after the figures.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingest_throughput import CLIENTS, HEADERS, make_batch
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.support.processes import free_port
from tests.support.serve_process import ServeProcess

JAEGER = Path(__file__).resolve().parent.parent / ".build" / "jaeger"
SERVICES = ("trading-engine", "api-gateway", "data-bridge", "database-service")
SEARCH_LIMIT = 20
#: Trace id -> {span id: parent span id}, hex; a root's parent is "".
Spans = dict[str, str]


@dataclass
class Load:
    """The requests every tool gets, and what each of them holds."""

    payloads: list[bytes]
    traces: dict[str, Spans]
    service_of: dict[str, str]
    last_trace: list[str]  # per request
    spans: int


def build_load(requests: int, batch: int) -> Load:
    """``requests`` copies of one SDK batch, each with its own trace ids (the request index
    in the first 4 bytes), its service (round robin over SERVICES) and its start time
    (10 ms apart), so no trace spans two requests."""
    template = encode_spans(make_batch(batch))
    payloads: list[bytes] = []
    traces: dict[str, Spans] = {}
    service_of: dict[str, str] = {}
    last_trace: list[str] = []
    for index in range(requests):
        request = ExportTraceServiceRequest()
        request.CopyFrom(template)
        prefix = index.to_bytes(4, "big")
        shift = index * 10_000_000
        service = SERVICES[index % len(SERVICES)]
        last = ""
        for resource_spans in request.resource_spans:
            for attribute in resource_spans.resource.attributes:
                if attribute.key == "service.name":
                    attribute.value.string_value = service
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    span.trace_id = prefix + span.trace_id[4:]
                    span.start_time_unix_nano += shift
                    span.end_time_unix_nano += shift
                    for event in span.events:
                        event.time_unix_nano += shift
                    last = span.trace_id.hex()
                    traces.setdefault(last, {})[span.span_id.hex()] = span.parent_span_id.hex()
                    service_of[last] = service
        payloads.append(request.SerializeToString())
        last_trace.append(last)
    return Load(payloads, traces, service_of, last_trace, requests * batch)


class Tool:
    """One receiver + query API under test: start, post OTLP, fetch a trace, search."""

    name: str
    otlp_port: int
    query_port: int

    def stop(self) -> None:
        raise NotImplementedError

    def trace_path(self, trace_id: str) -> str:
        raise NotImplementedError

    def spans_of(self, document: Any) -> Spans:
        raise NotImplementedError

    def search_path(self, service: str) -> str:
        raise NotImplementedError

    def found_of(self, document: Any) -> list[str]:
        """Trace ids of a search answer."""
        raise NotImplementedError


class Chainmap(Tool):
    def __init__(self, workdir: Path, fsync: str) -> None:
        self.name = "chainmap"
        self.serve = ServeProcess(
            f"chdb://{workdir / 'store'}",
            workdir / "serve.log",
            {"CHAINMAP_SERVE_WAL_FSYNC": fsync},
        )
        self.serve.wait_ready()
        self.otlp_port = self.query_port = self.serve.http_port

    def stop(self) -> None:
        self.serve.terminate()

    def trace_path(self, trace_id: str) -> str:
        return f"/api/v1/traces/{trace_id}"

    def spans_of(self, document: Any) -> Spans:
        return {s["span_id"]: s["parent_span_id"] for s in document["spans"]}

    def search_path(self, service: str) -> str:
        return f"/api/v1/traces?service={service}&since=1h&limit={SEARCH_LIMIT}"

    def found_of(self, document: Any) -> list[str]:
        return [t["trace_id"] for t in document["traces"]]


def jaeger_config(storage: dict[str, Any], otlp: int, query_http: int, query_grpc: int) -> dict:
    """Jaeger's shipped pipeline on free loopback ports, its own telemetry quiet."""
    return {
        "service": {
            "extensions": ["jaeger_storage", "jaeger_query"],
            "pipelines": {
                "traces": {
                    "receivers": ["otlp"],
                    "processors": ["batch"],
                    "exporters": ["jaeger_storage_exporter"],
                }
            },
            "telemetry": {"metrics": {"level": "none"}, "logs": {"level": "warn"}},
        },
        "extensions": {
            "jaeger_query": {
                "storage": {"traces": "store"},
                "http": {"endpoint": f"127.0.0.1:{query_http}"},
                "grpc": {"endpoint": f"127.0.0.1:{query_grpc}"},
            },
            "jaeger_storage": {"backends": {"store": storage}},
        },
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": f"127.0.0.1:{otlp}"}}}},
        "processors": {"batch": {}},
        "exporters": {"jaeger_storage_exporter": {"trace_storage": "store"}},
    }


class Jaeger(Tool):
    def __init__(self, workdir: Path, storage: str, max_traces: int) -> None:
        self.name = f"jaeger-{storage}"
        backend: dict[str, Any]
        if storage == "memory":
            backend = {"memory": {"max_traces": max_traces}}
        else:
            data = workdir / "badger"
            backend = {
                "badger": {
                    "directories": {"keys": str(data / "keys"), "values": str(data / "values")},
                    "ephemeral": False,
                    "ttl": {"spans": "48h"},
                }
            }
        self.otlp_port, self.query_port = free_port(), free_port()
        config = workdir / "jaeger.yaml"
        config.write_text(
            yaml.safe_dump(jaeger_config(backend, self.otlp_port, self.query_port, free_port()))
        )
        self.log = workdir / "jaeger.log"
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                [str(JAEGER), "--config", str(config)], stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"jaeger exited early:\n{self.log.read_text(errors='replace')}")
            try:
                connection = connect(self.query_port)
                try:
                    ready = get(connection, "/api/services")[0] == 200
                finally:
                    connection.close()
                if ready and post(self.otlp_port, b"") == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise SystemExit(f"jaeger did not answer within 60s:\n{self.log.read_text()}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def trace_path(self, trace_id: str) -> str:
        return f"/api/traces/{trace_id}"

    def spans_of(self, document: Any) -> Spans:
        spans: Spans = {}
        for trace in document.get("data") or []:
            for span in trace["spans"]:
                # A link is a FOLLOWS_FROM reference; the parent the CHILD_OF one.
                references = span.get("references") or []
                parents = [r["spanID"] for r in references if r["refType"] == "CHILD_OF"]
                spans[span["spanID"]] = parents[0] if parents else ""
        return spans

    def search_path(self, service: str) -> str:
        end = time.time_ns() // 1000
        start = end - 3600 * 10**6
        return f"/api/traces?service={service}&limit={SEARCH_LIMIT}&start={start}&end={end}"

    def found_of(self, document: Any) -> list[str]:
        return [t["traceID"] for t in document.get("data") or []]


def post(port: int, body: bytes) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("POST", "/v1/traces", body, HEADERS)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def get(connection: http.client.HTTPConnection, path: str) -> tuple[int, bytes]:
    """(status, body) of a GET on a keep-alive ``connection``."""
    connection.request("GET", path)
    response = connection.getresponse()
    return response.status, response.read()


def connect(port: int) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", port, timeout=120)


def send(port: int, payloads: Sequence[bytes]) -> tuple[list[int], int]:
    """Every payload once, request i by client i % CLIENTS in order; 429/503 are retried.
    Returns the last request index of each client and the refusals."""
    refused = [0] * CLIENTS
    failures: list[str] = []

    def client(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            for number in range(index, len(payloads), CLIENTS):
                while True:
                    connection.request("POST", "/v1/traces", payloads[number], HEADERS)
                    response = connection.getresponse()
                    response.read()
                    if response.status == 200:
                        break
                    if response.status not in (429, 503):
                        failures.append(f"request {number}: HTTP {response.status}")
                        return
                    refused[index] += 1
                    time.sleep(0.01)
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise SystemExit("OTLP export refused: " + "; ".join(failures))
    lasts = [max(range(i, len(payloads), CLIENTS)) for i in range(min(CLIENTS, len(payloads)))]
    return lasts, sum(refused)


@dataclass
class Figures:
    """One tool's measurements over all rounds."""

    ingest: list[float] = field(default_factory=list)
    by_id: list[float] = field(default_factory=list)
    search: list[float] = field(default_factory=list)
    fetched: dict[str, Spans] = field(default_factory=dict)
    mismatches: list[str] = field(default_factory=list)


def fetch(tool: Tool, trace_id: str, connection: http.client.HTTPConnection) -> Spans | None:
    return spans_of_answer(tool, trace_id, *get(connection, tool.trace_path(trace_id)))


def spans_of_answer(tool: Tool, trace_id: str, status: int, body: bytes) -> Spans | None:
    """The spans of a trace-by-id answer; None when the trace is not (yet) there."""
    if status == 404:
        return None
    if status != 200:
        raise SystemExit(f"{tool.name}: trace {trace_id}: HTTP {status}: {body[:300]!r}")
    return tool.spans_of(json.loads(body))


def wait_committed(tool: Tool, load: Load, check: list[str], timeout: float = 900) -> None:
    """Until every trace of ``check`` (in the order sent) comes back whole from the tool's
    trace-by-id API. A trace not yet whole is asked again before any later one: both tools
    store requests about in the order they came, so a poll costs one lookup, not one per
    trace of the check set, and a slow trace-by-id adds little to the commit time."""
    pending = list(check)
    connection = connect(tool.query_port)
    deadline = time.monotonic() + timeout
    try:
        while pending:
            if fetch(tool, pending[0], connection) == load.traces[pending[0]]:
                pending.pop(0)
            elif time.monotonic() > deadline:
                raise SystemExit(f"{tool.name}: {len(pending)} traces not whole after {timeout}s")
            else:
                time.sleep(0.02)
    finally:
        connection.close()


def measure(
    tool: Tool,
    load: Load,
    check: set[str],
    lookups: list[str],
    searches: int,
    settle: float,
    figures: Figures,
) -> None:
    """Ingest, then trace-by-id and search latencies, into ``figures``. ``check``: the
    check set's traces besides those of each client's last request; ``settle``: seconds
    between the commit and the latencies."""
    started = time.perf_counter()
    lasts, refused = send(tool.otlp_port, load.payloads)
    acknowledged = time.perf_counter() - started
    # Trace ids start with their request's index: sorted is the order sent.
    whole = sorted({load.last_trace[i] for i in lasts} | check)
    wait_committed(tool, load, whole)
    committed = time.perf_counter() - started
    figures.ingest.append(load.spans / committed)
    print(
        f"  {tool.name}: {len(load.payloads)} requests acknowledged after {acknowledged:.2f}s "
        f"({refused} refused and retried), check set of {len(whole)} traces whole after "
        f"{committed:.2f}s: {load.spans / committed:,.0f} spans/s",
        flush=True,
    )
    time.sleep(settle)
    connection = connect(tool.query_port)
    try:
        # The clock covers the request and reading the answer, not parsing its JSON.
        for trace_id in lookups:
            started = time.perf_counter()
            status, body = get(connection, tool.trace_path(trace_id))
            figures.by_id.append(time.perf_counter() - started)
            got = spans_of_answer(tool, trace_id, status, body)
            if got != load.traces[trace_id]:
                figures.mismatches.append(describe(tool.name, trace_id, load.traces[trace_id], got))
            figures.fetched[trace_id] = got or {}
        for number in range(searches):
            service = SERVICES[number % len(SERVICES)]
            path = tool.search_path(service)
            started = time.perf_counter()
            status, body = get(connection, path)
            figures.search.append(time.perf_counter() - started)
            if status != 200:
                raise SystemExit(f"{tool.name}: {path}: HTTP {status}: {body[:300]!r}")
            found = tool.found_of(json.loads(body))
            wrong = [t for t in found if load.service_of.get(t) != service]
            if len(found) != SEARCH_LIMIT or wrong:
                figures.mismatches.append(
                    f"{tool.name}: search service={service}: {len(found)} traces, "
                    f"{len(wrong)} not of that service (e.g. {wrong[:2]})"
                )
    finally:
        connection.close()


def describe(name: str, trace_id: str, sent: Spans, got: Spans | None) -> str:
    if got is None:
        return f"{name}: trace {trace_id} not found ({len(sent)} spans sent)"
    missing = sorted(set(sent) - set(got))
    extra = sorted(set(got) - set(sent))
    parents = sorted(s for s in set(sent) & set(got) if sent[s] != got[s])
    return (
        f"{name}: trace {trace_id}: {len(got)} spans of {len(sent)}; missing {missing[:3]}, "
        f"extra {extra[:3]}, other parent {parents[:3]}"
    )


def quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=100_000, help="spans per measurement")
    parser.add_argument("--batch", type=int, default=512, help="spans per request")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--lookups", type=int, default=200, help="trace-by-id lookups")
    parser.add_argument("--searches", type=int, default=200, help="search-by-service queries")
    parser.add_argument(
        "--settle", type=float, default=0.0, help="seconds between commit and latencies"
    )
    parser.add_argument("--check-every", type=int, default=8, help="check set: every Nth request")
    parser.add_argument(
        "--fsync", choices=("fsync", "none"), default="fsync", help="chainmap serve's WAL mode"
    )
    parser.add_argument("--jaeger-storage", default="memory,badger", help="memory, badger or both")
    args = parser.parse_args(argv)
    if not JAEGER.exists():
        raise SystemExit(f"{JAEGER} is missing: run `make jaeger` first")
    storages = [s.strip() for s in args.jaeger_storage.split(",") if s.strip()]
    if not storages or set(storages) - {"memory", "badger"}:
        raise SystemExit("--jaeger-storage: memory, badger or memory,badger")
    requests = max(CLIENTS, args.spans // args.batch)
    load = build_load(requests, args.batch)
    check = {load.last_trace[i] for i in range(0, requests, args.check_every)}
    chosen = random.Random(7).sample(sorted(load.traces), min(args.lookups, len(load.traces)))
    print(
        f"{load.spans:,} spans in {len(load.traces):,} traces, {requests} OTLP/HTTP protobuf "
        f"requests of {args.batch} spans ({len(load.payloads[0]):,} bytes), {CLIENTS} keep-alive "
        f"clients; chainmap serve WAL {args.fsync}; Jaeger v1.75.0 storage " + ", ".join(storages)
    )
    names = ["chainmap", *(f"jaeger-{s}" for s in storages)]
    figures = {name: Figures() for name in names}
    with tempfile.TemporaryDirectory(prefix="chainmap-jaeger-bench-") as tmp:
        for round_ in range(args.rounds):
            # Rotated order: no tool always runs first on a machine that warms up or drifts.
            order = names[round_ % len(names) :] + names[: round_ % len(names)]
            for name in order:
                workdir = Path(tmp) / f"{name}-{round_}"
                workdir.mkdir()
                tool: Tool = (
                    Chainmap(workdir, args.fsync)
                    if name == "chainmap"
                    else Jaeger(workdir, name.removeprefix("jaeger-"), 2 * len(load.traces))
                )
                try:
                    measure(tool, load, check, chosen, args.searches, args.settle, figures[name])
                finally:
                    tool.stop()
                    shutil.rmtree(workdir, ignore_errors=True)
    report(figures, names, args.rounds)


def report(figures: dict[str, Figures], names: list[str], rounds: int) -> None:
    median = statistics.median
    base = figures["chainmap"]
    print(f"\nmedians over {rounds} rounds (latencies: every request of every round)")
    header = f"{'':34}" + "".join(f"{n:>16}" for n in names)
    print(header)
    rows: list[tuple[str, Callable[[Figures], float], str]] = [
        ("committed spans/s", lambda f: median(f.ingest), ",.0f"),
        ("trace by id, median ms", lambda f: 1000 * median(f.by_id), ".2f"),
        ("trace by id, p99 ms", lambda f: 1000 * quantile(f.by_id, 0.99), ".2f"),
        ("search by service, median ms", lambda f: 1000 * median(f.search), ".2f"),
        ("search by service, p99 ms", lambda f: 1000 * quantile(f.search, 0.99), ".2f"),
    ]
    for label, value, fmt in rows:
        print(f"{label:34}" + "".join(f"{format(value(figures[n]), fmt):>16}" for n in names))
    for peer in names[1:]:
        print(f"\nratio chainmap / {peer}:")
        for label, value, _ in rows:
            print(f"  {label:32} {value(base) / value(figures[peer]):8.2f}")
        per_round = [c / j for c, j in zip(base.ingest, figures[peer].ingest, strict=True)]
        print("  committed spans/s per round:   " + ", ".join(f"{r:.2f}" for r in per_round))
    mismatches = [m for n in names for m in figures[n].mismatches]
    for peer in names[1:]:
        for trace_id, spans in base.fetched.items():
            if figures[peer].fetched.get(trace_id) != spans:
                mismatches.append(f"chainmap and {peer} disagree on trace {trace_id}")
    checked = len(base.fetched)
    if mismatches:
        print(f"\n{len(mismatches)} MISMATCHES:")
        for line in sorted(set(mismatches))[:50]:
            print("  " + line)
        raise SystemExit(1)
    print(
        f"\ncorrectness: the {checked} traces fetched have the span ids and parents sent, "
        f"the same in {', '.join(names)}; every search returned {SEARCH_LIMIT} traces of the "
        "service asked for"
    )


if __name__ == "__main__":
    main()
