"""Versioned, idempotent ClickHouse schema: the Collector's trace tables plus chainmap's aggregates.

The DDL lives in ``schemas/clickhouse/NNN_name.sql`` (cluster-only additions in
``schemas/clickhouse/cluster/``). Applied versions are recorded in
``chainmap_schema_version``; every statement is ``IF NOT EXISTS``, so a table a
Collector created is kept as it is. When chainmap's materialized views are
added to an ``otel_traces`` that already holds spans, those spans are copied
into the aggregates once, partition by partition, with the views' own SELECTs; a view
reading another chainmap table (the hourly entry rows read the minute ones) is copied from
that table's parts likewise.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from chainmap_otel import config
from chainmap_otel.errors import StoreError
from chainmap_otel.storage.location import parse_store_url, validate_identifier
from chainmap_otel.storage.store import TraceStore, unreadable_columns
from chainmap_otel.tagging import fields

logger = logging.getLogger(__name__)

#: Receives one human-readable line per schema step (``chainmap schema apply`` prints them).
ProgressCallback = Callable[[str], None]

VERSION_TABLE = "chainmap_schema_version"

_VERSION_TABLE_SQL = """CREATE TABLE IF NOT EXISTS "{{db}}"."chainmap_schema_version" {{on_cluster}} (
    version UInt32,
    applied DateTime
) ENGINE = {{MergeTree}}
ORDER BY version"""

_CURRENT_VERSION_SQL = 'SELECT max(version) FROM "{db}"."chainmap_schema_version"'
_RECORD_VERSION_SQL = (
    'INSERT INTO "{db}"."chainmap_schema_version" (version, applied) '
    "SELECT {{version:UInt32}}, now()"
)
_PARTS_SQL = """SELECT partition_id, groupArray(name), sum(rows)
FROM system.parts
WHERE database = {db:String} AND table = {table:String} AND active
GROUP BY partition_id
ORDER BY partition_id"""

_FILE_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_]+)(?:\s+([^}]*?))?\s*\}\}")
_MATERIALIZED_VIEW = re.compile(
    r'^CREATE MATERIALIZED VIEW IF NOT EXISTS\s+"[^"]+"\."(?P<view>[^"]+)"[^\n]*\n'
    r'TO\s+"[^"]+"\."(?P<target>[^"]+)"\s*\nAS\s+(?P<select>.*)$',
    re.DOTALL,
)
_CREATE_TABLE = re.compile(
    r'^CREATE (?:TABLE|MATERIALIZED VIEW) IF NOT EXISTS\s+"[^"]+"\."([^"]+)"'
)
#: The table a view's SELECT reads (its first quoted ``FROM``).
_VIEW_SOURCE = re.compile(r'FROM\s+"[^"]+"\."([^"]+)"')
#: A version may drop an object to create it anew (its views are then backfilled again).
_DROP = re.compile(r'^DROP (?:TABLE|VIEW) IF EXISTS\s+"[^"]+"\."([^"]+)"')


def schema_dir() -> Path:
    """The directory holding ``clickhouse/`` and ``postgres/`` SQL: packaged or the repo's."""
    packaged = Path(__file__).resolve().parent.parent / "_schemas"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent.parent / "schemas"


@dataclass(frozen=True)
class SchemaVersion:
    """One numbered SQL file rendered for a database (and cluster)."""

    version: int
    name: str
    statements: tuple[str, ...]


@dataclass
class SchemaReport:
    """What :func:`apply_schema` did."""

    database: str
    previous_version: int
    current_version: int
    applied_versions: list[int] = field(default_factory=list)
    backfilled_spans: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.applied_versions)


def _split_statements(text: str) -> list[str]:
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("--")]
    return [part.strip() for part in "\n".join(lines).split(";") if part.strip()]


def _renderer(
    database: str, cluster: str | None, ttl_days: int, source_local: str
) -> Callable[[str], str]:
    values = {
        "db": database,
        "local": "_local" if cluster else "",
        "on_cluster": f"ON CLUSTER {cluster}" if cluster else "",
        "cluster": cluster or "",
        "MergeTree": "ReplicatedMergeTree" if cluster else "MergeTree()",
        "AggregatingMergeTree": (
            "ReplicatedAggregatingMergeTree" if cluster else "AggregatingMergeTree()"
        ),
        "source": f'"{database}"."otel_traces{source_local}"',
        **fields.SCHEMA_PLACEHOLDERS,
    }

    def substitute(match: re.Match[str]) -> str:
        name, argument = match.group(1), match.group(2)
        if name == "ttl":
            return f"TTL {argument} + toIntervalDay({ttl_days})" if ttl_days > 0 else ""
        return values[name]

    def render(text: str) -> str:
        rendered = _PLACEHOLDER.sub(substitute, text)
        return re.sub(r"[ \t]+\n", "\n", re.sub(r" {2,}\(", " (", rendered))

    return render


def schema_versions(
    database: str, cluster: str | None = None, ttl_days: int = 0
) -> list[SchemaVersion]:
    """Every schema version in order, rendered for ``database`` (and ``cluster``)."""
    validate_identifier(database, "database")
    if cluster:
        validate_identifier(cluster, "cluster")
    if ttl_days < 0:
        raise ValueError(f"ttl_days must be 0 (keep forever) or positive, not {ttl_days}")
    render = _renderer(database, cluster, ttl_days, "_local" if cluster else "")
    directory = schema_dir() / "clickhouse"
    versions = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if not match:
            continue
        statements = _split_statements(render(path.read_text(encoding="utf-8")))
        cluster_file = directory / "cluster" / path.name
        if cluster and cluster_file.is_file():
            statements += _split_statements(render(cluster_file.read_text(encoding="utf-8")))
        versions.append(SchemaVersion(int(match.group(1)), path.stem, tuple(statements)))
    if not versions:
        raise StoreError(f"no schema files in {directory}: the installation is incomplete")
    return versions


def schema_statements(database: str, cluster: str | None = None, ttl_days: int = 0) -> list[str]:
    """All DDL statements, the version table first, as ``chainmap schema apply`` runs them."""
    render = _renderer(database, cluster, ttl_days, "_local" if cluster else "")
    statements = [render(_VERSION_TABLE_SQL)]
    for version in schema_versions(database, cluster, ttl_days):
        statements.extend(version.statements)
    return statements


def show_schema(
    database: str | None = None, cluster: str | None = None, ttl_days: int | None = None
) -> str:
    """The DDL as SQL text (``chainmap schema show``); defaults come from the environment."""
    database = database or _default_database()
    cluster = cluster if cluster is not None else _default_cluster()
    ttl = ttl_days if ttl_days is not None else config.env_int(config.CHAINMAP_TTL_DAYS)
    return "\n\n".join(f"{s};" for s in schema_statements(database, cluster, ttl)) + "\n"


def _default_database() -> str:
    return parse_store_url(config.clickhouse_url()).database


def _default_cluster() -> str | None:
    return config.env_str(config.CHAINMAP_CLICKHOUSE_CLUSTER) or None


def current_version(store: TraceStore) -> int:
    """The highest schema version applied to the store (0 if none)."""
    if not store.table_exists(VERSION_TABLE):
        return 0
    rows = store.query(_CURRENT_VERSION_SQL.format(db=store.database)).result_rows
    return int(rows[0][0] or 0)


def latest_version() -> int:
    return max(v.version for v in schema_versions("otel"))


def apply_schema(
    store: TraceStore,
    cluster: str | None = None,
    ttl_days: int | None = None,
    progress: ProgressCallback | None = None,
) -> SchemaReport:
    """Bring the store to the latest schema version; safe to run any number of times.

    ``cluster`` defaults to the store's (``CHAINMAP_CLICKHOUSE_CLUSTER`` when it was opened);
    one given here becomes the store's, so what runs next on it (the rollups' deletes) names
    the same tables. ``ttl_days`` defaults to ``CHAINMAP_TTL_DAYS``. On a cluster the
    backfill covers the shard of the node ``store`` is connected to: run it once against a
    replica of each shard.
    """
    if cluster is not None:
        store.cluster = validate_identifier(cluster, "cluster") if cluster else None
    cluster = store.cluster
    ttl = ttl_days if ttl_days is not None else config.env_int(config.CHAINMAP_TTL_DAYS)
    say = progress or (lambda line: logger.info("%s", line))
    database = store.database
    problem = unreadable_columns(store, f"otel_traces{'_local' if cluster else ''}")
    if problem is not None:
        raise StoreError(problem)
    local = "_local" if cluster else ""
    render = _renderer(database, cluster, ttl, local)
    store.command(render(_VERSION_TABLE_SQL))
    previous = current_version(store)
    report = SchemaReport(database, previous, previous)
    pending = [v for v in schema_versions(database, cluster, ttl) if v.version > previous]
    if not pending:
        say(f"schema of {database} on {store.url_for_display} is at version {previous}")
        return report
    source = f"otel_traces{local}"
    for version in pending:
        existing = _existing_tables(store) - {
            m.group(1) for statement in version.statements if (m := _DROP.match(statement))
        }
        # Each new chainmap view copies what its source table already holds.
        backfills: dict[str, list[re.Match[str]]] = {}
        for statement in version.statements:
            match = _MATERIALIZED_VIEW.match(statement)
            if (
                match
                and match.group("view").startswith("chainmap_")
                and match.group("view") not in existing
                and (read := _VIEW_SOURCE.search(match.group("select")))
                and read.group(1) in existing
                and _count(store, read.group(1)) > 0
            ):
                backfills.setdefault(read.group(1), []).append(match)
        created = [
            name
            for statement in version.statements
            if (m := _CREATE_TABLE.match(statement)) and (name := m.group(1)) not in existing
        ]
        say(f"applying schema version {version.version} ({version.name}) to {database}")
        if backfills:
            # Every version with views copies the same stored spans: count them once.
            copied = _apply_with_backfill(store, version, backfills, created, source, say)
            report.backfilled_spans = max(report.backfilled_spans, copied)
        else:
            for statement in version.statements:
                store.command(statement)
        store.command(_RECORD_VERSION_SQL.format(db=database), {"version": version.version})
        report.applied_versions.append(version.version)
        report.current_version = version.version
    say(f"schema of {database} on {store.url_for_display} is at version {report.current_version}")
    return report


def _apply_with_backfill(
    store: TraceStore,
    version: SchemaVersion,
    backfills: dict[str, list[re.Match[str]]],
    created: list[str],
    spans: str,
    say: ProgressCallback,
) -> int:
    """Create the version's objects and copy what their views' sources already hold (source
    table -> its new views) into their targets; the spans copied from ``spans``.

    Merges are stopped and the sources' parts listed before the views exist, so each
    row is counted either by the copy (parts listed) or by a view (later inserts).
    """
    database = store.database
    for source in backfills:
        store.command(f'SYSTEM STOP MERGES "{database}"."{source}"')
    try:
        listed = {
            source: [
                (str(pid), list(parts), int(rows))
                for pid, parts, rows in store.query(
                    _PARTS_SQL, {"db": database, "table": source}
                ).result_rows
            ]
            for source in backfills
        }
        for statement in version.statements:
            store.command(statement)
        copied = 0
        for source, views in backfills.items():
            done = _copy_parts(store, source, listed[source], views, created, say)
            copied += done if source == spans else 0
        return copied
    finally:
        for source in backfills:
            store.command(f'SYSTEM START MERGES "{database}"."{source}"')


def _copy_parts(
    store: TraceStore,
    source: str,
    partitions: list[tuple[str, list[str], int]],
    views: list[re.Match[str]],
    created: list[str],
    say: ProgressCallback,
) -> int:
    """Insert the rows of ``source``'s listed parts into ``views``' targets through the
    views' SELECTs, partition by partition; the rows copied."""
    database = store.database
    total = sum(rows for _, _, rows in partitions)
    spans = source.startswith("otel_traces")
    what, unit = ("stored spans", "spans") if spans else (f"rows of {source}", "rows")
    say(
        f"copying {total} {what} from {len(partitions)} partitions of {source} "
        f"into {', '.join(m.group('target') for m in views)}"
    )
    done = 0
    try:
        for index, (partition_id, parts, rows) in enumerate(partitions, start=1):
            chunk = (
                f'(SELECT * FROM "{database}"."{source}" '
                "WHERE _partition_id = {partition:String} AND _part IN {parts:Array(String)})"
            )
            for match in views:
                select = match.group("select").replace(f'"{database}"."{source}"', chunk)
                store.command(
                    f'INSERT INTO "{database}"."{match.group("target")}" {select}',
                    {"partition": partition_id, "parts": parts},
                )
            done += rows
            say(f"  partition {partition_id}: {index}/{len(partitions)}, {done}/{total} {unit}")
    except StoreError as exc:
        _drop_created(store, created)
        raise StoreError(
            f"copying {what} into chainmap's aggregates failed ({exc}); its new "
            "objects were removed, so run `chainmap schema apply` again"
        ) from None
    return done


def _drop_created(store: TraceStore, created: list[str]) -> None:
    # Views first: dropping a target table under a live view would break inserts.
    for name in sorted(created, key=lambda n: not n.endswith("_mv")):
        try:
            store.command(f'DROP TABLE IF EXISTS "{store.database}"."{name}"')
        except StoreError:
            logger.exception("could not drop %s after a failed backfill", name)


def _existing_tables(store: TraceStore) -> set[str]:
    rows = store.query(
        "SELECT name FROM system.tables WHERE database = {db:String}", {"db": store.database}
    ).result_rows
    return {str(row[0]) for row in rows}


def _count(store: TraceStore, table: str) -> int:
    return int(store.query(f'SELECT count() FROM "{store.database}"."{table}"').result_rows[0][0])


_ENSURED: set[tuple[str, str]] = set()


def ensure_schema(store: TraceStore) -> None:
    """Apply the schema once per store and process unless ``CHAINMAP_SCHEMA_AUTO_APPLY=false``.

    For writers (the exporter, the OTLP ingest) on first use.
    """
    key = (store.url_for_display, store.database)
    if key in _ENSURED:
        return
    if (
        config.env_bool(config.CHAINMAP_SCHEMA_AUTO_APPLY)
        and current_version(store) < latest_version()
    ):
        apply_schema(store)
    _ENSURED.add(key)
