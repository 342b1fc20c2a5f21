"""Chains continue through queues: the chain stack travels in message headers.

With explicit ``track.publish`` / ``track.consume`` over a plain dict of headers, and with a
real broker client (Celery over kombu's in-memory transport) under the OTel Celery
instrumentation, whose producer injects through the global propagator.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from opentelemetry import baggage, context, propagate
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from chainmap_otel import track
from chainmap_otel.tagging.launcher import chain_propagators


@pytest.fixture
def use_provider() -> Iterator[Callable[[TracerProvider], None]]:
    yield track.use_tracer_provider
    track.use_tracer_provider(None)


def by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {span.name: span for span in exporter.get_finished_spans()}


def attrs(span: ReadableSpan) -> Mapping[str, Any]:
    return span.attributes or {}


def test_consumer_starts_a_linked_trace_in_the_producers_chain(
    provider_for: Callable[[str], TracerProvider],
    exporter: InMemorySpanExporter,
    use_provider: Callable[[TracerProvider], None],
) -> None:
    headers: dict[str, str] = {}
    use_provider(provider_for("trading-engine"))
    with track.chain("B3"), track.publish(headers, "order-events", system="postgresql"):
        pass
    assert headers["traceparent"].startswith("00-")
    assert "chain.ids=B3" in headers["baggage"]

    use_provider(provider_for("settlement"))
    with track.consume(headers, "order-events", system="postgresql", message_id="42"):
        with track.stage("settle"):
            pass

    spans = by_name(exporter)
    producer, consumer, child = (
        spans["send order-events"],
        spans["process order-events"],
        spans["settle"],
    )
    assert producer.kind is SpanKind.PRODUCER and consumer.kind is SpanKind.CONSUMER
    assert attrs(producer)["messaging.operation.type"] == "send"
    assert attrs(consumer)["messaging.operation.type"] == "process"
    assert attrs(consumer)["messaging.message.id"] == "42"
    # A new trace, linked to the producer's span, not its child.
    assert consumer.parent is None
    assert consumer.context.trace_id != producer.context.trace_id
    assert [link.context.span_id for link in consumer.links] == [producer.context.span_id]
    assert consumer.links[0].context.trace_id == producer.context.trace_id
    # The chain continues, as an inherited stack: the consumer is no entry of its own.
    for span in (consumer, child):
        assert attrs(span)["chain.ids"] == "B3", span.name
        assert "chain.entry" not in attrs(span)
    assert child.context.trace_id == consumer.context.trace_id


def test_consumer_keeps_the_other_baggage_entries(
    provider_for: Callable[[str], TracerProvider],
    use_provider: Callable[[TracerProvider], None],
) -> None:
    headers: dict[str, str] = {}
    use_provider(provider_for("trading-engine"))
    token = context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        with track.chain("B3"), track.publish(headers, "order-events"):
            pass
    finally:
        context.detach(token)
    use_provider(provider_for("settlement"))
    with track.consume(headers, "order-events"):
        assert baggage.get_baggage("tenant") == "acme"


def test_publish_outside_a_chain_carries_the_trace_only(
    provider_for: Callable[[str], TracerProvider],
    exporter: InMemorySpanExporter,
    use_provider: Callable[[TracerProvider], None],
) -> None:
    headers: dict[str, str] = {}
    use_provider(provider_for("trading-engine"))
    with track.publish(headers, "audit"):
        pass
    assert "traceparent" in headers and "baggage" not in headers
    with track.consume(headers, "audit"):
        pass
    consumer = by_name(exporter)["process audit"]
    assert len(consumer.links) == 1 and "chain.ids" not in attrs(consumer)


class BrokenHeaders(dict[str, Any]):
    def get(self, key: str, default: object = None) -> object:
        raise RuntimeError("broken carrier")

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("broken carrier")

    def __setitem__(self, key: str, value: Any) -> None:
        raise RuntimeError("read-only carrier")


HOSTILE: dict[str, object] = {
    "garbage-traceparent": {"traceparent": "00-zz-yy-01", "baggage": "chain.ids=%ff%fe"},
    "unknown-chain": {"baggage": "chain.ids=EVIL,WORSE"},
    "oversized": {
        "traceparent": "00-" + "a" * 100_000,
        "baggage": "chain.ids=B3," + "A" * 100_000,
    },
    "non-string-values": {"traceparent": 12, "baggage": ["chain.ids=B3"] * 10_000},
    "undecodable-bytes": {"traceparent": b"\xff\xfe", "baggage": b"\x00" * 100_000},
    "many-keys": {f"k{i}": "v" for i in range(10_000)},
    "broken-mapping": BrokenHeaders(),
    "not-a-mapping": ["traceparent"],
}


@pytest.mark.parametrize("headers", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_headers_give_an_unlinked_untagged_consumer_without_error(
    headers: Any,
    provider_for: Callable[[str], TracerProvider],
    exporter: InMemorySpanExporter,
    use_provider: Callable[[TracerProvider], None],
) -> None:
    use_provider(provider_for("settlement"))
    with track.consume(headers, "order-events"):
        pass
    consumer = by_name(exporter)["process order-events"]
    assert consumer.links == () and "chain.ids" not in attrs(consumer)


def test_publish_into_headers_that_refuse_writes_does_not_raise(
    provider_for: Callable[[str], TracerProvider],
    exporter: InMemorySpanExporter,
    use_provider: Callable[[TracerProvider], None],
) -> None:
    use_provider(provider_for("trading-engine"))
    with track.chain("B3"), track.publish(BrokenHeaders(), "order-events"):
        pass
    assert attrs(by_name(exporter)["send order-events"])["chain.ids"] == "B3"


def test_a_batch_consumer_links_every_producer_and_carries_all_their_chains(
    provider_for: Callable[[str], TracerProvider],
    exporter: InMemorySpanExporter,
    use_provider: Callable[[TracerProvider], None],
) -> None:
    batch: list[dict[str, str]] = [{}, {}, {}]
    use_provider(provider_for("trading-engine"))
    with track.chain("B3"), track.publish(batch[0], "events"):
        pass
    with track.chain("A1"), track.publish(batch[1], "events"):
        pass
    with track.chain("B3"), track.publish(batch[2], "events"):
        pass
    use_provider(provider_for("reporting"))
    hostile: list[Any] = [*batch, BrokenHeaders(), {"traceparent": 7}]
    with track.consume_batch(hostile, "events"), track.stage("aggregate"):
        pass
    spans = exporter.get_finished_spans()
    producers = [s for s in spans if s.name == "send events"]
    consumer = by_name(exporter)["process events"]
    assert consumer.parent is None and consumer.kind is SpanKind.CONSUMER
    assert [link.context.span_id for link in consumer.links] == [
        p.context.span_id for p in producers
    ]
    assert attrs(consumer)["messaging.batch.message_count"] == 5
    for span in (consumer, by_name(exporter)["aggregate"]):
        assert attrs(span)["chain.ids"] == "B3,A1", span.name
        assert "chain.entry" not in attrs(span)


def test_a_batch_that_cannot_be_read_gives_an_unlinked_consumer_without_error(
    provider_for: Callable[[str], TracerProvider],
    exporter: InMemorySpanExporter,
    use_provider: Callable[[TracerProvider], None],
) -> None:
    def broken() -> Iterator[dict[str, str]]:
        yield {"traceparent": "garbage"}
        raise RuntimeError("the broker went away")

    use_provider(provider_for("reporting"))
    with track.consume_batch(broken(), "events"):
        pass
    consumer = by_name(exporter)["process events"]
    assert consumer.links == () and "chain.ids" not in attrs(consumer)


def test_a_destination_is_required() -> None:
    with pytest.raises(ValueError, match="destination"):
        track.consume({}, "")


# -- a real broker client ----------------------------------------------------------------


@pytest.fixture
def chain_propagation() -> Iterator[None]:
    """What the chainmap configurator installs under ``opentelemetry-instrument``."""
    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(chain_propagators())
    yield
    propagate.set_global_textmap(previous)


def test_celery_task_published_in_a_chain_runs_in_that_chain(
    provider_for: Callable[[str], TracerProvider],
    exporter: InMemorySpanExporter,
    use_provider: Callable[[TracerProvider], None],
    chain_propagation: None,
) -> None:
    celery = pytest.importorskip("celery")
    from celery.contrib.testing.worker import start_worker
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    provider = provider_for("trading-engine")
    use_provider(provider)
    app = celery.Celery("orders", broker="memory://", backend="cache+memory://")
    app.conf.update(task_default_queue="order-events", worker_hijack_root_logger=False)

    @app.task(name="settle_order")
    def settle_order(order_id: str) -> str:
        with track.stage("settle"):
            return f"settled {order_id}"

    instrumentor = CeleryInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        with start_worker(app, perform_ping_check=False, pool="solo", loglevel="WARNING"):
            with track.chain("B3"):
                result = settle_order.delay("o-1")
            assert result.get(timeout=20) == "settled o-1"
            deadline = time.monotonic() + 10
            while "settle" not in by_name(exporter) and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        instrumentor.uninstrument()

    spans = by_name(exporter)
    publish, run = spans["apply_async/settle_order"], spans["run/settle_order"]
    assert publish.kind is SpanKind.PRODUCER and run.kind is SpanKind.CONSUMER
    # The worker's span has a remote parent: its chain came through the message headers.
    assert run.parent is not None and run.parent.is_remote
    for span in (publish, run, spans["settle"]):
        assert attrs(span)["chain.ids"] == "B3", span.name
    assert "chain.entry" not in attrs(run)
