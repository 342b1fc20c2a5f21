"""The demo platform's services, their ports and how they find each other.

Services read their peers' base URLs from environment variables named like a
real deployment's (``DATA_BRIDGE_URL``, ``DATABASE_SERVICE_URL`` ...), falling
back to the seed spec's ports on localhost. The fault knobs let the demo show
errors and a slow dependency without touching code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class ServiceSpec:
    """One service of the platform: its name (``OTEL_SERVICE_NAME``), seed port and app."""

    name: str
    default_port: int
    app: str
    url_env: str
    role: str


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        "database-service",
        8008,
        "chainmap_otel.demo.database_service:app",
        "DATABASE_SERVICE_URL",
        "PostgreSQL-backed persistence (psycopg 3)",
    ),
    ServiceSpec(
        "ai-market-model",
        8004,
        "chainmap_otel.demo.ai_models:market_app",
        "AI_MARKET_MODEL_URL",
        "price-move model inference and training",
    ),
    ServiceSpec(
        "ai-risk-model",
        8005,
        "chainmap_otel.demo.ai_models:risk_app",
        "AI_RISK_MODEL_URL",
        "risk model (the deliberately slow dependency)",
    ),
    ServiceSpec(
        "ai-sentiment-model",
        8006,
        "chainmap_otel.demo.ai_models:sentiment_app",
        "AI_SENTIMENT_MODEL_URL",
        "news sentiment model (fails now and then)",
    ),
    ServiceSpec(
        "trading-engine",
        8007,
        "chainmap_otel.demo.trading_engine:app",
        "TRADING_ENGINE_URL",
        "orders (rejects some) and the /ws/orders stream",
    ),
    ServiceSpec(
        "data-bridge",
        8001,
        "chainmap_otel.demo.data_bridge:app",
        "DATA_BRIDGE_URL",
        "market data ingest and the /ws/market stream",
    ),
    ServiceSpec(
        "ai-orchestration",
        8003,
        "chainmap_otel.demo.ai_orchestration:app",
        "AI_ORCHESTRATION_URL",
        "trading decisions from the three models",
    ),
    ServiceSpec(
        "api-gateway",
        8000,
        "chainmap_otel.demo.gateway:app",
        "API_GATEWAY_URL",
        "public API entry point",
    ),
)
SERVICES_BY_NAME = {spec.name: spec for spec in SERVICES}

#: Fraction of orders the trading engine's exchange simulator rejects with a 500.
ORDER_REJECT_RATE = "DEMO_ORDER_REJECT_RATE"
#: Mean added latency (ms) of ai-risk-model, the slow dependency.
RISK_MODEL_DELAY_MS = "DEMO_RISK_MODEL_DELAY_MS"
#: Fraction of ai-sentiment-model inferences that fail.
SENTIMENT_FAILURE_RATE = "DEMO_SENTIMENT_FAILURE_RATE"
#: PostgreSQL URL of database-service (the embedded server's, set by the demo).
DATABASE_URL = "DATABASE_URL"

FAULT_DEFAULTS = {
    ORDER_REJECT_RATE: "0.08",
    RISK_MODEL_DELAY_MS: "220",
    SENTIMENT_FAILURE_RATE: "0.03",
}

SYMBOLS = ("AAPL", "MSFT", "NVDA", "TSLA", "EURUSD", "BTCUSD")


def peer_url(service: str) -> str:
    """Base URL of ``service``: its ``*_URL`` variable, else the seed port on localhost."""
    spec = SERVICES_BY_NAME[service]
    return os.environ.get(spec.url_env, f"http://127.0.0.1:{spec.default_port}").rstrip("/")


def fault(name: str) -> float:
    """A fault knob's value; a malformed value falls back to the default."""
    raw = os.environ.get(name, FAULT_DEFAULTS[name])
    try:
        return float(raw)
    except ValueError:
        return float(FAULT_DEFAULTS[name])
