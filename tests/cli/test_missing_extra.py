"""A command whose extra is not installed says so in one line, with the command that installs
it from this repository (chainmap-otel is not on PyPI), never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Runs the CLI with ``module`` made unimportable, as in an environment without its extra.
WITHOUT = """import sys
sys.modules[sys.argv[1]] = None
from chainmap_otel.cli import main
sys.argv = ["chainmap", *sys.argv[2:]]
main()
"""


@pytest.mark.parametrize(
    ("module", "args", "extra"),
    [
        ("numpy", ["serve", "--http-port", "0", "--grpc-port", "0"], "server"),
        ("numpy", ["health"], "analysis"),
        ("fastapi", ["serve", "--http-port", "0", "--grpc-port", "0"], "server"),
    ],
)
def test_a_missing_extra_is_one_line_naming_the_install_command(
    tmp_path: Path, module: str, args: list[str], extra: str
) -> None:
    store = f"chdb://{tmp_path / 'store'}"
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT, module, *args, "--store", store],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == (
        f"error: chainmap {args[0]} needs the '{extra}' extra ({module} is not installed): "
        f"pip install -e '{ROOT}[{extra}]'"
    )
