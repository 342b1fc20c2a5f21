"""``chainmap collector-config``: the Collector's transform processor from the chain rules."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from chainmap_otel.cli.app import command, console
from chainmap_otel.errors import ChainmapError


@command("collector-config")
def collector_config_command(
    chains: Path = typer.Option(..., "--chains", help="Chain definitions YAML."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write the config here instead of to stdout."
    ),
    full: bool = typer.Option(
        False,
        "--full",
        help="A whole otelcol.yaml (OTLP in, memory_limiter, tagging, ClickHouse out), "
        "not just the transform/chains processor.",
    ),
) -> None:
    """Generate the OpenTelemetry Collector transform processor that tags the entry spans
    of services without the chainmap SDK (OTTL from the chain rules)."""
    from chainmap_otel.collector import collector_config
    from chainmap_otel.tagging.definitions import load_catalog

    text = collector_config(load_catalog(chains), full=full)
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ChainmapError(
            f"cannot write {output} ({exc.strerror}); pass an --output in a writable directory"
        ) from None
    console.print(f"wrote {output}", highlight=False)
