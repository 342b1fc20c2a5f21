"""Where the process holding an embedded store serves its API, for readers that cannot open it.

chDB allows one process per data directory, so while ``chainmap serve`` holds the embedded
store the read commands go through its HTTP API instead. ``chainmap serve`` writes
``chainmap-serve.json`` (its URL and pid) into the store directory once it listens and
removes it at exit; a file left by a process that died is recognised by its pid and ignored.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "SERVE_FILE_NAME",
    "ServeAdvert",
    "advertise_server",
    "advertised_server",
    "withdraw_server",
]

logger = logging.getLogger(__name__)

SERVE_FILE_NAME = "chainmap-serve.json"
#: Largest advert read: a real one is ~100 bytes, anything bigger is not ours.
_MAX_BYTES = 4096


@dataclass(frozen=True)
class ServeAdvert:
    """A running ``chainmap serve``: its base URL, pid and the database it analyses."""

    url: str
    pid: int
    database: str


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def advertise_server(store_path: str | Path, url: str, database: str) -> Path | None:
    """Write the advert for this process into ``store_path``; None when it cannot be written."""
    path = Path(store_path) / SERVE_FILE_NAME
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        partial.write_text(
            json.dumps({"url": url, "pid": os.getpid(), "database": database}) + "\n",
            encoding="utf-8",
        )
        partial.replace(path)
    except OSError as exc:
        logger.warning("cannot write %s (%s): CLI reads will not find this server", path, exc)
        return None
    return path


def withdraw_server(advert: Path | None) -> None:
    """Remove this process's advert (at exit), unless another process has replaced it."""
    if advert is None:
        return
    found = advertised_server(advert.parent)
    if found is not None and found.pid != os.getpid():
        return
    try:
        advert.unlink(missing_ok=True)
    except OSError as exc:
        logger.warning("cannot remove %s: %s", advert, exc)


def advertised_server(store_path: str | Path) -> ServeAdvert | None:
    """The live ``chainmap serve`` holding the store at ``store_path``, if there is one."""
    path = Path(store_path) / SERVE_FILE_NAME
    try:
        with path.open("rb") as handle:
            data = json.loads(handle.read(_MAX_BYTES))
        url, pid, database = str(data["url"]), int(data["pid"]), str(data["database"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not url.startswith(("http://", "https://")) or pid <= 0 or not _alive(pid):
        return None
    return ServeAdvert(url, pid, database)
