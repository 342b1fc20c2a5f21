"""The distro warns once at start when no server instrumentation will load."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

INSTRUMENT = Path(sys.executable).parent / "opentelemetry-instrument"
WARNING = "chainmap: no server instrumentation is installed and enabled"


def launch(disabled: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CHAINMAP_"))}
    env.update(
        OTEL_PYTHON_DISTRO="chainmap",
        OTEL_PYTHON_CONFIGURATOR="chainmap",
        OTEL_TRACES_EXPORTER="none",
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=disabled,
    )
    done = subprocess.run(
        [str(INSTRUMENT), sys.executable, "-c", "import fastapi; print('served')"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    assert done.stdout.strip() == "served"
    return done.stderr


@pytest.mark.parametrize("disabled", ["fastapi", "*"])
def test_warns_once_without_server_instrumentation(disabled: str) -> None:
    stderr = launch(disabled)
    assert stderr.count(WARNING) == 1
    assert "opentelemetry-bootstrap -a install" in stderr


def test_silent_with_the_fastapi_instrumentation() -> None:
    assert WARNING not in launch("")
