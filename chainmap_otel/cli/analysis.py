"""``chainmap topology|critical-path|impact|drift|discover``: read commands (``health`` is in
:mod:`chainmap_otel.cli.health`, ``operations`` and ``traces`` in their own modules).

They only read; ``chainmap rollup refresh`` (also here) writes the edge rollup topology
reads, which ``chainmap serve`` otherwise keeps current on its own.

Each opens the store (``--store``, default ``CHAINMAP_CLICKHOUSE_URL`` else the embedded
store), loads the chains (``--chains``, default ``CHAINMAP_CHAINS_FILE`` else the shipped
``chains.example.yaml``), reads ``--since``/``--until`` and prints a table or ``--format json``.
With ``--server URL``, or when a running ``chainmap serve`` holds the embedded store, the
same JSON comes from that server's API instead (:mod:`chainmap_otel.cli.remote`), and the
server's chains file is the one analysed.
"""

from __future__ import annotations

import sys
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from chainmap_otel import config
from chainmap_otel.cli.app import app, command, console, err_console, fail, print_json, print_table
from chainmap_otel.cli.paths import print_trace_path
from chainmap_otel.errors import QueryError
from chainmap_otel.tagging.active import default_catalog_path
from chainmap_otel.tagging.definitions import ChainCatalog, load_catalog

if TYPE_CHECKING:
    from chainmap_otel.analysis.timewindow import TimeWindow
    from chainmap_otel.analysis.topology import Topology
    from chainmap_otel.cli.remote import ServeClient
    from chainmap_otel.storage.store import TraceStore


class TopologyFormat(StrEnum):
    table = "table"
    json = "json"
    mermaid = "mermaid"
    dot = "dot"
    grafana = "grafana"
    text = "text"
    tsv = "tsv"


class ReadFormat(StrEnum):
    table = "table"
    json = "json"
    tsv = "tsv"


class DiscoverFormat(StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"
    tsv = "tsv"


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
ENV = typer.Option(
    None,
    "--env",
    help="Only this environment (deployment.environment.name, else deployment.environment). "
    "Default: every environment.",
)
SERVER = typer.Option(
    None,
    "--server",
    help="Read through this chainmap serve API (default: the serve holding the embedded store).",
)
CHAIN_API = "/api/v1/chains"


def load_chains(path: Path | None) -> ChainCatalog:
    return load_catalog(path if path is not None else default_catalog_path())


def open_existing_store(url: str | None) -> TraceStore:
    """The store at ``url`` (never created by a read); a malformed URL ends the command."""
    from chainmap_otel.storage.store import open_store

    try:
        return open_store(url, create_database=False)
    except ValueError as exc:
        fail(str(exc))


@contextmanager
def opened_store(url: str | None) -> Iterator[Any]:
    """The store, checked to hold spans analysis can read (a QueryError saying why not)."""
    store = open_existing_store(url)
    try:
        problem = store.traces_location_problem()
        if problem is None and not store.holds_spans():
            problem = (
                f"the store {store.url_for_display} holds no spans yet: send traces to it first"
            )
        if problem is not None:
            raise QueryError(problem)
        yield store.with_query_timeout(config.env_float(config.CHAINMAP_QUERY_TIMEOUT_S))
    finally:
        store.close()


def read_window(since: str | None, until: str | None, environment: str | None = None) -> Any:
    from chainmap_otel.analysis.timewindow import parse_window

    return parse_window(since, until, environment=environment)


def serve_client(store: str | None, server: str | None, chains: Path | None) -> ServeClient | None:
    """The serve API to read through, if any; says on stderr that ``--chains`` is not used."""
    from chainmap_otel.cli.remote import resolve_server

    client = resolve_server(store, server)
    if client is not None and chains is not None:
        err_console.print(
            f"note: reading through chainmap serve at {client.url}, which analyses with its "
            "own chains file; --chains is not used",
            highlight=False,
            soft_wrap=True,
        )
    return client


def _read_json(
    store: str | None,
    chains: Path | None,
    since: str | None,
    until: str | None,
    compute: Callable[[TraceStore, ChainCatalog, TimeWindow], dict[str, Any]],
    server: str | None,
    api: tuple[str, dict[str, Any]],
    environment: str | None = None,
) -> dict[str, Any]:
    """The JSON of one analysis: computed on the store, or GET ``api`` = (path, params)
    from the serve API that holds it."""
    client = serve_client(store, server, chains)
    if client is not None:
        read_window(since, until, environment)
        params = {**api[1], "since": since, "until": until, "environment": environment}
        result: dict[str, Any] = client.get_json(api[0], params)
        return result
    catalog = load_chains(chains)
    window = read_window(since, until, environment)
    with opened_store(store) as trace_store:
        return compute(trace_store, catalog, window)


def _topology_from_json(data: dict[str, Any]) -> Topology:
    """The API's topology JSON as a Topology (for the text tree the API does not render)."""
    from chainmap_otel.analysis.timewindow import parse_window
    from chainmap_otel.analysis.topology import Edge, Node, Topology

    def ns(text: str | None) -> int:
        return (
            int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1e9)
            if text
            else 0
        )

    window = parse_window(
        data["window"]["since"],
        data["window"]["until"],
        environment=data["window"].get("environment"),
    )
    edges = [
        Edge(
            e["source"],
            e["target"],
            e["connection_type"],
            e["calls"],
            e["errors"],
            e["p50_ms"],
            e["p95_ms"],
            e["p99_ms"],
            ns(e["first_seen"]),
            ns(e["last_seen"]),
            stored_calls=e.get("stored_calls"),
            stored_errors=e.get("stored_errors"),
        )
        for e in data["edges"]
    ]
    nodes = [Node(n["id"], n["type"], n["calls"], n["errors"]) for n in data["nodes"]]
    return Topology(data["chain_id"], window, edges, nodes)


@command("topology")
def topology_command(
    chain: str = typer.Option(None, "--chain", help="Only the traces of this chain."),
    store: str = STORE,
    chains: Path = CHAINS,
    since: str = SINCE,
    until: str = UNTIL,
    env: str = ENV,
    format: TopologyFormat = typer.Option(TopologyFormat.table, "--format", "-f"),
    servicegraph_compat: bool = typer.Option(
        False,
        "--servicegraph-compat",
        help="Name database and virtual nodes as the servicegraph connector's defaults do "
        "(default: CHAINMAP_SERVICEGRAPH_COMPAT).",
    ),
    server: str = SERVER,
) -> None:
    """Service graph (servicegraph semantics) of a chain or of all traffic."""
    from chainmap_otel.analysis import render
    from chainmap_otel.analysis.naming import ServiceGraphNaming
    from chainmap_otel.analysis.topology import topology

    client = serve_client(store, server, chains)
    if client is not None and servicegraph_compat:
        fail(
            f"--servicegraph-compat applies to reads of the store itself; chainmap serve at "
            f"{client.url} names nodes by its own CHAINMAP_SERVICEGRAPH_* settings"
        )
    if client is not None:
        read_window(since, until, env)
        path = f"{CHAIN_API}/{chain}/topology" if chain else f"{CHAIN_API}/topology"
        params: dict[str, Any] = {"since": since, "until": until, "environment": env}
        if format in (TopologyFormat.mermaid, TopologyFormat.dot):
            sys.stdout.write(client.get_text(path, {**params, "format": format.value}))
            return
        if format is TopologyFormat.grafana:
            print_json(client.get_json(path, {**params, "format": "grafana"}))
            return
        data = client.get_json(path, {**params, "format": "json"})
        topo = _topology_from_json(data)
    else:
        catalog = load_chains(chains)
        window = read_window(since, until, env)
        naming = ServiceGraphNaming.connector() if servicegraph_compat else None
        with opened_store(store) as trace_store:
            topo = topology(trace_store, catalog, window, chain, naming)
        data = topo.to_json()
    if format is TopologyFormat.json:
        print_json(data)
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
                e["source"],
                e["target"],
                _CONNECTION_LABELS.get(e["connection_type"], e["connection_type"]),
                e["calls"],
                e["errors"],
                _ms(e["p50_ms"]),
                _ms(e["p95_ms"]),
                _ms(e["p99_ms"]),
            )
            for e in data["edges"]
        ]
        print_table(
            f"topology: {chain or 'all traffic'}{f' in {env}' if env else ''} (latency in ms"
            + ("; calls estimated from sampled traces)" if data.get("sampled") else ")"),
            ("source", "target", "type", "calls", "errors", "p50", "p95", "p99"),
            rows,
            wrap=("source", "target"),
        )


#: Connection types as the topology table shows them (the JSON keeps the full names).
_CONNECTION_LABELS = {"": "-", "virtual_node": "virtual", "messaging_system": "messaging"}


def _ms(value: float) -> str:
    """Milliseconds short enough for an 80-column table: 1 decimal below 100, else whole."""
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


@command("critical-path")
def critical_path_command(
    trace_id: str = typer.Argument(None, help="A trace id (32 hex characters)."),
    chain: str = typer.Option(None, "--chain", help="Aggregate over this chain's traces instead."),
    sample_cap: int = typer.Option(2000, "--sample-cap", help="Traces sampled per aggregate."),
    store: str = STORE,
    chains: Path = CHAINS,
    since: str = SINCE,
    until: str = UNTIL,
    env: str = ENV,
    format: ReadFormat = typer.Option(ReadFormat.table, "--format", "-f"),
    server: str = SERVER,
) -> None:
    """Critical path of one trace, or where a chain's latency goes (--chain)."""
    from chainmap_otel.analysis.critical_path import chain_critical_path, critical_path
    from chainmap_otel.analysis.instances import end_to_end_line
    from chainmap_otel.analysis.timewindow import SAMPLE_CAP_RANGE, check_limit

    check_limit("sample_cap", sample_cap, SAMPLE_CAP_RANGE)
    if (trace_id is None) == (chain is None):
        fail("give either a TRACE_ID or --chain ID (not both)")
    if trace_id is not None:
        client = serve_client(store, server, None)
        if client is not None:
            path = f"{CHAIN_API}/traces/{urllib.parse.quote(trace_id, safe='')}/critical-path"
            result = client.get_json(path)
        else:
            with opened_store(store) as trace_store:
                result = critical_path(trace_store, trace_id)
        if format is ReadFormat.json:
            print_json(result)
            return
        print_trace_path(result)
        return
    aggregate = _read_json(
        store,
        chains,
        since,
        until,
        lambda s, c, w: chain_critical_path(s, c, chain, w, sample_cap).to_json(),
        server,
        (
            f"{CHAIN_API}/{urllib.parse.quote(chain, safe='')}/critical-path",
            {"sample_cap": sample_cap},
        ),
        env,
    )
    if format is ReadFormat.json:
        print_json(aggregate)
        return
    for key, title in (("all", "all traces"), ("slowest_5pct", "slowest 5 %")):
        rows = [
            (o["service"], o["name"], f"{o['share']:.1%}", o["mean_ms"])
            for o in aggregate[key]["operations"]
        ]
        print_table(
            f"{chain}: critical-path share, {title} ({aggregate[key]['traces']} traces)",
            ("service", "operation", "share", "ms/trace"),
            rows,
            wrap=("service", "operation"),
        )
    through = end_to_end_line(aggregate.get("through_queues", {}))
    if through:
        typer.echo(f"{chain}: {through}")


@command("impact")
def impact_command(
    node: str = typer.Argument(..., help="A service, database or virtual node id."),
    store: str = STORE,
    chains: Path = CHAINS,
    since: str = SINCE,
    until: str = UNTIL,
    format: ReadFormat = typer.Option(ReadFormat.table, "--format", "-f"),
    server: str = SERVER,
) -> None:
    """Chains that depend on NODE, directly or transitively, with their status."""
    from chainmap_otel.analysis.impact import impact

    result = _read_json(
        store,
        chains,
        since,
        until,
        lambda s, c, w: impact(s, c, w, node),
        server,
        (f"{CHAIN_API}/impact/{urllib.parse.quote(node, safe='')}", {}),
    )
    if format is ReadFormat.json:
        print_json(result)
        return
    rows = [
        (c["chain_id"], c["criticality"], c["relation"], c["status"], " -> ".join(c["path"]))
        for c in result["chains"]
    ]
    print_table(
        f"chains affected by {node}",
        ("chain", "criticality", "relation", "status", "path"),
        rows,
        cut=("path",),
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
    server: str = SERVER,
) -> None:
    """Observed edges versus each chain's expected edges: new and missing."""
    from chainmap_otel.analysis.drift import drift, history_window

    lookback = history_window(history, until)
    result = _read_json(
        store,
        chains,
        since,
        until,
        lambda s, c, w: drift(s, c, w, chain, lookback),
        server,
        (f"{CHAIN_API}/drift", {"chain": chain, "history": history}),
    )
    if format is ReadFormat.json:
        print_json(result)
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
    print_table(
        "topology drift", ("chain", "change", "edge", "calls", "last seen"), rows, wrap=("edge",)
    )


@command("discover")
def discover_command(
    min_traces: int = typer.Option(10, "--min-traces", help="Least traces for a proposal."),
    output: Path = typer.Option(
        None, "--output", "-o", help="Write the proposed chains YAML here."
    ),
    store: str = STORE,
    chains: Path = CHAINS,
    since: str = SINCE,
    until: str = UNTIL,
    format: DiscoverFormat = typer.Option(DiscoverFormat.table, "--format", "-f"),
    server: str = SERVER,
    save: bool = typer.Option(
        False, "--save", help="Keep the proposals as registry candidates (`registry accept`)."
    ),
) -> None:
    """Propose chain definitions for recurring traces that no chain covers."""
    from rich.progress import Progress

    from chainmap_otel.analysis.discovery import discover, proposals_yaml
    from chainmap_otel.analysis.timewindow import MIN_TRACES_RANGE, check_limit

    check_limit("min_traces", min_traces, MIN_TRACES_RANGE)
    client = serve_client(store, server, chains)
    if client is not None and save:
        fail(
            f"--save clusters the store itself; chainmap serve at {client.url} holds it: stop "
            "it, or save from its API's proposals with `chainmap discover --format yaml -o FILE` "
            "and `chainmap registry push FILE`"
        )
    if client is not None:
        read_window(since, until)
        params: dict[str, Any] = {"min_traces": min_traces, "since": since, "until": until}
        data = client.get_json(f"{CHAIN_API}/discover", {**params, "format": "json"})
        need_yaml = output is not None or format is DiscoverFormat.yaml
        text = (
            client.get_text(f"{CHAIN_API}/discover", {**params, "format": "yaml"})
            if need_yaml
            else ""
        )
    else:
        catalog = load_chains(chains)
        window = read_window(since, until)
        with (
            opened_store(store) as trace_store,
            Progress(console=err_console, transient=True) as bar,
        ):
            task = bar.add_task("clustering uncovered traces", total=None)
            found = discover(
                trace_store,
                catalog,
                window,
                min_traces,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        data = found.to_json()
        text = proposals_yaml(found)
        if save:
            from chainmap_otel.cli.registry import save_candidates

            save_candidates(found, None)
    if output is not None:
        output.write_text(text, encoding="utf-8")
        err_console.print(
            f"wrote {len(data['proposals'])} proposed chains to {output}",
            highlight=False,
            markup=False,
        )
    if format is DiscoverFormat.json:
        print_json(data)
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
            for p in data["proposals"]
        ]
        print_table(
            f"{data['uncovered_traces']} of {data['traces']} traces in no chain",
            ("id", "service", "entry", "traces", "share", "p95 ms", "errors", "edges"),
            rows,
            wrap=("service", "entry"),
        )
        if not data["proposals"]:
            console.print(f"no entry reaches --min-traces {min_traces}", highlight=False)


rollup_app = typer.Typer(
    help="The rollups analysis reads: edges, inferred entries, merged traces (chainmap serve "
    "keeps them current)."
)
app.add_typer(rollup_app, name="rollup", no_args_is_help=True)


@rollup_app.command("refresh")
def rollup_refresh(store: str = STORE, chains: Path = CHAINS) -> None:
    """Roll up the edges, inferred chain entries and merged traces of closed minutes now
    (backfills on first use); reads never do this."""
    from chainmap_otel.analysis.rollups.refresh import refresh_rollups
    from chainmap_otel.cli.app import friendly_errors

    with friendly_errors():
        catalog = load_chains(chains)
        with open_existing_store(store) as trace_store:
            report = refresh_rollups(
                trace_store, catalog, progress=lambda line: console.print(line, highlight=False)
            )
    console.print(
        f"edge rollup: {report.slices} slices rolled up in {report.seconds:.1f} s",
        highlight=False,
    )
