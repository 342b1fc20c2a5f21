"""The analysis SQL, one ``.sql`` file per query, loaded by name.

Values are always bound parameters (``{name:Type}``). Only three kinds of text are
substituted into ``{{...}}`` placeholders: the database name, validated as a plain
identifier, SQL compiled by :mod:`chainmap_otel.analysis.membership` whose patterns are
themselves bound parameters, and the rule fields of :mod:`chainmap_otel.tagging.fields`.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from chainmap_otel.storage.sqltext import render_sql
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
}


def load_sql(name: str, database: str, **fragments: str) -> str:
    """The query ``name`` rendered by :func:`~chainmap_otel.storage.sqltext.render_sql`
    with ``{{db}}`` and each ``{{fragment}}`` (the defaults unless given) filled in."""
    return render_sql(_text(name), database, **{**DEFAULT_FRAGMENTS, **fragments})
