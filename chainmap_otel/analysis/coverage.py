"""Coverage of the chain rules: how each chain instance was recognised, where the tags and
the current rules disagree, and which entry endpoints no chain covers.

A trace gets its chains in one of three places: the service's own
:class:`~chainmap_otel.tagging.processor.ChainSpanProcessor` (``chain.*`` attributes, no
``chain.tagged_by``), the Collector's generated OTTL (:mod:`chainmap_otel.collector.ottl`,
``chain.tagged_by = "collector"``), or the query-time classification of untagged spans by
the current rules (:mod:`~chainmap_otel.analysis.membership`). Per chain and window:

* ``instances``: the chain's entries, one per instance, under the membership rule (a span
  belongs to the own chains of every ancestor-or-self; own chains are the tag, else the
  rules; the entry is the first span, from the root down, where the chain appears): the
  number health counts as ``traces``. ``tagged_by`` splits them by what gave the entry span
  its chain: ``source``, ``collector`` or ``query_time``.
* ``disagreements``: instances where the tag and the current rules part: ``tag_not_rules``,
  a tagged span enters the chain but the rules do not match it there (a service running a
  stale chains file, OTTL generated from an older catalog; the track helpers' explicit
  ``chain.push`` is no disagreement); ``rules_not_tag``, the rules match the chain on a span
  where no tag holds it: on a tagged span, or on an untagged span of a service whose other
  spans in the window the source tagged (its chains file lacks the chain). The first kind is
  counted in ``instances`` (membership follows the tag); of the second, the untagged
  spans' entries are (classified at query time), the tagged spans' are not.
* ``unmatched``: the root spans of the window's traces that belong to no chain at all (no
  tag, no rule match on any span, no span link to a span of a chain), by service, route,
  method and kind, most traces first.

Across traces: a span with span links holds the chains of the spans it links to above itself
(membership through a link): a consumer's root tagged from the message's baggage (its tag
minus what it enters itself, ``chain.entry_ids``), and an untagged span (a consumer in a
service that tags nothing) the chains its linked span belongs to in its own trace
(``sql/linked_chains.sql``, one hop, within the topology's link lookback). Such a trace is
covered, and adds no entry: the instance's entry is the producer's.

A window with an environment counts the facts of its spans in that environment
(``deployment.environment.name``, else ``deployment.environment``, of the span's resource);
their ancestors are read whatever theirs.

Chains a tag names that the current catalog does not define are listed too (``known``
false). Every count is exact; the detail rows behind the two lists (disagreements by
endpoint, unmatched endpoints) are the ``_ROW_CAP`` with the most instances of each kind,
cut to ``limit``, so a window of many distinct URL paths cannot flood the answer. Cost: one query over the spans of the traces with a span in the window (read from
``REACH_S`` before it, so an entry's ancestors are seen), grouped per trace in ClickHouse;
the aggregates keep no ``chain.tagged_by``, so span rows are the only source. Rules read
every span field here (attributes too), as trace search does; health reads the per-minute
aggregates, where rules on attributes cannot match untagged rows.

JSON: ``docs/json-contract.md``; docs: ``docs/coverage.md``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from chainmap_otel.analysis.membership import classify_expression
from chainmap_otel.analysis.rollups.edges import LINK_LOOKBACK_SECONDS
from chainmap_otel.analysis.sql import load_sql
from chainmap_otel.analysis.timewindow import (
    TimeWindow,
    check_limit,
    parse_count,
    relative_seconds,
)
from chainmap_otel.errors import ParameterError
from chainmap_otel.storage.store import TraceStore
from chainmap_otel.tagging.definitions import ChainCatalog

__all__ = [
    "DEFAULT_LIMIT",
    "LIMIT_RANGE",
    "REACH_S",
    "TAGGERS",
    "Coverage",
    "coverage",
    "coverage_json",
    "parse_limit",
    "window_start",
]

#: What gave an instance's entry span its chain, in the order every surface lists them.
TAGGERS = ("source", "collector", "query_time")
#: How far before the window an instance's ancestors are read (seconds).
REACH_S = 300
#: Unmatched endpoints and disagreements listed (``limit``), and its range.
DEFAULT_LIMIT = 20
LIMIT_RANGE = (1, 1000)
#: Rows per fact kind the query returns at most (the lists are cut to ``limit`` after).
_ROW_CAP = 5000
_NS = 1_000_000_000
#: The spans the query reads: those of the traces with a span in the window, from
#: ``reach_ns`` before it (so an entry's ancestors are seen).
SPANS_READ = """Timestamp >= fromUnixTimestamp64Nano({start_ns:Int64} - {reach_ns:Int64})
  AND Timestamp < fromUnixTimestamp64Nano({end_ns:Int64})
  AND TraceId IN (
      SELECT TraceId FROM {{db}}.otel_traces
      WHERE Timestamp >= fromUnixTimestamp64Nano({start_ns:Int64})
        AND Timestamp < fromUnixTimestamp64Nano({end_ns:Int64})
        AND TraceId != '')"""


def parse_limit(value: str | int | None) -> int:
    """``limit`` as given to a surface (text or a number); ``DEFAULT_LIMIT`` when absent."""
    return parse_count("limit", value, DEFAULT_LIMIT, LIMIT_RANGE)


def window_start(window: str | None, since: str | None) -> str | None:
    """The window's start from ``window`` (a length ending at ``until``: ``15m``, ``7d``) or
    ``since``, which it stands for; giving both is an error."""
    if window is None or window == "":
        return since
    if since:
        raise ParameterError(
            "window",
            window,
            "either window or since",
            "{name} {value} and {related} both set the window's start: use {allowed}",
            {"since": since},
        )
    if relative_seconds(window) is None:
        raise ParameterError(
            "window", window, "a length like 15m, 2h or 7d", "{name} {value} is not {allowed}"
        )
    return window


def _split(text: str) -> list[str]:
    return [part for part in text.split(",") if part]


@dataclass(frozen=True)
class Coverage:
    """The coverage of one window (see the module docstring); :meth:`to_json` is the contract."""

    window: TimeWindow
    chains: list[dict[str, Any]]
    disagreements: list[dict[str, Any]]
    unmatched_traces: int
    unmatched: list[dict[str, Any]]
    tagging_services: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        totals = {
            "instances": sum(c["instances"] for c in self.chains),
            "tagged_by": {t: sum(c["tagged_by"][t] for c in self.chains) for t in TAGGERS},
            "disagreements": sum(c["disagreements"] for c in self.chains),
        }
        return {
            "window": self.window.to_json(),
            "totals": totals,
            "chains": self.chains,
            "disagreements": self.disagreements,
            "unmatched": {"traces": self.unmatched_traces, "endpoints": self.unmatched},
            "tagging_services": self.tagging_services,
        }


def coverage(
    store: TraceStore, catalog: ChainCatalog, window: TimeWindow, limit: int = DEFAULT_LIMIT
) -> Coverage:
    """The coverage of ``catalog``'s rules over ``window`` (one query)."""
    check_limit("limit", limit, LIMIT_RANGE)
    classify, params = classify_expression(catalog)
    sql = load_sql("coverage", store.database, classify=classify, span_window=SPANS_READ)
    bound = {
        **params,
        **window.params(),
        "reach_ns": REACH_S * _NS,
        "link_lookback": LINK_LOOKBACK_SECONDS * _NS,
        "row_cap": _ROW_CAP,
    }
    instances: dict[str, Counter[str]] = defaultdict(Counter)
    untagged_entries: Counter[tuple[str, str]] = Counter()  # (chain, service)
    totals: dict[str, Counter[str]] = defaultdict(Counter)  # kind -> chain -> instances
    details: Counter[tuple[str, str, str, str, str, str, str, str]] = Counter()
    taggers: Counter[tuple[str, str]] = Counter()
    unmatched: list[dict[str, Any]] = []
    unmatched_traces = 0
    for kind, chain, tagged_by, service, route, method, span_kind, tag, rules, n in store.query(
        sql, bound
    ).result_rows:
        count = int(n)
        if kind == "entry":
            instances[chain][tagged_by] += count
            if tagged_by == "query_time":
                untagged_entries[(chain, service)] += count
        elif kind in ("tag_not_rules_total", "rules_not_tag_total"):
            totals[kind.removesuffix("_total")][chain] += count
        elif kind in ("tag_not_rules", "rules_not_tag", "query_time"):
            details[(kind, chain, tagged_by, service, route, method, tag, rules)] += count
        elif kind == "tagger":
            taggers[(service, tagged_by)] += count
        elif kind == "unmatched":
            unmatched.append(
                {
                    "service": service,
                    "route": route,
                    "method": method,
                    "kind": span_kind,
                    "traces": count,
                }
            )
        elif kind == "uncovered":
            unmatched_traces += count
    # An untagged span the rules match, in a service the source tags: its chains file lacks
    # the chain (the processor would have tagged it).
    source_services = {service for service, by in taggers if by == "source"}
    for (chain, service), count in untagged_entries.items():
        if service in source_services:
            totals["rules_not_tag"][chain] += count
    disagreements: list[dict[str, Any]] = [
        {
            "chain_id": chain,
            "kind": "rules_not_tag" if kind == "query_time" else kind,
            "tagged_by": by or None,
            "service": service,
            "route": route,
            "method": method,
            "tagged": _split(tag),
            "rules": _split(rules),
            "instances": count,
        }
        for (kind, chain, by, service, route, method, tag, rules), count in details.items()
        if kind != "query_time" or service in source_services
    ]
    disagreements.sort(key=lambda d: (-d["instances"], d["chain_id"], d["service"], d["route"]))
    ids = list(catalog.ids) + sorted(
        (set(instances) | set(totals["tag_not_rules"]) | set(totals["rules_not_tag"]))
        - set(catalog.ids)
        - {""}
    )
    chains = []
    for chain_id in ids:
        known = catalog.get(chain_id)
        found = instances.get(chain_id, Counter())
        tag_not_rules = totals["tag_not_rules"][chain_id]
        rules_not_tag = totals["rules_not_tag"][chain_id]
        chains.append(
            {
                "chain_id": chain_id,
                "name": known.name if known is not None else None,
                "known": known is not None,
                "instances": sum(found[t] for t in TAGGERS),
                "tagged_by": {t: found[t] for t in TAGGERS},
                "disagreements": tag_not_rules + rules_not_tag,
                "tag_not_rules": tag_not_rules,
                "rules_not_tag": rules_not_tag,
            }
        )
    services = [
        {"service": service, "tagged_by": by, "spans": count}
        for (service, by), count in sorted(taggers.items())
    ]
    return Coverage(
        window=window,
        chains=chains,
        disagreements=disagreements[:limit],
        unmatched_traces=unmatched_traces,
        unmatched=unmatched[:limit],
        tagging_services=services,
    )


def coverage_json(
    store: TraceStore, catalog: ChainCatalog, window: TimeWindow, limit: int = DEFAULT_LIMIT
) -> dict[str, Any]:
    """:func:`coverage` as the JSON every surface returns (``docs/json-contract.md``)."""
    return coverage(store, catalog, window, limit).to_json()
