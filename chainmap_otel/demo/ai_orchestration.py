"""ai-orchestration (:8003): trading decisions from the three model services.

``POST /decisions`` is one :func:`chainmap_otel.track.trading_decision` with
three stages: ``gather_signals`` (the models, called concurrently with httpx; a
failed model is tolerated and scored neutral), ``combine`` and ``place_order``
(trading-engine). A rejected order is reported in the decision, not raised, so
the failure stays attributed to the trade execution chain.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from chainmap_otel import track
from chainmap_otel.demo.platform import PeerClients, peer_url

MODELS = ("ai-market-model", "ai-risk-model", "ai-sentiment-model")
WEIGHTS = {"ai-market-model": 0.5, "ai-risk-model": 0.3, "ai-sentiment-model": 0.2}


class DecisionRequest(BaseModel):
    symbol: str
    account: str = "demo-account"
    price: float | None = None


CLIENTS = PeerClients("ai-orchestration")


app = FastAPI(title="ai-orchestration", lifespan=CLIENTS.lifespan)
track.install_exception_handler(app)


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok", "service": "ai-orchestration"}


async def _signal(model: str, request: DecisionRequest) -> float | None:
    features = [random.uniform(-1, 1) for _ in range(8)]
    response = await CLIENTS.http.post(
        peer_url(model) + "/predict",
        json={"symbol": request.symbol, "price": request.price, "features": features},
    )
    if response.status_code != 200:
        return None
    return float(response.json()["score"])


@app.post("/decisions")
async def decide(request: DecisionRequest) -> dict[str, Any]:
    decision_id = uuid.uuid4().hex[:16]
    with track.trading_decision(decision_id, symbol=request.symbol):
        with track.stage("gather_signals", criticality="high"):
            scores = await asyncio.gather(*(_signal(model, request) for model in MODELS))
        with track.stage("combine", criticality="medium"):
            signals = dict(zip(MODELS, scores, strict=True))
            score = sum(WEIGHTS[m] * (s if s is not None else 0.0) for m, s in signals.items())
            action = "buy" if score > -0.1 else "sell"
        with track.stage("place_order", criticality="critical"):
            response = await CLIENTS.http.post(
                peer_url("trading-engine") + "/orders",
                json={
                    "account": request.account,
                    "symbol": request.symbol,
                    "side": action,
                    "quantity": round(1 + abs(score) * 10, 2),
                    "price": request.price,
                },
            )
            order_status = "placed" if response.status_code == 200 else "rejected"
    return {
        "decision_id": decision_id,
        "symbol": request.symbol,
        "action": action,
        "score": round(score, 4),
        "signals": signals,
        "order": order_status,
    }
