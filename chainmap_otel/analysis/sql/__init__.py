"""The analysis SQL, one ``.sql`` file per query, loaded by name.

Values are always bound parameters (``{name:Type}``). Only three kinds of text are
substituted into ``{{...}}`` placeholders: the database name, validated as a plain
identifier, SQL compiled by :mod:`chainmap_otel.analysis.membership` whose patterns are
themselves bound parameters, and the rule fields of :mod:`chainmap_otel.tagging.fields`.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from chainmap_otel.storage.sqltext import render_sql, strip_comments
from chainmap_otel.tagging.fields import SCHEMA_PLACEHOLDERS


@cache
def _text(name: str) -> str:
    return resources.files(__name__).joinpath(f"{name}.sql").read_text(encoding="utf-8")


#: Fragments a caller may leave out: ``trace_edges`` reads the spans starting in the bound
#: window ``[start_ns, end_ns)`` and keeps every trace they form.
DEFAULT_FRAGMENTS = {
    "span_window": (
        "Timestamp >= fromUnixTimestamp64Nano({start_ns:Int64}) "
        "AND Timestamp < fromUnixTimestamp64Nano({end_ns:Int64})"
    ),
    "trace_window": "1",
    # The window's environment ({environment:String}, '' for all): over spans, and over
    # the aggregate tables' Environment column.
    "span_environment": (
        "({environment:String} = '' OR "
        f"{SCHEMA_PLACEHOLDERS['environment_sql']} = {{environment_value:String}})"
    ),
    "row_environment": "({environment:String} = '' OR Environment = {environment_value:String})",
    # The rule fields (route, path, method) as every surface reads them.
    **SCHEMA_PLACEHOLDERS,
    # Which spans may hold chains through their span links (linked_chains.sql): an untagged
    # span, and a tagged one that marks an entry of its own (chain.entry_ids): no baggage
    # reached it, so a producer its service could not hear from may still hold a chain.
    "link_heir": "(SpanAttributes['chain.ids'] = '' OR SpanAttributes['chain.entry_ids'] != '')",
    # The membership rule inside one trace (analysis.membership): per span, the own chains
    # of every ancestor-or-self, from the trace's arrays `ids` (SpanId), `parent_ids`
    # (ParentSpanId) and `own` (each span's own chains), by pointer jumping: each of 8
    # rounds doubles the reach, so 256 levels.
    "chains_down": (
        "arrayFold((acc, round) -> ("
        "arrayMap(i -> if(acc.2[i] > 0, arrayDistinct(arrayConcat(acc.1[i], acc.1[acc.2[i]])), "
        "acc.1[i]), arrayEnumerate(ids)), "
        "arrayMap(i -> if(acc.2[i] > 0, acc.2[acc.2[i]], toUInt32(0)), arrayEnumerate(ids))), "
        "range(8), (own, arrayMap(p -> toUInt32(indexOf(ids, p)), parent_ids))).1"
    ),
}

#: Fragments that are queries of their own (the ``.sql`` file of the same name), filled in
#: with the fragments of the query that holds them unless a caller gives them.
SUBQUERIES = ("linked_spans", "linked_chains", "member_chains")


def load_sql(name: str, database: str, **fragments: str) -> str:
    """The query ``name`` rendered by :func:`~chainmap_otel.storage.sqltext.render_sql`
    with ``{{db}}`` and each ``{{fragment}}`` (the defaults unless given) filled in; a
    :data:`SUBQUERIES` placeholder gets that query, rendered with the same fragments."""
    merged = {**DEFAULT_FRAGMENTS, **fragments}
    text = strip_comments(_text(name))
    for sub in SUBQUERIES:
        if sub not in fragments and "{{" + sub + "}}" in text:
            merged[sub] = load_sql(sub, database, **merged)
    return render_sql(text, database, **merged)
