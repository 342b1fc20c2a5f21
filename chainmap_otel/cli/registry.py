"""``chainmap registry ...`` and ``chainmap alerts``: the PostgreSQL chain registry and alerts.

Every command takes ``--registry URL`` (default ``CHAINMAP_REGISTRY_URL``, else the
embedded PostgreSQL in ``$CHAINMAP_DATA_DIR/postgres``, shared with a running
``chainmap serve``) and migrates the registry schema on first use.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
import yaml

from chainmap_otel.cli.analysis import SERVER, STORE
from chainmap_otel.cli.app import (
    OutputFormat,
    app,
    command,
    console,
    err_console,
    fail,
    friendly_errors,
    print_json,
    print_table,
)
from chainmap_otel.cli.remote import ServeClient, resolve_server
from chainmap_otel.tagging.definitions import load_definitions

if TYPE_CHECKING:
    from chainmap_otel.registry import ChainRegistry

registry_app = typer.Typer(help="The chain registry (PostgreSQL).", no_args_is_help=True)
app.add_typer(registry_app, name="registry")

REGISTRY = typer.Option(
    None,
    "--registry",
    help="postgresql://... ; default $CHAINMAP_REGISTRY_URL, else the embedded PostgreSQL.",
)
FORMAT = typer.Option(OutputFormat.table, "--format", "-f")


def _author() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "cli"


@contextmanager
def opened_registry(url: str | None) -> Iterator[ChainRegistry]:
    from chainmap_otel.registry import ChainRegistry, open_registry_database

    with friendly_errors():
        database = open_registry_database(url)
        try:
            yield ChainRegistry(database)
        finally:
            database.close()


def _command(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A ``chainmap registry`` command whose body runs inside :func:`friendly_errors`."""
    return command(name, on=registry_app)


@_command("migrate")
def migrate(registry: str | None = REGISTRY) -> None:
    """Create or update the registry's tables (safe to re-run)."""
    from chainmap_otel.registry import open_registry_database

    database = open_registry_database(registry, migrate=False)
    try:
        applied = database.migrate()
        for name in applied:
            console.print(f"applied registry migration {name}", highlight=False)
        console.print(
            f"registry schema on {database.url_for_display} is at version "
            f"{database.schema_version()}",
            highlight=False,
        )
    finally:
        database.close()


@_command("push")
def push(
    file: Path = typer.Argument(
        ..., help="Chain definitions YAML (checked like `chains validate`)."
    ),
    comment: str = typer.Option("", "--comment", "-m", help="Why; stored with each new version."),
    prune: bool = typer.Option(
        False, "--prune", help="Delete registry chains the file does not list (else kept)."
    ),
    registry: str | None = REGISTRY,
    format: OutputFormat = FORMAT,
) -> None:
    """Store a new version of every chain the file changes; unchanged chains stay as they are."""
    # Every problem, with file:line, before anything is written.
    _, definitions = load_definitions(file)
    with opened_registry(registry) as chains:
        report = chains.push(definitions, author=_author(), comment=comment, prune=prune)
    if format is OutputFormat.json:
        print_json(report.to_json())
        return
    for label, ids in report.to_json().items():
        if ids:
            console.print(f"{label}: {', '.join(ids)}", highlight=False)
    if report.kept:
        console.print(
            f"{len(report.kept)} registry chains are not in {file} and were kept; "
            "--prune deletes them",
            highlight=False,
        )


@_command("pull")
def pull(
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the YAML here."),
    registry: str | None = REGISTRY,
) -> None:
    """The registry's live chains as a chains YAML (services reload it when it changes)."""
    with opened_registry(registry) as chains:
        text = chains.pull()
    if output is None:
        sys.stdout.write(text)
        return
    temporary = output.with_name(f".{output.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(output)  # atomic: a service reloading never reads half a file
    count = len(yaml.safe_load(text)["chains"])
    console.print(f"wrote {count} chains to {output}", highlight=False)


@_command("list")
def list_registry(registry: str | None = REGISTRY, format: OutputFormat = FORMAT) -> None:
    """The live chains with their current version, author and time."""
    with opened_registry(registry) as chains:
        current = chains.current()
    if format is OutputFormat.json:
        print_json({"chains": [c.to_json() for c in current]})
        return
    print_table(
        "Registry chains",
        ["id", "version", "name", "author", "changed", "comment"],
        [
            (
                c.chain_id,
                c.version,
                (c.definition or {}).get("name", ""),
                c.author,
                c.created_at.isoformat(timespec="seconds"),
                c.comment,
            )
            for c in current
        ],
    )


@_command("history")
def history(
    chain: str = typer.Argument(..., help="Chain id."),
    registry: str | None = REGISTRY,
    format: OutputFormat = FORMAT,
) -> None:
    """Every version of a chain, deletions included."""
    with opened_registry(registry) as chains:
        versions = chains.history(chain)
    if format is OutputFormat.json:
        print_json({"chain_id": chain, "versions": [v.to_json() for v in versions]})
        return
    print_table(
        f"History of {chain}",
        ["version", "change", "author", "at", "comment"],
        [
            (
                v.version,
                "deleted" if v.deleted else "defined",
                v.author,
                v.created_at.isoformat(timespec="seconds"),
                v.comment,
            )
            for v in versions
        ],
    )


@_command("diff")
def diff(
    chain: str = typer.Argument(..., help="Chain id."),
    old: int = typer.Argument(..., help="Older version."),
    new: int = typer.Argument(..., help="Newer version."),
    registry: str | None = REGISTRY,
) -> None:
    """A unified diff of two versions of a chain's YAML."""
    with opened_registry(registry) as chains:
        text = chains.diff(chain, old, new)
    sys.stdout.write(text or f"{chain} v{old} and v{new} are identical\n")


@_command("rollback")
def rollback(
    chain: str = typer.Argument(..., help="Chain id."),
    version: int = typer.Argument(..., help="The version whose definition to restore."),
    registry: str | None = REGISTRY,
) -> None:
    """Restore an earlier version as a new version (history is never rewritten)."""
    with opened_registry(registry) as chains:
        stored = chains.rollback(chain, version, author=_author())
    console.print(f"{chain} is now at version {stored.version} (= v{version})", highlight=False)


@_command("accept")
def accept(
    candidate: int = typer.Argument(..., help="Candidate id from `chainmap discover --save`."),
    chain_id: str | None = typer.Option(None, "--id", help="Chain id to give it."),
    registry: str | None = REGISTRY,
) -> None:
    """Promote a saved discovery candidate to a registry chain."""
    from chainmap_otel.registry.candidates import accept_candidate

    with opened_registry(registry) as chains:
        stored = accept_candidate(chains, candidate, chain_id, author=_author())
    console.print(
        f"candidate {candidate} is chain {stored.chain_id} version {stored.version}",
        highlight=False,
    )


@command("alerts")
def alerts(
    history: str | None = typer.Option(
        None,
        "--history",
        help="Transitions of this period (e.g. 24h, 7d) instead of active alerts.",
    ),
    deliveries: bool = typer.Option(
        False, "--deliveries", help="The webhook delivery log (newest first) instead."
    ),
    registry: str | None = REGISTRY,
    store: str | None = STORE,
    server: str | None = SERVER,
    format: OutputFormat = FORMAT,
) -> None:
    """Active (pending and firing) alerts, the alert history or the webhook delivery log.

    Read through chainmap serve (--server, or the serve holding the embedded --store), else
    from the chain registry (--registry).
    """
    from chainmap_otel.config import parse_seconds

    seconds = parse_seconds(history) if history is not None else None
    if history is not None and not seconds:
        fail(f"--history {history!r} is not a duration; use e.g. 24h or 7d")
    if server is not None and registry is not None:
        fail("give --server (a chainmap serve) or --registry (its PostgreSQL), not both")
    client = resolve_server(store, server) if registry is None else None
    read = _alerts_from_serve(client) if client is not None else _alerts_from_registry(registry)
    if deliveries:
        log = read("deliveries", None)
        if format is OutputFormat.json:
            print_json({"deliveries": log})
            return
        columns = ("id", "at", "url", "status", "outcome", "attempts", "http_status", "error")
        print_table("Webhook deliveries", list(columns), [[d[c] for c in columns] for d in log])
        return
    if seconds:
        events = read("history", seconds)
        if format is OutputFormat.json:
            print_json({"history_seconds": seconds, "events": events})
            return
        print_table(
            f"Alert transitions of the last {history}",
            ["at", "chain", "environment", "state", "objective", "window", "severity"],
            [
                (
                    e["at"],
                    e["chain_id"],
                    e["labels"].get("environment", ""),
                    e["state"],
                    e["labels"].get("objective", ""),
                    e["labels"].get("window", ""),
                    e["labels"].get("severity", ""),
                )
                for e in events
            ],
        )
        return
    active = read("active", None)
    active.sort(
        key=lambda a: (
            a["state"] != "firing",
            a["chain_id"],
            a.get("environment", ""),
            a["objective"],
            a["rule"],
        )
    )
    if format is OutputFormat.json:
        print_json({"alerts": active})
        return
    if not active:
        console.print("no active alerts", highlight=False)
        return
    print_table(
        "Active alerts",
        ["chain", "environment", "state", "severity", "objective", "window", "since", "summary"],
        [
            (
                a["chain_id"],
                a.get("environment", ""),
                a["state"],
                a["severity"],
                a["objective"],
                a["rule"],
                a["fired_at"] or a["active_since"],
                a["annotations"].get("summary", ""),
            )
            for a in active
        ],
        cut=("summary",),
    )


#: The states ``chainmap alerts`` lists without --history or --deliveries.
ACTIVE = ("pending", "firing")
AlertRead = Callable[[str, "float | None"], list[dict[str, Any]]]


def _alerts_from_registry(registry: str | None) -> AlertRead:
    """Active alerts, transitions or deliveries as the chain registry stores them."""
    from chainmap_otel.monitor.alerts import AlertStore

    def read(what: str, seconds: float | None) -> list[dict[str, Any]]:
        with opened_registry(registry) as chains:
            store = AlertStore(chains.database)
            if what == "deliveries":
                found = store.deliveries()
            elif what == "history":
                found = store.history(seconds or 0)
            else:
                found = [a.to_json() for a in store.load().values() if a.state in ACTIVE]
        return found

    return read


def _alerts_from_serve(client: ServeClient) -> AlertRead:
    """The same through a chainmap serve's ``/api/v1/alerts``; a serve without a registry
    evaluates no alert, which is said on stderr."""

    def read(what: str, seconds: float | None) -> list[dict[str, Any]]:
        if what == "deliveries":
            answer = client.get_json("/api/v1/alerts/deliveries")
        else:
            answer = client.get_json(
                "/api/v1/alerts", {"history": f"{seconds:g}s" if seconds else None}
            )
        if not answer.get("enabled", True):
            err_console.print(
                f"note: chainmap serve at {client.url} runs without a chain registry, so it "
                "evaluates no alert",
                highlight=False,
            )
        key = {"deliveries": "deliveries", "history": "events"}.get(what, "alerts")
        found: list[dict[str, Any]] = answer.get(key, [])
        return found

    return read


def save_candidates(found: Any, registry: str | None) -> None:
    """``chainmap discover --save``: the proposals as registry candidates."""
    from chainmap_otel.registry.candidates import save_candidates as save

    with opened_registry(registry) as chains:
        saved = save(chains.database, found)
    if not saved:
        console.print("no proposals to save", highlight=False)
    for candidate_id, proposal_id, traces in saved:
        console.print(
            f"candidate {candidate_id}: {proposal_id} ({traces} traces); "
            f"`chainmap registry accept {candidate_id}` adds it",
            highlight=False,
        )


__all__ = ["fail", "opened_registry", "registry_app", "save_candidates"]
