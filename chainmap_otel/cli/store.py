"""``chainmap schema``, ``chainmap ingest`` and ``chainmap serve``: the trace store's commands."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from chainmap_otel.cli.app import app, command, console, err_console, fail, print_json

schema_app = typer.Typer(help="The ClickHouse schema: otel_traces and chainmap's aggregates.")
app.add_typer(schema_app, name="schema", no_args_is_help=True)

STORE_HELP = "Trace store URL (chdb:///path or http(s)://user:pass@host:8123/db); default $CHAINMAP_CLICKHOUSE_URL, else the embedded store."


@schema_app.command("apply")
def schema_apply(
    store: str | None = typer.Option(None, "--store", help=STORE_HELP),
    cluster: str | None = typer.Option(
        None, "--cluster", help="Create ON CLUSTER with replicated engines and Distributed tables."
    ),
    ttl_days: int | None = typer.Option(
        None,
        "--ttl-days",
        help="Keep rows this many days (0: forever); default $CHAINMAP_TTL_DAYS.",
    ),
    chains: Path | None = typer.Option(
        None,
        "--chains",
        help="Chains YAML the edge rollup classifies untagged spans with "
        "(default: CHAINMAP_CHAINS_FILE, else chains.example.yaml).",
    ),
) -> None:
    """Create or upgrade the schema; backfills chainmap's aggregates from spans already stored."""
    from chainmap_otel.analysis.rollups.refresh import apply_schema_with_rollup
    from chainmap_otel.cli.analysis import load_chains
    from chainmap_otel.cli.app import friendly_errors
    from chainmap_otel.storage.store import open_store

    with friendly_errors(), open_store(store) as trace_store:
        report = apply_schema_with_rollup(
            trace_store,
            load_chains(chains),
            cluster=cluster,
            ttl_days=ttl_days,
            progress=lambda line: console.print(line, highlight=False),
        )
    if report.backfilled_spans:
        console.print(f"backfilled aggregates from {report.backfilled_spans} stored spans")


@schema_app.command("show")
def schema_show(
    database: str | None = typer.Option(
        None, "--database", help="Database name; default from the store URL."
    ),
    cluster: str | None = typer.Option(None, "--cluster", help="Show the ON CLUSTER variant."),
    ttl_days: int | None = typer.Option(None, "--ttl-days"),
) -> None:
    """Print the DDL that `schema apply` runs."""
    from chainmap_otel.cli.app import friendly_errors
    from chainmap_otel.storage.schema import show_schema

    with friendly_errors():
        sys.stdout.write(show_schema(database, cluster, ttl_days))


@command("ingest")
def ingest(
    paths: list[Path] = typer.Argument(
        ..., help="OTLP JSON (.json/.jsonl) or protobuf (.pb/.binpb) files or folders."
    ),
    store: str | None = typer.Option(None, "--store", help=STORE_HELP),
    json_output: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Load OTLP trace files (the Collector file exporter's format included) into the store."""
    from chainmap_otel.analysis.rollups.refresh import rewind_rollups
    from chainmap_otel.ingest.files import FileReport, ingest_files
    from chainmap_otel.storage.schema import ensure_schema
    from chainmap_otel.storage.store import open_store

    def show(report: FileReport) -> None:
        if json_output:
            return
        line = f"{report.path}: {report.spans_stored} spans stored"
        if report.spans_rejected:
            line += (
                f", {report.spans_rejected} rejected ({'; '.join(report.rejection_reasons[:3])})"
            )
        console.print(line, highlight=False)
        for error in report.errors:
            err_console.print(
                f"[bold red]error:[/] {report.path}: {error}", highlight=False, soft_wrap=True
            )

    with open_store(store) as trace_store:
        ensure_schema(trace_store)
        result = ingest_files(trace_store, paths, progress=show)
        if result.earliest_ns is not None:
            # Spans stored below a rollup's watermark: every rollup is redone from there.
            rewind_rollups(trace_store, result.earliest_ns)
    if json_output:
        print_json(result.as_dict())
    else:
        console.print(
            f"total: {result.spans_stored} spans stored, {result.spans_rejected} rejected, "
            f"{len(result.files)} files",
            highlight=False,
        )
    if not result.ok:
        raise typer.Exit(1)


@command("serve")
def serve(
    store: str | None = typer.Option(None, "--store", help=STORE_HELP),
    host: str | None = typer.Option(
        None, "--host", help="Listen address; default $CHAINMAP_SERVE_HOST (127.0.0.1)."
    ),
    http_port: int | None = typer.Option(
        None, "--http-port", help="OTLP/HTTP, API and web view port; default 4318."
    ),
    grpc_port: int | None = typer.Option(
        None, "--grpc-port", help="OTLP/gRPC port; default 4317, 0 disables it."
    ),
    max_body_bytes: int | None = typer.Option(None, "--max-body-bytes"),
    queue_spans: int | None = typer.Option(None, "--queue-spans"),
    no_schema: bool = typer.Option(False, "--no-schema", help="Do not create missing tables."),
    chains: Path | None = typer.Option(
        None,
        "--chains",
        help="Chains YAML the API and web view analyse with; default $CHAINMAP_CHAINS_FILE, "
        "else the packaged chains.example.yaml.",
    ),
) -> None:
    """Receive OTLP (HTTP and gRPC) into the store and serve the chain API and web view until Ctrl-C."""
    from chainmap_otel.server.app import ServeAddresses, run_server

    def ready(addresses: ServeAddresses) -> None:
        console.print(
            f"chainmap serve: OTLP/HTTP, API and web view on {addresses.http}", highlight=False
        )
        if addresses.grpc:
            console.print(f"chainmap serve: OTLP/gRPC on {addresses.grpc}", highlight=False)
        console.print("press Ctrl-C to stop", highlight=False)

    try:
        run_server(
            store,
            host,
            http_port,
            grpc_port,
            max_body_bytes=max_body_bytes,
            queue_spans=queue_spans,
            apply_schema=False if no_schema else None,
            chains=chains,
            on_ready=ready,
        )
    except (OSError, ValueError) as exc:
        fail(str(exc))
