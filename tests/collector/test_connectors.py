"""chainmap's per-chain RED against the real spanmetrics connector, on the same spans.

One Collector tags entry spans with the generated ``transform/chains`` and fans the traces
out to ``chainmap serve`` (otlphttp) and to the ``spanmetrics`` connector (``chain.id`` and
``chain.entry`` as dimensions, the ``histogram`` block of ``backend.yaml``: seconds, chainmap's
bucket bounds) exported through ``prometheus``. Per chain, the connector's calls of entry
spans and of failed entry spans equal serve's ``chainmap_chain_requests_total`` and
``chainmap_chain_errors_total``, and its ``traces_span_metrics_duration_seconds`` histogram of
entry spans equals ``chainmap_chain_request_duration_seconds``: count exactly, sum to the
nanosecond, every bucket exactly where no entry duration lies in the quarter-power-of-two
bucket that straddles a bound. The two differences that remain are pinned here and listed
in collector-config/README.md: a bucket count at a bound with a duration in its straddling
bucket, and traces sampled with an OTEP 235 threshold, which the connector weights by their
adjusted count and chainmap counts once. (The distribution has no servicegraph connector:
the module proxy serves none, collector-config/README.md.)
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import SpanKind, Status, StatusCode, TraceState
from opentelemetry.util.types import Attributes
from prometheus_client.parser import text_string_to_metric_families

from chainmap_otel.collector.pipeline import processor_config
from chainmap_otel.tagging import sampling
from chainmap_otel.tagging.definitions import load_catalog
from tests.support.collector import CollectorProcess
from tests.support.processes import free_port
from tests.support.serve_process import ServeProcess

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CHAINS = ROOT / "chains.example.yaml"
BACKEND = ROOT / "collector-config" / "backend.yaml"
_MS = 1_000_000


@dataclass(frozen=True)
class Traffic:
    """The traces that enter one chain: where their entry span is, each trace's entry-span
    duration (ms), how many of them fail (the first ones) and, for sampled traces, the
    OTEP 235 rejection threshold their tracestate carries (``ot=th:<hex>``)."""

    chain: str
    service: str
    attributes: dict[str, str]
    durations_ms: tuple[float, ...]
    failed: int
    threshold: str = ""

    @property
    def traces(self) -> int:
        return len(self.durations_ms)

    @property
    def weight(self) -> float:
        """What each of its traces stands for (OTEP 235's adjusted count; 1 unsampled)."""
        return sampling.adjusted_count(f"ot=th:{self.threshold}")


# No trace enters two chains, so the innermost chain.id on an entry span is its only chain.
# Both HTTP conventions. No duration but C2's 2.01 ms lies in a log-scale bucket that
# straddles a bound (test_the_durations_avoid_the_buckets_that_straddle_a_bound); A2's traces
# are sampled at 1/2 (th:8, adjusted count 2).
WORKLOAD = [
    Traffic(
        "B1",
        "api-gateway",
        {"http.route": "/api/v1/quotes", "http.request.method": "GET"},
        (0.5, 1, 3, 4.5, 5, 9, 30),
        2,
    ),
    Traffic(
        "A1",
        "data-bridge",
        {"http.target": "/market-data/ticks?s=1", "http.method": "POST"},
        (70, 150, 300, 600, 700),
        1,
    ),
    Traffic(
        "B3",
        "trading-engine",
        {"url.path": "/orders", "http.request.method": "POST"},
        (1200, 1700, 3000, 7000),
        0,
    ),
    Traffic(
        "C1",
        "data-bridge",
        {"http.target": "/ws/market", "http.method": "GET"},
        (45, 12_000, 20_000),
        1,
    ),
    Traffic(
        "A2",
        "ai-orchestration",
        {"http.route": "/decisions", "http.request.method": "POST"},
        (3, 30, 300),
        1,
        threshold="8",
    ),
    Traffic(
        "C2",
        "trading-engine",
        {"http.route": "/ws/orders", "http.method": "GET"},
        (2.01, 9),
        0,
    ),
]
SAMPLED = {t.chain for t in WORKLOAD if t.threshold}
STRADDLING = {"C2"}


class ThresholdSampler(Sampler):
    """Records every span; the spans of the trace being made carry ``threshold`` in their
    tracestate, as an OTEP 235 sampler upstream would have written it."""

    def __init__(self) -> None:
        self.threshold = ""

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Any = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        state = TraceState([("ot", f"th:{self.threshold}")]) if self.threshold else None
        return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, state)

    def get_description(self) -> str:
        return "ThresholdSampler"


def workload(start_ns: int | None = None) -> list[ReadableSpan]:
    """Per trace: the entry SERVER span, its CLIENT call and database-service's SERVER span,
    with the durations of ``WORKLOAD`` (timestamps set, never measured). Traces start 100 ms
    apart from ``start_ns`` (default: five minutes ago)."""
    memory = InMemorySpanExporter()
    sampler = ThresholdSampler()
    providers: dict[str, TracerProvider] = {}

    def tracer(service: str) -> trace.Tracer:
        if service not in providers:
            providers[service] = TracerProvider(
                resource=Resource({"service.name": service}), sampler=sampler
            )
            providers[service].add_span_processor(SimpleSpanProcessor(memory))
        return providers[service].get_tracer("plain.sdk")

    at = time.time_ns() - 300 * 1_000_000_000 if start_ns is None else start_ns
    for traffic in WORKLOAD:
        sampler.threshold = traffic.threshold
        for index, duration_ms in enumerate(traffic.durations_ms):
            at += 100 * _MS
            duration = round(duration_ms * _MS)
            entry = tracer(traffic.service).start_span(
                "entry", kind=SpanKind.SERVER, attributes=traffic.attributes, start_time=at
            )
            if index < traffic.failed:
                entry.set_status(Status(StatusCode.ERROR))
            context = trace.set_span_in_context(entry)
            call = tracer(traffic.service).start_span(
                "query", context=context, kind=SpanKind.CLIENT, start_time=at + duration // 10
            )
            server = tracer("database-service").start_span(
                "POST /query",
                context=trace.set_span_in_context(call),
                kind=SpanKind.SERVER,
                attributes={"http.route": "/query", "http.request.method": "POST"},
                start_time=at + duration // 5,
            )
            server.end(end_time=at + duration * 3 // 5)
            call.end(end_time=at + duration * 4 // 5)
            entry.end(end_time=at + duration)
    for provider in providers.values():
        provider.shutdown()
    return list(memory.get_finished_spans())


def adjusted_count(span: ReadableSpan) -> int:
    """1 / sampling probability from the span's ``ot=th`` (OTEP 235); 1 without one. The
    thresholds used here give whole counts, so the connector's stochastic rounding is exact."""
    assert span.context is not None
    weight = sampling.adjusted_count(span.context.trace_state.to_header())
    assert weight == int(weight), span.context.trace_state
    return int(weight)


def scrape(url: str) -> list[tuple[str, dict[str, str], float]]:
    # The serve processes here set CHAINMAP_METRICS_FRESH_WAIT=10s: a scrape may wait that
    # long for a fresh snapshot before it answers, so its timeout must be longer (a loaded
    # machine took 10.2 s).
    text = httpx.get(url, timeout=60).text
    return [
        (sample.name, dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def wait_for(
    what: str, probe: Callable[[], bool], log: Callable[[], str], timeout: float = 120.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(0.5)
    raise AssertionError(f"{what} within {timeout}s:\n{log()}")


def total(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    return sum(
        value
        for sample, found, value in samples
        if sample == name and all(found.get(k, "") == v for k, v in labels.items())
    )


@dataclass(frozen=True)
class Histogram:
    """One Prometheus histogram summed over every series that has the labels asked for."""

    buckets: dict[str, float] = field(default_factory=dict)  # le -> cumulative count
    count: float = 0.0
    sum: float = 0.0


def histogram(
    samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str
) -> Histogram:
    buckets: dict[str, float] = {}
    for sample, found, value in samples:
        if sample == f"{name}_bucket" and all(found.get(k, "") == v for k, v in labels.items()):
            buckets[found["le"]] = buckets.get(found["le"], 0.0) + value
    return Histogram(
        buckets,
        total(samples, f"{name}_count", **labels),
        total(samples, f"{name}_sum", **labels),
    )


def log_bucket(duration_ns: int) -> int:
    """The latency bucket chainmap's per-minute rollup counts a duration in (the schema's
    ``floor(log2(greatest(Duration, 1000) / 1000) * 4)``: quarter powers of two of a us)."""
    return math.floor(4 * math.log2(max(duration_ns, 1000) / 1000))


CONNECTOR_DURATION = "traces_span_metrics_duration_seconds"
CHAINMAP_DURATION = "chainmap_chain_request_duration_seconds"
CALLS = "traces_span_metrics_calls_total"
DEFAULTS = "defaults.span.metrics"


@dataclass(frozen=True)
class Scraped:
    """What both sides exposed once every span was counted and stored."""

    spans: list[ReadableSpan]
    connector: list[tuple[str, dict[str, str], float]]
    chainmap: list[tuple[str, dict[str, str], float]]
    histogram_config: dict[str, Any]

    def connector_entries(self, chain: str) -> Histogram:
        return histogram(self.connector, CONNECTOR_DURATION, chain_id=chain, chain_entry="true")

    def chainmap_chain(self, chain: str) -> Histogram:
        return histogram(self.chainmap, CHAINMAP_DURATION, chain_id=chain)


@pytest.fixture(scope="module")
def scraped(otelcol: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    directory = tmp_path_factory.mktemp("connectors")
    spans = workload()
    transform: dict[str, Any] = yaml.safe_load(processor_config(load_catalog(CHAINS)))[
        "processors"
    ]["transform/chains"]
    backend = yaml.safe_load(BACKEND.read_text(encoding="utf-8"))
    histogram_config: dict[str, Any] = backend["connectors"]["spanmetrics"]["histogram"]
    receiver_port, prometheus_port = free_port(), free_port()
    serve = ServeProcess(
        f"chdb://{directory / 'store'}",
        directory / "serve.log",
        # /metrics answers from a snapshot: a scrape waits for one taken after it began.
        env={"CHAINMAP_CHAINS_FILE": str(CHAINS), "CHAINMAP_METRICS_FRESH_WAIT": "10s"},
    )
    config = {
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": f"127.0.0.1:{receiver_port}"}}}},
        "processors": {"transform/chains": transform},
        "connectors": {
            "spanmetrics": {
                "dimensions": [{"name": "chain.id"}, {"name": "chain.entry"}],
                "histogram": histogram_config,
                "metrics_flush_interval": "1s",
            },
            # Left on its defaults, for the unit and bounds they give.
            "spanmetrics/defaults": {"namespace": DEFAULTS, "metrics_flush_interval": "1s"},
        },
        "exporters": {
            "otlphttp/serve": {"traces_endpoint": serve.url},
            "prometheus": {"endpoint": f"127.0.0.1:{prometheus_port}"},
        },
        "service": {
            "pipelines": {
                "traces": {
                    "receivers": ["otlp"],
                    "processors": ["transform/chains"],
                    "exporters": ["otlphttp/serve", "spanmetrics", "spanmetrics/defaults"],
                },
                "metrics": {
                    "receivers": ["spanmetrics", "spanmetrics/defaults"],
                    "exporters": ["prometheus"],
                },
            }
        },
    }
    collector = CollectorProcess(otelcol, config, directory)
    try:
        serve.wait_ready()
        collector.wait_ready()
        exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{receiver_port}/v1/traces")
        assert exporter.export(spans) == SpanExportResult.SUCCESS
        exporter.shutdown()  # type: ignore[no-untyped-call]
        connector_url = f"http://127.0.0.1:{prometheus_port}/metrics"
        chainmap_url = f"http://127.0.0.1:{serve.http_port}/metrics"
        weighted = sum(adjusted_count(span) for span in spans)

        def counted() -> bool:
            samples = scrape(connector_url)
            calls = (CALLS, DEFAULTS.replace(".", "_") + "_calls_total")
            return all(total(samples, name) == weighted for name in calls)

        wait_for("the spanmetrics connectors did not count every span", counted, collector.log)
        wait_for(
            "chainmap serve did not store every span",
            lambda: total(scrape(chainmap_url), "chainmap_spans_stored_total") == len(spans),
            serve.log,
        )
        yield Scraped(spans, scrape(connector_url), scrape(chainmap_url), histogram_config)
    finally:
        collector.stop()
        serve.terminate()


def test_spanmetrics_per_chain_equals_chainmaps_chain_red(scraped: Scraped) -> None:
    connector, chainmap = scraped.connector, scraped.chainmap
    requests: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for traffic in WORKLOAD:
        requests[traffic.chain] += traffic.traces
        errors[traffic.chain] += traffic.failed
    for chain in requests:
        weight = 2 if chain in SAMPLED else 1
        entry = {"chain_id": chain, "chain_entry": "true"}
        assert total(connector, CALLS, **entry) == weight * requests[chain], chain
        failed = total(connector, CALLS, **entry, status_code="STATUS_CODE_ERROR")
        assert failed == weight * errors[chain], chain
        # Both weigh a sampled entry by its adjusted count (OTEP 235 ``ot=th``).
        requests_total = total(chainmap, "chainmap_chain_requests_total", chain_id=chain)
        assert requests_total == weight * requests[chain], chain
        errors_total = total(chainmap, "chainmap_chain_errors_total", chain_id=chain)
        assert errors_total == weight * errors[chain], chain
        stored = total(chainmap, "chainmap_chain_stored_requests_total", chain_id=chain)
        assert stored == requests[chain], chain
    # Only entry spans carry chain.id in the Collector: OTTL sees one span at a time.
    untagged = sum(adjusted_count(s) for s in scraped.spans if s.parent is not None)
    assert total(connector, CALLS, chain_id="") == untagged


def test_the_durations_avoid_the_buckets_that_straddle_a_bound(scraped: Scraped) -> None:
    """The premise of the exact bucket comparison: chainmap keeps quarter-power-of-two
    buckets, so a count at a bound is exact unless a duration shares the bound's bucket."""
    bounds = [float(le) for le in scraped.chainmap_chain("B1").buckets if le != "+Inf"]
    straddling = {log_bucket(round(bound * 1e9)) for bound in bounds}
    for traffic in WORKLOAD:
        inside = {log_bucket(round(d * _MS)) for d in traffic.durations_ms} & straddling
        assert bool(inside) == (traffic.chain in STRADDLING), traffic


def test_the_connectors_buckets_are_chainmaps_bounds_in_seconds(scraped: Scraped) -> None:
    """backend.yaml's histogram block (unit s, explicit buckets) gives the connector the
    bounds chainmap's histogram exposes; the connector's defaults are the same bounds in
    milliseconds, under another name."""
    assert scraped.histogram_config["unit"] == "s"
    ours = scraped.chainmap_chain("B1").buckets
    theirs = scraped.connector_entries("B1").buckets
    assert list(theirs) == list(ours) and len(ours) == 17, (list(theirs), list(ours))
    defaults = histogram(scraped.connector, "defaults_span_metrics_duration_milliseconds")
    assert [float(le) for le in defaults.buckets] == [1000 * float(le) for le in ours]
    assert defaults.count == sum(adjusted_count(span) for span in scraped.spans)


def test_the_entry_duration_histogram_per_chain_equals_chainmaps(scraped: Scraped) -> None:
    for traffic in WORKLOAD:
        if traffic.chain in SAMPLED | STRADDLING:
            continue
        theirs = scraped.connector_entries(traffic.chain)
        ours = scraped.chainmap_chain(traffic.chain)
        assert ours.count == theirs.count == traffic.traces, traffic.chain
        # The connector adds float seconds per span, chainmap whole nanoseconds once.
        exact = sum(round(d * _MS) for d in traffic.durations_ms) / 1e9
        assert ours.sum == pytest.approx(exact, abs=1e-9), traffic.chain
        assert theirs.sum == pytest.approx(exact, abs=1e-9), traffic.chain
        assert ours.buckets == theirs.buckets, traffic.chain


def test_a_duration_in_a_bounds_straddling_bucket_can_move_that_bounds_count(
    scraped: Scraped,
) -> None:
    """C2's 2.01 ms lies in chainmap's bucket [1.722, 2.048) ms around the 2 ms bound, of
    which 14 % is above the bound: interpolated, chainmap counts it at or below 2 ms (1 of
    2 traces, rounded), the connector above. Every other bound, the count and the sum agree."""
    theirs = scraped.connector_entries("C2")
    ours = scraped.chainmap_chain("C2")
    assert (ours.buckets["0.002"], theirs.buckets["0.002"]) == (1.0, 0.0)
    assert {le: v for le, v in ours.buckets.items() if le != "0.002"} == {
        le: v for le, v in theirs.buckets.items() if le != "0.002"
    }
    assert ours.count == theirs.count == 2
    assert ours.sum == pytest.approx(theirs.sum, abs=1e-9)


def test_the_connector_and_chainmap_both_weight_sampled_traces_by_their_adjusted_count(
    scraped: Scraped,
) -> None:
    """A2's traces carry ``ot=th:8`` (sampled at 1/2): release 0.161.0's connector counts
    each span twice (calls and histogram: count, sum, buckets), and so does chainmap (each
    stored entry stands for its adjusted count); chainmap also says how many were stored."""
    (a2,) = [t for t in WORKLOAD if t.chain == "A2"]
    theirs = scraped.connector_entries("A2")
    ours = scraped.chainmap_chain("A2")
    assert ours.count == theirs.count == 2 * a2.traces
    assert theirs.sum == pytest.approx(ours.sum, abs=1e-9)
    assert theirs.buckets == ours.buckets
    assert total(scraped.chainmap, "chainmap_chain_requests_total", chain_id="A2") == 2 * a2.traces
    stored = total(scraped.chainmap, "chainmap_chain_stored_requests_total", chain_id="A2")
    assert stored == a2.traces
