"""``chainmap coverage``: how each chain's instances were recognised (tagged at the source,
by the Collector's OTTL, or only at query time), where the tags and the current rules
disagree, and the entry endpoints no chain covers (:mod:`chainmap_otel.analysis.coverage`).

Like the other read commands it reads the store (``--store``) or the API of the
``chainmap serve`` holding it (``--server``), over ``--window`` (a length ending now or at
``--until``) or ``--since``/``--until``, and prints tables or ``--format json|tsv``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from chainmap_otel.cli.analysis import (
    CHAINS,
    ENV,
    SERVER,
    SINCE,
    STORE,
    UNTIL,
    ReadFormat,
    load_chains,
    opened_store,
    read_window,
    serve_client,
)
from chainmap_otel.cli.app import command, print_json, print_table

COVERAGE_API = "/api/v1/coverage"


def _chain_rows(data: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (
            c["chain_id"] if c["known"] else f"{c['chain_id']} (not in the rules)",
            c["instances"],
            c["tagged_by"]["source"],
            c["tagged_by"]["collector"],
            c["tagged_by"]["query_time"],
            c["disagreements"],
        )
        for c in data["chains"]
    ]


def _disagreement_rows(data: dict[str, Any]) -> list[tuple[Any, ...]]:
    """One row per disagreement: what the tag says and what the current rules say."""
    return [
        (
            d["chain_id"],
            ",".join(d["tagged"]) or "-",
            ",".join(d["rules"]) or "-",
            d["tagged_by"] or "untagged",
            d["service"],
            " ".join(part for part in (d["method"], d["route"]) if part),
            d["instances"],
        )
        for d in data["disagreements"]
    ]


@command("coverage")
def coverage_command(
    window: str = typer.Option(
        None, "--window", help="Window length ending at --until (15m, 2h, 7d); or --since."
    ),
    limit: int = typer.Option(20, "--limit", help="Disagreements and unmatched endpoints listed."),
    store: str = STORE,
    chains: Path = CHAINS,
    since: str = SINCE,
    until: str = UNTIL,
    env: str = ENV,
    format: ReadFormat = typer.Option(ReadFormat.table, "--format", "-f"),
    server: str = SERVER,
) -> None:
    """Chain instances by what recognised them (source, Collector, query time), tag/rule
    disagreements, and the entry endpoints that match no chain."""
    from chainmap_otel.analysis.coverage import coverage_json, parse_limit, window_start

    start = window_start(window, since)
    count = parse_limit(limit)
    client = serve_client(store, server, chains)
    if client is not None:
        read_window(start, until, env)
        params = {"since": start, "until": until, "limit": count, "environment": env}
        data: dict[str, Any] = client.get_json(COVERAGE_API, params)
    else:
        catalog = load_chains(chains)
        span = read_window(start, until, env)
        with opened_store(store) as trace_store:
            data = coverage_json(trace_store, catalog, span, count)
    if format is ReadFormat.json:
        print_json(data)
        return
    print_table(
        "chain coverage: instances by what recognised them",
        ("chain", "instances", "source", "collector", "query time", "disagree"),
        _chain_rows(data),
        wrap=("chain",),
    )
    print_table(
        "tags and current rules that disagree",
        ("chain", "tag", "rules", "tagged by", "service", "endpoint", "instances"),
        _disagreement_rows(data),
        wrap=("service", "endpoint"),
    )
    unmatched = data["unmatched"]
    print_table(
        f"entry endpoints matching no chain ({unmatched['traces']} traces)",
        ("service", "method", "route", "kind", "traces"),
        [
            (e["service"], e["method"], e["route"], e["kind"], e["traces"])
            for e in unmatched["endpoints"]
        ],
        cut=("route",),
    )
