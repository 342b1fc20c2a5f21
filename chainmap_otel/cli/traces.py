"""``chainmap traces``: find traces by chain, service, operation, status, duration, attributes.

The library call is :func:`chainmap_otel.analysis.traces.search_traces`; through a running
``chainmap serve`` (``--server`` or the embedded store's holder) it is ``GET /api/v1/traces``,
which answers the same JSON.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from chainmap_otel.cli.analysis import (
    CHAINS,
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


@command("traces")
def traces_command(
    chain: str = typer.Option(None, "--chain", help="Traces of this chain."),
    service: str = typer.Option(None, "--service", help="With a span in this service."),
    operation: str = typer.Option(
        None, "--operation", help="With a span of this name or http.route (in --service)."
    ),
    status: str = typer.Option(None, "--status", help="error (any span failed) or ok."),
    min_duration_ms: float = typer.Option(None, "--min-duration-ms", help="At least this long."),
    max_duration_ms: float = typer.Option(None, "--max-duration-ms", help="At most this long."),
    attr: list[str] = typer.Option(
        [], "--attr", help="key=value a span or its resource has; repeat for several."
    ),
    order: str = typer.Option("start", "--order", help="start (newest first) or duration."),
    limit: int = typer.Option(20, "--limit", help="Most traces shown (1-1000)."),
    store: str = STORE,
    chains: Path = CHAINS,
    since: str = SINCE,
    until: str = UNTIL,
    format: ReadFormat = typer.Option(ReadFormat.table, "--format", "-f"),
    server: str = SERVER,
) -> None:
    """Find traces: newest or slowest first, filtered by chain, service, status, duration."""
    from chainmap_otel.analysis.traces import TraceQuery, search_traces

    query = TraceQuery.parse(
        chain=chain,
        service=service,
        operation=operation,
        status=status,
        min_duration_ms=min_duration_ms,
        max_duration_ms=max_duration_ms,
        attr=attr,
        order=order,
        limit=limit,
    )
    client = serve_client(store, server, chains)
    result: dict[str, Any]
    if client is not None:
        read_window(since, until)
        result = client.get_json(
            "/api/v1/traces",
            {
                "chain": chain,
                "service": service,
                "operation": operation,
                "status": status,
                "min_duration_ms": min_duration_ms,
                "max_duration_ms": max_duration_ms,
                "attr": list(attr),
                "order": order,
                "limit": limit,
                "since": since,
                "until": until,
            },
        )
    else:
        catalog = load_chains(chains)
        window = read_window(since, until)
        with opened_store(store) as trace_store:
            result = search_traces(trace_store, catalog, window, query).to_json()
    if format is ReadFormat.json:
        print_json(result)
        return
    rows = [
        (
            t["trace_id"],
            t["start"][11:19],
            f"{t['duration_ms']:.1f}",
            t["status"],
            ",".join(t["chain_ids"]) or "-",
            f"{t['root_service']}: {t['root_operation']}",
        )
        for t in result["traces"]
    ]
    print_table(
        f"{len(rows)} traces, {'slowest' if result['order'] == 'duration' else 'newest'} first "
        f"({result['since'][:19]}Z to {result['until'][:19]}Z)",
        ("trace id", "UTC", "ms", "status", "chains", "root"),
        rows,
        wrap=("chains", "root"),
    )
