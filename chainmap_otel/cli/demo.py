"""``chainmap demo``: the demo trading platform on the embedded stack, analysed end to end."""

from __future__ import annotations

from pathlib import Path

import typer

from chainmap_otel.cli.app import command, console


@command("demo")
def demo(
    duration: float = typer.Option(30.0, "--duration", min=5.0, help="Seconds of load to drive."),
    serve: bool = typer.Option(
        True, "--serve/--no-serve", help="Leave `chainmap serve` up afterwards, until Ctrl-C."
    ),
    data_dir: Path | None = typer.Option(
        None,
        "--data-dir",
        help="Where the stores and logs go (default: a fresh temporary directory, removed "
        "at exit with --no-serve).",
    ),
    port: int | None = typer.Option(
        None, "--port", help="OTLP/HTTP port of `chainmap serve` (default 4318, or a free one)."
    ),
    chains: Path | None = typer.Option(
        None,
        "--chains",
        exists=True,
        dir_okay=False,
        help="Chain definitions (default: the example).",
    ),
    summary_json: Path | None = typer.Option(
        None, "--summary-json", help="Also write what the demo saw and found as JSON to this file."
    ),
) -> None:
    """Start the demo platform (8 FastAPI services, PostgreSQL, chainmap serve), drive load,
    then print its chains, topology, health, critical path and impact."""
    from chainmap_otel.demo.runner import DemoOptions, run_demo

    run_demo(
        DemoOptions(
            duration_s=duration,
            serve=serve,
            data_dir=data_dir,
            port=port,
            chains_file=chains,
            summary_json=summary_json,
        ),
        console,
    )
