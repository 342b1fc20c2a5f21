"""Every command, setting and route is documented where users look for it.

The reference blocks of docs/cli.md, docs/configuration.md and docs/serve.md are generated
(``make docs``; ``make lint`` checks they are current): these tests fail when a block is
deleted or a page no longer covers what the code has, one test per name so the failure says
what drifted.
"""

from __future__ import annotations

import importlib

import pytest
import typer.main

from chainmap_otel.cli import COMMAND_MODULES, app
from chainmap_otel.cli.reference import HttpRoute, http_routes
from chainmap_otel.config import ALL_ENV_VARS
from tests.docs.pages import DOCS


def command_paths() -> list[str]:
    """Every ``chainmap`` command as typed (``chains validate``), read from the typer app."""
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


COMMANDS = command_paths()
ROUTES = http_routes()


def page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def test_the_lists_come_from_the_code() -> None:
    assert {"chains validate", "schema apply", "serve", "topology", "demo"} <= set(COMMANDS)
    paths = {route.path for route in ROUTES}
    assert {"/v1/traces", "/api/v1/chains", "/api/v1/traces/{trace_id}", "/metrics", "/"} <= paths


@pytest.mark.parametrize("command", COMMANDS)
def test_every_cli_command_is_in_the_cli_reference(command: str) -> None:
    assert f"### `chainmap {command}`" in page("cli.md"), (
        f"docs/cli.md does not document `chainmap {command}`: run `make docs`"
    )


@pytest.mark.parametrize("name", [var.name for var in ALL_ENV_VARS])
def test_every_environment_variable_is_in_the_configuration_page(name: str) -> None:
    assert f"| `{name}` |" in page("configuration.md"), (
        f"docs/configuration.md does not document {name}: run `make docs`"
    )


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: f"{route.methods} {route.path}")
def test_every_http_route_is_in_the_serve_page(route: HttpRoute) -> None:
    methods = ", ".join(route.methods) or "(mount)"
    assert f"| {methods} | `{route.path}` |" in page("serve.md"), (
        f"docs/serve.md does not list {methods} {route.path}: run `make docs`"
    )
