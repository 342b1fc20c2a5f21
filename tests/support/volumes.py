"""Small real volumes for disk-full tests: a size-capped tmpfs mounted for the test."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def small_volume(path: Path, size_bytes: int) -> Iterator[Path]:
    """``path`` as a tmpfs of ``size_bytes``; the test is skipped where mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip(
            "a size-capped tmpfs (mount -t tmpfs) is what fills the WAL volume here; mounting "
            "needs root, and this test process is not root"
        )
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_bytes},mode=0777", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(
            "a size-capped tmpfs (mount -t tmpfs) is what fills the WAL volume here; this "
            f"sandbox refuses the mount: {mounted.stderr.strip()}"
        )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(volume: Path, leave_bytes: int = 0) -> Path:
    """A ballast file taking all of ``volume``'s free space but ``leave_bytes``."""
    ballast = volume / "ballast"
    stats = os.statvfs(volume)
    size = max(0, stats.f_bavail * stats.f_frsize - leave_bytes)
    chunk = b"\0" * (1 << 20)
    with open(ballast, "ab") as handle:
        try:
            while size > 0:
                handle.write(chunk[: min(size, len(chunk))])
                size -= len(chunk)
            handle.flush()
        except OSError:
            pass  # full already: what was asked for
    return ballast
