"""The README documents every command and every setting, as users meet them."""

from __future__ import annotations

import importlib
from pathlib import Path

import typer.main

from chainmap_otel.cli import COMMAND_MODULES, app
from chainmap_otel.config import ALL_ENV_VARS

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def command_paths() -> list[str]:
    for module in COMMAND_MODULES:
        importlib.import_module(module)
    group = typer.main.get_command(app)
    paths = []
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        subcommands = getattr(command, "commands", None)
        if subcommands:
            paths.extend(f"{name} {sub}" for sub in subcommands)
        else:
            paths.append(name)
    return paths


def test_every_cli_command_is_in_the_readme() -> None:
    paths = command_paths()
    assert {"chains validate", "schema apply", "serve", "topology", "demo"} <= set(paths)
    missing = [p for p in paths if f"chainmap {p}" not in README]
    assert not missing, f"document these commands in README.md: {missing}"


def test_every_environment_variable_is_in_the_readme() -> None:
    missing = [v.name for v in ALL_ENV_VARS if f"`{v.name}`" not in README]
    assert not missing, f"document these variables in README.md: {missing}"
