"""The typer application and what every command shares: output formats and error handling."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from typing import Any

try:
    import typer
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text
except ImportError:  # pragma: no cover - the light runtime has no CLI extras
    sys.exit("chainmap: the command line needs its extras: pip install 'chainmap-otel[cli]'")

from chainmap_otel.errors import ChainDefinitionError, ChainmapError

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


def print_json(data: Any) -> None:
    """JSON on stdout, exactly (no rich markup), so it pipes into jq."""
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")


def print_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A table of stored values: cells and title are plain text, never rich markup.

    A service named ``[/]evil`` is data; read as markup it would raise MarkupError.
    """
    table = Table(title=Text(title) if title is not None else None, show_lines=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(Text("" if v is None else str(v)) for v in row))
    console.print(table)


def print_error(message: str) -> None:
    """``error: message`` on stderr; the message is shown as written, not as markup."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def fail(message: str, code: int = 1) -> None:
    print_error(message)
    raise typer.Exit(code)


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Turn library errors into one line (or one line per problem) and exit 1."""
    try:
        yield
    except ChainDefinitionError as exc:
        for problem in exc.problems:
            print_error(problem)
        raise typer.Exit(1) from None
    except ChainmapError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        err_console.print("interrupted")
        raise typer.Exit(130) from None


def command(*args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``app.command`` whose body runs inside :func:`friendly_errors`."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        import functools

        @functools.wraps(func)
        def wrapper(*a: Any, **kw: Any) -> Any:
            with friendly_errors():
                return func(*a, **kw)

        return app.command(*args, **kwargs)(wrapper)

    return decorate


def run() -> None:
    app()
