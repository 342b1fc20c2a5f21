"""``chainmap chains ...``: validate and list chain definition files."""

from __future__ import annotations

from pathlib import Path

import typer

from chainmap_otel.cli.app import (
    OutputFormat,
    app,
    console,
    friendly_errors,
    print_json,
    print_table,
)
from chainmap_otel.tagging.definitions import ChainCatalog, EntryRule, load_catalog

chains_app = typer.Typer(help="Chain definition files.", no_args_is_help=True)
app.add_typer(chains_app, name="chains")


def _rule_text(rule: EntryRule) -> str:
    parts = []
    if rule.service is not None:
        parts.append(f"service={rule.service.value}")
    if rule.kinds:
        parts.append("kind=" + "|".join(rule.kinds))
    for label, pattern in (
        ("name", rule.name),
        ("route", rule.route),
        ("path", rule.path),
        ("rpc.service", rule.rpc_service),
        ("rpc.method", rule.rpc_method),
        ("destination", rule.messaging_destination),
    ):
        if pattern is not None:
            parts.append(
                f"{label}={pattern.value}"
                if pattern.kind != "regex"
                else f"{label}~/{pattern.value}/"
            )
    if rule.method:
        parts.append("method=" + "|".join(rule.method))
    parts.extend(f"{key}={pattern.value}" for key, pattern in rule.attributes)
    return " ".join(parts)


def _summary(catalog: ChainCatalog) -> str:
    with_slo = sum(1 for c in catalog if c.slo is not None)
    rules = sum(len(c.entry) for c in catalog)
    return f"{catalog.source}: {len(catalog)} chains, {rules} entry rules, {with_slo} with SLOs: ok"


@chains_app.command("validate")
def validate(file: Path = typer.Argument(..., help="Chain definitions YAML.")) -> None:
    """Check a chains file; exit 1 listing every problem with file:line, field and fix."""
    with friendly_errors():
        catalog = load_catalog(file)
    console.print(_summary(catalog), highlight=False, markup=False)


@chains_app.command("list")
def list_chains(
    file: Path = typer.Argument(..., help="Chain definitions YAML."),
    format: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f"),
    env: str = typer.Option(
        None,
        "--env",
        help="Show the SLO in effect in this deployment.environment.name (its "
        "slo.environments overrides applied).",
    ),
) -> None:
    """List the chains of a file."""
    from chainmap_otel.analysis.timewindow import parse_environment

    with friendly_errors():
        catalog = load_catalog(file)
        environment = parse_environment(env, "env")
    shown = [chain.in_environment(environment) for chain in catalog]
    if format is OutputFormat.json:
        print_json({"chains": [chain.to_dict() for chain in shown]})
        return
    rows = []
    for chain in shown:
        slo = chain.slo
        slo_text = ""
        if slo is not None:
            bits = [f"{p}<{v:g}ms" for p, v in slo.latency_ms.items()]
            if slo.error_rate is not None:
                bits.append(f"errors<{slo.error_rate:.2%}")
            if slo.environments:
                bits.append("own objectives in " + ", ".join(sorted(slo.environments)))
            slo_text = ", ".join(bits)
        rows.append(
            (
                chain.id,
                chain.name,
                chain.category,
                chain.criticality,
                "; ".join(_rule_text(r) for r in chain.entry),
                slo_text,
            )
        )
    print_table(None, ("id", "name", "category", "criticality", "entry", "slo"), rows)
