"""What a running ``chainmap serve`` leaves in its data directory, so the next one can clean up.

Each serve writes ``$CHAINMAP_DATA_DIR/run/serve-<pid>.json``: its own
:class:`~chainmap_otel.processes.ProcessIdentity` and those of its children
(decode workers, the multiprocessing resource tracker). A clean stop deletes
it. A serve killed with ``kill -9`` cannot: its children normally die with it
(parent-death signal), and whatever survived is stopped by the next serve
that starts on the same data directory, which finds the record of a serve no
longer running and stops each recorded process that still shows the same
identity. It then stops the embedded PostgreSQL of that directory if no live
process holds it any more (:func:`~chainmap_otel.registry.embedded.stop_orphaned_postgres`).
Nothing is ever looked up or signalled by name.
"""

from __future__ import annotations

import json
import logging
import os
import signal
from pathlib import Path

from chainmap_otel.processes import ProcessIdentity, children_of

logger = logging.getLogger(__name__)

__all__ = ["ServeRecord", "reap_orphans"]

_RUN_DIR = "run"


class ServeRecord:
    """This process's record in ``data_dir``; :meth:`update` writes it, :meth:`remove` deletes it."""

    def __init__(self, data_dir: Path) -> None:
        self.directory = data_dir / _RUN_DIR
        self.path = self.directory / f"serve-{os.getpid()}.json"
        self._identity = ProcessIdentity.of(os.getpid())

    def update(self) -> None:
        """Record this process and its current children (call again after starting more)."""
        if self._identity is None:
            return  # no /proc: nothing could be checked later anyway
        document = {
            "serve": self._identity.to_json(),
            "children": [child.to_json() for child in children_of(os.getpid())],
        }
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_suffix(".tmp")
            temporary.write_text(json.dumps(document), encoding="utf-8")
            os.replace(temporary, self.path)
        except OSError as exc:
            logger.warning("cannot record serve's processes in %s: %s", self.path, exc)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def reap_orphans(data_dir: Path) -> list[str]:
    """Stop what dead serves of ``data_dir`` left running; returns a line per process stopped."""
    stopped: list[str] = []
    dead_serves: list[int] = []
    directory = data_dir / _RUN_DIR
    for path in sorted(directory.glob("serve-*.json")) if directory.is_dir() else []:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            serve = ProcessIdentity.from_json(document["serve"])
            children = [ProcessIdentity.from_json(c) for c in document.get("children", [])]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("ignoring an unreadable serve record %s: %s", path, exc)
            continue
        if serve.alive():
            continue
        dead_serves.append(serve.pid)
        for child in children:
            if child.alive() and child.stop(signal.SIGTERM, grace_s=5.0):
                stopped.append(f"process {child.pid} of a killed serve ({child.describe()})")
        path.unlink(missing_ok=True)
    pgdata = data_dir / "postgres"
    if (pgdata / "postmaster.pid").exists():
        from chainmap_otel.registry.embedded import stop_orphaned_postgres

        postmaster = stop_orphaned_postgres(pgdata, dead_serves)
        if postmaster is not None:
            stopped.append(f"the embedded PostgreSQL {postmaster} nothing holds any more")
    for line in stopped:
        logger.warning("stopped %s", line)
    return stopped
