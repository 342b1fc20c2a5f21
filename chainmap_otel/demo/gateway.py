"""api-gateway (:8000): the public API, proxying to the services behind it.

``/api/v1/*`` is the API request chain (B1). ``GET /reports/pnl`` is a back-office
route outside it that reads database-service directly: a recurring flow no chain
covers, which ``chainmap discover`` proposes as a new chain.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import requests
from fastapi import FastAPI, HTTPException
from opentelemetry import trace
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from chainmap_otel import track
from chainmap_otel.demo.platform import PeerClients, peer_url
from chainmap_otel.tagging.integration import ChainMappingHealth, install_chain_api


class DecisionIn(BaseModel):
    symbol: str
    account: str = "demo-account"


class OrderIn(BaseModel):
    account: str
    symbol: str
    side: str = "buy"
    quantity: float = 1.0


logger = logging.getLogger(__name__)
CLIENTS = PeerClients("api-gateway", timeout=15.0)


app = FastAPI(title="api-gateway", lifespan=CLIENTS.lifespan)
track.install_exception_handler(app)
# The platform spec's gateway integration: the chain API and chain health answered here, from
# the chainmap serve the spans go to.
install_chain_api(app)
CHAIN_MAPPING = ChainMappingHealth()


def _relay(response: httpx.Response | requests.Response, upstream: str) -> Any:
    if response.status_code >= 500:
        # The upstream's own log line (track's handler) carries the same trace id.
        context = trace.get_current_span().get_span_context()
        logger.warning(
            "%s answered %s; trace_id %s",
            upstream,
            response.status_code,
            trace.format_trace_id(context.trace_id) if context.is_valid else "none",
        )
        raise HTTPException(status_code=502, detail=f"{upstream} answered {response.status_code}")
    if response.status_code >= 400:
        raise HTTPException(status_code=response.status_code, detail=response.json())
    return response.json()


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok", "service": "api-gateway"}


@app.get("/health/detailed")
async def detailed_health() -> dict[str, Any]:
    chain_mapping = await run_in_threadpool(CHAIN_MAPPING)
    return {
        "status": "healthy",
        "service": "api-gateway",
        "chain_mapping": chain_mapping,
        "overall_status": chain_mapping["overall_status"],
    }


@app.get("/api/v1/market/{symbol}")
async def market(symbol: str) -> Any:
    response = await CLIENTS.http.get(peer_url("data-bridge") + f"/market-data/{symbol}/latest")
    return _relay(response, "data-bridge")


@app.post("/api/v1/trading/decision")
async def trading_decision(request: DecisionIn) -> Any:
    response = await CLIENTS.http.post(
        peer_url("ai-orchestration") + "/decisions", json=request.model_dump()
    )
    return _relay(response, "ai-orchestration")


def _post_order(order: dict[str, Any]) -> requests.Response:
    return requests.post(peer_url("trading-engine") + "/orders", json=order, timeout=15)


@app.post("/api/v1/orders")
async def place_order(request: OrderIn) -> Any:
    response = await run_in_threadpool(_post_order, request.model_dump())
    return _relay(response, "trading-engine")


@app.get("/reports/pnl")
async def pnl_report() -> Any:
    response = await CLIENTS.http.get(peer_url("database-service") + "/reports/pnl")
    return _relay(response, "database-service")
