"""The trace store: one clickhouse-connect client over a ClickHouse server or embedded chDB.

``chdb:///path`` opens the in-process engine on a data directory (the embedded
default); ``http(s)://user:pass@host:8123/db`` reaches a server or cluster. The
same SQL runs on both.

chDB allows one process per data directory and one data directory per process.
The first is enforced with an exclusive ``flock`` on ``<path>/.chainmap.lock``
(holding the pid and command line of the owner), so a second process gets a
:class:`StoreLockedError` that says who holds the store and what to do instead,
rather than the engine's opaque failure. The second is checked in-process.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from chainmap_otel import config
from chainmap_otel.errors import QueryTimeoutError, StoreError
from chainmap_otel.storage.columns import TRACE_COLUMN_TYPES, TRACE_COLUMNS
from chainmap_otel.storage.location import (
    _EMBEDDED,
    StoreURL,
    mask_url,
    parse_store_url,
    validate_identifier,
)

TRACES_TABLE = "otel_traces"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,200}$")


# --- the store -------------------------------------------------------------------------------


class TraceStore:
    """A connected trace store: the clickhouse-connect client, the database it uses and
    the ClickHouse cluster its tables are spread over (``cluster``: None on one server or
    the embedded store; from ``CHAINMAP_CLICKHOUSE_CLUSTER`` when the store is opened, or
    set by ``schema apply --cluster``). Every statement that names shard tables or
    ``ON CLUSTER`` reads it here, so one store never mixes the two."""

    def __init__(self, client: Any, location: StoreURL, cluster: str | None = None) -> None:
        self.client = client
        self.location = location
        self.database = location.database
        self.url_for_display = location.display()
        self.cluster = validate_identifier(cluster, "cluster") if cluster else None
        self._closed = False
        self._query_settings: dict[str, Any] = {}

    def cluster_parts(self) -> dict[str, str]:
        """``{local}``/``{on_cluster}`` of a statement on this store's tables: the shard
        tables and ``ON CLUSTER`` on a cluster, nothing otherwise."""
        if not self.cluster:
            return {"local": "", "on_cluster": ""}
        return {"local": "_local", "on_cluster": f"ON CLUSTER {self.cluster}"}

    @property
    def embedded(self) -> bool:
        return self.location.embedded

    def with_query_timeout(self, seconds: float) -> TraceStore:
        """This store's connection, its SELECTs stopped after ``seconds`` (0: no limit).

        Analysis reads go through such a view so a heavy query cannot run unbounded;
        the view shares the connection and is not closed on its own.
        """
        view = copy.copy(self)
        view._query_settings = {"max_execution_time": seconds} if seconds > 0 else {}
        return view

    def query(self, sql: str, parameters: Mapping[str, Any] | Sequence[Any] | None = None) -> Any:
        """Run a SELECT; returns clickhouse-connect's ``QueryResult``."""
        try:
            if self._query_settings:
                return self.client.query(sql, parameters=parameters, settings=self._query_settings)
            return self.client.query(sql, parameters=parameters)
        except Exception as exc:
            raise self._error("query failed", exc) from None

    def command(self, sql: str, parameters: Mapping[str, Any] | Sequence[Any] | None = None) -> Any:
        """Run a statement that returns no rows (DDL, INSERT ... SELECT)."""
        try:
            return self.client.command(sql, parameters=parameters)
        except Exception as exc:
            raise self._error("statement failed", exc) from None

    def insert_spans(
        self,
        columns: Mapping[str, Sequence[Any]] | None = None,
        rows: Sequence[Sequence[Any]] | None = None,
        table: str = TRACES_TABLE,
    ) -> int:
        """Insert spans into ``otel_traces`` in one columnar batch; returns the row count.

        ``columns`` maps every name of :data:`TRACE_COLUMNS` to its values;
        ``rows`` holds tuples in that order. Timestamps are ``int`` nanoseconds
        since the epoch (or ``datetime``), maps ``dict[str, str]``.
        """
        if (columns is None) == (rows is None):
            raise ValueError("insert_spans takes exactly one of columns= or rows=")
        if columns is not None:
            missing = [name for name in TRACE_COLUMNS if name not in columns]
            if missing:
                raise ValueError(f"insert_spans columns lack {', '.join(missing)}")
            data = [columns[name] for name in TRACE_COLUMNS]
        else:
            assert rows is not None
            data = [list(col) for col in zip(*rows, strict=True)] if rows else []
        count = len(data[0]) if data else 0
        if count == 0:
            return 0
        validate_identifier(table, "table")
        if rows is not None and self._arrow_available():
            from chainmap_otel.storage.arrow import rows_to_arrow

            batch = rows_to_arrow(rows)
            if batch is not None:
                return self.insert_arrow(batch, table)
        try:
            self.client.insert(
                table,
                data,
                column_names=list(TRACE_COLUMNS),
                database=self.database,
                column_type_names=list(TRACE_COLUMN_TYPES),
                column_oriented=True,
                settings={"insert_deduplicate": 0},
            )
        except Exception as exc:
            raise self._error(f"insert of {count} spans into {table} failed", exc) from None
        return count

    def insert_columns(
        self, table: str, columns: Mapping[str, Sequence[Any]], types: Sequence[str]
    ) -> int:
        """Insert rows given column by column (``columns``: name -> values, ``types`` their
        ClickHouse types in that order) into one of chainmap's tables; the row count. On a
        cluster the insert waits for the shards (``insert_distributed_sync``)."""
        validate_identifier(table, "table")
        data = list(columns.values())
        count = len(data[0]) if data else 0
        if count == 0:
            return 0
        settings: dict[str, Any] = {"insert_deduplicate": 0}
        if self.cluster:
            settings["insert_distributed_sync"] = 1
        try:
            self.client.insert(
                table,
                data,
                column_names=list(columns),
                database=self.database,
                column_type_names=list(types),
                column_oriented=True,
                settings=settings,
            )
        except Exception as exc:
            raise self._error(f"insert of {count} rows into {table} failed", exc) from None
        return count

    @staticmethod
    def _arrow_available() -> bool:
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            return False
        return True

    def insert_arrow(
        self, batch: Any, table: str = TRACES_TABLE, deduplication_token: str | None = None
    ) -> int:
        """Insert an Arrow table of spans (``TRACE_COLUMNS`` names) in one insert; the row count.

        The fast path of both writers (see :mod:`~chainmap_otel.storage.arrow`):
        embedded chDB reads the Arrow buffers in place through its ``Python()``
        table function; a server gets the table in the ``Arrow`` input format.
        Either way no value is serialised by Python code. With a
        ``deduplication_token`` a repeated insert of the same batch is dropped by
        the engine, in ``otel_traces`` and in the materialized views' tables.
        """
        count = int(batch.num_rows)
        if count == 0:
            return 0
        validate_identifier(table, "table")
        settings = _insert_settings(deduplication_token)
        try:
            handle = _chdb_handle(self.client) if self.embedded else None
            if handle is None:
                self.client.insert_arrow(table, batch, database=self.database, settings=settings)
            else:
                # Python(batch) names the local variable holding the Arrow table.
                sql = _ARROW_INSERT.format(db=self.database, table=table)
                sql += _settings_clause(settings)
                with handle.lock:
                    if handle.conn is None:
                        raise StoreError("the store is closed")
                    handle.conn.query(sql, "TabSeparated")
        except Exception as exc:
            raise self._error(f"insert of {count} spans into {table} failed", exc) from None
        return count

    @property
    def inserts_select(self) -> bool:
        """Whether :meth:`insert_select` works here: the engine runs in this process and
        reads the files this process writes (embedded chDB)."""
        return self.embedded and _chdb_handle(self.client) is not None

    def insert_select(
        self,
        select: str,
        settings: Mapping[str, str | int],
        *,
        table: str = TRACES_TABLE,
        deduplication_token: str | None = None,
    ) -> None:
        """``INSERT INTO table (TRACE_COLUMNS) <select>`` with ``settings``.

        The engine-side decode of the span writer (``select`` reads files the engine opens
        itself). Deduplication as in :meth:`insert_arrow`. Embedded stores only.
        """
        validate_identifier(table, "table")
        handle = _chdb_handle(self.client) if self.embedded else None
        if handle is None:
            raise StoreError(f"insert_select needs the embedded store, not {self.url_for_display}")
        every = {**_insert_settings(deduplication_token), **settings}
        sql = f'INSERT INTO "{self.database}"."{table}" ({_INSERT_COLUMNS}) {select}'
        sql += _settings_clause(every)
        try:
            with handle.lock:
                if handle.conn is None:
                    raise StoreError("the store is closed")
                handle.conn.query(sql, "TabSeparated")
        except Exception as exc:
            raise self._error(f"insert into {table} failed", exc) from None

    def table_exists(self, table: str) -> bool:
        result = self.query(
            "SELECT count() FROM system.tables WHERE database = {db:String} AND name = {t:String}",
            {"db": self.database, "t": table},
        )
        return bool(result.result_rows[0][0])

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.client.close()
        finally:
            if self.embedded:
                _EMBEDDED.release()

    def __enter__(self) -> TraceStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TraceStore({self.url_for_display!r})"

    def _error(self, what: str, exc: BaseException) -> StoreError:
        text = _scrub(str(exc), self.location)
        if "TIMEOUT_EXCEEDED" in text and self._query_settings:
            limit = self._query_settings["max_execution_time"]
            return QueryTimeoutError(
                f"the analysis query ran longer than {limit:g} s and was stopped on "
                f"{self.url_for_display}; narrow the time window or raise CHAINMAP_QUERY_TIMEOUT_S"
            )
        if "UNKNOWN_TABLE" in text and TRACES_TABLE in text:
            text += self._traces_elsewhere_hint()
        return StoreError(f"{what} on {self.url_for_display}: {text}")

    def _traces_elsewhere_hint(self) -> str:
        """Where ``otel_traces`` is when it is not in this store's database (or '')."""
        try:
            rows = self.client.query(
                "SELECT database FROM system.tables WHERE name = {t:String} "
                "AND database != {db:String} ORDER BY database",
                parameters={"t": TRACES_TABLE, "db": self.database},
            ).result_rows
        except Exception:
            return ""
        return missing_traces_hint(self.location, [str(row[0]) for row in rows])

    def holds_spans(self) -> bool:
        """Whether ``otel_traces`` holds any span (one ``LIMIT 1`` probe)."""
        sql = f'SELECT 1 FROM "{self.database}"."{TRACES_TABLE}" LIMIT 1'
        return bool(self.query(sql).result_rows)

    def traces_location_problem(self) -> str | None:
        """Why analysis cannot read ``otel_traces`` here (naming where it is, or the column
        it cannot read), or None."""
        if self.table_exists(TRACES_TABLE):
            return unreadable_columns(self)
        rows = self.query(
            "SELECT database FROM system.tables WHERE name = {t:String} ORDER BY database",
            {"t": TRACES_TABLE},
        ).result_rows
        hint = missing_traces_hint(self.location, [str(row[0]) for row in rows])
        return f"{self.url_for_display} has no table {self.database}.{TRACES_TABLE}" + (
            hint or ": send traces to it first (chainmap serve, a Collector) or check --store"
        )


_INSERT_COLUMNS = ", ".join(f"`{name}`" for name in TRACE_COLUMNS)
#: The embedded fast path; ``db`` and ``table`` are validated identifiers.
_ARROW_INSERT = (
    'INSERT INTO "{db}"."{table}" (' + _INSERT_COLUMNS + ") "
    "SELECT " + _INSERT_COLUMNS + " FROM Python(batch)"
)


#: Columns chainmap reads as ``Map(LowCardinality(String), String)``, as the Collector
#: creates them by default (``json: false``).
MAP_COLUMNS = ("ResourceAttributes", "SpanAttributes")
_COLUMN_TYPES_SQL = """SELECT name, type FROM system.columns
WHERE database = {db:String} AND table = {table:String} AND name IN {names:Array(String)}"""


def unreadable_columns(store: TraceStore, table: str = "otel_traces") -> str | None:
    """Why chainmap cannot analyse ``table`` as it exists (naming the column and the fix), or
    None. A Collector exporter with ``json: true`` makes the attribute columns ``JSON``."""
    rows = store.query(
        _COLUMN_TYPES_SQL, {"db": store.database, "table": table, "names": list(MAP_COLUMNS)}
    ).result_rows
    for name, column_type in sorted(rows):
        if not str(column_type).startswith("Map("):
            return (
                f"{store.database}.{table}.{name} is of type {column_type} (a Collector "
                "clickhouseexporter with `json: true` creates it so); chainmap reads attributes "
                "as Map(LowCardinality(String), String): set `json: false` (the default) on the "
                "exporter and write to a new table or database, then point chainmap at it"
            )
    return None


def missing_traces_hint(location: StoreURL, databases: Sequence[str]) -> str:
    """'; ... exists in database X: point at it with URL' for the databases holding the table."""
    if not databases:
        return ""
    first = databases[0]
    if location.embedded:
        url = f"chdb://{location.path}?database={first}"
    else:
        url = f"{location.scheme}://{location.host}:{location.port}/{first}"
    names = ", ".join(databases)
    return (
        f"; {TRACES_TABLE} exists in database {names} of the same server: point chainmap at it "
        f"with the store URL {url} (--store or CHAINMAP_CLICKHOUSE_URL, `.../DBNAME`)"
    )


def _insert_settings(deduplication_token: str | None) -> dict[str, Any]:
    # Without a token: no deduplication, as before the tables had a deduplication window.
    if deduplication_token is None:
        return {"insert_deduplicate": 0}
    if not _TOKEN.match(deduplication_token):
        raise ValueError(f"deduplication_token {deduplication_token!r} is not [A-Za-z0-9_-]+")
    return {
        "insert_deduplicate": 1,
        "insert_deduplication_token": deduplication_token,
        "deduplicate_blocks_in_dependent_materialized_views": 1,
    }


def _settings_clause(settings: Mapping[str, Any]) -> str:
    rendered = []
    for key, value in settings.items():
        if isinstance(value, str):
            value = "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
        rendered.append(f"{key} = {value}")
    return " SETTINGS " + ", ".join(rendered)


def _chdb_handle(client: Any) -> Any:
    """clickhouse-connect's chDB connection handle (``conn`` + ``lock``), or None if not found.

    Queries on the handle are serialised by its lock, as clickhouse-connect's own are.
    """
    handle = getattr(getattr(client, "_backend", None), "_handle", None)
    if handle is None or not hasattr(handle, "conn") or not hasattr(handle, "lock"):
        return None
    return handle


def _scrub(text: str, location: StoreURL) -> str:
    text = " ".join(text.split())
    if location.password:
        text = text.replace(location.password, "***")
    return mask_url(text)


def open_store(
    url: str | None = None,
    *,
    create_database: bool = True,
    connect_timeout: float = 10.0,
    send_receive_timeout: float = 300.0,
) -> TraceStore:
    """Connect to the trace store at ``url`` (default: :func:`config.clickhouse_url`).

    Creates the database when it does not exist yet (unless ``create_database`` is
    false: readers pass that, and then a missing embedded store directory is an error
    instead of an empty store created by a read). Raises :class:`StoreLockedError` if another process holds the embedded
    store, :class:`StoreError` if the store cannot be reached, ``ValueError`` for a
    malformed URL.
    """
    raw = url if url is not None else config.clickhouse_url()
    location = parse_store_url(raw)
    if location.embedded:
        return _open_embedded(location, create_database)
    return _open_server(location, create_database, connect_timeout, send_receive_timeout)


def _env_cluster() -> str | None:
    """``CHAINMAP_CLICKHOUSE_CLUSTER``, read when a server store is opened."""
    return config.env_str(config.CHAINMAP_CLICKHOUSE_CLUSTER) or None


def _open_embedded(location: StoreURL, create_database: bool) -> TraceStore:
    if not create_database and not Path(location.path).is_dir():
        raise StoreError(
            f"the embedded store {location.path} does not exist: check --store (or "
            "CHAINMAP_CLICKHOUSE_URL / CHAINMAP_DATA_DIR), or send traces there first "
            "(chainmap serve, chainmap ingest)"
        )
    try:
        import clickhouse_connect
    except ImportError as exc:
        raise StoreError(_missing_extra(exc)) from None
    _EMBEDDED.acquire(location.path)
    try:
        client = clickhouse_connect.get_client(interface="chdb", path=location.path)
    except ImportError as exc:
        _EMBEDDED.release()
        raise StoreError(_missing_extra(exc)) from None
    except Exception as exc:
        _EMBEDDED.release()
        raise StoreError(
            f"cannot open the embedded store {location.path}: {_scrub(str(exc), location)}; "
            "check the directory is a chDB data directory and not used by another program"
        ) from None
    store = TraceStore(client, location, _env_cluster())
    try:
        _use_database(store, create_database)
    except BaseException:
        store.close()
        raise
    return store


def _open_server(
    location: StoreURL, create_database: bool, connect_timeout: float, send_receive_timeout: float
) -> TraceStore:
    try:
        import clickhouse_connect
    except ImportError as exc:
        raise StoreError(_missing_extra(exc)) from None
    try:
        client = clickhouse_connect.get_client(
            host=location.host,
            port=location.port,
            username=location.username or "default",
            password=location.password,
            secure=location.scheme == "https",
            connect_timeout=connect_timeout,
            send_receive_timeout=send_receive_timeout,
            database="default",
        )
    except Exception as exc:
        raise StoreError(
            f"cannot reach the trace store at {location.display()}: "
            f"{_scrub(str(exc), location)}; start ClickHouse there, fix CHAINMAP_CLICKHOUSE_URL, "
            "or unset it to use the embedded chDB store"
        ) from None
    store = TraceStore(client, location, _env_cluster())
    try:
        _use_database(store, create_database)
    except BaseException:
        store.close()
        raise
    return store


def _use_database(store: TraceStore, create: bool) -> None:
    rows = store.query(
        "SELECT count() FROM system.databases WHERE name = {db:String}", {"db": store.database}
    ).result_rows
    if not rows[0][0]:
        if not create:
            elsewhere = store.query(
                "SELECT database FROM system.tables WHERE name = {t:String} ORDER BY database",
                {"t": TRACES_TABLE},
            ).result_rows
            hint = missing_traces_hint(store.location, [str(row[0]) for row in elsewhere])
            raise StoreError(
                f"database {store.database} does not exist on {store.url_for_display}"
                + (hint or ": run `chainmap schema apply` or name an existing database in the URL")
            )
        on_cluster = store.cluster_parts()["on_cluster"]
        # The name was validated by parse_store_url: identifiers cannot be bound as parameters.
        store.command(f"CREATE DATABASE IF NOT EXISTS {store.database} {on_cluster}".rstrip())
    store.client.database = store.database


def _missing_extra(exc: ImportError) -> str:
    from chainmap_otel.errors import install_hint

    return (
        f"the trace store needs {exc.name or 'clickhouse-connect/chdb'}, which is not installed: "
        f"{install_hint('store')}"
    )
