"""CPU time of the OTLP decoders per request, next to parsing the protobuf alone, in one run.

The request is ``ingest_throughput``'s: 512 spans of a FastAPI service (SERVER roots with
CLIENT and INTERNAL children, an event), as protobuf and as OTLP/JSON. Measured in CPU
time of this process (``time.process_time``), interleaved, so a machine shared with other
work changes the ratios little:

* (a) ``ExportTraceServiceRequest.ParseFromString`` alone: the floor of any decoder;
* protobuf -> Arrow (the receivers and ``chainmap ingest``: one validator, one table);
* OTLP/JSON -> Arrow (``json.loads`` included).

Usage: python benchmarks/decode_cpu.py [--rounds 100] [--batch 512]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from google.protobuf import json_format
from ingest_throughput import make_batch
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from chainmap_otel.ingest.decode import decode_json, decode_protobuf


def otlp_json(request: ExportTraceServiceRequest) -> bytes:
    """OTLP/JSON as the exporters write it: the protobuf JSON mapping with hex ids."""
    document = json_format.MessageToDict(request, use_integers_for_enums=True)

    def hex_ids(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: base64.b64decode(v).hex()
                if k in ("traceId", "spanId", "parentSpanId") and isinstance(v, str)
                else hex_ids(v)
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [hex_ids(item) for item in node]
        return node

    return json.dumps(hex_ids(document)).encode()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--batch", type=int, default=512, help="spans per request")
    args = parser.parse_args(argv)
    request = encode_spans(make_batch(args.batch))
    payload = request.SerializeToString()
    body = otlp_json(request)
    cases: dict[str, Callable[[], object]] = {
        "(a) protobuf parse alone": lambda: ExportTraceServiceRequest().ParseFromString(payload),
        "protobuf -> Arrow": lambda: decode_protobuf(payload).table,
        "OTLP/JSON -> Arrow": lambda: decode_json(body).table,
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for run in cases.values():
        run()  # warm up
    for _ in range(args.rounds):
        for name, run in cases.items():
            start = time.process_time()
            run()
            samples[name].append(time.process_time() - start)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    floor = medians["(a) protobuf parse alone"]
    print(f"{args.batch} spans per request ({len(payload)} bytes protobuf, {len(body)} JSON)")
    for name, median in medians.items():
        print(
            f"{name:26} {median * 1e3:7.2f} ms CPU per request, "
            f"{args.batch / median:10,.0f} spans/s, {median / floor:5.1f}x (a)"
        )
    print("load average: " + ", ".join(f"{v:.2f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()
