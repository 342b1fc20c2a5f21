"""docker-compose.yml and the Dockerfile: valid for Compose, and every file they use exists.

No Docker engine runs here and no image registry is reachable, so the stack is not started:
``docker-compose config`` (Debian's ``docker-compose`` package) validates and resolves the
file, and the checks below read its resolved form.
"""

from __future__ import annotations

import importlib
import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from chainmap_otel.cli import COMMAND_MODULES, app
from chainmap_otel.demo.platform import SERVICES

ROOT = Path(__file__).resolve().parents[2]
COLLECTOR_CONFIG = ROOT / "collector-config"


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip(
            "docker-compose is not installed (Debian package docker-compose; .ci/run installs "
            "it): it is what validates docker-compose.yml"
        )
    env = {k: v for k, v in os.environ.items() if not k.endswith("_PASSWORD")}
    result = subprocess.run(
        [compose, "-f", str(ROOT / "docker-compose.yml"), "config"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = yaml.safe_load(result.stdout)
    return data


def bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume.get("source", ""), volume["target"]
        mounts.append((source, target))
    return mounts


def test_the_stack_has_every_part(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    expected = {"clickhouse", "postgres", "chainmap-schema", "otelcol", "chainmap", "grafana"}
    expected |= {spec.name for spec in SERVICES} | {"demo-load"}
    assert set(services) == expected
    assert services["otelcol"]["image"].startswith("otel/opentelemetry-collector-contrib:")
    assert (
        "grafana-clickhouse-datasource" in services["grafana"]["environment"]["GF_INSTALL_PLUGINS"]
    )
    assert services["chainmap-schema"]["command"] == ["schema", "apply"]
    assert services["chainmap"]["command"][0] == "serve"
    for name in ("chainmap-schema", "chainmap"):
        url = services[name]["environment"]["CHAINMAP_CLICKHOUSE_URL"]
        assert url.startswith("http://") and "@clickhouse:8123/otel" in url
    for spec in SERVICES:
        env = services[spec.name]["environment"]
        assert env["OTEL_SERVICE_NAME"] == spec.name
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otelcol:4318"
        assert env[spec.url_env].endswith(f":{spec.default_port}")
        assert spec.app in services[spec.name]["command"]
        assert env["PORT"] == str(spec.default_port)


def test_start_order_waits_on_health(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    for name, service in services.items():
        for dependency, rule in service.get("depends_on", {}).items():
            assert dependency in services, (name, dependency)
            condition = rule["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], (name, dependency)
            elif condition == "service_completed_successfully":
                assert services[dependency].get("restart", "no") == "no", dependency
    assert services["otelcol"]["depends_on"]["chainmap-schema"]["condition"] == (
        "service_completed_successfully"
    )
    assert set(services["demo-load"]["depends_on"]) == {spec.name for spec in SERVICES}


def test_every_bind_mount_and_volume_exists(resolved: dict[str, Any]) -> None:
    declared = set(resolved.get("volumes") or {})
    for name, service in resolved["services"].items():
        for source, target in bind_mounts(service):
            if not source.startswith("/"):
                assert source in declared, (name, source)
                continue
            path = Path(source)
            if COLLECTOR_CONFIG in path.parents:
                continue  # checked by test_the_collector_config_mount
            assert path.exists(), f"{name} mounts {source} (at {target}), which does not exist"
    grafana = dict(bind_mounts(resolved["services"]["grafana"]))
    provisioning = Path(next(s for s, t in grafana.items() if t == "/etc/grafana/provisioning"))
    assert (provisioning / "datasources" / "chainmap.yaml").is_file()
    provider = yaml.safe_load((provisioning / "dashboards" / "chainmap.yaml").read_text())
    dashboards_path = provider["providers"][0]["options"]["path"]
    mounted = {t: Path(s) for s, t in grafana.items()}
    assert sorted(p.name for p in mounted[dashboards_path].glob("*.json")) == [
        "chain-topology.json",
        "chains-overview.json",
        "traces.json",
        "where-the-time-goes.json",
    ]


def test_the_collector_config_mount(resolved: dict[str, Any]) -> None:
    mounts = dict(bind_mounts(resolved["services"]["otelcol"]))
    source = next(s for s, t in mounts.items() if t == "/etc/otelcol-contrib/config.yaml")
    assert Path(source) == COLLECTOR_CONFIG / "otelcol.yaml"
    config = yaml.safe_load(Path(source).read_text())
    env = resolved["services"]["otelcol"]["environment"]
    for key in ("endpoint", "username", "password", "database"):
        value = config["exporters"]["clickhouse"][key]
        variable = value.split("env:")[1].split(":")[0].rstrip("}")
        assert variable in env, (
            f"otelcol.yaml reads {variable}, which the compose file does not set"
        )


def test_the_dockerfile_copies_what_exists_and_is_not_ignored() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text().splitlines()
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copied = [
        source for line in dockerfile if line.startswith("COPY ") for source in line.split()[1:-1]
    ]
    assert copied
    for source in copied:
        assert (ROOT / source).exists(), source
        assert source.rstrip("/") in allowed, f"{source} is excluded by .dockerignore"
    for needed in ("schemas", "chains.example.yaml", "README.md"):
        assert needed in copied, f"the wheel build needs {needed}"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_demo_load_drives_the_services_named_by_their_url_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every URL points at a closed port: the load runs its time, counts each call as failed
    # to connect, and reaches nothing else on this machine.
    url = f"http://127.0.0.1:{closed_port()}"
    for spec in SERVICES:
        monkeypatch.setenv(spec.url_env, url)
    for module in COMMAND_MODULES:
        importlib.import_module(module)
    result = CliRunner().invoke(app, ["demo-load", "--duration", "5", "--report-every", "5"])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("load: "))
    calls = int(line.split()[1])
    assert calls > 0 and line.endswith(f"0 answered 5xx, {calls} failed to connect")
    assert f"api-gateway {url}" in " ".join(result.output.split())
