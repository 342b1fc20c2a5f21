"""ChainPropagator: carries the chain stack across processes as one W3C baggage entry.

Outgoing, it writes the ``baggage`` header with the context's baggage plus
``chain.ids`` taken from the current span, so it must come after ``baggage`` in
``OTEL_PROPAGATORS`` (the launcher installs ``tracecontext,baggage,chainmap``).
Incoming, the header is untrusted: oversized headers are ignored, only known
chain ids are kept, garbage never raises.

This module is loaded through the ``opentelemetry_propagator`` entry point while
``opentelemetry.instrumentation`` is still initialising: it must not import it.
"""

from __future__ import annotations

import logging
from urllib.parse import quote, unquote

from opentelemetry import baggage, trace
from opentelemetry.context import Context, get_current
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)

from chainmap_otel.tagging.active import BAGGAGE_KEY, active_catalog, parse_stack

logger = logging.getLogger(__name__)

BAGGAGE_HEADER = "baggage"
#: The W3C baggage limit; a longer header is ignored as a whole.
MAX_HEADER_LENGTH = 8192
_MAX_MEMBERS = 180


def _chain_entry(values: list[str]) -> str | None:
    total = sum(len(v) for v in values)
    if total > MAX_HEADER_LENGTH:
        return None
    members = 0
    for header in values:
        for member in header.split(","):
            members += 1
            if members > _MAX_MEMBERS:
                return None
            key, sep, rest = member.partition("=")
            if sep and key.strip() == BAGGAGE_KEY:
                return unquote(rest.split(";", 1)[0].strip(), errors="strict")
    return None


class ChainPropagator(TextMapPropagator):
    """Injects and extracts the ``chain.ids`` baggage entry, accepting known chain ids only."""

    def extract(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        getter: Getter[CarrierT] = default_getter,  # type: ignore[assignment]
    ) -> Context:
        ctx = context if context is not None else get_current()
        try:
            values = getter.get(carrier, BAGGAGE_HEADER)
            raw = _chain_entry(list(values)) if values else None
            stack = parse_stack(raw, frozenset(active_catalog().ids)) if raw else ()
        except Exception:  # hostile input must never break a request
            stack = ()
        if stack:
            return baggage.set_baggage(BAGGAGE_KEY, ",".join(stack), ctx)
        if baggage.get_baggage(BAGGAGE_KEY, ctx) is not None:
            # The plain baggage propagator may have accepted an unchecked value: drop it.
            return baggage.remove_baggage(BAGGAGE_KEY, ctx)
        return ctx

    def inject(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        setter: Setter[CarrierT] = default_setter,  # type: ignore[assignment]
    ) -> None:
        try:
            span = trace.get_current_span(context)
            attributes = getattr(span, "attributes", None)
            chain_ids = attributes.get("chain.ids") if attributes else None
            entries = {k: v for k, v in baggage.get_all(context).items() if k != BAGGAGE_KEY}
            if isinstance(chain_ids, str) and chain_ids:
                entries[BAGGAGE_KEY] = chain_ids
            if not entries:
                return
            header = ",".join(
                f"{quote(k, safe='')}={quote(str(v), safe='')}" for k, v in entries.items()
            )
            setter.set(carrier, BAGGAGE_HEADER, header)
        except Exception:
            logger.debug("chainmap: could not inject chain baggage", exc_info=True)

    @property
    def fields(self) -> set[str]:
        return {BAGGAGE_HEADER}
