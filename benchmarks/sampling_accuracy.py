"""Chain numbers under sampling: a fleet sampled at 10 % plus every failed trace, against the
same fleet unsampled, through chainmap's health.

    python benchmarks/sampling_accuracy.py
    python benchmarks/sampling_accuracy.py --traces 40000 --probability 0.1 --seed 7

Real SDK spans: a TracerProvider per service with chainmap's span processor tags two chains,
A1 (data-bridge ``POST /market-data/ticks`` -> database-service) and B3 (trading-engine
``POST /orders`` -> exchange), ``--traces`` instances each over the last 30 minutes, with
log-normal latencies and 1 % (A1) / 3 % (B3) failed entries. Every span goes into one chDB
database (``unsampled``); a sampling pipeline then keeps, in a second one (``sampled``):

* a consistent-probability head decision: the trace is kept when the 56 low bits of its
  trace id (OTEP 235's randomness) reach the threshold for ``--probability``, and its spans
  carry ``ot=th:<threshold>`` in ``tracestate``, as the SDK's composable samplers and the
  Collector's probabilistic sampler write it;
* every trace holding a failed span (a tail stage keeping errors), with ``ot=th:0``: kept
  with probability 1, it stands for itself. A keep-errors stage that left the head threshold
  on such traces would count their errors 1/p times.

The script prints, per chain, stored traces, rate, error ratio and p95 from each database and
the sampled/unsampled ratio, then whether every rate and error ratio is within ``--tolerance``
(5 %) of the unsampled one. The sampled rows are also read without their weights (every
stored trace counted once, as a tool that ignores ``ot=th`` reads them) for comparison.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

from chainmap_otel.analysis.health import health
from chainmap_otel.analysis.timewindow import parse_window
from chainmap_otel.ingest.sdk_spans import spans_to_arrow
from chainmap_otel.storage.schema import apply_schema
from chainmap_otel.storage.store import TraceStore, open_store
from chainmap_otel.tagging.definitions import load_catalog
from chainmap_otel.tagging.processor import ChainSpanProcessor
from chainmap_otel.tagging.sampling import MAX_THRESHOLD, threshold_for

CHAINS_FILE = Path(__file__).resolve().parent.parent / "chains.example.yaml"
#: chain -> (entry service, route, downstream service, median ms, failed share)
FLEET = {
    "A1": ("data-bridge", "/market-data/ticks", "database-service", 40.0, 0.01),
    "B3": ("trading-engine", "/orders", "exchange", 120.0, 0.03),
}
SPREAD_NS = 30 * 60 * 10**9


def generate(traces: int, seed: int) -> pa.Table:
    """Every span of the fleet, tagged by chainmap's processor, as ``otel_traces`` rows."""
    random.seed(seed)  # the SDK's trace and span ids come from `random` too
    rng = random.Random(seed)
    catalog = load_catalog(CHAINS_FILE)
    exporter = InMemorySpanExporter()
    providers: dict[str, TracerProvider] = {}

    def tracer(service: str):  # noqa: ANN202 - the SDK's Tracer
        provider = providers.get(service)
        if provider is None:
            provider = TracerProvider(resource=Resource.create({"service.name": service}))
            provider.add_span_processor(ChainSpanProcessor(catalog))
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            providers[service] = provider
        return provider.get_tracer("sampling-benchmark")

    end_ns = time.time_ns() - 60 * 10**9
    for chain, (service, route, downstream, median_ms, failed) in FLEET.items():
        entry_tracer, down_tracer = tracer(service), tracer(downstream)
        for _ in range(traces):
            start = end_ns - rng.randrange(SPREAD_NS)
            duration = int(median_ms * math.exp(rng.gauss(0, 0.5)) * 1e6)
            span = entry_tracer.start_span(
                f"POST {route}",
                kind=SpanKind.SERVER,
                attributes={"http.route": route, "http.method": "POST"},
                start_time=start,
            )
            child = down_tracer.start_span(
                "call",
                context=set_span_in_context(span),
                kind=SpanKind.SERVER,
                start_time=start + duration // 10,
            )
            child.end(end_time=start + duration // 10 + duration // 2)
            if rng.random() < failed:
                span.set_status(Status(StatusCode.ERROR, "failed"))
            span.end(end_time=start + duration)
        del chain
    table = spans_to_arrow(exporter.get_finished_spans())
    for provider in providers.values():
        provider.shutdown()
    return table


def sample(table: pa.Table, probability: float) -> pa.Table:
    """The rows the pipeline keeps, with their ``TraceState`` (module docstring)."""
    threshold = round((1 - probability) * MAX_THRESHOLD)
    head_th = f"ot=th:{threshold_for(probability)}"
    trace_ids = table.column("TraceId").to_pylist()
    failed = pc.is_in(table.column("StatusCode"), pa.array(["Error", "STATUS_CODE_ERROR"]))
    failed_traces = {t for t, f in zip(trace_ids, failed.to_pylist(), strict=True) if f}
    keep, states = [], []
    for trace_id in trace_ids:
        if trace_id in failed_traces:
            keep.append(True)
            states.append("ot=th:0")
        else:
            kept = int(trace_id, 16) & (MAX_THRESHOLD - 1) >= threshold
            keep.append(kept)
            states.append(head_th)
    column = table.schema.get_field_index("TraceState")
    table = table.set_column(column, "TraceState", pa.array(states, pa.string()))
    return table.filter(pa.array(keep))


def chain_numbers(store: TraceStore, catalog_path: Path) -> dict[str, dict[str, float]]:
    catalog = load_catalog(catalog_path)
    rows = health(store, catalog, parse_window("1h"), chain_ids=list(FLEET))
    return {
        row["chain_id"]: {
            "traces": row["traces"],
            "rate_per_s": row["rate_per_s"],
            "error_ratio": row["error_ratio"],
            "p95_ms": row["p95_ms"],
        }
        for row in rows
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--traces", type=int, default=40_000, help="instances per chain")
    parser.add_argument("--probability", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--tolerance", type=float, default=0.05)
    args = parser.parse_args()
    path = tempfile.mkdtemp(prefix="chainmap-sampling-")
    started = time.perf_counter()
    everything = generate(args.traces, args.seed)
    sampled_rows = sample(everything, args.probability)
    print(
        f"{everything.num_rows:,} spans generated, {sampled_rows.num_rows:,} kept "
        f"({sampled_rows.num_rows / everything.num_rows:.1%}) in "
        f"{time.perf_counter() - started:.1f} s"
    )
    numbers = {}
    stores = {}
    for name, rows in (("unsampled", everything), ("sampled", sampled_rows)):
        store = open_store(f"chdb://{path}?database={name}")
        apply_schema(store, progress=lambda line: None)
        store.insert_arrow(rows)
        stores[name] = store
        numbers[name] = chain_numbers(store, CHAINS_FILE)
    unweighted = stores["sampled"].query(
        f"SELECT ChainId, sum(Calls), sum(Errors) FROM {stores['sampled'].database}"
        ".chainmap_chain_minute WHERE ChainId IN ('A1', 'B3') GROUP BY ChainId"
    ).result_rows
    plain = {str(c): (int(n), int(e)) for c, n, e in unweighted}
    ok = True
    print(
        f"\n{'chain':6} {'measure':12} {'unsampled':>12} {'sampled':>12} {'ratio':>8}"
        f"  {'unweighted':>12}"
    )
    for chain in FLEET:
        truth, seen = numbers["unsampled"][chain], numbers["sampled"][chain]
        stored, errors = plain.get(chain, (0, 0))
        naive = {
            "traces": float(stored),
            "rate_per_s": truth["rate_per_s"] * stored / truth["traces"],
            "error_ratio": errors / stored if stored else 0.0,
            "p95_ms": float("nan"),
        }
        for measure in ("traces", "rate_per_s", "error_ratio", "p95_ms"):
            a, b = float(truth[measure]), float(seen[measure])
            ratio = b / a if a else float("nan")
            print(
                f"{chain:6} {measure:12} {a:12.4f} {b:12.4f} {ratio:8.3f}"
                f"  {naive[measure]:12.4f}"
            )
            if measure in ("rate_per_s", "error_ratio") and not (
                abs(ratio - 1) <= args.tolerance
            ):
                ok = False
    for store in stores.values():
        store.close()
    print(
        f"\nrates and error ratios within {args.tolerance:.0%} of the unsampled fleet: "
        f"{'yes' if ok else 'NO'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
