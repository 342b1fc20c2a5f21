"""collector-config/: the real Collector (otelcol-chainmap validate) accepts every shipped and
generated config; what it cannot check (house rules, the generator's output) is checked here."""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from chainmap_otel.collector import CONTRIB_IMAGE_TAG, collector_config, transform_processor
from chainmap_otel.tagging.active import MAX_STACK_DEPTH
from chainmap_otel.tagging.definitions import load_catalog
from tests.collector.test_ottl import confmap_unescape
from tests.support.collector import validate

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = ROOT / "collector-config"
CONFIG_FILES = ("otelcol.yaml", "gateway.yaml", "backend.yaml")
CHAINMAP = Path(sys.executable).with_name("chainmap")

# The distribution has no servicegraph connector (the module proxy serves none of its
# releases, collector-config/README.md): its keys are the one thing still checked against a
# transcription, opentelemetry-collector-contrib connector/servicegraphconnector/config.schema.yaml
# (commit 6ae8060b5076d744d44b869e77cb72e9bef47860). The Collector checks everything else.
SERVICEGRAPH_KEYS = frozenset(
    {
        "cache_loop",
        "database_name_attributes",
        "dimensions",
        "exponential_histogram_max_size",
        "latency_histogram_buckets",
        "metrics_flush_interval",
        "metrics_timestamp_offset",
        "store",
        "store_expiration_loop",
        "virtual_node_extra_label",
        "virtual_node_peer_attributes",
    }
)
# A value for every variable the files reference, unlike each default.
ENV_VALUES = {
    "CLICKHOUSE_ENDPOINT": "http://127.0.0.1:8123",
    "CLICKHOUSE_USERNAME": "chainmap",
    "CLICKHOUSE_PASSWORD": "secret",
    "CLICKHOUSE_DATABASE": "otel",
    "CLICKHOUSE_CLUSTER": "two_shards",
    "OTELCOL_BACKEND_HOSTNAME": "backends.internal",
    "OTELCOL_BACKEND_PORT": "14317",
}
ENV_REFERENCE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}")


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((CONFIG_DIR / name).read_text(encoding="utf-8"))
    return document


def without_servicegraph(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` less the servicegraph connector, which otelcol-chainmap lacks."""
    config = copy.deepcopy(config)
    del config["connectors"]["servicegraph"]
    for pipeline in config["service"]["pipelines"].values():
        for role in ("receivers", "exporters"):
            if "servicegraph" in pipeline.get(role, []):
                pipeline[role].remove("servicegraph")
    return config


def shipped_config(name: str, directory: Path) -> Path:
    """A shipped file as the Collector is to read it: as it is, but without servicegraph."""
    if "servicegraph" not in (load(name).get("connectors") or {}):
        return CONFIG_DIR / name
    path = directory / name
    path.write_text(yaml.safe_dump(without_servicegraph(load(name))), encoding="utf-8")
    return path


def referenced_variables(name: str) -> set[str]:
    text = (CONFIG_DIR / name).read_text(encoding="utf-8")
    return {variable for variable, _default in ENV_REFERENCE.findall(text)}


@pytest.mark.parametrize("environment", ["defaults", "set"])
@pytest.mark.parametrize("name", CONFIG_FILES)
def test_the_collector_accepts_every_shipped_config(
    otelcol: Path, tmp_path: Path, name: str, environment: str
) -> None:
    variables = referenced_variables(name)
    assert variables <= set(ENV_VALUES), variables - set(ENV_VALUES)
    # "defaults": none of them set, so each ${env:NAME:-default} takes its default.
    env = {k: v for k, v in os.environ.items() if k not in variables}
    if environment == "set":
        env.update(ENV_VALUES)
    errors = validate(otelcol, shipped_config(name, tmp_path), env=env)
    assert errors == "", f"{name} ({environment}):\n{errors}"


CATALOGS = {
    "chains.example.yaml": ROOT / "chains.example.yaml",
    "every-matcher": Path(__file__).parent / "fixtures" / "catalog.yaml",
}


def deep_catalog(directory: Path) -> Path:
    """More chains than a stack holds: the generator adds its depth check (``Len``)."""
    path = directory / "deep.yaml"
    path.write_text(
        "chains:\n"
        + "".join(
            f"  - {{id: D{i}, name: deep {i}, category: batch, entry: [{{service: deep}}]}}\n"
            for i in range(MAX_STACK_DEPTH + 2)
        ),
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize("catalog", [*CATALOGS, "deeper-than-a-stack"])
def test_the_collector_accepts_every_generated_full_config(
    otelcol: Path, tmp_path: Path, catalog: str
) -> None:
    chains = CATALOGS.get(catalog) or deep_catalog(tmp_path)
    output = tmp_path / "otelcol.yaml"
    done = subprocess.run(
        [CHAINMAP, "collector-config", "--chains", str(chains), "--full", "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    if catalog == "deeper-than-a-stack":
        assert "Len(Split(" in output.read_text(encoding="utf-8")
    assert validate(otelcol, output) == ""


@pytest.mark.parametrize(("old", "value"), [("dsn", "tcp://127.0.0.1:9000"), ("ttl_days", 3)])
def test_the_collector_refuses_the_old_clickhouse_keys(
    otelcol: Path, tmp_path: Path, old: str, value: object
) -> None:
    config = load("otelcol.yaml")
    config["exporters"]["clickhouse"][old] = value
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    errors = validate(otelcol, path)
    assert "clickhouse" in errors and old in errors, errors


@pytest.mark.parametrize("name", CONFIG_FILES)
def test_every_defined_component_is_used_and_memory_limiter_comes_first(name: str) -> None:
    # The Collector starts with unused components defined; these files define none.
    config = load(name)
    connectors = set(config.get("connectors") or {})
    used: dict[str, set[str]] = {"receivers": set(), "processors": set(), "exporters": set()}
    for pipeline_id, pipeline in config["service"]["pipelines"].items():
        for role in used:
            used[role].update(c for c in pipeline.get(role) or [] if c not in connectors)
        if "processors" in pipeline:
            assert pipeline["processors"][0] == "memory_limiter", f"{name}: {pipeline_id}"
    for role, components in used.items():
        assert set(config.get(role) or {}) == components, f"{name}: unused {role}"


def test_the_backend_writes_a_cluster_with_tables_from_schema_apply() -> None:
    config = load("backend.yaml")
    exporter = config["exporters"]["clickhouse"]
    assert exporter["create_schema"] is False
    assert ENV_REFERENCE.fullmatch(exporter["cluster_name"])
    assert exporter["table_engine"]["name"].startswith("Replicated")
    assert set(config["connectors"]["servicegraph"]) <= SERVICEGRAPH_KEYS
    assert set(config["connectors"]["servicegraph"]["store"]) <= {"ttl", "max_items"}
    assert config["connectors"]["servicegraph"]["dimensions"] == ["chain.id"]
    assert config["connectors"]["spanmetrics"]["dimensions"] == [{"name": "chain.id"}]
    assert "schema apply --cluster" in (CONFIG_DIR / "backend.yaml").read_text()


def test_the_gateway_routes_whole_traces_to_one_backend() -> None:
    exporter = load("gateway.yaml")["exporters"]["loadbalancing"]
    assert exporter["routing_key"] == "traceID"
    assert set(exporter["resolver"]) == {"dns"}


def test_receivers_listen_on_the_otlp_ports() -> None:
    protocols = load("otelcol.yaml")["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"].endswith(":4317")
    assert protocols["http"]["endpoint"].endswith(":4318")


def test_every_environment_variable_is_documented() -> None:
    readme = (CONFIG_DIR / "README.md").read_text(encoding="utf-8")
    names = set()
    for name in CONFIG_FILES:
        text = (CONFIG_DIR / name).read_text(encoding="utf-8")
        found = referenced_variables(name)
        assert found, name
        for variable in found:
            names.add(variable)
            assert variable in text.split("receivers:")[0], f"{name}: header lacks {variable}"
    assert names == set(ENV_VALUES)
    missing = [n for n in sorted(names) if f"`{n}`" not in readme]
    assert not missing, f"document in collector-config/README.md: {missing}"
    assert f"opentelemetry-collector-contrib:{CONTRIB_IMAGE_TAG}" in readme
    for name in CONFIG_FILES:
        assert f"`{name}`" in readme
        assert CONTRIB_IMAGE_TAG in (CONFIG_DIR / name).read_text(encoding="utf-8")


def test_otelcol_yaml_is_the_generators_output_for_the_example_chains() -> None:
    catalog = load_catalog(ROOT / "chains.example.yaml")
    assert (CONFIG_DIR / "otelcol.yaml").read_text(encoding="utf-8") == collector_config(
        catalog, full=True
    ), (
        "regenerate with: chainmap collector-config --chains chains.example.yaml --full "
        "--output collector-config/otelcol.yaml"
    )


@pytest.mark.parametrize("name", ["otelcol.yaml", "gateway.yaml"])
def test_transform_chains_is_the_generated_processor(name: str) -> None:
    catalog = load_catalog(ROOT / "chains.example.yaml")
    processor = load(name)["processors"]["transform/chains"]
    processor["trace_statements"] = [confmap_unescape(s) for s in processor["trace_statements"]]
    assert processor == transform_processor(catalog)


def test_the_command_writes_the_config_and_reports_bad_rules_in_one_line(
    tmp_path: Path,
) -> None:
    output = tmp_path / "otelcol.yaml"
    env = {**os.environ, "NO_COLOR": "1"}
    example = str(ROOT / "chains.example.yaml")
    done = subprocess.run(
        [CHAINMAP, "collector-config", "--chains", example, "--full", "--output", str(output)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert output.read_text(encoding="utf-8") == (CONFIG_DIR / "otelcol.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "chains:\n  - {id: LA, name: look, category: api, entry: [{name: {regex: 'a(?=b)'}}]}\n"
    )
    done = subprocess.run(
        [CHAINMAP, "collector-config", "--chains", str(bad)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    # The chains loader refuses what RE2 cannot run, before any OTTL is generated.
    assert "chains[0].entry[0].name: bad regex 'a(?=b)'" in lines[0], lines
