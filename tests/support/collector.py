"""otelcol-chainmap, the Collector built from its Go modules: build it once, run it, stop it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
COLLECTOR = ROOT / ".build" / "otelcol-chainmap"
# A cold build downloads ~540 modules and compiles them: minutes on two busy cores.
BUILD_TIMEOUT = 3600.0


def build_collector() -> Path:
    """``make collector`` (nothing to do when the binary is current); skips without Go."""
    if shutil.which("go") is None:
        pytest.skip(
            "otelcol-chainmap (the real Collector these tests run) is built from its Go "
            "modules and `go` is not on PATH: install Go >= 1.26 (.ci/run builds it)"
        )
    done = subprocess.run(
        ["make", "--no-print-directory", "collector"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
    )
    if done.returncode != 0:
        pytest.fail(f"make collector failed:\n{done.stdout}\n{done.stderr}", pytrace=False)
    return COLLECTOR


def validate(binary: Path, config: Path, env: dict[str, str] | None = None) -> str:
    """``otelcol-chainmap validate --config``: the errors it prints, empty when accepted.
    ``env`` is the whole environment (default: this process's)."""
    done = subprocess.run(
        [str(binary), "validate", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    if done.returncode == 0:
        return ""
    return (done.stdout + done.stderr).strip() or f"exit status {done.returncode}"


class CollectorProcess:
    """One Collector running ``config`` (a dict), with a health_check extension on a free
    port to wait on and its own telemetry off (no fixed :8888 to collide on)."""

    def __init__(
        self,
        binary: Path,
        config: dict[str, Any],
        directory: Path,
        name: str = "otelcol",
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.health_port = free_port()
        config = dict(config)
        extensions = dict(config.get("extensions") or {})
        extensions["health_check"] = {"endpoint": f"127.0.0.1:{self.health_port}"}
        config["extensions"] = extensions
        service = dict(config["service"])
        service["extensions"] = sorted(set(service.get("extensions") or []) | {"health_check"})
        telemetry = dict(service.get("telemetry") or {})
        telemetry.setdefault("metrics", {"level": "none"})
        service["telemetry"] = telemetry
        config["service"] = service
        self.config_path = directory / f"{name}.yaml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        self.log_path = directory / f"{name}.log"
        self._binary = binary
        self._env = {**os.environ, **(env or {})}
        self.process = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        with open(self.log_path, "ab") as log:
            return subprocess.Popen(
                [str(self._binary), "--config", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env,
                start_new_session=True,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until the health_check extension answers 200 (every pipeline started)."""
        url = f"http://127.0.0.1:{self.health_port}/"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.log()}"
                )
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{self.name} was not ready within {timeout}s:\n{self.log()}")

    def restart(self) -> None:
        """Start the same config again after :meth:`kill` or :meth:`stop`."""
        assert self.process.poll() is not None, f"{self.name} is still running"
        self.process = self._start()

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM (the Collector drains and shuts down), SIGKILL if it outlives ``timeout``."""
        if self.process.poll() is not None:
            return self.process.returncode
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.name} ignored SIGTERM:\n{self.log()}") from None

    def kill(self) -> None:
        """SIGKILL: nothing of the shutdown path runs."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
