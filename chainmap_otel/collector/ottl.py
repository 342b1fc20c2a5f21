"""Chain entry rules as OTTL: the transform processor tags entry spans in the Collector.

A service that does not run the Python SDK (Go, Java, Node) sends untagged spans; these
statements give its entry spans the same ``chain.*`` attributes ``ChainSpanProcessor``
would, with the rule engine's semantics (:mod:`chainmap_otel.tagging.rules`):

- a span that already carries ``chain.id`` (tagged by an SDK) is left alone;
- a span carrying only ``chain.ids`` (copied from baggage by a baggage span processor)
  keeps that stack, and chains it newly enters are pushed on top;
- the chains a span matches are pushed in file order, at most ``MAX_STACK_DEPTH`` deep;
  ``chain.id``, ``chain.name`` and ``chain.category`` are the innermost chain's.

OTTL sees one span at a time, so only entry spans are tagged here; their descendants are
classified at query time, from the trace, as every untagged trace already is. For the same
reason a rule matching a span and its descendant marks both as entries: the marks say
``chain.tagged_by = "collector"``, and the analyses keep the first from the root down.
Regexes are RE2 on both sides (Go's regexp in the Collector, ``re2`` here); globs become
anchored RE2 regexes and equals become ``==``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import re2

from chainmap_otel.errors import ChainDefinitionError
from chainmap_otel.tagging import fields
from chainmap_otel.tagging.active import MAX_STACK_DEPTH
from chainmap_otel.tagging.model import ChainCatalog, ChainDefinition, EntryRule, Pattern
from chainmap_otel.tagging.patterns import escape_regex, glob_to_regex
from chainmap_otel.tagging.processor import (
    ATTR_CHAIN_CATEGORY,
    ATTR_CHAIN_ENTRY,
    ATTR_CHAIN_ENTRY_IDS,
    ATTR_CHAIN_ID,
    ATTR_CHAIN_IDS,
    ATTR_CHAIN_NAME,
    ATTR_CHAIN_TAGGED_BY,
    TAGGED_BY_COLLECTOR,
)

#: Span kind names of chain definitions -> OTTL's span kind enums. ``internal`` also takes
#: UNSPECIFIED, as the query-time classifier reads an unknown kind as internal.
_KIND_ENUMS = {
    "server": ("SPAN_KIND_SERVER",),
    "client": ("SPAN_KIND_CLIENT",),
    "internal": ("SPAN_KIND_INTERNAL", "SPAN_KIND_UNSPECIFIED"),
    "producer": ("SPAN_KIND_PRODUCER",),
    "consumer": ("SPAN_KIND_CONSUMER",),
}
_INT_TEXT = re.compile(r"-?(0|[1-9][0-9]*)")
_QUOTE_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


class _Unsupported(Exception):
    """A matcher OTTL cannot express; the message says why."""


# --- literals -------------------------------------------------------------------------------


def quote(text: str) -> str:
    """An OTTL string literal: the lexer reads ``"(\\\\.|[^\\\\"])*"`` and unquotes it like Go."""
    out = []
    for char in text:
        escaped = _QUOTE_ESCAPES.get(char)
        if escaped is not None:
            out.append(escaped)
        elif not char.isprintable():
            code = ord(char)
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def span_attribute(key: str) -> str:
    return f"span.attributes[{quote(key)}]"


def resource_attribute(key: str) -> str:
    return f"resource.attributes[{quote(key)}]"


def glob_to_re2(glob: str) -> str:
    """The anchored RE2 regex of an fnmatch glob, as the rule engine translates it, with
    ``(?s)``: Go's ``.`` stops at a newline unless told, the processor's and ClickHouse's do
    not."""
    try:
        return "(?s)" + glob_to_regex(glob)
    except ValueError as exc:
        raise _Unsupported(str(exc)) from None


def _checked_regex(pattern: str) -> str:
    options = re2.Options()
    options.log_errors = False
    try:
        re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise _Unsupported(
            f"regex {pattern!r} is not RE2 ({reason}); the Collector's IsMatch is RE2: "
            "rewrite it without backreferences or lookaround"
        ) from None
    return pattern


# --- matchers -------------------------------------------------------------------------------

Test = Callable[[str], str]


#: How the rule engine turns a span value into the text a matcher compares: ``str()``
#: (route, path, destination), ``attribute`` (``str()`` with bools as ``true``/``false``),
#: or ``None`` for values that are always strings (service name, span name).
Reading = Literal["str", "attribute"] | None


def _typed_alternatives(value: str, reading: Reading) -> list[str]:
    """OTTL literals of other types whose rule-engine text equals ``value``."""
    if reading == "attribute" and value in ("true", "false"):
        return [value]
    if reading is not None and _INT_TEXT.fullmatch(value) and -(2**63) <= int(value) < 2**63:
        return [value]
    return []


def pattern_test(pattern: Pattern, reading: Reading) -> Test:
    """A function from an OTTL value expression to the condition that it matches ``pattern``.

    An equals matcher ``"42"`` also matches an int attribute 42, and ``"true"`` a bool
    attribute, wherever the rule engine compares the value's text (``reading``).
    """
    if pattern.kind == "equals":
        literal = quote(pattern.value)
        alternatives = _typed_alternatives(pattern.value, reading)
        if not alternatives:
            return lambda expr: f"{expr} == {literal}"
        return lambda expr: (
            "("
            + " or ".join([f"{expr} == {literal}", *(f"{expr} == {a}" for a in alternatives)])
            + ")"
        )
    # A user regex gets (?s) too, so '.' matches a newline as in the processor and ClickHouse
    # (a regex that says (?-s) opts out in all three).
    regex = glob_to_re2(pattern.value) if pattern.kind == "glob" else "(?s)" + pattern.value
    literal = quote(_checked_regex(regex))
    return lambda expr: f"IsMatch({expr}, {literal})"


def _field_condition(sources: tuple[fields.Source, ...], test: Test) -> str:
    """The rule field read as :func:`chainmap_otel.tagging.fields.read` reads it: the first
    source with a non-empty value (the path of ``http.target``, before its ``?``) passes
    ``test``; a later source is read only when every earlier one is unset or empty."""
    condition = "false"
    for source in reversed(sources):
        attribute = span_attribute(source.key)
        value = f'Split({attribute}, "?")[0]' if source.path_only else attribute
        is_set = f'{attribute} != nil and {value} != ""'
        if condition == "false":
            condition = f"({is_set} and {test(value)})"
        else:
            condition = f"(({is_set} and {test(value)}) or (not ({is_set}) and {condition}))"
    return condition


def _method_condition(methods: tuple[str, ...]) -> str:
    # The rule engine upper-cases the span's method; (?i) compares the same way.
    alternatives = "|".join(escape_regex(m) for m in methods)
    literal = quote(f"(?i)^(?:{alternatives})$")
    return _field_condition(fields.METHOD, lambda expr: f"IsMatch({expr}, {literal})")


def _kind_condition(kinds: tuple[str, ...]) -> str | None:
    enums = [enum for kind in kinds for enum in _KIND_ENUMS[kind]]
    if set(enums) == {e for group in _KIND_ENUMS.values() for e in group}:
        return None
    terms = [f"span.kind == {enum}" for enum in enums]
    return terms[0] if len(terms) == 1 else "(" + " or ".join(terms) + ")"


def rule_condition(rule: EntryRule) -> str:
    """One entry rule as an OTTL boolean expression: every matcher it sets, AND-ed."""
    terms: list[str] = []
    service = resource_attribute("service.name")
    if rule.service is not None:
        terms.append(pattern_test(rule.service, None)(service))
    else:
        # The span processor tags nothing in a process without a service name.
        terms.append(f"{service} != nil")
    if rule.kinds:
        kind = _kind_condition(rule.kinds)
        if kind is not None:
            terms.append(kind)
    if rule.name is not None:
        terms.append(pattern_test(rule.name, None)("span.name"))
    if rule.route is not None:
        terms.append(_field_condition(fields.ROUTE, pattern_test(rule.route, "str")))
    if rule.path is not None:
        terms.append(_field_condition(fields.PATH, pattern_test(rule.path, "str")))
    if rule.method:
        terms.append(_method_condition(rule.method))
    if rule.rpc_service is not None:
        terms.append(pattern_test(rule.rpc_service, "attribute")(span_attribute("rpc.service")))
    if rule.rpc_method is not None:
        terms.append(pattern_test(rule.rpc_method, "attribute")(span_attribute("rpc.method")))
    if rule.messaging_destination is not None:
        test = pattern_test(rule.messaging_destination, "str")
        terms.append(_field_condition(fields.DESTINATION, test))
    for key, pattern in rule.attributes:
        terms.append(pattern_test(pattern, "attribute")(span_attribute(key)))
    return " and ".join(terms)


def chain_condition(chain: ChainDefinition) -> str:
    """A chain's entry rules OR-ed; raises ChainDefinitionError naming each rule OTTL cannot express."""
    rules, problems = [], []
    for index, rule in enumerate(chain.entry):
        try:
            rules.append(rule_condition(rule))
        except _Unsupported as exc:
            problems.append(f"{chain.source or chain.id}: chain {chain.id} entry[{index}]: {exc}")
    if problems:
        raise ChainDefinitionError(problems)
    if len(rules) == 1:
        return rules[0]
    return " or ".join(f"({rule})" for rule in rules)


# --- the program ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainStatements:
    """The statements of one chain, in the order the transform processor runs them."""

    chain: ChainDefinition
    push: tuple[str, ...]
    innermost: str


def _in_stack(chain_id: str, expr: str) -> str:
    escaped = escape_regex(chain_id)
    return f"IsMatch({expr}, {quote(f'(^|,){escaped}(,|$)')})"


def chain_statements(chain: ChainDefinition, deep_catalog: bool) -> ChainStatements:
    """Push ``chain`` onto matching spans' stacks, and name it when it ends a stack.

    ``deep_catalog``: the catalog has more chains than a stack may hold, so pushes check
    the depth (with fewer chains a stack of distinct ids can never be too deep).
    """
    untagged = f"{span_attribute(ATTR_CHAIN_ID)} == nil"
    ids, entry_ids = span_attribute(ATTR_CHAIN_IDS), span_attribute(ATTR_CHAIN_ENTRY_IDS)
    literal = quote(chain.id)
    condition = chain_condition(chain)
    new = f"not {_in_stack(chain.id, ids)}"
    room = f' and Len(Split({ids}, ",")) < {MAX_STACK_DEPTH}' if deep_catalog else ""
    push = (
        f'set({entry_ids}, Concat([{entry_ids}, {literal}], ",")) where {untagged} '
        f"and {entry_ids} != nil and {new} and ({condition})",
        f"set({entry_ids}, {literal}) where {untagged} and {entry_ids} == nil and {new} "
        f"and ({condition})",
        f'set({ids}, Concat([{ids}, {literal}], ",")) where {untagged} and {ids} != nil '
        f"and {new}{room} and ({condition})",
        f"set({ids}, {literal}) where {untagged} and {ids} == nil and ({condition})",
    )
    escaped = escape_regex(chain.id)
    tags = ", ".join(
        f"{quote(key)}: {quote(value)}"
        for key, value in (
            (ATTR_CHAIN_ID, chain.id),
            (ATTR_CHAIN_NAME, chain.name),
            (ATTR_CHAIN_CATEGORY, chain.category),
        )
    )
    innermost = (
        f'merge_maps(span.attributes, {{{tags}}}, "upsert") where {untagged} '
        f"and IsMatch({ids}, {quote(f'(^|,){escaped}$')})"
    )
    return ChainStatements(chain=chain, push=push, innermost=innermost)


def entry_statements() -> tuple[str, ...]:
    """``chain.entry = true`` on spans this program pushed a chain onto, and
    ``chain.tagged_by = "collector"``: a rule may match a span and its descendant, and only
    the analyses, which see the trace, can keep the first (:mod:`chainmap_otel.analysis.rollups.entries`)."""
    where = (
        f"where {span_attribute(ATTR_CHAIN_ID)} == nil "
        f"and {span_attribute(ATTR_CHAIN_ENTRY_IDS)} != nil"
    )
    return (
        f"set({span_attribute(ATTR_CHAIN_ENTRY)}, true) {where}",
        f"set({span_attribute(ATTR_CHAIN_TAGGED_BY)}, {quote(TAGGED_BY_COLLECTOR)}) {where}",
    )


def catalog_statements(catalog: ChainCatalog) -> list[ChainStatements]:
    """Every chain's statements; raises ChainDefinitionError listing every rule OTTL cannot express."""
    deep = len(catalog) > MAX_STACK_DEPTH
    out: list[ChainStatements] = []
    problems: list[str] = []
    for chain in catalog:
        try:
            out.append(chain_statements(chain, deep))
        except ChainDefinitionError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ChainDefinitionError(problems)
    return out


def trace_statements(catalog: ChainCatalog) -> list[str]:
    """The flat ``trace_statements`` list: all pushes in file order, then the entry flag and names."""
    chains = catalog_statements(catalog)
    statements = [s for c in chains for s in c.push]
    statements.extend(entry_statements())
    statements.extend(c.innermost for c in chains)
    return statements
