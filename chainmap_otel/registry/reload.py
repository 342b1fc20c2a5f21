"""Hot reload: one swappable catalog, and the registry listener that swaps it.

:class:`CatalogHolder` is what every reader of a long-running process asks for the
current catalog; a swap is one reference assignment, so a reader sees the old catalog or
the new one, never a mix. :class:`RegistryCatalogSource` runs in a daemon thread of
``chainmap serve``: it opens the registry (retrying with backoff while PostgreSQL is
unreachable, serving the YAML catalog meanwhile; an embedded server is supervised, and
its restart ends the wait at once), seeds an empty registry from that YAML
once, then LISTENs on :data:`NOTIFY_CHANNEL` and reloads on every committed write.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chainmap_otel.errors import ChainDefinitionError, RegistryError
from chainmap_otel.registry.chains import NOTIFY_CHANNEL, ChainRegistry, StoredChain
from chainmap_otel.registry.postgres import RegistryDatabase, open_registry_database
from chainmap_otel.tagging.definitions import ChainCatalog, load_definitions

logger = logging.getLogger(__name__)

__all__ = ["CatalogHolder", "RegistryCatalogSource"]

#: Longest wait between attempts to reach an unreachable registry.
MAX_BACKOFF_S = 30.0
#: How long one wait for notifications lasts before the stop flag is checked again.
_LISTEN_POLL_S = 0.5


class CatalogHolder:
    """The current catalog; subscribers are told about every swap (off the caller's path)."""

    def __init__(self, catalog: ChainCatalog) -> None:
        self._catalog = catalog
        self.generation = 0
        self._subscribers: list[Callable[[ChainCatalog], None]] = []
        self._lock = threading.Lock()

    @property
    def current(self) -> ChainCatalog:
        return self._catalog

    def subscribe(self, callback: Callable[[ChainCatalog], None]) -> None:
        with self._lock:
            self._subscribers.append(callback)

    def swap(self, catalog: ChainCatalog) -> None:
        with self._lock:
            self._catalog = catalog
            self.generation += 1
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(catalog)
            except Exception:
                logger.exception("a catalog subscriber failed after a reload")


class RegistryCatalogSource:
    """Keeps ``holder`` equal to the registry's live chains, in a daemon thread."""

    def __init__(
        self,
        holder: CatalogHolder,
        seed: ChainCatalog | None,
        url: str | None = None,
    ) -> None:
        self.holder = holder
        self.url = url
        self._seed = seed
        self._seeded = False  # seeding (or saying why not) happens on the first connect only
        self._stop = threading.Event()
        self._wake = threading.Event()  # stop, or the embedded server runs again
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: Any = None
        self.database: RegistryDatabase | None = None
        self.registry: ChainRegistry | None = None
        self.status = "starting"
        self.error = ""
        self.reloads = 0
        #: chain id -> the live version's StoredChain, as of the last reload (read by the API,
        #: so no request waits on PostgreSQL).
        self.versions: dict[str, StoredChain] = {}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="chainmap-registry", daemon=True)
        self._thread.start()

    def wait_ready(self, timeout: float) -> bool:
        return self._ready.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.database is not None:
            self.database.close()
            self.database = None

    # -- the thread ----------------------------------------------------------------

    def _run(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            try:
                self._connect()
                backoff = 1.0
                self._listen()
            except (RegistryError, ChainDefinitionError) as exc:
                self.status, self.error = "unavailable", str(exc)
                logger.warning(
                    "chain registry unavailable, analysing with %s meanwhile: %s",
                    self.holder.current.source,
                    exc,
                )
            except Exception as exc:
                self.status, self.error = "unavailable", f"{type(exc).__name__}: {exc}"
                logger.exception("chain registry listener failed; retrying")
            finally:
                self._close_listener()
            if self._wake.wait(backoff):
                self._wake.clear()
                backoff = 1.0
            else:
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    def _connect(self) -> None:
        if self.database is None:
            self.database = open_registry_database(self.url, on_restart=self._wake.set)
            self.registry = ChainRegistry(self.database)
        assert self.registry is not None
        self._conn = self.database.listen_connection()
        self._conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
        if not self._seeded:
            self._seed_once()
            self._seeded = True
        self.reload()
        self.status, self.error = "ready", ""
        self._ready.set()

    def _seed_once(self) -> None:
        """An empty registry starts with the given chains file's chains (version 1, author
        seed); a registry that holds chains keeps them, and the log says exactly how the file
        differs and the command that would replace them."""
        assert self.registry is not None
        if self._seed is None:
            if not self.registry.current():
                logger.warning(
                    "the chain registry holds no chains, so no chain is analysed: give serve "
                    "--chains FILE (or CHAINMAP_CHAINS_FILE) to seed it, or run "
                    "`chainmap registry push FILE`; `chainmap discover` proposes chains"
                )
            return
        source = Path(self._seed.source)
        if not source.is_file():
            return
        _, definitions = load_definitions(source)
        if self.registry.current():
            self._explain_kept(source, definitions)
            return
        assert self.database is not None
        with self.database.connection() as conn:
            has_history = bool(
                conn.execute("SELECT 1 FROM chainmap_chain_versions LIMIT 1").fetchone()
            )
        if has_history:
            logger.warning(
                "every chain of the chain registry was deleted on purpose, so %s is not "
                "read; `chainmap registry push %s` stores its chains",
                source,
                source,
            )
            return
        report = self.registry.push(definitions, author="seed", comment=f"seeded from {source}")
        logger.info("chain registry seeded with %d chains from %s", len(report.added), source)

    def _explain_kept(self, source: Path, definitions: list[dict[str, Any]]) -> None:
        assert self.registry is not None
        diff = self.registry.compare(definitions)
        if not (diff.added or diff.changed or diff.deleted):
            logger.info("the chain registry holds the %d chains of %s", len(diff.unchanged), source)
            return
        parts = [
            f"{label} {', '.join(ids)}"
            for label, ids in (
                ("only in the file:", diff.added),
                ("different:", diff.changed),
                ("only in the registry:", diff.deleted),
            )
            if ids
        ]
        logger.warning(
            "the chain registry already holds chains, so serve analyses those and not %s "
            "(%s); to make the registry equal to the file run `chainmap registry push %s "
            "--prune` (serve reloads at once)",
            source,
            "; ".join(parts),
            source,
        )

    def reload(self) -> None:
        """Swap in the registry's live chains."""
        assert self.registry is not None
        current = self.registry.current()
        catalog = self.registry.catalog(current)
        self.versions = {c.chain_id: c for c in current}
        self.holder.swap(catalog)
        self.reloads += 1
        logger.info("chain catalog reloaded: %d chains from %s", len(catalog), catalog.source)

    def _listen(self) -> None:
        conn = self._conn
        while not self._stop.is_set():
            pending = False
            for _ in conn.notifies(timeout=_LISTEN_POLL_S, stop_after=64):
                pending = True
            if pending:
                self.reload()

    def _close_listener(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                logger.debug("closing the LISTEN connection failed", exc_info=True)
