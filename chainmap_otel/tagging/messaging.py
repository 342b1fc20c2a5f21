"""Queue clients without an instrumentation: a PRODUCER span that writes its context (and the
chain stack, as baggage) into a message's headers, and a CONSUMER span that starts a new trace
linked to the producer and carries the message's chains (:func:`publish`, :func:`consume`,
:func:`consume_batch`; re-exported by :mod:`chainmap_otel.track`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping

from opentelemetry import baggage, trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import AttributeValue

from chainmap_otel.tagging.active import BAGGAGE_KEY, MAX_STACK_DEPTH
from chainmap_otel.tagging.carrier import extract_headers, inject_headers
from chainmap_otel.tagging.scopes import SpanScope, _attrs, logger

ATTR_MESSAGING_SYSTEM = "messaging.system"
ATTR_MESSAGING_DESTINATION = "messaging.destination.name"
ATTR_MESSAGING_OPERATION_NAME = "messaging.operation.name"
ATTR_MESSAGING_OPERATION_TYPE = "messaging.operation.type"
ATTR_MESSAGING_MESSAGE_ID = "messaging.message.id"
ATTR_MESSAGING_BATCH_COUNT = "messaging.batch.message_count"
_MAX_BATCH_LINKS = 128


def _messaging_attrs(
    destination: str,
    operation: str,
    system: str | None,
    message_id: str | None,
    attributes: Mapping[str, AttributeValue] | None,
) -> dict[str, AttributeValue]:
    if not isinstance(destination, str) or not destination.strip():
        raise ValueError(f"destination must be a queue or topic name, got {destination!r}")
    return dict(attributes or {}) | _attrs(
        **{
            ATTR_MESSAGING_DESTINATION: destination,
            ATTR_MESSAGING_OPERATION_NAME: operation,
            ATTR_MESSAGING_OPERATION_TYPE: operation,
            ATTR_MESSAGING_SYSTEM: system,
            ATTR_MESSAGING_MESSAGE_ID: message_id,
        }
    )


class MessagePublish(SpanScope):
    """A PRODUCER span whose context (``traceparent``, baggage with the chain stack) is written
    into the message's headers when the block starts."""

    def __init__(
        self,
        headers: MutableMapping[str, str],
        destination: str,
        attributes: dict[str, AttributeValue],
    ) -> None:
        super().__init__(f"send {destination}", attributes, SpanKind.PRODUCER)
        self.headers = headers

    def __enter__(self) -> MessagePublish:
        super().__enter__()
        try:
            inject_headers(self.headers)
        except Exception:
            logger.debug("chainmap: could not write the message headers", exc_info=True)
        return self


def publish(
    headers: MutableMapping[str, str],
    destination: str,
    *,
    system: str | None = None,
    message_id: str | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
) -> MessagePublish:
    """``with publish(headers, "orders"): queue.put(body, headers)`` for a queue client with no
    instrumentation: a PRODUCER span ``send <destination>`` in the current chain, its context
    injected into ``headers`` so :func:`consume` continues the chain. ``attributes`` adds
    span attributes (``peer.service`` names the queue's node in topology)."""
    attrs = _messaging_attrs(destination, "send", system, message_id, attributes)
    return MessagePublish(headers, destination, attrs)


def consume(
    headers: Mapping[str, object],
    destination: str,
    *,
    system: str | None = None,
    message_id: str | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
) -> SpanScope:
    """``with consume(message.headers, "orders"): handle(message)``: a CONSUMER span
    ``process <destination>`` that starts a new trace linked to the producer's span (the
    messaging conventions for asynchronous consumers) and carries the message's chain stack,
    so the consumer's spans belong to the producer's chains.

    Headers are untrusted: missing, malformed or oversized entries are ignored (the span then
    has no link or no chain); nothing raises.
    """
    attrs = _messaging_attrs(destination, "process", system, message_id, attributes)
    ctx = extract_headers(headers)
    producer = trace.get_current_span(ctx).get_span_context()
    links = (Link(producer),) if producer.is_valid else ()
    # The producer is linked, not the parent: the consumer's work is a trace of its own.
    ctx = trace.set_span_in_context(trace.INVALID_SPAN, ctx)
    return SpanScope(f"process {destination}", attrs, SpanKind.CONSUMER, context=ctx, links=links)


def consume_batch(
    messages: Iterable[Mapping[str, object]],
    destination: str,
    *,
    system: str | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
) -> SpanScope:
    """``with consume_batch([m.headers for m in batch], "orders"): handle(batch)``: one
    CONSUMER span for a batch, in a new trace, with a link to each message's producer (at
    most 128) and the chains of every message: their stacks merged in
    message order, each chain once, at most 8 deep. Other baggage entries are not carried
    (the messages may disagree). Headers are untrusted as in :func:`consume`."""
    attrs = _messaging_attrs(destination, "process", system, None, attributes)
    links: list[Link] = []
    chains: list[str] = []
    count = 0
    try:
        for headers in messages:
            count += 1
            if count > _MAX_BATCH_LINKS:
                continue
            ctx = extract_headers(headers)
            producer = trace.get_current_span(ctx).get_span_context()
            if producer.is_valid:
                links.append(Link(producer))
            stack = baggage.get_baggage(BAGGAGE_KEY, ctx)
            if isinstance(stack, str):
                chains.extend(c for c in stack.split(",") if c and c not in chains)
    except Exception:
        logger.debug("chainmap: could not read a batch's messages", exc_info=True)
    attrs[ATTR_MESSAGING_BATCH_COUNT] = count
    batch = Context()
    if chains:
        batch = baggage.set_baggage(BAGGAGE_KEY, ",".join(chains[:MAX_STACK_DEPTH]), batch)
    batch = trace.set_span_in_context(trace.INVALID_SPAN, batch)
    return SpanScope(f"process {destination}", attrs, SpanKind.CONSUMER, context=batch, links=links)
