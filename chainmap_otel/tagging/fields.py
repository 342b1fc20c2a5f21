"""What each rule field reads from a span: defined once, rendered for Python and SQL.

Fleets mix the stable and the old HTTP semantic conventions (Python's FastAPI
instrumentation 0.6xb emits ``http.target``/``http.method``, the JS SDK 2.x/3.x only
``url.path``/``http.request.method``, either with ``OTEL_SEMCONV_STABILITY_OPT_IN=http/dup``
both), so every field reads a list of attributes in order and takes the first non-empty one:

* ``route``: ``http.route``, else ``path``;
* ``path``: ``url.path``, else the path of ``http.target`` (never its query string);
* ``method``: ``http.request.method``, else ``http.method``, upper-cased;
* ``environment`` (a resource attribute): ``deployment.environment.name``, else
  ``deployment.environment``;
* ``messaging_destination``: ``messaging.destination.name``, else ``messaging.destination``.

The span processor's rule engine (:mod:`chainmap_otel.tagging.rules`), the query-time
classifier (:mod:`chainmap_otel.analysis.membership`) and the aggregate tables' ``Route``,
``Path`` and ``Method`` columns (the schema renders :func:`field_sql` into its DDL) read
these definitions, so a rule matches the same span wherever it is evaluated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chainmap_otel.tagging.sampling import adjusted_count_sql, digest_weight_sql


@dataclass(frozen=True)
class Source:
    """One attribute a field may read; ``path_only`` keeps the part before ``?``."""

    key: str
    path_only: bool = False


PATH: tuple[Source, ...] = (Source("url.path"), Source("http.target", path_only=True))
ROUTE: tuple[Source, ...] = (Source("http.route"), *PATH)
METHOD: tuple[Source, ...] = (Source("http.request.method"), Source("http.method"))
#: A resource attribute (read from ``ResourceAttributes``): the semantic conventions renamed
#: ``deployment.environment`` to ``deployment.environment.name`` (1.27); fleets send either.
ENVIRONMENT: tuple[Source, ...] = (
    Source("deployment.environment.name"),
    Source("deployment.environment"),
)
DESTINATION: tuple[Source, ...] = (
    Source("messaging.destination.name"),
    Source("messaging.destination"),
)


def read(sources: tuple[Source, ...], attributes: Mapping[str, Any]) -> str | None:
    """The field's value in a span's attributes: the first non-empty source, or None."""
    for source in sources:
        value = attributes.get(source.key)
        if value is None or value == "":
            continue
        text = value if type(value) is str else str(value)
        if source.path_only:
            text = text.partition("?")[0]
        if text:
            return text
    return None


def read_method(attributes: Mapping[str, Any]) -> str | None:
    value = read(METHOD, attributes)
    return value.upper() if value is not None else None


def field_sql(sources: tuple[Source, ...], attributes: str = "SpanAttributes") -> str:
    """The field as a ClickHouse ``String`` expression over a ``Map(String, String)``
    column (``''`` when no source is set)."""
    parts: list[str] = []
    for source in sources:
        value = f"{attributes}['{source.key}']"
        if source.path_only:
            value = f"splitByChar('?', {value})[1]"
        parts.append(value)
    expression = parts[-1]
    for value in reversed(parts[:-1]):
        expression = f"if({value} != '', {value}, {expression})"
    return expression


def method_sql(attributes: str = "SpanAttributes") -> str:
    return f"upper({field_sql(METHOD, attributes)})"


#: The schema's placeholders for the aggregate tables' columns (``{{route_sql}}`` ...) and
#: the span's sampling weight (``{{weight_sql}}``, :mod:`chainmap_otel.tagging.sampling`; as
#: a weighted t-digest's integer weight, ``{{digest_weight_sql}}``).
SCHEMA_PLACEHOLDERS: dict[str, str] = {
    "route_sql": field_sql(ROUTE),
    "path_sql": field_sql(PATH),
    "method_sql": method_sql(),
    "environment_sql": field_sql(ENVIRONMENT, "ResourceAttributes"),
    "weight_sql": adjusted_count_sql(),
    "digest_weight_sql": digest_weight_sql(),
}
