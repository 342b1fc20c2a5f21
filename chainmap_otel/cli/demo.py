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


@command("demo-load")
def demo_load(
    duration: float = typer.Option(
        0.0, "--duration", min=0.0, help="Seconds of load to drive; 0 drives it until stopped."
    ),
    report_every: float = typer.Option(
        60.0, "--report-every", min=5.0, help="Seconds between progress lines."
    ),
) -> None:
    """Drive the demo load against demo services already running elsewhere (docker-compose):
    each is found at its *_URL variable (API_GATEWAY_URL, DATA_BRIDGE_URL, ...), else its
    seed port on localhost."""
    import asyncio

    from chainmap_otel.demo.load import drive
    from chainmap_otel.demo.platform import SERVICES, peer_url

    urls = {spec.name: peer_url(spec.name) for spec in SERVICES}
    console.print(
        "driving load against " + ", ".join(f"{n} {u}" for n, u in urls.items()), highlight=False
    )
    remaining = duration
    try:
        while duration == 0 or remaining > 0:
            round_s = report_every if duration == 0 else min(report_every, remaining)
            stats = asyncio.run(drive(urls, round_s))
            failed = sum(stats.failures.values())
            console.print(
                f"load: {stats.total} calls, {sum(stats.server_errors.values())} answered 5xx, "
                f"{failed} failed to connect",
                highlight=False,
            )
            remaining -= round_s
    except KeyboardInterrupt:
        console.print("load stopped")
