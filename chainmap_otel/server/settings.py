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

__all__ = ["ServeSettings"]


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
        unknown = set(overrides) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"unknown serve settings: {', '.join(sorted(unknown))}")
        given = {k: v for k, v in overrides.items() if v is not None}
        for name, value in given.items():
            var = _BOUNDED.get(name)
            if var is not None and not var.within(value):
                raise ValueError(f"{name}={value!r} is outside {var.bounds} ({var.name})")
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
