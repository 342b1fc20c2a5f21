"""Processes known by identity, never by name: a pid together with its start time.

A pid alone is not a process: once it exits, the kernel hands the number to the
next process. Whatever ``chainmap serve`` records about its helpers (decode
workers, the embedded PostgreSQL) is a :class:`ProcessIdentity` read from
``/proc/<pid>/stat`` (start time in clock ticks since boot) and
``/proc/<pid>/cmdline``; a signal is only ever sent after the pid still shows the
same start time. Linux only; elsewhere no process is ever found, so nothing is
ever signalled.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["ProcessIdentity", "children_of", "set_parent_death_signal"]

_PROC = Path("/proc")
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ProcessIdentity:
    """A process as it was when first seen: pid, start time (clock ticks), command line."""

    pid: int
    start_ticks: int
    cmdline: tuple[str, ...]

    @classmethod
    def of(cls, pid: int) -> ProcessIdentity | None:
        """The process now running as ``pid``, or None (gone, a zombie, or no /proc)."""
        stat = _stat_fields(pid)
        if stat is None or stat[0] == "Z":
            return None
        try:
            raw = (_PROC / str(pid) / "cmdline").read_bytes()
        except OSError:
            return None
        cmdline = tuple(part.decode("utf-8", "replace") for part in raw.split(b"\0") if part)
        return cls(pid, int(stat[19]), cmdline)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProcessIdentity:
        return cls(int(data["pid"]), int(data["start_ticks"]), tuple(data["cmdline"]))

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "start_ticks": self.start_ticks, "cmdline": list(self.cmdline)}

    def alive(self) -> bool:
        """Whether this very process still runs (same pid and start time, not a zombie)."""
        stat = _stat_fields(self.pid)
        return stat is not None and stat[0] != "Z" and int(stat[19]) == self.start_ticks

    def stop(self, first: signal.Signals = signal.SIGTERM, grace_s: float = 10.0) -> bool:
        """Send ``first``, then SIGKILL after ``grace_s``; True once it is gone.

        Every signal is preceded by an identity check, so a reused pid is never hit.
        """
        for sig, wait_s in ((first, grace_s), (signal.SIGKILL, 5.0)):
            if not self.alive():
                return True
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                return True
            except PermissionError:
                logger.warning("not allowed to signal process %d (%s)", self.pid, self.describe())
                return False
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                if not self.alive():
                    return True
                time.sleep(0.05)
        return not self.alive()

    def describe(self) -> str:
        return " ".join(self.cmdline)[:160] or f"pid {self.pid}"


def children_of(pid: int) -> list[ProcessIdentity]:
    """The live direct children of ``pid``."""
    found = []
    try:
        entries = list(_PROC.iterdir())
    except OSError:
        return []
    for entry in entries:
        if not entry.name.isdigit():
            continue
        stat = _stat_fields(int(entry.name))
        if stat is not None and int(stat[1]) == pid:
            identity = ProcessIdentity.of(int(entry.name))
            if identity is not None:
                found.append(identity)
    return found


def set_parent_death_signal(sig: signal.Signals = signal.SIGKILL) -> bool:
    """Ask Linux to send ``sig`` to this process when its parent thread exits.

    Returns False where ``prctl`` is not available (the caller then relies on
    other cleanup). The caller must check the parent is still there afterwards:
    a parent that died before the call sends nothing.
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name: [state, ppid, ...]."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces or parentheses itself.
    fields = text[text.rfind(")") + 2 :].split()
    return fields if len(fields) > 19 else None
