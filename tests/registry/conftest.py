"""A real embedded PostgreSQL for the registry tests: one server per session, a fresh
database per test (so tests never see each other's chains or alerts)."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from chainmap_otel.registry import ChainRegistry, EmbeddedPostgres, open_registry_database
from chainmap_otel.registry.postgres import RegistryDatabase


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


@pytest.fixture
def registry(registry_db: RegistryDatabase) -> ChainRegistry:
    return ChainRegistry(registry_db)


@pytest.fixture
def chains_dir(tmp_path: Path) -> Path:
    return tmp_path
