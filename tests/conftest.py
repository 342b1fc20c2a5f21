"""Fixtures shared across test packages.

chDB is process-global (one data directory per process), so the whole test
session shares one embedded store directory; tests isolate themselves with a
database of their own (``store_factory``) instead of a directory of their own.
Likewise one embedded PostgreSQL serves the session, a database per test
(``registry_db``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from chainmap_otel.registry import EmbeddedPostgres, open_registry_database
from chainmap_otel.registry.postgres import RegistryDatabase
from chainmap_otel.storage.store import TraceStore, open_store
from tests.support.stores import fresh_store

# Serve processes the tests start run without the chain registry (no embedded PostgreSQL
# in ~/.local/share/chainmap) unless a test turns it on with a data directory of its own.
os.environ["CHAINMAP_REGISTRY_URL"] = "off"


@pytest.fixture(autouse=True)
def _registry_off_by_default() -> Iterator[None]:
    """Set again around every test: some tests clear every CHAINMAP_* variable."""
    os.environ["CHAINMAP_REGISTRY_URL"] = "off"
    yield
    os.environ["CHAINMAP_REGISTRY_URL"] = "off"


@pytest.fixture(scope="session")
def chdb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's one chDB data directory."""
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture(scope="session")
def chdb_store(chdb_path: Path) -> Iterator[TraceStore]:
    """A store on the session's chDB directory (database ``otel``, schema applied)."""
    from chainmap_otel.storage.schema import apply_schema

    store = open_store(f"chdb://{chdb_path}")
    apply_schema(store, progress=lambda line: None)
    yield store
    store.close()


@pytest.fixture
def store_factory(chdb_store: TraceStore, chdb_path: Path) -> Iterator[Callable[[], TraceStore]]:
    """Opens stores on fresh databases of the session's chDB (schema applied), closed after."""
    opened: list[TraceStore] = []

    def make() -> TraceStore:
        store = fresh_store(chdb_path)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.command(f"DROP DATABASE IF EXISTS {store.database}")
        store.close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[EmbeddedPostgres]:
    # Not under pytest's tmp_path: as root the server runs as its own user, which must be
    # able to reach the directory (pytest's base temp directory is private to root).
    root = Path(tempfile.mkdtemp(prefix="chainmap-registry-test-"))
    server = EmbeddedPostgres.start(root / "postgres", "TEST")
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def registry_url(postgres_server: EmbeddedPostgres) -> str:
    """The URL of a new, empty database on the session's server."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server.uri(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return postgres_server.uri(name)


@pytest.fixture
def registry_db(registry_url: str) -> Iterator[RegistryDatabase]:
    database = open_registry_database(registry_url)
    yield database
    database.close()
