"""Chain numbers under sampling: a fleet sampled at 10 % plus every failed trace, against the
same fleet unsampled, through chainmap's health.

    python benchmarks/sampling_accuracy.py
    python benchmarks/sampling_accuracy.py --traces 40000 --probability 0.1 --seed 7

Real SDK spans (``tests/support/sampled_fleet.py``): chainmap's span processor tags two
chains, A1 and B3, ``--traces`` instances each over the last 30 minutes, with log-normal
latencies and 1 % (A1) / 3 % (B3) failed entries. Every span goes into one chDB database
(``unsampled``); a sampling pipeline then keeps, in a second one (``sampled``):

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
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chainmap_otel.analysis.health import health
from chainmap_otel.analysis.timewindow import parse_window
from chainmap_otel.ingest.sdk_spans import spans_to_arrow
from chainmap_otel.storage.schema import apply_schema
from chainmap_otel.storage.store import TraceStore, open_store
from tests.support.sampled_fleet import FLEET, catalog, generate, keep_sampled


def chain_numbers(store: TraceStore) -> dict[str, dict[str, float]]:
    rows = health(store, catalog(), parse_window("1h"), chain_ids=list(FLEET))
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
    everything = spans_to_arrow(generate(args.traces, args.seed))
    sampled_rows = keep_sampled(everything, args.probability)
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
        numbers[name] = chain_numbers(store)
    unweighted = (
        stores["sampled"]
        .query(
            f"SELECT ChainId, sum(Calls), sum(Errors) FROM {stores['sampled'].database}"
            ".chainmap_chain_minute WHERE ChainId IN ('A1', 'B3') GROUP BY ChainId"
        )
        .result_rows
    )
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
                f"{chain:6} {measure:12} {a:12.4f} {b:12.4f} {ratio:8.3f}  {naive[measure]:12.4f}"
            )
            if measure in ("rate_per_s", "error_ratio") and not (abs(ratio - 1) <= args.tolerance):
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
