"""Three plain FastAPI services with no chainmap code: gateway -> orchestrator -> engine.

The role comes from OTEL_SERVICE_NAME; peers from GATEWAY_PEER / ORCHESTRATOR_PEER.
The gateway calls with httpx, the orchestrator with requests.
"""

from __future__ import annotations

import os

import httpx
import requests
from fastapi import FastAPI

app = FastAPI()
ROLE = os.environ["OTEL_SERVICE_NAME"]


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok", "service": ROLE}


@app.get("/api/v1/trading/decision")
def decision() -> dict[str, object]:
    response = httpx.post(
        os.environ["GATEWAY_PEER"] + "/decisions", json={"symbol": "AAPL"}, timeout=10
    )
    return {"gateway": "ok", "downstream": response.json()}


@app.get("/api/v1/ping")
def ping() -> dict[str, str]:
    return {"pong": ROLE}


@app.post("/decisions")
def decide() -> dict[str, object]:
    response = requests.post(
        os.environ["ORCHESTRATOR_PEER"] + "/orders", json={"qty": 1}, timeout=10
    )
    return {"decision": "buy", "order": response.json()}


@app.post("/orders")
def order() -> dict[str, str]:
    return {"order": "accepted"}


@app.get("/internal/metrics")
def metrics() -> dict[str, int]:
    return {"requests": 1}
