"""The public surface: one sorted ``__all__`` that is complete, resolvable and light to import."""

from __future__ import annotations

import subprocess
import sys

import chainmap_otel


def test_all_is_sorted_and_every_name_resolves() -> None:
    names = chainmap_otel.__all__
    assert names == sorted(names)
    for name in names:
        assert getattr(chainmap_otel, name) is not None, name


def test_every_lazy_name_is_public() -> None:
    assert set(chainmap_otel._LAZY) <= set(chainmap_otel.__all__)


def test_importing_the_package_does_not_load_the_analysis_stack() -> None:
    code = (
        "import sys, chainmap_otel; "
        "heavy = [m for m in sys.modules if m.split('.')[0] in "
        "('chdb', 'clickhouse_connect', 'networkx', 'fastapi', 'psycopg', 'pyarrow', 'numpy')]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
