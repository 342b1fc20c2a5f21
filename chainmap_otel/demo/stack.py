"""Start and stop everything the demo runs: PostgreSQL, ``chainmap serve``, the platform.

Every child runs in its own process group and is registered with a
:class:`ProcessSupervisor`, which stops the groups (SIGTERM, then SIGKILL after a
grace period) on normal exit, on Ctrl-C/SIGTERM and from ``atexit`` if the demo
crashes. The embedded PostgreSQL (a ``pg_ctl`` daemon) is stopped with ``pg_ctl stop``.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from chainmap_otel import config
from chainmap_otel.demo.platform import (
    DATABASE_URL,
    FAULT_DEFAULTS,
    SERVICES,
    ServiceSpec,
)
from chainmap_otel.errors import ChainmapError, install_hint
from chainmap_otel.registry.embedded import EmbeddedPostgres

logger = logging.getLogger(__name__)

BIN = Path(sys.executable).parent
#: How long a stopped process may take to flush and exit before it is killed.
STOP_GRACE_S = 20.0
#: ``chainmap`` when its console script is not next to the interpreter (``python -m`` style).
CLI_FALLBACK = "import sys; from chainmap_otel.cli import main; sys.argv[0] = 'chainmap'; main()"


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on ``host:port`` now (SO_REUSEADDR, like uvicorn)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def choose_port(preferred: int, taken: set[int]) -> int:
    """``preferred`` when it is free, else any free port (never one in ``taken``)."""
    if preferred not in taken and port_is_free(preferred):
        return preferred
    while True:
        port = free_port()
        if port not in taken:
            return port


@dataclass
class ManagedProcess:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    url: str = ""

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class ProcessSupervisor:
    """Owns the demo's child processes; :meth:`stop_all` is safe to call many times."""

    log_dir: Path
    processes: list[ManagedProcess] = field(default_factory=list)
    started_pids: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        atexit.register(self.stop_all)

    def start(
        self, name: str, argv: Sequence[str], env: Mapping[str, str], url: str = ""
    ) -> ManagedProcess:
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "ab") as log:
            popen = subprocess.Popen(
                list(argv),
                env=dict(env),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        process = ManagedProcess(name, popen, log_path, url)
        self.processes.append(process)
        self.started_pids.append(popen.pid)
        return process

    def stop(self, processes: Sequence[ManagedProcess], grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM the process groups, wait up to ``grace_s``, SIGKILL what is left."""
        for process in processes:
            _signal_group(process.popen, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for process in processes:
            try:
                process.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop within %.0fs; killing it", process.name, grace_s)
            _signal_group(process.popen, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.popen.wait(timeout=5)
            if process in self.processes:
                self.processes.remove(process)

    def stop_all(self) -> None:
        self.stop(list(reversed(self.processes)))


def _signal_group(popen: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(popen.pid, sig)


def install_signal_handlers() -> Callable[[], None]:
    """SIGINT/SIGTERM/SIGHUP raise KeyboardInterrupt so ``finally`` blocks stop the children
    (also when SIGINT was ignored at start, as for background jobs of a script)."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {
        sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    }

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


class Database:
    """The PostgreSQL database-service uses: embedded in the data dir, or an external URL."""

    def __init__(self, url: str, server: EmbeddedPostgres | None = None) -> None:
        self.url = url
        self._server = server

    @property
    def pid(self) -> int | None:
        return self._server.pid if self._server is not None else None

    @classmethod
    def start(cls, data_dir: Path) -> Database:
        external = config.postgres_url()
        if external:
            return cls(external)
        server = EmbeddedPostgres.start(data_dir / "postgres", config.CHAINMAP_POSTGRES_URL.name)
        return cls(server.uri(), server)

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()


def serve_command(store_url: str, port: int, chains_file: Path) -> list[str]:
    """``chainmap serve`` on the demo's store and chains: OTLP/HTTP on ``port``, no gRPC."""
    script = BIN / "chainmap"
    launcher = [str(script)] if script.exists() else [sys.executable, "-c", CLI_FALLBACK]
    return [
        *launcher,
        "serve",
        "--store",
        store_url,
        "--host",
        "127.0.0.1",
        "--http-port",
        str(port),
        "--grpc-port",
        "0",
        "--chains",
        str(chains_file),
    ]


def wait_for_serve(process: ManagedProcess, timeout_s: float = 90.0) -> None:
    """Until ``POST /v1/traces`` with an empty export answers 200."""
    url = process.url + "/v1/traces"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise ChainmapError(
                f"chainmap serve exited with code {process.popen.returncode} before it was "
                f"ready; its log {process.log_path} ends with:\n{process.log_tail()}"
            )
        try:
            response = httpx.post(
                url, content=b"", headers={"Content-Type": "application/x-protobuf"}, timeout=2
            )
            if response.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise ChainmapError(
        f"chainmap serve did not answer on {url} within {timeout_s:.0f}s; see {process.log_path}"
    )


def service_env(
    spec: ServiceSpec,
    urls: Mapping[str, str],
    *,
    otlp_endpoint: str,
    chains_file: Path,
    database_url: str,
    base: Mapping[str, str],
) -> dict[str, str]:
    """The environment a user would give the service: the launcher, its name, its peers."""
    env = {key: value for key, value in base.items() if not key.startswith(("OTEL_", "CHAINMAP_"))}
    env.update(FAULT_DEFAULTS)
    env.update({key: base[key] for key in FAULT_DEFAULTS if key in base})
    env.update({peer.url_env: urls[peer.name] for peer in SERVICES})
    env.update(
        {
            "OTEL_PYTHON_DISTRO": "chainmap",
            "OTEL_PYTHON_CONFIGURATOR": "chainmap",
            config.CHAINMAP_CHAINS_FILE.name: str(chains_file),
            "OTEL_SERVICE_NAME": spec.name,
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=demo,service.namespace=trading",
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "500",
            # The queue's poll is the broker's work, not a request of the platform.
            "OTEL_PYTHON_FASTAPI_EXCLUDED_URLS": "/health,/order-events/claim",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if spec.name == "database-service":
        env[DATABASE_URL] = database_url
    return env


def service_command(spec: ServiceSpec, port: int) -> list[str]:
    """``opentelemetry-instrument python -m uvicorn <app> --port N``, as a user launches it."""
    instrument = BIN / "opentelemetry-instrument"
    if not instrument.exists():
        raise ChainmapError(
            f"opentelemetry-instrument is not installed next to {sys.executable}; "
            f"install the demo extras: {install_hint('demo')}"
        )
    return [
        str(instrument),
        sys.executable,
        "-m",
        "uvicorn",
        spec.app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]


def wait_for_services(
    processes: Sequence[ManagedProcess],
    timeout_s: float = 90.0,
    on_ready: Callable[[ManagedProcess], None] | None = None,
) -> None:
    """Until every service answers ``GET /health`` with 200; a crash fails at once."""
    pending = list(processes)
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=2.0) as client:
        while pending:
            for process in list(pending):
                if process.popen.poll() is not None:
                    raise ChainmapError(
                        f"{process.name} exited with code {process.popen.returncode} while "
                        f"starting; its log {process.log_path} ends with:\n{process.log_tail()}"
                    )
                try:
                    if client.get(process.url + "/health").status_code == 200:
                        pending.remove(process)
                        if on_ready is not None:
                            on_ready(process)
                except httpx.HTTPError:
                    pass
            if not pending:
                return
            if time.monotonic() > deadline:
                names = ", ".join(p.name for p in pending)
                raise ChainmapError(
                    f"{names} did not answer /health within {timeout_s:.0f}s; "
                    f"see the logs in {pending[0].log_path.parent}"
                )
            time.sleep(0.25)
