"""The catalog a process tags with, and the parsing of untrusted chain stacks.

Shared by the span processor and the propagator so both accept exactly the
same ids. Loading never raises: a missing or broken chains file in a service
logs one warning naming the file and the problem, and spans stay untagged.
:class:`ChainsFileWatcher` reloads a changed file in the background.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from chainmap_otel.config import CHAINMAP_CHAINS_FILE, env_str
from chainmap_otel.errors import ChainDefinitionError
from chainmap_otel.tagging.definitions import ChainCatalog, load_catalog

logger = logging.getLogger(__name__)

#: The W3C baggage entry that carries the chain stack across processes.
BAGGAGE_KEY = "chain.ids"
#: Deepest chain stack accepted from a remote peer.
MAX_STACK_DEPTH = 8
#: Longest ``chain.ids`` value accepted from a remote peer (8 ids of 64 chars and commas).
MAX_STACK_TEXT = 8 * 65

_lock = threading.Lock()
_active: ChainCatalog | None = None


def load_catalog_safely(path: str | Path | None) -> ChainCatalog:
    """The catalog at ``path`` (or ``$CHAINMAP_CHAINS_FILE``); empty, with one warning, on any problem."""
    source = str(path) if path else env_str(CHAINMAP_CHAINS_FILE)
    if not source:
        logger.warning(
            "chainmap: no chains file configured; spans are not tagged. "
            "Set %s to your chains YAML (see chains.example.yaml).",
            CHAINMAP_CHAINS_FILE.name,
        )
        return ChainCatalog()
    try:
        return load_catalog(source)
    except ChainDefinitionError as exc:
        logger.warning(
            "chainmap: chains file %s is unusable, spans are not tagged until it is fixed "
            "(check it with `chainmap chains validate %s`):\n%s",
            source,
            source,
            exc,
        )
    except Exception:
        logger.exception("chainmap: could not load chains file %s; spans are not tagged", source)
    return ChainCatalog()


def example_catalog_path() -> Path:
    """``chains.example.yaml``: packaged in the wheel, or at the root of a source checkout."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (
        package / "_data" / "chains.example.yaml",
        package.parent / "chains.example.yaml",
    ):
        if candidate.is_file():
            return candidate
    raise ChainDefinitionError(
        [
            "chains.example.yaml is missing from this installation: pass --chains FILE "
            f"or set {CHAINMAP_CHAINS_FILE.name}"
        ]
    )


def default_catalog_path() -> Path:
    """What the surfaces read when no file is given: ``$CHAINMAP_CHAINS_FILE``, else the example."""
    configured = env_str(CHAINMAP_CHAINS_FILE)
    return Path(configured).expanduser() if configured else example_catalog_path()


def set_active_catalog(catalog: ChainCatalog) -> None:
    global _active
    with _lock:
        _active = catalog


def active_catalog() -> ChainCatalog:
    """The process-wide catalog, loaded from the environment on first use."""
    global _active
    catalog = _active
    if catalog is None:
        with _lock:
            if _active is None:
                _active = load_catalog_safely(None)
            catalog = _active
    return catalog


def parse_stack(raw: object, known: frozenset[str] | set[str]) -> tuple[str, ...]:
    """An untrusted ``a,b,c`` stack reduced to known ids, deduplicated, bounded; never raises."""
    if not isinstance(raw, str) or not raw or len(raw) > MAX_STACK_TEXT:
        return ()
    stack: list[str] = []
    for part in raw.split(","):
        chain_id = part.strip()
        if chain_id in known and chain_id not in stack:
            stack.append(chain_id)
            if len(stack) == MAX_STACK_DEPTH:
                break
    return tuple(stack)


class ChainsFileWatcher:
    """Reloads a chains file when it changes: an mtime/size poll in a daemon thread.

    Off the span path: the thread only stats the file every ``interval_s`` seconds and, on a
    change, loads and validates it, then hands the new catalog to ``on_change`` (which swaps
    it in atomically). A file that no longer validates keeps the previous catalog and logs
    one warning per broken version of the file.
    """

    def __init__(
        self, path: str | Path, on_change: Callable[[ChainCatalog], None], interval_s: float
    ) -> None:
        self.path = Path(path)
        self.on_change = on_change
        self.interval_s = interval_s
        self.reloads = 0
        self._seen = self._signature()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _signature(self) -> tuple[int, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size)

    def start(self) -> None:
        if self.interval_s <= 0:
            return
        self._thread = threading.Thread(
            target=self._run, name="chainmap-chains-reload", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check()
            except Exception:
                logger.exception("chainmap: checking %s for changes failed", self.path)

    def check(self) -> bool:
        """Reload if the file changed since the last check; True when a new catalog is in."""
        signature = self._signature()
        if signature is None or signature == self._seen:
            return False
        self._seen = signature
        try:
            catalog = load_catalog(self.path)
        except ChainDefinitionError as exc:
            logger.warning(
                "chainmap: the changed chains file %s is unusable, still tagging with the "
                "previous chains (check it with `chainmap chains validate %s`):\n%s",
                self.path,
                self.path,
                exc,
            )
            return False
        set_active_catalog(catalog)
        self.on_change(catalog)
        self.reloads += 1
        logger.info("chainmap: reloaded %d chains from %s", len(catalog), self.path)
        return True
