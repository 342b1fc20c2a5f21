"""``chainmap traces``: find traces by chain, service, operation, status, duration, attributes;
``chainmap traces compare``: two traces span by span.

The library calls are :func:`chainmap_otel.analysis.traces.search_traces` and
:func:`chainmap_otel.analysis.compare.compare_traces`; through a running ``chainmap serve``
(``--server`` or the embedded store's holder) they are ``GET /api/v1/traces`` and
``GET /api/v1/traces/compare``, which answer the same JSON.
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
from chainmap_otel.cli.app import app, console, friendly_errors, print_json, print_table

traces_app = typer.Typer(add_completion=False, no_args_is_help=False)
app.add_typer(traces_app, name="traces")


@traces_app.callback(invoke_without_command=True)
def traces_command(
    ctx: typer.Context,
    chain: str = typer.Option(None, "--chain", help="Traces of this chain."),
    service: str = typer.Option(None, "--service", help="With a span in this service."),
    operation: str = typer.Option(
        None, "--operation", help="With a span of this name or http.route (in --service)."
    ),
    status: str = typer.Option(None, "--status", help="error (any span failed) or ok."),
    chain_status: str = typer.Option(
        None, "--chain-status", help="error (the chain's entry span failed) or ok; with --chain."
    ),
    min_duration_ms: float = typer.Option(
        None,
        "--min-duration-ms",
        help="At least this long: the span matching --service/--operation/--attr, else the "
        "chain's entry span, else the trace.",
    ),
    max_duration_ms: float = typer.Option(
        None, "--max-duration-ms", help="At most this long (the same span as --min-duration-ms)."
    ),
    attr: list[str] = typer.Option(
        [],
        "--attr",
        help="On a span or its resource: key=value, key!=value, key=~regex (RE2) or key "
        "(exists); repeat for several (at most 16).",
    ),
    order: str = typer.Option(
        "start", "--order", help="start (newest first) or duration (a chain's entry span)."
    ),
    limit: int = typer.Option(20, "--limit", help="Most traces shown (1-1000)."),
    store: str = STORE,
    chains: Path = CHAINS,
    since: str = SINCE,
    until: str = UNTIL,
    env: str = ENV,
    format: ReadFormat = typer.Option(ReadFormat.table, "--format", "-f"),
    server: str = SERVER,
) -> None:
    """Find traces: newest or slowest first, filtered by chain, service, status, duration
    (traces compare: two traces span by span)."""
    if ctx.invoked_subcommand is not None:
        return
    with friendly_errors():
        _search(
            chain=chain,
            service=service,
            operation=operation,
            status=status,
            chain_status=chain_status,
            min_duration_ms=min_duration_ms,
            max_duration_ms=max_duration_ms,
            attr=attr,
            order=order,
            limit=limit,
            store=store,
            chains=chains,
            since=since,
            until=until,
            env=env,
            format=format,
            server=server,
        )


def _search(
    *,
    chain: str | None,
    service: str | None,
    operation: str | None,
    status: str | None,
    chain_status: str | None,
    min_duration_ms: float | None,
    max_duration_ms: float | None,
    attr: list[str],
    order: str,
    limit: int,
    store: str | None,
    chains: Path | None,
    since: str | None,
    until: str | None,
    env: str | None,
    format: ReadFormat,
    server: str | None,
) -> None:
    from chainmap_otel.analysis.traces import TraceQuery, search_traces

    query = TraceQuery.parse(
        chain=chain,
        service=service,
        operation=operation,
        status=status,
        chain_status=chain_status,
        min_duration_ms=min_duration_ms,
        max_duration_ms=max_duration_ms,
        attr=attr,
        order=order,
        limit=limit,
    )
    client = serve_client(store, server, chains)
    result: dict[str, Any]
    if client is not None:
        read_window(since, until, env)
        result = client.get_json(
            "/api/v1/traces",
            {
                "chain": chain,
                "service": service,
                "operation": operation,
                "status": status,
                "chain_status": chain_status,
                "min_duration_ms": min_duration_ms,
                "max_duration_ms": max_duration_ms,
                "attr": list(attr),
                "order": order,
                "limit": limit,
                "since": since,
                "until": until,
                "environment": env,
            },
        )
    else:
        catalog = load_chains(chains)
        window = read_window(since, until, env)
        with opened_store(store) as trace_store:
            result = search_traces(trace_store, catalog, window, query).to_json()
    if format is ReadFormat.json:
        print_json(result)
        return
    rows = [
        (
            t["trace_id"],
            t["start"][11:19],
            f"{(t['chain'] or t)['duration_ms']:.1f}",
            _status(t),
            ",".join(t["chain_ids"]) or "-",
            f"{t['root_service']}: {t['root_operation']}",
            _error_source(t["error_source"]),
        )
        for t in result["traces"]
    ]
    print_table(
        f"{len(rows)} traces, {'slowest' if result['order'] == 'duration' else 'newest'} first "
        f"({result['since'][:19]}Z to {result['until'][:19]}Z)"
        + (f"; ms and status of {chain}'s entry span" if chain else ""),
        ("trace id", "UTC", "ms", "status", "chains", "root", "failed at"),
        rows,
        cut=("chains", "root", "failed at"),
    )


def _status(trace: dict[str, Any]) -> str:
    """``error``/``ok``; with a chain, ``chain error`` apart from ``span error``."""
    if trace["chain"] is None or trace["status"] == "ok":
        return str(trace["status"])
    return "chain error" if trace["chain"]["status"] == "error" else "span error"


def _error_source(source: dict[str, Any] | None) -> str:
    """The deepest Error span (where the failure likely began), then the first if other."""
    if source is None:
        return "-"
    spans = [source["deepest"]]
    if source["first"]["span_id"] != source["deepest"]["span_id"]:
        spans.append(source["first"])
    return "; ".join(
        f"{s['service']}: {s['operation']}" + (f" ({s['message']})" if s["message"] else "")
        for s in spans
    )


_COMPARE_NAMES = ("TRACE_A", "TRACE_B", "--chain")
_ERROR_MARKS = {"none": "-", "both": "both", "only_a": "A only", "only_b": "B only"}


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f}"


def _side_ms(side: dict[str, Any] | None) -> str:
    return "-" if side is None else f"{side['duration_ms']:.1f}"


def _changed(node: dict[str, Any], min_diff_ms: float) -> bool:
    if node["state"] != "matched" or node["errors"] != "none":
        return True
    moved = max(abs(float(node["duration_diff_ms"])), abs(float(node["self_diff_ms"])))
    return moved >= min_diff_ms


@traces_app.command("compare")
def compare_command(
    trace_a: str = typer.Argument(
        ..., metavar="TRACE_A", help="The baseline trace A; with --chain, the trace under study."
    ),
    trace_b: str = typer.Argument(
        None, metavar="TRACE_B", help="The trace B under study (B minus A)."
    ),
    chain: str = typer.Option(
        None, "--chain", help="Baseline: this chain's typical trace of the window."
    ),
    min_diff_ms: float = typer.Option(
        0.0,
        "--min-diff-ms",
        help="Table: hide matched spans without errors whose duration and self time moved less.",
    ),
    max_spans: int = typer.Option(10_000, "--max-spans", help="Most spans read per trace."),
    store: str = STORE,
    chains: Path = CHAINS,
    since: str = SINCE,
    until: str = UNTIL,
    format: ReadFormat = typer.Option(ReadFormat.table, "--format", "-f"),
    server: str = SERVER,
) -> None:
    """Compare trace B with trace A span by span (B minus A): duration and self time per
    span, added and missing spans, errors. With --chain and one trace, A is the chain's
    typical trace of the window: the error-free one nearest the chain's median latency."""
    with friendly_errors():
        traces = [trace_a] if trace_b is None else [trace_a, trace_b]
        _compare(traces, chain, min_diff_ms, max_spans, store, chains, since, until, format, server)


def _compare(
    traces: list[str],
    chain: str | None,
    min_diff_ms: float,
    max_spans: int,
    store: str | None,
    chains: Path | None,
    since: str | None,
    until: str | None,
    format: ReadFormat,
    server: str | None,
) -> None:
    from chainmap_otel.analysis.compare import check_comparison, compare_traces
    from chainmap_otel.analysis.trace_spans import MAX_SPANS_LIMIT
    from chainmap_otel.errors import QueryError

    if not 1 <= max_spans <= MAX_SPANS_LIMIT:
        raise QueryError(f"--max-spans {max_spans} must be from 1 to {MAX_SPANS_LIMIT}")
    a, b = (traces[0], traces[1]) if len(traces) == 2 else (None, traces[0])
    names = _COMPARE_NAMES if len(traces) == 2 else ("TRACE_A", "TRACE", "--chain")
    a, b = check_comparison(a, b, chain, names)
    client = serve_client(store, server, chains)
    result: dict[str, Any]
    if client is not None:
        if chain is not None:
            read_window(since, until)
        params = {"a": a, "b": b, "chain": chain, "max_spans": max_spans}
        if chain is not None:
            params.update(since=since, until=until)
        result = client.get_json("/api/v1/traces/compare", params)
    else:
        catalog = load_chains(chains) if chain is not None else None
        window = read_window(since, until) if chain is not None else None
        with opened_store(store) as trace_store:
            result = compare_traces(
                trace_store,
                a,
                b,
                catalog=catalog,
                chain=chain,
                window=window,
                max_spans=max_spans,
            )
    if format is ReadFormat.json:
        print_json(result)
        return
    _print_comparison(result, min_diff_ms)


def _print_comparison(result: dict[str, Any], min_diff_ms: float) -> None:
    a, b = result["a"], result["b"]
    typical = result["typical"]
    lines = [f"A {a['trace_id']}"]
    if typical:
        lines.append(
            f"  the typical {typical['chain_id']} trace of the window: "
            f"{typical['latency_ms']:.1f} ms; median {typical['median_ms']:.1f} ms of "
            f"{typical['traces']} traces"
        )
    errors = result["errors"]
    lines += [
        f"B {b['trace_id']}",
        f"B - A: {result['duration_diff_ms']:+.1f} ms ({a['duration_ms']:.1f} -> "
        f"{b['duration_ms']:.1f} ms)",
        f"spans: {result['matched']} matched, {result['added']} added, {result['missing']} missing",
        f"errors: {errors['only_b']} only in B, {errors['only_a']} only in A, "
        f"{errors['both']} in both",
    ]
    if result["note"]:
        lines.append(f"note: {result['note']}")
    for line in lines:
        console.print(line, highlight=False, markup=False)
    shown = [n for n in result["nodes"] if _changed(n, min_diff_ms)]
    rows = [
        (
            n["state"],
            _side_ms(n["a"]),
            _side_ms(n["b"]),
            _signed(n["duration_diff_ms"]),
            _signed(n["self_diff_ms"]),
            _ERROR_MARKS[n["errors"]],
            " " * n["depth"]
            + f"{n['service']}: {n['operation']}"
            + (f" #{n['occurrence']}" if n["occurrence"] > 1 else ""),
        )
        for n in shown
    ]
    hidden = len(result["nodes"]) - len(shown)
    print_table(
        f"{len(shown)} spans"
        + (f" ({hidden} moved less than {min_diff_ms:g} ms)" if hidden else ""),
        ("state", "A ms", "B ms", "diff", "self", "errors", "span"),
        rows,
        wrap=("span",),
    )
