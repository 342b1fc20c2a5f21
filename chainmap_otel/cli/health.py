"""``chainmap health``: rate, errors, latency, SLO burn and status per chain.

Options and sources as every read command (:mod:`chainmap_otel.cli.analysis`): the store,
or the serve API that holds it.
"""

from __future__ import annotations

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
    ReadFormat,
)
from chainmap_otel.cli.analysis import _read_json as read_json
from chainmap_otel.cli.app import command, print_json, print_table


@command("health")
def health_command(
    chain: str = typer.Option(None, "--chain", help="Only this chain."),
    store: str = STORE,
    chains: Path = CHAINS,
    since: str = SINCE,
    until: str = UNTIL,
    environment: str = ENV,
    format: ReadFormat = typer.Option(ReadFormat.table, "--format", "-f"),
    server: str = SERVER,
) -> None:
    """Rate, errors, latency, SLO burn and status per chain (from per-minute aggregates)."""
    from chainmap_otel.analysis.health import health_json, sampling_note

    result = read_json(
        store,
        chains,
        since,
        until,
        lambda s, c, w: health_json(s, c, w, chain),
        server,
        (f"{CHAIN_API}/health", {"chain": chain}),
        environment,
    )
    if format is ReadFormat.json:
        print_json(result)
        return
    rows = []
    for h in result["chains"]:
        burns = h["burn_rates"]
        rows.append(
            (
                h["chain_id"],
                h["status"],
                f"{h['traces']} ({note})"
                if (note := sampling_note(h.get("sampling")))
                else h["traces"],
                f"{h['rate_per_s']:.3f}",
                f"{h['error_ratio']:.2%}",
                h["p95_ms"],
                h["p99_ms"],
                f"{burns['1h']:.2f}x" if burns else "-",
                h["reason"].replace(
                    "every burn rate is below its multi-window alert threshold",
                    "burn rates below alert thresholds",
                ),
            )
        )
    print_table(
        f"chain health in {environment}" if environment else "chain health",
        ("chain", "status", "traces", "rate/s", "errors", "p95 ms", "p99 ms", "burn 1h", "reason"),
        rows,
        cut=("reason",),
    )
