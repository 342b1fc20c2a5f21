"""The demo platform's services, their ports and how they find each other.

Services read their peers' base URLs from environment variables named like a
real deployment's (``DATA_BRIDGE_URL``, ``DATABASE_SERVICE_URL`` ...), falling
back to the seed spec's ports on localhost. The fault knobs let the demo show
errors and a slow dependency without touching code.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import requests
from fastapi import FastAPI


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
        "settlement-service",
        8009,
        "chainmap_otel.demo.settlement:app",
        "SETTLEMENT_SERVICE_URL",
        "settles filled orders from the order-events queue, asynchronously",
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


class PeerClients:
    """The outgoing HTTP clients a demo service holds for its lifetime.

    An ``httpx.AsyncClient`` (based at ``peer``'s URL when given) and, with
    ``with_requests``, a ``requests.Session``: both are instrumented, so the demo
    shows edges made by either library. Pass :meth:`lifespan` to ``FastAPI``.
    """

    def __init__(
        self,
        service: str,
        *,
        peer: str | None = None,
        timeout: float = 10.0,
        with_requests: bool = False,
    ) -> None:
        self.service = service
        self._peer = peer
        self._timeout = timeout
        self._with_requests = with_requests
        self._http: httpx.AsyncClient | None = None
        self._session: requests.Session | None = None

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            raise RuntimeError(f"{self.service} is not started")
        return self._http

    @property
    def session(self) -> requests.Session:
        if self._session is None:
            raise RuntimeError(f"{self.service} is not started")
        return self._session

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        base_url = peer_url(self._peer) if self._peer else ""
        self._http = httpx.AsyncClient(base_url=base_url, timeout=self._timeout)
        self._session = requests.Session() if self._with_requests else None
        try:
            yield
        finally:
            await self._http.aclose()
            if self._session is not None:
                self._session.close()
            self._http = self._session = None
