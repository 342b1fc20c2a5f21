"""collector-config/: every file parses, its pipelines are whole, its keys are the Collector's."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from chainmap_otel.collector import CONTRIB_IMAGE_TAG, collector_config, transform_processor
from chainmap_otel.tagging.definitions import load_catalog
from tests.collector.ottl_grammar import parse_statement
from tests.collector.test_ottl import confmap_unescape

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = ROOT / "collector-config"
CONFIG_FILES = ("otelcol.yaml", "gateway.yaml", "backend.yaml")
CHAINMAP = Path(sys.executable).with_name("chainmap")

# Keys of the clickhouse exporter, from opentelemetry-collector-contrib
# exporter/clickhouseexporter/config.schema.yaml (commit 09ea2f421d7b5b9771e9fbb5513c59186e7f33c1),
# its allOf refs exporterhelper.timeout_config (`timeout`) and configretry.back_off_config
# (mapped to `retry_on_failure` in exporter/clickhouseexporter/config.go).
CLICKHOUSE_KEYS = frozenset(
    {
        "async_insert",
        "cluster_name",
        "compress",
        "connection_params",
        "create_schema",
        "database",
        "endpoint",
        "json",
        "logs_table_name",
        "metrics_table_name",
        "metrics_tables",
        "password",
        "profiles_table_name",
        "sending_queue",
        "table_engine",
        "tls",
        "traces_table_name",
        "ttl",
        "username",
        "timeout",
        "retry_on_failure",
    }
)
TABLE_ENGINE_KEYS = frozenset({"name", "params"})
# opentelemetry-collector exporter/exporterhelper/internal/queuebatch/config.schema.yaml
# (commit 1dc1061d16bcf8d2fa3b2412b7ea559ee6bdda1f): `config` and `batch_config`.
SENDING_QUEUE_KEYS = frozenset(
    {
        "batch",
        "block_on_overflow",
        "enabled",
        "num_consumers",
        "queue_size",
        "sizer",
        "storage",
        "wait_for_result",
    }
)
BATCH_KEYS = frozenset({"flush_timeout", "max_size", "min_size", "partition", "sizer"})
# opentelemetry-collector config/configretry BackOffConfig.
RETRY_KEYS = frozenset(
    {
        "enabled",
        "initial_interval",
        "randomization_factor",
        "multiplier",
        "max_interval",
        "max_elapsed_time",
    }
)
# opentelemetry-collector internal/memorylimiter/config.schema.yaml
# (commit 9c920b6f7a1f95bff54fdf0dbc01044ada03f87b).
MEMORY_LIMITER_KEYS = frozenset(
    {
        "check_interval",
        "limit_mib",
        "limit_percentage",
        "spike_limit_mib",
        "spike_limit_percentage",
        "min_gc_interval_when_soft_limited",
        "min_gc_interval_when_hard_limited",
        "max_gc_interval_when_soft_limited",
        "max_gc_interval_when_hard_limited",
    }
)
# opentelemetry-collector-contrib processor/transformprocessor/config.schema.yaml
# (commit 1ca0305c83b4aef4193c6322f8b60b2a4a9135b0).
TRANSFORM_KEYS = frozenset(
    {
        "error_mode",
        "flatten_data",
        "log_statements",
        "metric_statements",
        "profile_statements",
        "trace_statements",
    }
)
# opentelemetry-collector-contrib exporter/loadbalancingexporter/config.schema.yaml
# (commit 0140961f9de290fdf809390d3153c1eb214a2300), with its timeout and retry refs.
LOADBALANCING_KEYS = frozenset(
    {
        "protocol",
        "resolver",
        "routing_attributes",
        "routing_key",
        "sending_queue",
        "timeout",
        "retry_on_failure",
    }
)
DNS_RESOLVER_KEYS = frozenset({"hostname", "interval", "port", "timeout"})
# opentelemetry-collector-contrib connector/servicegraphconnector/config.schema.yaml
# (commit 6ae8060b5076d744d44b869e77cb72e9bef47860) and
# connector/spanmetricsconnector/config.schema.yaml (commit 36ee7b2b936ce5c8baa144e5987efa1b587d0adb).
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
SPANMETRICS_KEYS = frozenset(
    {
        "add_resource_attributes",
        "aggregation_cardinality_limit",
        "aggregation_temporality",
        "calls_dimensions",
        "dimensions",
        "dimensions_cache_size",
        "enable_metrics_sampling_method",
        "events",
        "exclude_dimensions",
        "exemplars",
        "histogram",
        "include_instrumentation_scope",
        "metric_timestamp_cache_size",
        "metrics_expiration",
        "metrics_flush_interval",
        "namespace",
        "resource_metrics_cache_size",
        "resource_metrics_key_attributes",
        "series_expiration",
    }
)
# Component types of the contrib distribution these files use.
CONTRIB_TYPES = {
    "receivers": {"otlp"},
    "processors": {"memory_limiter", "transform"},
    "exporters": {"clickhouse", "loadbalancing", "prometheus"},
    "connectors": {"servicegraph", "spanmetrics"},
}
DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$")
ENV_REFERENCE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}")


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((CONFIG_DIR / name).read_text(encoding="utf-8"))
    return document


@pytest.mark.parametrize("name", CONFIG_FILES)
def test_every_component_of_a_pipeline_is_defined_and_every_defined_one_used(name: str) -> None:
    config = load(name)
    for section, types in CONTRIB_TYPES.items():
        for component in config.get(section) or {}:
            assert component.split("/")[0] in types, f"{name}: {section}.{component}"
    connectors = set(config.get("connectors") or {})
    used: dict[str, set[str]] = {"receivers": set(), "processors": set(), "exporters": set()}
    connector_ends: dict[str, set[str]] = {c: set() for c in connectors}
    pipelines = config["service"]["pipelines"]
    assert pipelines
    for pipeline_id, pipeline in pipelines.items():
        assert pipeline_id.split("/")[0] in ("traces", "metrics", "logs")
        assert pipeline.get("receivers") and pipeline.get("exporters"), pipeline_id
        for role in ("receivers", "processors", "exporters"):
            for component in pipeline.get(role) or []:
                if component in connectors and role != "processors":
                    connector_ends[component].add(role)
                    continue
                assert component in (config.get(role) or {}), f"{name}: {pipeline_id} {component}"
                used[role].add(component)
        if "processors" in pipeline:
            assert pipeline["processors"][0] == "memory_limiter", f"{name}: {pipeline_id}"
    for role, components in used.items():
        assert set(config.get(role) or {}) == components, f"{name}: unused {role}"
    for connector, ends in connector_ends.items():
        assert ends == {"receivers", "exporters"}, f"{name}: connector {connector} half-wired"


@pytest.mark.parametrize("name", ["otelcol.yaml", "backend.yaml"])
def test_the_clickhouse_exporter_uses_only_current_keys_of_its_schema(name: str) -> None:
    exporter = load(name)["exporters"]["clickhouse"]
    assert set(exporter) <= CLICKHOUSE_KEYS, set(exporter) - CLICKHOUSE_KEYS
    required = {"endpoint", "database", "traces_table_name", "ttl", "create_schema", "timeout"}
    required |= {"compress", "async_insert", "sending_queue", "retry_on_failure"}
    assert required <= set(exporter)
    assert DURATION.match(str(exporter["ttl"])) and DURATION.match(str(exporter["timeout"]))
    queue = exporter["sending_queue"]
    assert set(queue) <= SENDING_QUEUE_KEYS and "batch" in queue
    assert set(queue["batch"]) <= BATCH_KEYS
    assert DURATION.match(queue["batch"]["flush_timeout"])
    assert set(exporter["retry_on_failure"]) <= RETRY_KEYS
    for value in (exporter["endpoint"], exporter["password"]):
        assert ENV_REFERENCE.fullmatch(value), value


def test_the_backend_writes_a_cluster_with_tables_from_schema_apply() -> None:
    config = load("backend.yaml")
    exporter = config["exporters"]["clickhouse"]
    assert exporter["create_schema"] is False
    assert ENV_REFERENCE.fullmatch(exporter["cluster_name"])
    assert set(exporter["table_engine"]) <= TABLE_ENGINE_KEYS
    assert exporter["table_engine"]["name"].startswith("Replicated")
    assert set(config["connectors"]["servicegraph"]) <= SERVICEGRAPH_KEYS
    assert set(config["connectors"]["servicegraph"]["store"]) <= {"ttl", "max_items"}
    assert set(config["connectors"]["spanmetrics"]) <= SPANMETRICS_KEYS
    assert config["connectors"]["servicegraph"]["dimensions"] == ["chain.id"]
    assert config["connectors"]["spanmetrics"]["dimensions"] == [{"name": "chain.id"}]
    assert "schema apply --cluster" in (CONFIG_DIR / "backend.yaml").read_text()


@pytest.mark.parametrize("name", CONFIG_FILES)
def test_processors_use_only_keys_of_their_schemas(name: str) -> None:
    processors = load(name)["processors"]
    assert set(processors["memory_limiter"]) <= MEMORY_LIMITER_KEYS
    assert DURATION.match(processors["memory_limiter"]["check_interval"])
    if "transform/chains" in processors:
        assert set(processors["transform/chains"]) <= TRANSFORM_KEYS
        assert processors["transform/chains"]["error_mode"] == "ignore"
        assert all(isinstance(s, str) for s in processors["transform/chains"]["trace_statements"])


def test_the_gateway_routes_whole_traces_to_one_backend() -> None:
    exporter = load("gateway.yaml")["exporters"]["loadbalancing"]
    assert set(exporter) <= LOADBALANCING_KEYS
    assert set(exporter["resolver"]["dns"]) <= DNS_RESOLVER_KEYS
    assert exporter["routing_key"] == "traceID"
    assert set(exporter["resolver"]) == {"dns"}
    assert set(exporter["protocol"]) == {"otlp"}


def test_receivers_listen_on_the_otlp_ports() -> None:
    protocols = load("otelcol.yaml")["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"].endswith(":4317")
    assert protocols["http"]["endpoint"].endswith(":4318")


def test_every_environment_variable_is_documented() -> None:
    readme = (CONFIG_DIR / "README.md").read_text(encoding="utf-8")
    names = set()
    for name in CONFIG_FILES:
        text = (CONFIG_DIR / name).read_text(encoding="utf-8")
        found = set(ENV_REFERENCE.findall(text))
        assert found, name
        for variable, _default in found:
            names.add(variable)
            assert variable in text.split("receivers:")[0], f"{name}: header lacks {variable}"
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
def test_transform_chains_is_the_generated_processor_and_well_formed(name: str) -> None:
    catalog = load_catalog(ROOT / "chains.example.yaml")
    processor = load(name)["processors"]["transform/chains"]
    processor["trace_statements"] = [confmap_unescape(s) for s in processor["trace_statements"]]
    assert processor == transform_processor(catalog)
    for statement in processor["trace_statements"]:
        parse_statement(statement)


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
