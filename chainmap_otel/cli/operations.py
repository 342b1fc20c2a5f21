"""``chainmap operations CHAIN``: rate, errors and latency per operation inside a chain."""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence
from pathlib import Path

import typer

from chainmap_otel.cli.analysis import (
    CHAIN_API,
    CHAINS,
    ENV,
    SERVER,
    SINCE,
    STORE,
    UNTIL,
    load_chains,
    opened_store,
    read_window,
    serve_client,
)
from chainmap_otel.cli.app import OutputFormat, command, print_json, print_table

#: Eight heights of a one-line sparkline.
_BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float | None], width: int = 12) -> str:
    """The last ``width`` steps as block characters scaled to their maximum ('·' no data)."""
    shown = list(values)[-width:]
    top = max((v for v in shown if v is not None), default=0.0)
    if not top:
        return "".join("·" if v is None else _BARS[0] for v in shown)
    return "".join(
        "·" if v is None else _BARS[min(len(_BARS) - 1, int(v / top * (len(_BARS) - 1) + 0.5))]
        for v in shown
    )


@command("operations")
def operations_command(
    chain: str = typer.Argument(..., help="The chain id."),
    limit: int = typer.Option(50, "--limit", help="Operations listed, the busiest first."),
    store: str = STORE,
    chains: Path = CHAINS,
    since: str = SINCE,
    until: str = UNTIL,
    environment: str = ENV,
    format: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f"),
    server: str = SERVER,
) -> None:
    """Rate, errors and latency of each operation run as part of a chain (RED per operation)."""
    from chainmap_otel.analysis.operations import LIMIT_RANGE, chain_operations
    from chainmap_otel.analysis.timewindow import check_limit

    check_limit("limit", limit, LIMIT_RANGE)  # also before asking a serve
    client = serve_client(store, server, chains)
    if client is not None:
        read_window(since, until, environment)
        path = f"{CHAIN_API}/{urllib.parse.quote(chain, safe='')}/operations"
        params: dict[str, str | int | None] = {"limit": limit, "since": since, "until": until}
        if environment:
            params["environment"] = environment
        result = client.get_json(path, params)
    else:
        window = read_window(since, until, environment)
        with opened_store(store) as trace_store:
            found = chain_operations(trace_store, load_chains(chains), window, chain, limit)
        result = found.to_json()
    if format is OutputFormat.json:
        print_json(result)
        return
    rows = [
        (
            f"{o['service']}: {o['operation']} ({o['kind']})",
            f"{o['rate_per_s']:.3f}",
            f"{o['errors']} ({o['error_ratio']:.0%})" if o["errors"] else "0",
            f"{o['p95_ms']:.1f}",
            f"{o['p99_ms']:.1f}",
            sparkline(o["series"]["rate_per_s"]),
        )
        for o in result["operations"]
    ]
    shown = len(rows)
    more = (
        f", {shown} of {result['operations_total']}" if shown < result["operations_total"] else ""
    )
    print_table(
        f"operations of {result['chain_id']} (rate over {result['rate_seconds']:.0f} s{more})",
        ("operation", "rate/s", "errors", "p95 ms", "p99 ms", "rate trend"),
        rows,
        wrap=("operation",),
    )
