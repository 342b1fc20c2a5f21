"""Message headers as a propagation carrier: the trace context and the chain stack in a message.

A queue client without an OpenTelemetry instrumentation carries the context in its message
headers through :func:`inject_headers` (producer) and :func:`extract_headers` (consumer);
``chainmap_otel.track.publish`` / ``track.consume`` wrap them in PRODUCER / CONSUMER spans.
The global propagator writes and reads ``traceparent`` (and whatever else is configured);
:class:`~chainmap_otel.tagging.propagator.ChainPropagator` always runs after it, so the chain
stack travels even when ``OTEL_PROPAGATORS`` leaves chainmap out.

Headers arriving with a message are untrusted like any request header: only ``str`` values
(or UTF-8 ``bytes``) up to the W3C baggage limit are read, a mapping that fails to answer
reads as empty, and nothing here raises.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, MutableMapping

from opentelemetry.context import Context, get_current
from opentelemetry.propagators.textmap import Getter, Setter

from chainmap_otel.tagging.propagator import MAX_HEADER_LENGTH, ChainPropagator

logger = logging.getLogger(__name__)

#: Most header names a consumer looks at (a propagator asking for ``keys()``).
MAX_HEADER_KEYS = 64


class MessageHeadersGetter(Getter[Mapping[str, object]]):
    """Reads untrusted message headers: bounded ``str`` values only, never raises."""

    def get(self, carrier: Mapping[str, object], key: str) -> list[str] | None:
        try:
            value = carrier.get(key)
        except Exception:
            return None
        if isinstance(value, bytes | bytearray) and len(value) <= MAX_HEADER_LENGTH:
            try:
                value = bytes(value).decode("utf-8")
            except UnicodeDecodeError:
                return None
        if isinstance(value, str) and len(value) <= MAX_HEADER_LENGTH:
            return [value]
        return None

    def keys(self, carrier: Mapping[str, object]) -> list[str]:
        try:
            names: list[str] = []
            for name in carrier:
                if len(names) == MAX_HEADER_KEYS:
                    break
                if isinstance(name, str):
                    names.append(name)
            return names
        except Exception:
            return []


class MessageHeadersSetter(Setter[MutableMapping[str, str]]):
    def set(self, carrier: MutableMapping[str, str], key: str, value: str) -> None:
        carrier[key] = value


HEADERS_GETTER = MessageHeadersGetter()
HEADERS_SETTER = MessageHeadersSetter()


def inject_headers(headers: MutableMapping[str, str], context: Context | None = None) -> None:
    """Write the context (default: the current one) into ``headers``; never raises."""
    from opentelemetry import propagate  # not at import: the propagator entry point loads us

    ctx = context if context is not None else get_current()
    try:
        propagate.inject(headers, context=ctx, setter=HEADERS_SETTER)
    except Exception:
        logger.debug("chainmap: the global propagator could not inject", exc_info=True)
    ChainPropagator().inject(headers, context=ctx, setter=HEADERS_SETTER)


def extract_headers(headers: Mapping[str, object]) -> Context:
    """The context a message's headers carry (trace context, checked chain stack); never raises.

    Starts from an empty context, not the current one: a consumer's context comes from its
    message only.
    """
    from opentelemetry import propagate

    ctx = Context()
    if not isinstance(headers, Mapping):
        return ctx
    try:
        ctx = propagate.extract(headers, context=ctx, getter=HEADERS_GETTER)
    except Exception:
        logger.debug("chainmap: the global propagator could not extract", exc_info=True)
    try:
        return ChainPropagator().extract(headers, context=ctx, getter=HEADERS_GETTER)
    except Exception:
        return ctx
