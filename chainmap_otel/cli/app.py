"""The typer application and what every command shares: output formats and error handling."""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from enum import StrEnum
from typing import Any, NoReturn

try:
    import typer
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text
except ImportError:  # pragma: no cover - the light runtime has no CLI extras
    from chainmap_otel.errors import install_hint

    sys.exit(f"chainmap: the command line needs its extras: {install_hint('cli')}")

from chainmap_otel.errors import (
    EXTRA_OF_MODULE,
    ChainDefinitionError,
    ChainmapError,
    NotFoundError,
    ParameterError,
    StoreLockedError,
    install_hint,
)

app = typer.Typer(
    name="chainmap",
    help="End-to-end request chains from OpenTelemetry traces.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    tsv = "tsv"


#: How :func:`print_table` prints for the running command: ``table`` (free text cut to one
#: line with an ellipsis), ``wide`` (free text in full, folded over lines) or ``tsv`` (a
#: header line and one tab-separated line per row, nothing cut, for pipes).
TABLE_MODE: ContextVar[str] = ContextVar("chainmap_table_mode", default="table")
#: The ``--wide`` option every command with a ``--format`` gets (see :func:`command`).
WIDE = typer.Option(
    False, "--wide", help="Free-text columns in full, folded over lines, instead of cut to one."
)


def print_json(data: Any) -> None:
    """JSON on stdout, exactly (no rich markup), so it pipes into jq."""
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")


def fitted_table(
    title: str | None,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    wrap: Sequence[str] = (),
    cut: Sequence[str] = (),
) -> Table:
    """A table that stays readable at 80 columns and in pipes: the columns named in ``wrap``
    fold over lines, the free text named in ``cut`` stays on one line cut with ``…`` (folded
    under ``--wide``); every other column is as wide as its widest value, so ids, statuses
    and numbers are never cut. Cells and title are plain text (a ``Text``
    cell keeps its style), never rich markup: a service named ``[/]evil`` is data; read as
    markup it would raise MarkupError.
    """
    cells = [
        [
            cell if isinstance(cell, Text) else Text("" if cell is None else str(cell))
            for cell in row
        ]
        for row in rows
    ]
    table = Table(
        title=Text(title) if title is not None else None,
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
        show_edge=False,
        # As wide as the title (within the console), so a narrow table never wraps its title.
        min_width=min(len(title or ""), console.width),
    )
    wide = TABLE_MODE.get() == "wide"
    widths = [
        max([len(column), *(len(row[index]) for row in cells if index < len(row))])
        for index, column in enumerate(columns)
    ]
    cut_now = [c for c in columns if c in cut and not wide]
    # What the whole columns and the gaps between columns leave to the cut free text.
    whole = sum(w for c, w in zip(columns, widths, strict=True) if c not in cut_now)
    room = console.width - whole - 2 * (len(columns) - 1)
    # The room goes to the cut columns narrowest first: one that fits takes its width, the
    # rest share what is left (at least a letter and the ellipsis each).
    fitted: dict[str, int] = {}
    pending = sorted(cut_now, key=lambda c: widths[columns.index(c)])
    for position, column in enumerate(pending):
        fair = max(2, room // (len(pending) - position))
        fitted[column] = min(widths[columns.index(column)], fair)
        room -= fitted[column]
    for index, column in enumerate(columns):
        if column in cut_now:
            # Free text on one line, cut with an ellipsis, unless --wide: the ids stay whole.
            width = fitted[column]
            table.add_column(
                column, overflow="ellipsis", no_wrap=True, min_width=width, max_width=width
            )
        elif column in wrap or column in cut:
            table.add_column(column, overflow="fold", ratio=1)
        else:
            table.add_column(column, no_wrap=True, min_width=widths[index])
    for row in cells:
        table.add_row(*row)
    return table


def print_table(
    title: str | None,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    wrap: Sequence[str] = (),
    cut: Sequence[str] = (),
) -> None:
    """:func:`fitted_table` on stdout, or tab-separated values under ``-f tsv``."""
    if TABLE_MODE.get() == "tsv":
        lines = [columns, *rows]
        sys.stdout.write(
            "".join("\t".join(_tsv_cell(cell) for cell in line) + "\n" for line in lines)
        )
        return
    console.print(fitted_table(title, columns, rows, wrap, cut))


def _tsv_cell(cell: Any) -> str:
    text = "" if cell is None else cell.plain if isinstance(cell, Text) else str(cell)
    return " ".join(text.replace("\t", " ").split()) if any(c in text for c in "\t\r\n") else text


def print_error(message: str) -> None:
    """``error: message`` on stderr; the message is shown as written, not as markup."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def fail(message: str, code: int = 1) -> NoReturn:
    print_error(message)
    raise typer.Exit(code)


def declared_flags(func: Callable[..., Any]) -> dict[str, str]:
    """A command's parameters as its user types them, from its typer declarations:
    ``sample_cap`` -> ``--sample-cap``, the argument ``trace_id`` -> ``TRACE_ID``."""
    flags = {}
    for name, parameter in inspect.signature(func).parameters.items():
        declared = parameter.default
        if isinstance(declared, typer.models.OptionInfo):
            long = [d for d in declared.param_decls or () if d.startswith("--")]
            flags[name] = long[0] if long else _implied_flag(name)
        elif isinstance(declared, typer.models.ArgumentInfo):
            flags[name] = declared.metavar or name.upper()
    return flags


def _implied_flag(parameter: str) -> str:
    return "--" + parameter.replace("_", "-")


@contextmanager
def friendly_errors(
    flags: Mapping[str, str] | None = None, command: str | None = None
) -> Iterator[None]:
    """Turn library errors into one line (or one line per problem) and exit 1.

    A parameter the library names is shown as the command spells it (``flags``, from
    :func:`declared_flags`; else the flag its name implies); a locked embedded store
    points commands that can read through ``chainmap serve`` at ``--server``; a missing
    extra names the extra the whole ``command`` needs.
    """
    flags = flags or {}
    try:
        yield
    except ChainDefinitionError as exc:
        for problem in exc.problems:
            print_error(problem)
        raise typer.Exit(1) from None
    except (ParameterError, NotFoundError) as exc:
        fail(exc.describe(lambda name: flags.get(name) or _implied_flag(name)))
    except StoreLockedError as exc:
        hint = "; or read through its API with --server URL (chainmap serve prints it)"
        fail(f"{exc}{hint if 'server' in flags else ''}")
    except ChainmapError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        err_console.print("interrupted")
        raise typer.Exit(130) from None
    except ModuleNotFoundError as exc:
        module = (exc.name or "").split(".")[0]
        if module not in EXTRA_OF_MODULE:
            raise
        fail(missing_extra_message(module, command))


#: Commands -> the extra they need as a whole (a missing module names it, not the module's).
COMMAND_EXTRAS = {"serve": "server", "demo": "demo"}


def missing_extra_message(module: str, command: str | None) -> str:
    """One line for a command that needs a module an extra installs."""
    extra = COMMAND_EXTRAS.get(command or "", EXTRA_OF_MODULE[module])
    what = f"chainmap {command}" if command else "this command"
    return f"{what} needs the '{extra}' extra ({module} is not installed): {install_hint(extra)}"


def command(
    *args: Any, on: typer.Typer = app, **kwargs: Any
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``on.command`` (default the top-level app) whose body runs inside
    :func:`friendly_errors`, naming parameters by the command's own flags."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        import functools

        name = args[0] if args else func.__name__.replace("_", "-")
        flags = declared_flags(func)
        signature = inspect.signature(func)
        tables = "format" in signature.parameters

        @functools.wraps(func)
        def wrapper(*a: Any, **kw: Any) -> Any:
            wide = kw.pop("wide", False) if tables else False
            chosen = str(kw.get("format", ""))
            mode = "tsv" if chosen == "tsv" else "wide" if wide else "table"
            token = TABLE_MODE.set(mode)
            try:
                with friendly_errors(flags, name):
                    return func(*a, **kw)
            finally:
                TABLE_MODE.reset(token)

        if tables:
            # Every command that prints tables takes --wide (and -f tsv, in its format enum).
            wide_option = inspect.Parameter(
                "wide", inspect.Parameter.KEYWORD_ONLY, default=WIDE, annotation=bool
            )
            parameters = [*signature.parameters.values(), wide_option]
            wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
                parameters=sorted(parameters, key=lambda p: p.kind)
            )
        return on.command(*args, **kwargs)(wrapper)

    return decorate


def run() -> None:
    app()
