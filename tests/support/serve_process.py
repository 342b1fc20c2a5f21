"""``chainmap serve`` (``run_server``) as a real process on free ports, and store counts after it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.processes import free_port

SERVE = """
import logging, sys
from chainmap_otel.server import run_server
logging.basicConfig(level=logging.INFO)
run_server(sys.argv[1], "127.0.0.1", int(sys.argv[2]), int(sys.argv[3]), log_level="warning")
"""

QUERY = """
import json, sys
from chainmap_otel.storage.store import open_store
with open_store(sys.argv[1]) as store:
    print(json.dumps(store.query(sys.argv[2]).result_rows))
"""


def wait_until_serving(
    process: subprocess.Popen[bytes],
    otlp_url: str,
    log: Path,
    timeout: float = 120.0,
    token: str | None = None,
) -> None:
    """Until an empty OTLP/HTTP export to ``otlp_url`` answers 200 (serve is ready); the log
    in the error when ``process`` exits first or never answers. ``token``: serve's
    ``CHAINMAP_INGEST_TOKEN``, if it has one."""
    headers = {"Content-Type": "application/x-protobuf"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"chainmap serve exited early:\n{log.read_text(errors='replace')}")
        try:
            response = httpx.post(
                otlp_url,
                content=b"",
                headers=headers,
                timeout=2,
            )
            if response.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(
        f"chainmap serve did not answer within {timeout}s:\n{log.read_text(errors='replace')}"
    )


class ServeProcess:
    """One ``run_server`` process; ``env`` adds ``CHAINMAP_*`` settings."""

    def __init__(
        self,
        store_url: str,
        log: Path,
        env: dict[str, str] | None = None,
        http_port: int | None = None,
    ) -> None:
        """``http_port``: a port chosen beforehand (a sender configured before serve starts)."""
        self.http_port, self.grpc_port = http_port or free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.http_port}/v1/traces"
        self.grpc_address = f"127.0.0.1:{self.grpc_port}"
        self.log_path = log
        self._env = env
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-c", SERVE, store_url, str(self.http_port), str(self.grpc_port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 120.0) -> None:
        token = (self._env or {}).get("CHAINMAP_INGEST_TOKEN")
        wait_until_serving(self.process, self.url, self.log_path, timeout, token)

    def terminate(self) -> int:
        if self.process.poll() is not None:
            return self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"chainmap serve ignored SIGTERM:\n{self.log()}") from None

    def kill(self) -> None:
        """SIGKILL: no flush, no close, nothing of the shutdown path runs."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def peak_rss_bytes(self) -> int:
        """The process's high-water resident set size (``VmHWM``)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmHWM in /proc status")


def query(store_url: str, sql: str) -> list[list[object]]:
    """Rows of ``sql`` on the store, from a process of its own (the store is exclusive)."""
    result = subprocess.run(
        [sys.executable, "-c", QUERY, store_url, sql], capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr
    rows: list[list[object]] = json.loads(result.stdout)
    return rows
