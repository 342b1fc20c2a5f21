"""``chainmap serve``'s settings resolved once: argument > environment > default; a bad
environment value warns and takes the default, a bad argument is a ValueError."""

from __future__ import annotations

import pytest

from chainmap_otel.server.settings import MonitorSettings, ServeSettings


def test_arguments_win_over_the_environment_which_wins_over_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("CHAINMAP_SERVE_HTTP_PORT", "CHAINMAP_SERVE_GRPC_PORT", "CHAINMAP_SERVE_HOST"):
        monkeypatch.delenv(name, raising=False)
    defaults = ServeSettings.from_env()
    assert (defaults.host, defaults.http_port, defaults.grpc_port) == ("127.0.0.1", 4318, 4317)
    monkeypatch.setenv("CHAINMAP_SERVE_HTTP_PORT", "5318")
    monkeypatch.setenv("CHAINMAP_SERVE_QUEUE_SPANS", "0")  # outside 1..: the default
    monkeypatch.setenv("CHAINMAP_REGISTRY_URL", "off")
    settings = ServeSettings.from_env(grpc_port=0, host=None)
    assert (settings.http_port, settings.grpc_port, settings.queue_spans) == (5318, 0, 100_000)
    assert settings.registry_on is False and settings.host == "127.0.0.1"
    assert ServeSettings.from_env(http_port=6000).http_port == 6000


def test_bad_arguments_are_refused_naming_the_rule() -> None:
    with pytest.raises(ValueError, match=r"http_port=70000 is outside 0\.\.65535"):
        ServeSettings.from_env(http_port=70000)
    with pytest.raises(
        ValueError,
        match=r"queue_spans=0 is outside 1\.\. \(CHAINMAP_SERVE_QUEUE_SPANS\)",
    ):
        ServeSettings.from_env(queue_spans=0)
    with pytest.raises(TypeError, match="unknown ServeSettings fields: port"):
        ServeSettings.from_env(port=1)


def test_the_monitor_settings_resolve_the_same_way(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAINMAP_MONITOR_INTERVAL", "10s")
    monkeypatch.setenv("CHAINMAP_ALERT_FOR", "1m")
    monkeypatch.setenv("CHAINMAP_ALERT_WEBHOOK_URLS", "http://a/hook, ftp://b/x")
    monkeypatch.setenv("CHAINMAP_ALERT_WEBHOOK_TIMEOUT", "0")  # would fail every delivery
    monkeypatch.setenv("CHAINMAP_EXTERNAL_URL", "https://chainmap.example")
    settings = MonitorSettings.from_env(for_s=5)
    assert (settings.interval_s, settings.for_s) == (10, 5)
    assert settings.webhook_urls == ("http://a/hook",)  # the ftp URL is logged and skipped
    assert settings.webhook_timeout_s == 5 and settings.external_url == "https://chainmap.example"
    assert MonitorSettings.from_env(webhook_urls=[]).webhook_urls == ()
    with pytest.raises(TypeError, match="unknown MonitorSettings fields: interval"):
        MonitorSettings.from_env(interval=1)
