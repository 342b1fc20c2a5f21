"""ChainSpanProcessor: tags every span with the chain(s) it belongs to, at span start.

The stack is inherited from the local parent span's ``chain.ids`` attribute, or
for a remote (or missing) parent from the ``chain.ids`` baggage entry. Then the
span's own (service, kind) rules may push further chains. Per span this is a
few dict lookups and one attribute update; nothing here raises into the
application or blocks.

At span end, a span that begins a chain (``chain.entry_ids``) is counted in the chain entry
metrics (:mod:`chainmap_otel.tagging.entry_counts`, which also says how unsampled entries
reach ``on_end``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from opentelemetry import baggage, metrics
from opentelemetry.context import Context, get_current
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation import _SPAN_KEY

from chainmap_otel.tagging.active import BAGGAGE_KEY, MAX_STACK_DEPTH, active_catalog, parse_stack
from chainmap_otel.tagging.entry_counts import EntryMetrics
from chainmap_otel.tagging.model import ChainCatalog
from chainmap_otel.tagging.rules import KIND_NAMES, Classifier, KindRules

logger = logging.getLogger(__name__)

ATTR_CHAIN_ID = "chain.id"
ATTR_CHAIN_IDS = "chain.ids"
ATTR_CHAIN_NAME = "chain.name"
ATTR_CHAIN_CATEGORY = "chain.category"
ATTR_CHAIN_ENTRY = "chain.entry"
ATTR_CHAIN_ENTRY_IDS = "chain.entry_ids"
#: Set with ``chain.entry`` by the Collector's generated OTTL, which sees one span at a time:
#: its entry marks are candidates (a rule may match a span and its descendant), the analyses
#: keep the first from the root down. The processor's marks know the span's ancestors.
ATTR_CHAIN_TAGGED_BY = "chain.tagged_by"
TAGGED_BY_COLLECTOR = "collector"
#: Set at span start by code (``chainmap_otel.track.chain``) to push a chain rules cannot see.
ATTR_CHAIN_PUSH = "chain.push"

_MAX_CACHE = 4096
_EMPTY = KindRules(())


def _attributes_of(span: object) -> Mapping[str, Any] | None:
    # The SDK span's attributes as a plain dict: ``.attributes`` would copy them into a proxy
    # per call, and BoundedAttributes.get() raises and catches KeyError for every missing key.
    attributes = getattr(span, "_attributes", None)
    if attributes is None:
        attributes = getattr(span, "attributes", None)
    return getattr(attributes, "_dict", attributes)  # type: ignore[no-any-return]


def _set_chain_attributes(span: Span, attributes: dict[str, Any]) -> None:
    """``span.set_attributes(attributes)``, without re-validating values known to be valid.

    The chain attributes are short strings and a bool, checked once when their dict was
    built; on a span still starting, within its attribute limits, they go straight into
    its attribute dict (validating each value again is most of the per-span cost).
    Anything else takes the SDK's own path.
    """
    bounded: Any = getattr(span, "_attributes", None)
    target = getattr(bounded, "_dict", None)
    if (
        type(target) is dict
        and bounded._immutable is False
        and getattr(span, "_end_time", 0) is None
        and (bounded.maxlen is None or len(target) + len(attributes) <= bounded.maxlen)
        and (bounded.max_value_len is None or _longest(attributes) <= bounded.max_value_len)
    ):
        target.update(attributes)
    else:
        span.set_attributes(attributes)


def _longest(attributes: dict[str, Any]) -> int:
    return max((len(v) for v in attributes.values() if isinstance(v, str)), default=0)


class ChainSpanProcessor(SpanProcessor):
    """Sets ``chain.id``, ``chain.ids``, ``chain.name``, ``chain.category`` (and
    ``chain.entry``/``chain.entry_ids`` where a chain begins) on every span of a chain.

    ``catalog`` defaults to the process-wide one (``$CHAINMAP_CHAINS_FILE``). With
    ``count_entries`` every chain entry is counted on ``meter_provider`` (default: the
    global one) when its span ends.
    """

    def __init__(
        self,
        catalog: ChainCatalog | None = None,
        *,
        count_entries: bool = True,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        self._tagger = _Tagger(catalog if catalog is not None else active_catalog())
        self._failures = 0
        self._count_failures = 0
        self._entry_metrics: EntryMetrics | None = None
        if count_entries:
            try:
                self._entry_metrics = EntryMetrics(meter_provider)
            except Exception:
                logger.exception("chainmap: chain entry metrics are off (creating them failed)")

    @property
    def catalog(self) -> ChainCatalog:
        return self._tagger.catalog

    def swap_catalog(self, catalog: ChainCatalog) -> None:
        """Tag with ``catalog`` from now on: one reference swap, so a span being tagged
        uses the old catalog or the new one, never a mix (rules and caches move together)."""
        self._tagger = _Tagger(catalog)

    # -- SpanProcessor -----------------------------------------------------------------

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        tagger = self._tagger
        if not tagger._known:
            return
        try:
            tagger.tag(span, parent_context)
        except Exception:
            self._failures += 1
            if self._failures == 1:
                logger.exception("chainmap: tagging a span failed; the span is left untagged")

    def on_end(self, span: ReadableSpan) -> None:
        counter = self._entry_metrics
        if counter is None:
            return
        attributes = _attributes_of(span)
        entry_ids = attributes.get(ATTR_CHAIN_ENTRY_IDS) if attributes else None
        if not entry_ids or type(entry_ids) is not str:
            return
        try:
            counter.record(entry_ids, self._tagger._known, span)
        except Exception:
            self._count_failures += 1
            if self._count_failures == 1:
                logger.exception("chainmap: counting a chain entry failed; it is not counted")

    def could_enter(self, resource: Resource, kind: SpanKind) -> bool:
        """Whether a span of ``kind`` in the service ``resource`` can begin a chain by rule
        (:class:`~chainmap_otel.tagging.entry_counts.EntryCountingSampler` asks)."""
        tagger = self._tagger
        if not tagger._known:
            return False
        entry = tagger._rules_by_resource.get(id(resource))
        by_kind = (
            entry[1] if entry is not None and entry[0] is resource else tagger._rules(resource)
        )
        return by_kind[kind._value_] is not None

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class _Tagger:
    """One catalog compiled for tagging, with its caches (replaced whole on reload)."""

    def __init__(self, catalog: ChainCatalog) -> None:
        self.catalog = catalog
        self._classifier = Classifier(catalog)
        self._known = frozenset(catalog.ids)
        self._rules_by_resource: dict[int, tuple[Resource, tuple[KindRules | None, ...]]] = {}
        self._stacks: dict[str, tuple[str, ...]] = {}
        self._attrs: dict[tuple[tuple[str, ...], tuple[str, ...]], dict[str, Any]] = {}
        self._inherit_attrs: dict[tuple[str, ...], dict[str, Any]] = {}

    def _rules(self, resource: Resource) -> tuple[KindRules | None, ...]:
        """Rules per span kind, indexed by ``SpanKind`` value (None where no rule applies)."""
        service = resource.attributes.get("service.name")
        by_name = self._classifier.rules_for_service(str(service)) if service is not None else {}
        rules = tuple(
            by_name[KIND_NAMES[kind]] if by_name.get(KIND_NAMES[kind], _EMPTY).rules else None
            for kind in sorted(KIND_NAMES, key=lambda k: k.value)
        )
        if len(self._rules_by_resource) < _MAX_CACHE:
            # The resource is kept with its id so a recycled id can never alias another resource.
            self._rules_by_resource[id(resource)] = (resource, rules)
        return rules

    def tag(self, span: Span, parent_context: Context | None) -> None:
        # Hot path, deliberately inlined: it runs for every span the service creates.
        ctx = parent_context if parent_context is not None else get_current()
        parent: Any = ctx.get(_SPAN_KEY)
        raw: object = None
        # A local SDK span holds its attributes: read the stack there without asking its
        # span context (most spans have one); a remote or non-recording parent has none.
        held: Any = getattr(parent, "_attributes", None) if parent is not None else None
        if held is not None:
            raw = getattr(held, "_dict", held).get(ATTR_CHAIN_IDS)
        elif parent is not None:
            parent_context_ = parent.get_span_context()
            if not parent_context_.is_valid or parent_context_.is_remote:
                raw = baggage.get_baggage(BAGGAGE_KEY, ctx)
            else:
                parent_attributes = _attributes_of(parent)
                if parent_attributes:
                    raw = parent_attributes.get(ATTR_CHAIN_IDS)
        else:
            raw = baggage.get_baggage(BAGGAGE_KEY, ctx)
        stack: tuple[str, ...] = ()
        if raw and isinstance(raw, str):
            cached = self._stacks.get(raw)
            if cached is None:
                cached = parse_stack(raw, self._known)
                if len(self._stacks) < _MAX_CACHE:
                    self._stacks[raw] = cached
            stack = cached
        resource = span.resource
        entry = self._rules_by_resource.get(id(resource))
        by_kind = entry[1] if entry is not None and entry[0] is resource else self._rules(resource)
        # Enum hashing is Python code; the member's value indexes a tuple instead.
        rules = by_kind[span.kind._value_]
        attributes = _attributes_of(span)
        forced = attributes.get(ATTR_CHAIN_PUSH) if attributes else None
        if rules is None and forced is None:
            # The common case: a span inside a chain that begins no chain of its own.
            if stack:
                inherited = self._inherit_attrs.get(stack)
                if inherited is None:
                    inherited = self._attributes_for(stack, ())
                    if len(self._inherit_attrs) < _MAX_CACHE:
                        self._inherit_attrs[stack] = inherited
                _set_chain_attributes(span, inherited)
            return
        matched = rules.match(span.name, attributes or {}) if rules is not None else ()
        if forced is None and not stack:
            # An entry span at the top of a request: cached per matched tuple.
            if matched:
                _set_chain_attributes(
                    span, self._attributes_for(matched[:MAX_STACK_DEPTH], matched)
                )
            return
        new = [c for c in matched if c not in stack]
        if isinstance(forced, str):
            for chain_id in parse_stack(forced, self._known):
                if chain_id not in stack and chain_id not in new:
                    new.append(chain_id)
        pushed = tuple(new)
        stack = (stack + pushed)[:MAX_STACK_DEPTH]
        if stack:
            _set_chain_attributes(span, self._attributes_for(stack, pushed))

    def _attributes_for(self, stack: tuple[str, ...], pushed: tuple[str, ...]) -> dict[str, Any]:
        key = (stack, pushed)
        cached = self._attrs.get(key)
        if cached is not None:
            return cached
        innermost = self.catalog.by_id[stack[-1]]
        attrs: dict[str, Any] = {
            ATTR_CHAIN_ID: innermost.id,
            ATTR_CHAIN_IDS: ",".join(stack),
            ATTR_CHAIN_NAME: innermost.name,
            ATTR_CHAIN_CATEGORY: innermost.category,
        }
        if pushed:
            attrs[ATTR_CHAIN_ENTRY] = True
            attrs[ATTR_CHAIN_ENTRY_IDS] = ",".join(pushed)
        if len(self._attrs) < _MAX_CACHE:
            self._attrs[key] = attrs
        return attrs
