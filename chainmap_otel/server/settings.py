"""``chainmap serve``'s settings, resolved once at start: argument > environment > default.

Each field reads one ``CHAINMAP_*`` variable of :mod:`chainmap_otel.config` (a malformed or
out-of-range value there is logged and the default used); an argument given to
:meth:`ServeSettings.from_env` wins, and one outside the variable's declared range is a
``ValueError`` naming the rule, as for any bad argument.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from chainmap_otel import config

__all__ = ["MonitorSettings", "ServeSettings"]


@dataclass(frozen=True)
class ServeSettings:
    """What ``run_server`` runs with; ``store_url`` None means ``config.clickhouse_url()``."""

    store_url: str | None
    host: str
    http_port: int
    grpc_port: int
    max_body_bytes: int
    queue_spans: int
    queue_bytes: int
    max_inflight_bytes: int
    decode_processes: int
    engine_decode: bool
    idle_timeout_s: int
    apply_schema: bool
    registry_url: str

    @classmethod
    def from_env(cls, **overrides: Any) -> ServeSettings:
        """The settings from the environment, with ``overrides`` (None: not given) on top."""
        given = _given(cls, overrides, _BOUNDED)
        from_environment: dict[str, Any] = {
            "store_url": None,
            "host": config.env_str(config.CHAINMAP_SERVE_HOST),
            "http_port": config.env_int(config.CHAINMAP_SERVE_HTTP_PORT),
            "grpc_port": config.env_int(config.CHAINMAP_SERVE_GRPC_PORT),
            "max_body_bytes": config.env_int(config.CHAINMAP_SERVE_MAX_BODY_BYTES),
            "queue_spans": config.env_int(config.CHAINMAP_SERVE_QUEUE_SPANS),
            "queue_bytes": config.env_int(config.CHAINMAP_SERVE_QUEUE_BYTES),
            "max_inflight_bytes": config.env_int(config.CHAINMAP_SERVE_MAX_INFLIGHT_BYTES),
            "decode_processes": config.env_int(config.CHAINMAP_SERVE_DECODE_PROCESSES),
            "engine_decode": config.env_bool(config.CHAINMAP_SERVE_ENGINE_DECODE),
            "idle_timeout_s": config.env_int(config.CHAINMAP_SERVE_IDLE_TIMEOUT_S),
            "apply_schema": config.env_bool(config.CHAINMAP_SCHEMA_AUTO_APPLY),
            "registry_url": config.registry_url(),
        }
        return cls(**{**from_environment, **given})

    @property
    def registry_on(self) -> bool:
        return self.registry_url != "off"


@dataclass(frozen=True)
class MonitorSettings:
    """What the chain monitor and its webhook notifier of ``chainmap serve`` run with."""

    interval_s: float
    for_s: float
    repeat_s: float
    webhook_urls: tuple[str, ...]
    webhook_timeout_s: float
    webhook_max_age_s: float
    external_url: str

    @classmethod
    def from_env(cls, **overrides: Any) -> MonitorSettings:
        """The settings from the environment, with ``overrides`` (None: not given) on top."""
        given = _given(cls, overrides, {})
        from_environment: dict[str, Any] = {
            "interval_s": config.env_seconds(config.CHAINMAP_MONITOR_INTERVAL),
            "for_s": config.env_seconds(config.CHAINMAP_ALERT_FOR),
            "repeat_s": config.env_seconds(config.CHAINMAP_ALERT_REPEAT_INTERVAL),
            "webhook_urls": tuple(config.webhook_urls()),
            # A zero timeout would fail every delivery at once: the default instead.
            "webhook_timeout_s": config.env_seconds(config.CHAINMAP_ALERT_WEBHOOK_TIMEOUT)
            or config.parse_seconds(config.CHAINMAP_ALERT_WEBHOOK_TIMEOUT.default),
            "webhook_max_age_s": config.env_seconds(config.CHAINMAP_ALERT_WEBHOOK_MAX_AGE),
            "external_url": config.env_str(config.CHAINMAP_EXTERNAL_URL),
        }
        if "webhook_urls" in given:
            given["webhook_urls"] = tuple(given["webhook_urls"])
        return cls(**{**from_environment, **given})


def _given(
    cls: type, overrides: dict[str, Any], bounded: dict[str, config.EnvVar]
) -> dict[str, Any]:
    """The overrides that were given (not None), checked: an unknown name is a ``TypeError``,
    a value outside its variable's declared range a ``ValueError`` naming the rule."""
    unknown = set(overrides) - {f.name for f in fields(cls)}
    if unknown:
        raise TypeError(f"unknown {cls.__name__} fields: {', '.join(sorted(unknown))}")
    given = {k: v for k, v in overrides.items() if v is not None}
    for name, value in given.items():
        var = bounded.get(name)
        if var is not None and not var.within(value):
            raise ValueError(f"{name}={value!r} is outside {var.bounds} ({var.name})")
    return given


#: The settings whose variable declares a range an argument must respect too.
_BOUNDED = {
    "http_port": config.CHAINMAP_SERVE_HTTP_PORT,
    "grpc_port": config.CHAINMAP_SERVE_GRPC_PORT,
    "max_body_bytes": config.CHAINMAP_SERVE_MAX_BODY_BYTES,
    "queue_spans": config.CHAINMAP_SERVE_QUEUE_SPANS,
    "queue_bytes": config.CHAINMAP_SERVE_QUEUE_BYTES,
    "max_inflight_bytes": config.CHAINMAP_SERVE_MAX_INFLIGHT_BYTES,
    "decode_processes": config.CHAINMAP_SERVE_DECODE_PROCESSES,
    "idle_timeout_s": config.CHAINMAP_SERVE_IDLE_TIMEOUT_S,
}
