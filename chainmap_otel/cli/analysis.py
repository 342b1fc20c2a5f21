"""``chainmap topology|critical-path|health|impact|drift|discover``: read commands over stored traces.

Each opens the store (``--store``, default ``CHAINMAP_CLICKHOUSE_URL`` else the embedded
store), loads the chains (``--chains``, default ``CHAINMAP_CHAINS_FILE`` else the shipped
``chains.example.yaml``), reads ``--since``/``--until`` and prints a table or ``--format json``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from chainmap_otel.cli.app import command, console, err_console, print_json, print_table
from chainmap_otel.errors import QueryError
from chainmap_otel.tagging.active import default_catalog_path
from chainmap_otel.tagging.definitions import ChainCatalog, load_catalog

if TYPE_CHECKING:
    from chainmap_otel.analysis.timewindow import TimeWindow
    from chainmap_otel.storage.store import TraceStore


class TopologyFormat(StrEnum):
    table = "table"
    json = "json"
    mermaid = "mermaid"
    dot = "dot"
    grafana = "grafana"
    text = "text"


class ReadFormat(StrEnum):
    table = "table"
    json = "json"


class DiscoverFormat(StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"


STORE = typer.Option(
    None,
    "--store",
    help="Trace store URL (default: CHAINMAP_CLICKHOUSE_URL, else the embedded store).",
)
CHAINS = typer.Option(
    None, "--chains", help="Chains YAML (default: CHAINMAP_CHAINS_FILE, else chains.example.yaml)."
)
SINCE = typer.Option(
    None, "--since", help="Window start: ISO-8601 or relative (15m, 2h, 7d). Default 1h."
)
UNTIL = typer.Option(None, "--until", help="Window end: ISO-8601 or relative. Default now.")


def load_chains(path: Path | None) -> ChainCatalog:
    return load_catalog(path if path is not None else default_catalog_path())


@contextmanager
def opened_store(url: str | None) -> Iterator[Any]:
    """The store, checked to hold spans; a bad URL or an empty store is a QueryError."""
    from chainmap_otel.storage.store import open_store

    try:
        store = open_store(url, create_database=False)
    except ValueError as exc:
        raise QueryError(str(exc)) from None
    try:
        problem = store.traces_location_problem()
        if problem is not None:
            raise QueryError(problem)
        if not store.query(f"SELECT count() FROM {store.database}.otel_traces").result_rows[0][0]:
            raise QueryError(
                f"the store {store.url_for_display} holds no spans yet: send traces to it first"
            )
        yield store
    finally:
        store.close()


def _window(since: str | None, until: str | None) -> Any:
    from chainmap_otel.analysis.timewindow import parse_window

    return parse_window(since, until)


def _read_json(
    store: str | None,
    chains: Path | None,
    since: str | None,
    until: str | None,
    format: ReadFormat,
    compute: Callable[[TraceStore, ChainCatalog, TimeWindow], dict[str, Any]],
) -> dict[str, Any] | None:
    """Run one analysis; print it as JSON and return None with ``--format json``."""
    catalog = load_chains(chains)
    window = _window(since, until)
    with opened_store(store) as trace_store:
        result = compute(trace_store, catalog, window)
    if format is ReadFormat.json:
        print_json(result)
        return None
    return result


@command("topology")
def topology_command(
    chain: str = typer.Option(None, "--chain", help="Only the traces of this chain."),
    store: str = STORE,
    chains: Path = CHAINS,
    since: str = SINCE,
    until: str = UNTIL,
    format: TopologyFormat = typer.Option(TopologyFormat.table, "--format", "-f"),
    servicegraph_compat: bool = typer.Option(
        False,
        "--servicegraph-compat",
        help="Name database and virtual nodes as the servicegraph connector's defaults do "
        "(default: CHAINMAP_SERVICEGRAPH_COMPAT).",
    ),
) -> None:
    """Service graph (servicegraph semantics) of a chain or of all traffic."""
    from chainmap_otel.analysis import render
    from chainmap_otel.analysis.naming import ServiceGraphNaming
    from chainmap_otel.analysis.topology import topology

    catalog = load_chains(chains)
    window = _window(since, until)
    naming = ServiceGraphNaming.connector() if servicegraph_compat else None
    with opened_store(store) as trace_store:
        topo = topology(trace_store, catalog, window, chain, naming)
    if format is TopologyFormat.json:
        print_json(topo.to_json())
    elif format is TopologyFormat.grafana:
        print_json(render.to_grafana(topo))
    elif format in (TopologyFormat.mermaid, TopologyFormat.dot, TopologyFormat.text):
        writer = {"mermaid": render.to_mermaid, "dot": render.to_dot, "text": render.to_text}[
            format.value
        ]
        sys.stdout.write(writer(topo))
    else:
        rows = [
            (
                e.source,
                e.target,
                e.connection_type or "-",
                e.calls,
                e.errors,
                e.p50_ms,
                e.p95_ms,
                e.p99_ms,
            )
            for e in topo.edges
        ]
        print_table(
            f"topology: {chain or 'all traffic'}",
            ("source", "target", "type", "calls", "errors", "p50 ms", "p95 ms", "p99 ms"),
            rows,
        )


@command("critical-path")
def critical_path_command(
    trace_id: str = typer.Argument(None, help="A trace id (32 hex characters)."),
    chain: str = typer.Option(None, "--chain", help="Aggregate over this chain's traces instead."),
    sample_cap: int = typer.Option(
        2000, "--sample-cap", min=1, help="Traces sampled per aggregate."
    ),
    store: str = STORE,
    chains: Path = CHAINS,
    since: str = SINCE,
    until: str = UNTIL,
    format: ReadFormat = typer.Option(ReadFormat.table, "--format", "-f"),
) -> None:
    """Critical path of one trace, or where a chain's latency goes (--chain)."""
    from chainmap_otel.analysis.critical_path import chain_critical_path, critical_path

    if (trace_id is None) == (chain is None):
        raise QueryError("give either a TRACE_ID or --chain ID (not both)")
    if trace_id is not None:
        with opened_store(store) as trace_store:
            result = critical_path(trace_store, trace_id)
        if format is ReadFormat.json:
            print_json(result)
            return
        start = result["sections"][0]["start_unix_nano"] if result["sections"] else 0
        rows = [
            (
                s["service"],
                s["name"],
                f"{(s['start_unix_nano'] - start) / 1e6:.3f}",
                f"{(s['end_unix_nano'] - s['start_unix_nano']) / 1e6:.3f}",
                s["span_id"],
            )
            for s in result["sections"]
        ]
        print_table(
            f"critical path of {result['trace_id']}",
            ("service", "operation", "at ms", "ms", "span"),
            rows,
        )
        return
    aggregate = _read_json(
        store,
        chains,
        since,
        until,
        format,
        lambda s, c, w: chain_critical_path(s, c, chain, w, sample_cap).to_json(),
    )
    if aggregate is None:
        return
    for key, title in (("all", "all traces"), ("slowest_5pct", "slowest 5 %")):
        rows = [
            (o["service"], o["name"], f"{o['share']:.1%}", o["mean_ms"])
            for o in aggregate[key]["operations"]
        ]
        print_table(
            f"{chain}: critical-path share, {title} ({aggregate[key]['traces']} traces)",
            ("service", "operation", "share", "mean ms/trace"),
            rows,
        )


@command("health")
def health_command(
    chain: str = typer.Option(None, "--chain", help="Only this chain."),
    store: str = STORE,
    chains: Path = CHAINS,
    since: str = SINCE,
    until: str = UNTIL,
    format: ReadFormat = typer.Option(ReadFormat.table, "--format", "-f"),
) -> None:
    """Rate, errors, latency, SLO burn and status per chain (from per-minute aggregates)."""
    from chainmap_otel.analysis.health import health_json

    result = _read_json(
        store, chains, since, until, format, lambda s, c, w: health_json(s, c, w, chain)
    )
    if result is None:
        return
    rows = []
    for h in result["chains"]:
        burns = h["burn_rates"]
        rows.append(
            (
                h["chain_id"],
                h["status"],
                h["traces"],
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
        "chain health",
        ("chain", "status", "traces", "rate/s", "errors", "p95 ms", "p99 ms", "burn 1h", "reason"),
        rows,
    )


@command("impact")
def impact_command(
    node: str = typer.Argument(..., help="A service, database or virtual node id."),
    store: str = STORE,
    chains: Path = CHAINS,
    since: str = SINCE,
    until: str = UNTIL,
    format: ReadFormat = typer.Option(ReadFormat.table, "--format", "-f"),
) -> None:
    """Chains that depend on NODE, directly or transitively, with their status."""
    from chainmap_otel.analysis.impact import impact

    result = _read_json(store, chains, since, until, format, lambda s, c, w: impact(s, c, w, node))
    if result is None:
        return
    rows = [
        (c["chain_id"], c["criticality"], c["relation"], c["status"], " -> ".join(c["path"]))
        for c in result["chains"]
    ]
    print_table(
        f"chains affected by {node}", ("chain", "criticality", "relation", "status", "path"), rows
    )


@command("drift")
def drift_command(
    chain: str = typer.Option(None, "--chain", help="Only this chain."),
    history: str = typer.Option(
        "7d", "--history", help="How far back to look for missing edges' last sighting."
    ),
    store: str = STORE,
    chains: Path = CHAINS,
    since: str = SINCE,
    until: str = UNTIL,
    format: ReadFormat = typer.Option(ReadFormat.table, "--format", "-f"),
) -> None:
    """Observed edges versus each chain's expected edges: new and missing."""
    from chainmap_otel.analysis.drift import drift

    lookback = _window(history, until)
    result = _read_json(
        store, chains, since, until, format, lambda s, c, w: drift(s, c, w, chain, lookback)
    )
    if result is None:
        return
    rows = []
    for c in result["chains"]:
        rows += [
            (c["chain_id"], "new", f"{e['source']} -> {e['target']}", e["calls"], e["last_seen"])
            for e in c["new"]
        ]
        rows += [
            (
                c["chain_id"],
                "missing",
                f"{e['source']} -> {e['target']}",
                0,
                e["last_seen"] or "never",
            )
            for e in c["missing"]
        ]
        if not c["drifted"]:
            rows.append((c["chain_id"], "ok", "as expected", "", ""))
    print_table("topology drift", ("chain", "change", "edge", "calls", "last seen"), rows)


@command("discover")
def discover_command(
    min_traces: int = typer.Option(10, "--min-traces", min=1, help="Least traces for a proposal."),
    output: Path = typer.Option(
        None, "--output", "-o", help="Write the proposed chains YAML here."
    ),
    store: str = STORE,
    chains: Path = CHAINS,
    since: str = SINCE,
    until: str = UNTIL,
    format: DiscoverFormat = typer.Option(DiscoverFormat.table, "--format", "-f"),
    save: bool = typer.Option(
        False, "--save", help="Keep the proposals as registry candidates (`registry accept`)."
    ),
) -> None:
    """Propose chain definitions for recurring traces that no chain covers."""
    from rich.progress import Progress

    from chainmap_otel.analysis.discovery import discover, proposals_yaml

    catalog = load_chains(chains)
    window = _window(since, until)
    with opened_store(store) as trace_store, Progress(console=err_console, transient=True) as bar:
        task = bar.add_task("clustering uncovered traces", total=None)
        found = discover(
            trace_store,
            catalog,
            window,
            min_traces,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    text = proposals_yaml(found)
    if save:
        from chainmap_otel.cli.registry import save_candidates

        save_candidates(found, None)
    if output is not None:
        output.write_text(text, encoding="utf-8")
        err_console.print(
            f"wrote {len(found.proposals)} proposed chains to {output}", highlight=False
        )
    if format is DiscoverFormat.json:
        print_json(found.to_json())
    elif format is DiscoverFormat.yaml:
        sys.stdout.write(text)
    else:
        rows = [
            (
                p["id"],
                p["service"],
                p["entry"],
                p["traces"],
                f"{p['share_of_traffic']:.1%}",
                p["p95_ms"],
                f"{p['error_ratio']:.2%}",
                len(p["edges"]),
            )
            for p in found.proposals
        ]
        print_table(
            f"{found.uncovered} of {found.traces} traces in no chain",
            ("id", "service", "entry", "traces", "share", "p95 ms", "errors", "edges"),
            rows,
        )
        if not found.proposals:
            console.print(f"no entry reaches --min-traces {min_traces}", highlight=False)
