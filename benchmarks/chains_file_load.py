"""Loading a chains file at the size limit, against PyYAML's own (pure Python) loader.

    python benchmarks/chains_file_load.py [--bytes 1048576] [--rounds 5]

A generated file of realistic chains (entry rule, SLO, description) just under
``--bytes`` (default ``CHAINMAP_CHAINS_MAX_BYTES``) is loaded and validated by
``load_catalog`` (libyaml's parser, the alias and depth checks, the text checks, every
rule compiled), and parsed by ``yaml.load(Loader=yaml.SafeLoader)`` (parsing only, no
validation) as the baseline. Rounds alternate; the ratio is the median of the per-round
ratios, CPU time of this process.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from chainmap_otel.tagging.chainsfile import max_chains_file_bytes
from chainmap_otel.tagging.definitions import load_catalog

CHAIN = """  - id: C{i}
    name: Chain number {i} 🛒
    category: api
    criticality: high
    description: A description long enough to make the file about as large as real ones.
    entry:
      - service: svc-{i}
        kind: server
        route: /api/v{i}/*
        method: [GET, POST]
    slo:
      latency_ms: {{p95: 300, p99: 800}}
      error_rate: 0.01
      window: 30d
"""


def chains_text(limit: int) -> tuple[str, int]:
    count = limit // len(CHAIN.format(i=99_999).encode())
    return "version: 1\nchains:\n" + "".join(CHAIN.format(i=i) for i in range(count)), count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes", type=int, default=max_chains_file_bytes())
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    text, count = chains_text(args.bytes)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "chains.yaml"
        path.write_text(text, encoding="utf-8")
        ours, baseline, ratios = [], [], []
        for _ in range(args.rounds):
            started = time.process_time()
            assert len(load_catalog(path)) == count
            ours.append(time.process_time() - started)
            started = time.process_time()
            yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
            baseline.append(time.process_time() - started)
            ratios.append(ours[-1] / baseline[-1])
    size = len(text.encode())
    print(f"chains file: {size:,} bytes, {count} chains")
    print(f"load_catalog (validated): median {statistics.median(ours):.2f} s CPU")
    print(f"yaml SafeLoader (parse only): median {statistics.median(baseline):.2f} s CPU")
    print(f"ratio load_catalog / SafeLoader: {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
