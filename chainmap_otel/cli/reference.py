"""The reference parts of ``docs/``, rendered from the code so they cannot drift.

``docs/configuration.md`` (every ``CHAINMAP_*`` variable of :mod:`chainmap_otel.config`),
``docs/cli.md`` (every ``chainmap`` command and option) and ``docs/serve.md`` (every HTTP
route of ``chainmap serve``) hold cog blocks that print these tables: ``make docs`` rewrites
them, ``make lint`` fails when one is stale. The tables are built from the public
attributes of click parameters and FastAPI routes only, so a typer or FastAPI release
changes them only where what users see changes.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

from chainmap_otel.config import ALL_ENV_VARS

__all__ = [
    "CliCommand",
    "HttpRoute",
    "cli_commands",
    "cli_reference",
    "environment_table",
    "http_routes",
    "route_table",
]


def _cell(text: str) -> str:
    """Text for one Markdown table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def environment_table() -> str:
    """The ``CHAINMAP_*`` variables as a Markdown table: name, meaning, default, range (a
    value outside it is logged and the default used)."""
    lines = ["| variable | meaning | default | range |", "| --- | --- | --- | --- |"]
    for var in ALL_ENV_VARS:
        default = f"`{var.default}`" if var.default else "(unset)"
        bounds = f"`{var.bounds}`" if var.bounds else ""
        lines.append(f"| `{var.name}` | {_cell(var.meaning)} | {default} | {bounds} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- CLI


@dataclass(frozen=True)
class CliCommand:
    """One ``chainmap`` command as a user types it (``chains validate``) and its click object."""

    path: str
    command: Any


def cli_commands() -> list[CliCommand]:
    """Every visible ``chainmap`` command, subcommands of groups included, in help order."""
    import typer.main

    from chainmap_otel.cli import COMMAND_MODULES, app

    for module in COMMAND_MODULES:
        importlib.import_module(module)
    return list(_walk_commands(typer.main.get_command(app), ""))


def _walk_commands(group: Any, prefix: str) -> Iterator[CliCommand]:
    for name, command in group.commands.items():
        if getattr(command, "hidden", False):
            continue
        path = f"{prefix} {name}".strip()
        if getattr(command, "commands", None):
            if getattr(command, "invoke_without_command", False):
                yield CliCommand(path, command)  # the group runs on its own too
            yield from _walk_commands(command, path)
        else:
            yield CliCommand(path, command)


def _paragraphs(text: str) -> list[str]:
    return [" ".join(block.split()) for block in text.split("\n\n") if block.strip()]


def _is_argument(param: Any) -> bool:
    return not getattr(param, "opts", [""])[0].startswith("-")


def _usage(command: CliCommand) -> str:
    words = ["chainmap", command.path]
    if any(not _is_argument(p) for p in command.command.params):
        words.append("[OPTIONS]")
    for param in command.command.params:
        if not _is_argument(param):
            continue
        name = str(param.name).upper()
        if getattr(param, "nargs", 1) == -1:
            name += "..."
        words.append(name if param.required else f"[{name}]")
    return " ".join(words)


def _default(param: Any) -> str:
    default = param.default
    empty = (
        default is None or default is False or (isinstance(default, list | tuple) and not default)
    )
    if empty or callable(default) or param.show_default is False:
        return ""
    if isinstance(default, Enum):
        default = default.value
    if default is True and param.secondary_opts:
        return f"`{param.opts[0]}`"
    if default is True:
        return ""
    return f"`{default}`"


def _option_row(param: Any) -> str:
    names = ", ".join(f"`{name}`" for name in (*param.opts, *param.secondary_opts))
    text = _cell(param.help or "")
    if isinstance(param.default, Enum):
        choices = ", ".join(f"`{member.value}`" for member in type(param.default))
        text = f"{text} One of {choices}.".strip()
    if param.required:
        text = f"Required. {text}".strip()
    return f"| {names} | {text} | {_default(param)} |"


def cli_reference() -> str:
    """Every command: a heading, its help, its usage and a table of its options."""
    sections = []
    for command in cli_commands():
        lines = [f"### `chainmap {command.path}`", ""]
        for paragraph in _paragraphs(command.command.help or ""):
            lines += [_cell(paragraph).replace("\\|", "|"), ""]
        lines += ["```", _usage(command), "```"]
        arguments = [p for p in command.command.params if _is_argument(p)]
        options = [p for p in command.command.params if not _is_argument(p)]
        if arguments:
            lines += ["", "| argument | meaning |", "| --- | --- |"]
            lines += [
                f"| `{str(p.name).upper()}` | {_cell(getattr(p, 'help', None) or '')} |"
                for p in arguments
            ]
        if options:
            lines += ["", "| option | meaning | default |", "| --- | --- | --- |"]
            lines += [_option_row(p) for p in options]
        sections.append("\n".join(lines))
    return "\n\n".join(sections)


# --------------------------------------------------------------------------- HTTP routes


@dataclass(frozen=True)
class HttpRoute:
    """One route of ``chainmap serve``: its methods, its path and what it answers."""

    methods: tuple[str, ...]
    path: str
    summary: str


def http_routes() -> list[HttpRoute]:
    """The routes of ``chainmap serve``'s app, built around a store it never opens."""
    from chainmap_otel.server.app import create_app
    from chainmap_otel.storage.location import parse_store_url
    from chainmap_otel.storage.store import TraceStore
    from chainmap_otel.tagging.model import ChainCatalog

    unopened = TraceStore(None, parse_store_url("chdb:///chainmap-reference-never-opened"))
    app = create_app(unopened, chains=ChainCatalog())
    return [_route(route, prefix) for prefix, route in _walk_routes(app.routes, "")]


def _walk_routes(routes: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    for route in routes:
        # FastAPI >= 0.16x keeps an included router whole instead of copying its routes.
        included = getattr(route, "original_router", None)
        if included is not None:
            context = getattr(route, "include_context", None)
            yield from _walk_routes(included.routes, prefix + getattr(context, "prefix", ""))
        else:
            yield prefix, route


def _route(route: Any, prefix: str) -> HttpRoute:
    methods = tuple(sorted(set(getattr(route, "methods", None) or ()) - {"HEAD"}))
    endpoint = getattr(route, "endpoint", None)
    doc = (getattr(endpoint, "__doc__", None) or "").strip().split("\n")[0]
    summary = getattr(route, "summary", None) or doc
    name = str(getattr(route, "name", "") or "")
    if name == "openapi":
        summary = "The OpenAPI schema of the API (what `/docs` shows)"
    if not summary:
        name = name.replace("_", " ")
        if not methods:
            summary = f"{name} files of the web view"
        elif getattr(route, "include_in_schema", True):
            summary = name
        else:
            summary = f"web view: {name} (HTML)"
    return HttpRoute(methods, prefix + route.path, summary)


def route_table() -> str:
    """The routes as a Markdown table, in the order the app matches them."""
    lines = ["| method | path | what |", "| --- | --- | --- |"]
    for route in http_routes():
        methods = ", ".join(route.methods) or "(mount)"
        lines.append(f"| {methods} | `{route.path}` | {_cell(route.summary)} |")
    return "\n".join(lines)
