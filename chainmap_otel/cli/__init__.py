"""The ``chainmap`` command: a thin layer over the library.

Each command module registers its commands on :data:`chainmap_otel.cli.app.app`;
library errors become one-line messages and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import importlib

from chainmap_otel.cli.app import app, run

#: Command modules, imported when the CLI starts (each registers its commands).
COMMAND_MODULES: tuple[str, ...] = (
    "chainmap_otel.cli.chains",
    "chainmap_otel.cli.store",
    "chainmap_otel.cli.demo",
    "chainmap_otel.cli.analysis",
    "chainmap_otel.cli.health",
    "chainmap_otel.cli.coverage",
    "chainmap_otel.cli.collector",
    "chainmap_otel.cli.sql",
    "chainmap_otel.cli.traces",
    "chainmap_otel.cli.operations",
    "chainmap_otel.cli.registry",
)


def main() -> None:
    for module in COMMAND_MODULES:
        importlib.import_module(module)
    run()


__all__ = ["app", "main"]
