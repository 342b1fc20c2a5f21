"""Where a trace store lives: its URL (``chdb:///path`` or ``http(s)://user:pass@host/db``),
the identifiers its SQL may name, and the lock that keeps one process per embedded store.

chDB allows one process per data directory: the first process takes an exclusive ``flock``
on ``<path>/.chainmap.lock`` (holding its pid and command line), so a second one learns who
holds the store (:func:`lock_holder`) instead of meeting the engine's opaque failure.
"""

from __future__ import annotations

import fcntl
import os
import re
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import parse_qs, quote, unquote, urlsplit

from chainmap_otel.errors import StoreError, StoreLockedError

#: Database used when the URL names none: the Collector clickhouseexporter's own default
#: (internal/clickhouse.go ``DefaultDatabase``), so a Collector on its defaults just works.
DEFAULT_DATABASE = "default"
#: The Collector's spans table.
LOCK_FILE_NAME = ".chainmap.lock"

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def validate_identifier(name: str, what: str = "identifier") -> str:
    """Return ``name`` if it is a plain ClickHouse identifier, else raise ``ValueError``."""
    if not _IDENTIFIER.match(name):
        raise ValueError(
            f"{what} {name!r} is not a plain identifier: use letters, digits and '_' "
            "and start with a letter or '_'"
        )
    return name


@dataclass(frozen=True)
class StoreURL:
    """A parsed trace store URL."""

    scheme: str  # "chdb", "http" or "https"
    path: str  # chdb data directory ("" for http)
    host: str
    port: int
    username: str
    password: str
    database: str

    @property
    def embedded(self) -> bool:
        return self.scheme == "chdb"

    def display(self) -> str:
        """The URL with the password masked: safe for logs and messages."""
        if self.embedded:
            suffix = "" if self.database == DEFAULT_DATABASE else f"?database={self.database}"
            return f"chdb://{self.path}{suffix}"
        auth = ""
        if self.username:
            auth = quote(self.username, safe="") + (":***" if self.password else "") + "@"
        return f"{self.scheme}://{auth}{self.host}:{self.port}/{self.database}"


def parse_store_url(url: str) -> StoreURL:
    """Parse ``chdb:///path[?database=db]`` or ``http(s)://user:pass@host:port/db``."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    query = parse_qs(parts.query)
    if scheme == "chdb":
        raw_path = unquote((parts.netloc + parts.path) if parts.netloc else parts.path)
        if not raw_path or raw_path in ("memory", ":memory:"):
            raise ValueError(
                f"store URL {mask_url(url)!r} names no data directory: use chdb:///absolute/path"
            )
        database = query.get("database", [DEFAULT_DATABASE])[0]
        path = str(Path(raw_path).expanduser().resolve())
        return StoreURL("chdb", path, "", 0, "", "", validate_identifier(database, "database"))
    if scheme in ("http", "https"):
        if not parts.hostname:
            raise ValueError(
                f"store URL {mask_url(url)!r} names no host: use {scheme}://host:8123/db"
            )
        try:
            port = parts.port or (8443 if scheme == "https" else 8123)
        except ValueError as exc:
            raise ValueError(f"store URL {mask_url(url)!r} has a bad port: {exc}") from None
        database = parts.path.strip("/") or query.get("database", [DEFAULT_DATABASE])[0]
        return StoreURL(
            scheme,
            "",
            parts.hostname,
            port,
            unquote(parts.username or ""),
            unquote(parts.password or ""),
            validate_identifier(database, "database"),
        )
    raise ValueError(
        f"store URL {mask_url(url)!r} has an unknown scheme {scheme!r}: "
        "use chdb:///path or http(s)://user:pass@host:8123/db"
    )


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for text that may be logged)."""
    return re.sub(r"(//[^/:@]*:)[^@/]*@", r"\1***@", url)


# --- embedded store: process-wide bookkeeping ------------------------------------------------


class _EmbeddedHold:
    """The one chDB data directory this process uses, its lock file and open stores."""

    def __init__(self) -> None:
        self.mutex = threading.Lock()
        self.path: str | None = None
        self.lock_file: IO[str] | None = None
        self.open_count = 0

    def acquire(self, path: str) -> None:
        with self.mutex:
            if self.path is not None and self.path != path:
                raise StoreError(
                    f"this process already uses the embedded store {self.path}; chDB allows one "
                    f"data directory per process, so chdb://{path} cannot be opened too: close "
                    "the other store first or run a separate process"
                )
            if self.path is None:
                self.lock_file = _lock_directory(path)
                self.path = path
            self.open_count += 1

    def release(self) -> None:
        with self.mutex:
            self.open_count -= 1
            if self.open_count > 0 or self.lock_file is None:
                return
            try:
                self.lock_file.seek(0)
                self.lock_file.truncate()
                fcntl.flock(self.lock_file.fileno(), fcntl.LOCK_UN)
            finally:
                self.lock_file.close()
                self.lock_file = None
            self.path = None


_EMBEDDED = _EmbeddedHold()


def _lock_directory(path: str) -> IO[str]:
    directory = Path(path)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        handle = open(directory / LOCK_FILE_NAME, "a+", encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise StoreError(
            f"cannot create the embedded store directory {path}: {exc.strerror}; "
            "choose a writable directory with CHAINMAP_CLICKHOUSE_URL=chdb:///path "
            "or CHAINMAP_DATA_DIR"
        ) from None
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip().replace("\n", " ") or "an unknown process"
        handle.close()
        raise StoreLockedError(
            f"the embedded store {path} is in use by {holder}; chDB allows one process per "
            "data directory: send OTLP to the running `chainmap serve` at "
            "http://127.0.0.1:4318 (or point CHAINMAP_CLICKHOUSE_URL at a ClickHouse server), "
            "or stop that process"
        ) from None
    handle.seek(0)
    handle.truncate()
    command = " ".join(sys.orig_argv) or sys.executable
    handle.write(f"pid {os.getpid()} ({command[:300]})\n")
    handle.flush()
    return handle


def lock_holder(path: str | Path) -> str:
    """What the lock file of an embedded store says about its holder ('' if free/unknown)."""
    try:
        return (Path(path) / LOCK_FILE_NAME).read_text(encoding="utf-8").strip()
    except OSError:
        return ""
