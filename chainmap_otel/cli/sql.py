"""``chainmap sql ...``: the SQL and Grafana dashboards chainmap generates from a chains file."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

from chainmap_otel.cli.analysis import CHAINS, load_chains
from chainmap_otel.cli.app import app, console, friendly_errors
from chainmap_otel.errors import QueryError

sql_app = typer.Typer(
    help="SQL and Grafana dashboards generated from the chain rules.", no_args_is_help=True
)
app.add_typer(sql_app, name="sql")


class MembershipTable(StrEnum):
    otel_traces = "otel_traces"
    chainmap_chain_minute = "chainmap_chain_minute"
    chainmap_trace_summary = "chainmap_trace_summary"


def _default_database() -> str:
    from chainmap_otel import config
    from chainmap_otel.storage.location import DEFAULT_DATABASE, parse_store_url

    url = config.env_str(config.CHAINMAP_CLICKHOUSE_URL)
    return parse_store_url(url).database if url else DEFAULT_DATABASE


@sql_app.command("membership")
def membership(
    chains: Path | None = CHAINS,
    table: MembershipTable = typer.Option(
        MembershipTable.otel_traces,
        "--table",
        help="Rows the rules read: spans, chainmap_chain_minute or chainmap_trace_summary "
        "(merged root columns).",
    ),
) -> None:
    """Print the ClickHouse expression (Array(String)) of the chains whose entry rules match a
    row: how untagged traces are assigned to chains, for your own queries and dashboards."""
    from chainmap_otel.grafana.queries import membership_expression

    with friendly_errors():
        expression = membership_expression(load_chains(chains), table.value)
    typer.echo(expression)


@sql_app.command("dashboards")
def dashboards(
    chains: Path | None = CHAINS,
    database: str | None = typer.Option(
        None,
        "--database",
        help="ClickHouse database of otel_traces and chainmap's tables (default: the one in "
        "CHAINMAP_CLICKHOUSE_URL, else the store's default, as for --store).",
    ),
    output_dir: Path = typer.Option(
        Path("grafana/dashboards"), "--output-dir", "-o", help="Where the JSON files go."
    ),
) -> None:
    """Write the Grafana dashboards (chains overview, chain topology, where the time goes,
    traces) for a chains file; re-run whenever the chains change."""
    from chainmap_otel.grafana.dashboards import write
    from chainmap_otel.storage.location import validate_identifier

    with friendly_errors():
        try:
            db = validate_identifier(database or _default_database(), "--database")
        except ValueError as exc:
            raise QueryError(str(exc)) from None
        catalog = load_chains(chains)
        paths = write(catalog, db, output_dir)
    for path in paths:
        console.print(f"wrote {path}", highlight=False)
    console.print(
        f"{len(paths)} dashboards for {len(catalog)} chains of {catalog.source} on database {db}",
        highlight=False,
    )
