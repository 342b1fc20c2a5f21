"""otelcol-chainmap: the components, the one release and the module the README states."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from chainmap_otel.collector import CONTRIB_IMAGE_TAG
from tests.support.collector import validate

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "collector-config" / "README.md"
MODULE = ROOT / "collector-config" / "distribution"
RELEASE = "0.161.0"
STABLE_RELEASE = "1.67.0"


def readme_components() -> dict[str, dict[str, str]]:
    """The README's component table: per kind, the name the configs use -> the name the
    release lists (the same unless it gives a new one in brackets)."""
    section = README.read_text(encoding="utf-8").split("## otelcol-chainmap")[1]
    table: dict[str, dict[str, str]] = {}
    for kind, cell in re.findall(r"^\| (\w+) \| (`.+) \|$", section, re.MULTILINE):
        entries = re.findall(r"`([a-z_]+)`(?: \(`([a-z_]+)`\))?", cell)
        table[kind] = {old: new or old for old, new in entries}
    return table


def test_the_binary_has_exactly_the_components_the_readme_lists(otelcol: Path) -> None:
    done = subprocess.run(
        [str(otelcol), "components"], capture_output=True, text=True, timeout=60, check=True
    )
    listed = yaml.safe_load(done.stdout)
    assert listed["buildinfo"]["version"] == RELEASE
    built = {
        kind: {component["name"] for component in listed[kind]}
        for kind in ("receivers", "processors", "exporters", "connectors", "extensions")
    }
    documented = readme_components()
    assert {kind: set(names.values()) for kind, names in documented.items()} == built


def test_every_collector_module_is_at_one_release() -> None:
    requirements = re.findall(
        r"^\s+(go\.opentelemetry\.io/collector\S*|github\.com/open-telemetry/"
        r"opentelemetry-collector-contrib\S*) (v\S+)",
        (MODULE / "go.mod").read_text(encoding="utf-8"),
        re.MULTILINE,
    )
    assert len(requirements) > 20
    releases = {version for _module, version in requirements}
    assert releases == {f"v{RELEASE}", f"v{STABLE_RELEASE}"}, releases
    readme = README.read_text(encoding="utf-8")
    assert f"contrib v{RELEASE}, core v{RELEASE} / v{STABLE_RELEASE}" in readme
    assert f'const version = "{RELEASE}"' in (MODULE / "main.go").read_text(encoding="utf-8")


def test_the_image_the_compose_file_and_the_configs_name_is_the_release_built() -> None:
    assert CONTRIB_IMAGE_TAG == RELEASE
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    image = f"otel/opentelemetry-collector-contrib:{RELEASE}"
    assert compose["services"]["otelcol"]["image"] == image
    assert f"`{image}`" in README.read_text(encoding="utf-8")


def test_every_component_validates_under_the_name_the_configs_use(
    otelcol: Path, tmp_path: Path
) -> None:
    names = readme_components()
    endpoint = {"endpoint": "127.0.0.1:4317", "tls": {"insecure": True}}
    settings: dict[str, object] = {
        "otlp": endpoint,
        "otlphttp": {"endpoint": "http://127.0.0.1:4318"},
        "file": {"path": str(tmp_path / "spans.json")},
        "loadbalancing": {
            "protocol": {"otlp": {"tls": {"insecure": True}}},
            "resolver": {"static": {"hostnames": ["127.0.0.1:4317"]}},
        },
        "prometheus": {"endpoint": "127.0.0.1:8889"},
        "clickhouse": {"endpoint": "tcp://127.0.0.1:9000"},
        "bearertokenauth": {"token": "t"},
        "file_storage": {"directory": str(tmp_path)},
    }

    settings["memory_limiter"] = {"check_interval": "1s", "limit_percentage": 80}

    def section(kind: str) -> dict[str, object]:
        return {name: settings.get(name, {}) for name in names[kind]}

    traces_exporters = [n for n in names["exporters"] if n != "prometheus"]
    config: dict[str, object] = {
        "extensions": section("extensions"),
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:4317"}}}},
        "processors": section("processors"),
        "exporters": section("exporters"),
        "connectors": section("connectors"),
        "service": {
            "extensions": sorted(names["extensions"]),
            "pipelines": {
                "traces": {
                    "receivers": sorted(names["receivers"]),
                    "processors": ["memory_limiter", "batch", "transform"],
                    "exporters": sorted(traces_exporters + list(names["connectors"])),
                },
                "metrics": {
                    "receivers": sorted(names["connectors"]),
                    "exporters": ["prometheus"],
                },
            },
        },
    }
    path = tmp_path / "every.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    assert validate(otelcol, path) == ""
