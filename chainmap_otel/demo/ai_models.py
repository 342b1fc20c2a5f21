"""The three model services (:8004 market, :8005 risk, :8006 sentiment).

Each answers ``POST /predict`` with a signal for a symbol, traced with
:func:`chainmap_otel.track.inference`. ai-risk-model is the demo's slow
dependency (``DEMO_RISK_MODEL_DELAY_MS``); ai-sentiment-model fails a fraction
of its inferences (``DEMO_SENTIMENT_FAILURE_RATE``), recorded with the exception.
ai-market-model also runs a small training pipeline (``POST /train``), each
stage a :func:`chainmap_otel.track.training_stage` span with its metrics.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field

from chainmap_otel import track
from chainmap_otel.demo.platform import RISK_MODEL_DELAY_MS, SENTIMENT_FAILURE_RATE, fault


class ModelInferenceError(RuntimeError):
    """The model could not produce an output for this input."""


class PredictRequest(BaseModel):
    symbol: str
    price: float | None = None
    features: list[float] = Field(default_factory=list)


class TrainRequest(BaseModel):
    pipeline_id: str = "nightly"
    rows: int = 5000


@dataclass(frozen=True)
class Model:
    model_id: str
    version: str
    min_ms: float
    max_ms: float

    def delay_s(self) -> float:
        return random.uniform(self.min_ms, self.max_ms) / 1000.0

    def score(self, request: PredictRequest) -> float:
        """A deterministic-looking score in [-1, 1] from the symbol and features."""
        seed = f"{self.model_id}:{request.symbol}:{sum(request.features):.3f}"
        digest = hashlib.sha256(seed.encode()).digest()
        return (digest[0] / 127.5) - 1.0 + random.uniform(-0.2, 0.2)


def model_app(model: Model, *, slow: bool = False, flaky: bool = False) -> FastAPI:
    app = FastAPI(title=model.model_id)
    track.install_exception_handler(app)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "model": model.model_id}

    @app.post("/predict")
    async def predict(request: PredictRequest) -> dict[str, Any]:
        with track.inference(
            model.model_id, input=request.model_dump(), model_version=model.version
        ) as call:
            delay = model.delay_s()
            if slow:
                delay += random.uniform(0.6, 1.4) * fault(RISK_MODEL_DELAY_MS) / 1000.0
            await asyncio.sleep(delay)
            if flaky and random.random() < fault(SENTIMENT_FAILURE_RATE):
                raise ModelInferenceError(f"{model.model_id}: no recent news for {request.symbol}")
            output = {"model": model.model_id, "score": round(model.score(request), 4)}
            call.set_output(output)
        return output

    return app


MARKET = Model("market-lstm", "2.4.1", 8, 30)
RISK = Model("risk-var", "3.0.0", 5, 20)
SENTIMENT = Model("sentiment-bert", "1.7.0", 15, 45)

market_app = model_app(MARKET)
risk_app = model_app(RISK, slow=True)
sentiment_app = model_app(SENTIMENT, flaky=True)


@market_app.post("/train")
async def train(request: TrainRequest) -> dict[str, Any]:
    """A small training pipeline: load, features, fit, evaluate."""
    metrics: dict[str, float] = {}
    with track.training_stage(request.pipeline_id, "load", metrics={"rows": request.rows}):
        await asyncio.sleep(0.02)
    with track.training_stage(request.pipeline_id, "features") as features:
        await asyncio.sleep(0.03)
        features.record_metrics(feature_count=48)
    with track.training_stage(request.pipeline_id, "fit") as fit:
        for epoch in range(3):
            await asyncio.sleep(0.02)
            metrics["loss"] = round(0.9 / (epoch + 1) + random.uniform(0, 0.05), 4)
        fit.record_metrics(epochs=3, loss=metrics["loss"])
    with track.training_stage(request.pipeline_id, "evaluate") as evaluate:
        await asyncio.sleep(0.01)
        metrics["accuracy"] = round(random.uniform(0.55, 0.62), 4)
        evaluate.record_metrics(accuracy=metrics["accuracy"])
    return {"pipeline_id": request.pipeline_id, "model": MARKET.model_id, **metrics}
