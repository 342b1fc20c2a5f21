"""``chainmap demo`` end to end: stack up, load, flush, analyse, report, optionally serve.

Order of events, and why:

1. PostgreSQL (embedded in the data dir) and ``chainmap serve`` on the embedded chDB
   store in its own process; the platform's nine services under
   ``opentelemetry-instrument``, exporting OTLP/HTTP to it.
2. Load for ``duration`` seconds with a progress bar.
3. Flush: the services get SIGTERM (uvicorn shuts down, the SDK's exit hook exports
   the last batch), then ``chainmap serve`` gets SIGTERM (it writes its queue and
   closes the store). Only then is every span stored.
4. Analysis runs in this process on the now free embedded store (chDB allows one
   process per data directory, and analysis needs a consistent, complete store);
   the store is closed again afterwards.
5. Unless ``--no-serve``, ``chainmap serve`` is started again on the same store for
   exploring, until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from chainmap_otel import config
from chainmap_otel.demo import load, report
from chainmap_otel.demo.platform import SERVICES
from chainmap_otel.demo.stack import (
    Database,
    ManagedProcess,
    ProcessSupervisor,
    choose_port,
    install_signal_handlers,
    port_is_free,
    serve_command,
    service_command,
    service_env,
    wait_for_serve,
    wait_for_services,
)
from chainmap_otel.errors import ChainmapError
from chainmap_otel.tagging.active import example_catalog_path

DEFAULT_SERVE_PORT = 4318


@dataclass
class DemoOptions:
    duration_s: float = 30.0
    serve: bool = True
    data_dir: Path | None = None
    port: int | None = None
    chains_file: Path | None = None
    summary_json: Path | None = None


@dataclass
class DemoRun:
    options: DemoOptions
    console: Console
    summary: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._temporary = self.options.data_dir is None
        self.data_dir = (
            Path(tempfile.mkdtemp(prefix="chainmap-demo-"))
            if self.options.data_dir is None
            else self.options.data_dir.expanduser().resolve()
        )
        self.store_url = f"chdb://{self.data_dir / 'clickhouse'}"
        self.supervisor = ProcessSupervisor(self.data_dir / "logs")
        self.database: Database | None = None
        self.serve: ManagedProcess | None = None
        self.services: dict[str, ManagedProcess] = {}
        self.chains_file = (
            self.options.chains_file.resolve()
            if self.options.chains_file
            else example_catalog_path()
        )

    # -- the run -----------------------------------------------------------------------

    def run(self) -> None:
        restore = install_signal_handlers()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.summary.update(data_dir=str(self.data_dir), chains_file=str(self.chains_file))
        self._started_ns = time.time_ns() - 5_000_000_000
        try:
            serve_port = self._serve_port()
            self._start_database()
            self._start_serve(serve_port)
            self._start_services()
            self._drive_load()
            self._flush()
            self._analyse()
            self._write_summary()
            if self.options.serve:
                self._serve_until_interrupted(serve_port)
        finally:
            self._shutdown()
            restore()
            self._write_summary()

    def _serve_port(self) -> int:
        if self.options.port is not None:
            if not port_is_free(self.options.port):
                raise ChainmapError(
                    f"port {self.options.port} is in use; free it or pick another with --port"
                )
            return self.options.port
        return choose_port(DEFAULT_SERVE_PORT, set())

    def _start_database(self) -> None:
        with self.console.status("Starting PostgreSQL ..."):
            self.database = Database.start(self.data_dir)
        self.summary["postgres_pid"] = self.database.pid
        where = "embedded" if self.database.pid is not None else "external"
        self.console.print(f"[green]✓[/] PostgreSQL ({where}) for database-service")

    def _start_serve(self, port: int) -> None:
        url = f"http://127.0.0.1:{port}"
        with self.console.status(f"Starting chainmap serve on {url} (store {self.store_url}) ..."):
            self.serve = self.supervisor.start(
                "chainmap-serve",
                serve_command(self.store_url, port, self.chains_file),
                _serve_env(self.data_dir),
                url,
            )
            wait_for_serve(self.serve)
        self.summary["serve_url"] = url
        self.console.print(f"[green]✓[/] chainmap serve receiving OTLP on {url}/v1/traces")

    def _start_services(self) -> None:
        taken: set[int] = set()
        urls: dict[str, str] = {}
        ports: dict[str, int] = {}
        for spec in SERVICES:
            port = choose_port(spec.default_port, taken)
            taken.add(port)
            ports[spec.name] = port
            urls[spec.name] = f"http://127.0.0.1:{port}"
        assert self.serve is not None and self.database is not None
        for spec in SERVICES:
            env = service_env(
                spec,
                urls,
                otlp_endpoint=self.serve.url,
                chains_file=self.chains_file,
                database_url=self.database.url,
                base=_base_env(),
            )
            self.services[spec.name] = self.supervisor.start(
                spec.name, service_command(spec, ports[spec.name]), env, urls[spec.name]
            )
        answered: dict[str, dict[str, Any]] = {}

        def ready(process: ManagedProcess) -> None:
            answered[process.name] = {"url": process.url, "pid": process.pid, "health": 200}

        with self.console.status(f"Starting the platform ({len(SERVICES)} services) ..."):
            wait_for_services(list(self.services.values()), on_ready=ready)
        self.summary["services"] = {name: answered[name] for name in self.services}
        moved = [f"{n} :{ports[n]}" for n in ports if ports[n] != _seed_port(n)]
        self.console.print(
            "[green]✓[/] platform up: "
            + ", ".join(f"{name} :{ports[name]}" for name in self.services)
        )
        if moved:
            self.console.print(f"  (seed ports in use; moved {', '.join(moved)})")

    def _drive_load(self) -> None:
        urls = {name: process.url for name, process in self.services.items()}
        duration = self.options.duration_s
        progress = Progress(
            TextColumn("[bold]Driving load"),
            BarColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        with progress:
            task = progress.add_task("load", total=duration, detail="")

            def update(stats: load.LoadStats, elapsed: float) -> None:
                ws = sum(v for k, v in stats.calls.items() if k.startswith("WebSocket"))
                progress.update(
                    task,
                    completed=min(elapsed, duration),
                    detail=f"{stats.total} calls, {ws} WebSocket sessions, {stats.errors} errors",
                )

            stats = asyncio.run(load.drive(urls, duration, update))
        self.summary["load"] = stats.to_json()
        sessions = sum(v for k, v in stats.calls.items() if k.startswith("WebSocket"))
        self.console.print(
            f"[green]✓[/] load: {stats.total} calls ({sessions} WebSocket sessions), "
            f"{sum(stats.server_errors.values())} answered 5xx, "
            f"{sum(stats.failures.values())} failed to connect"
        )
        self.summary["services_answered_after_load"] = self._health_check()
        self.summary["integration"] = self._integration_check()

    def _health_check(self) -> dict[str, bool]:
        answered: dict[str, bool] = {}
        with httpx.Client(timeout=5.0) as client:
            for name, process in self.services.items():
                try:
                    answered[name] = client.get(process.url + "/health").status_code == 200
                except httpx.HTTPError:
                    answered[name] = False
        return answered

    def _integration_check(self) -> dict[str, Any]:
        """What the platform's own services answer for the chain API and chain health (the
        spec's gateway and database integrations, relayed from chainmap serve)."""
        found: dict[str, Any] = {}
        with httpx.Client(timeout=30.0) as client:
            for name, path, key in (
                ("api-gateway", "/api/v1/chains", "gateway_chains"),
                ("api-gateway", "/health/detailed", "gateway_health"),
                ("database-service", "/health/detailed", "database_health"),
            ):
                process = self.services.get(name)
                if process is None:
                    continue
                try:
                    answer = client.get(process.url + path)
                    found[key] = {"status": answer.status_code, "body": answer.json()}
                except (httpx.HTTPError, ValueError) as exc:
                    found[key] = {"status": None, "error": f"{type(exc).__name__}: {exc}"}
        return found

    def _flush(self) -> None:
        with self.console.status("Flushing spans (stopping the services, then chainmap serve) ..."):
            self.supervisor.stop(list(self.services.values()))
            if self.serve is not None:
                self.supervisor.stop([self.serve], grace_s=60.0)
                self.serve = None
        if self.database is not None:
            self.database.stop()
        self.console.print("[green]✓[/] spans flushed and stored")

    def _analyse(self) -> None:
        with self.console.status("Analysing the stored traces ..."):
            result = report.analyse(self.store_url, self.chains_file, self._started_ns)
        self.summary["analysis"] = result.to_json()
        report.render(result, self.console)

    def _serve_until_interrupted(self, port: int) -> None:
        url = f"http://127.0.0.1:{port}"
        self.serve = self.supervisor.start(
            "chainmap-serve",
            serve_command(self.store_url, port, self.chains_file),
            _serve_env(self.data_dir),
            url,
        )
        wait_for_serve(self.serve)
        store = self.store_url
        self.console.print(
            f"\n[bold]chainmap serve[/] is up on {store}:\n"
            f"  web view   [link={url}/]{url}/[/]\n"
            f"  chain API  {url}/api/v1/chains   (health, topology, drift, discover, impact)\n"
            f"  OTLP/HTTP  {url}/v1/traces\n"
            "  Ctrl-C stops it; the run stays in the store for the analysis commands, e.g.\n"
            f"    chainmap discover --store {store} --since 1h --min-traces 3",
            highlight=False,
            soft_wrap=True,
        )
        try:
            while self.serve.popen.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            self.console.print("stopping ...")

    def _shutdown(self) -> None:
        self.supervisor.stop_all()
        if self.database is not None:
            self.database.stop()
            self.database = None
        self.summary["started_pids"] = list(self.supervisor.started_pids)
        if self._temporary and not self.options.serve:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def _write_summary(self) -> None:
        if self.options.summary_json is not None:
            self.options.summary_json.write_text(
                json.dumps(self.summary, indent=2, default=str) + "\n"
            )


def _seed_port(name: str) -> int:
    return next(spec.default_port for spec in SERVICES if spec.name == name)


def _base_env() -> dict[str, str]:
    return dict(os.environ)


def _serve_env(data_dir: Path) -> dict[str, str]:
    """serve keeps its registry (embedded PostgreSQL) in the demo's data directory."""
    return {**os.environ, config.CHAINMAP_DATA_DIR.name: str(data_dir)}


def run_demo(options: DemoOptions, console: Console | None = None) -> dict[str, Any]:
    """Run the demo; returns the summary (also written to ``options.summary_json``)."""
    demo = DemoRun(options, console or Console())
    demo.run()
    return demo.summary
