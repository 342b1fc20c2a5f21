"""data-bridge (:8001): market data ingest (REST) and the ``/ws/market`` price stream.

Feeds ``POST /market-data/ticks``; each tick is traced with
:func:`chainmap_otel.track.market_data` (symbol, type, feed-to-bridge latency),
stored through database-service with ``requests`` (the other instrumented HTTP
client) and fanned out to WebSocket subscribers, whose connection lifecycle is
traced with :func:`chainmap_otel.track.websocket_session`.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI, WebSocket
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from chainmap_otel import track
from chainmap_otel.demo.platform import PeerClients, peer_url
from chainmap_otel.demo.streams import Subscriptions


class TickIn(BaseModel):
    symbol: str
    price: float
    volume: float = 0.0
    sent_at: float | None = None


STREAMS = Subscriptions(queue_size=500)


CLIENTS = PeerClients("data-bridge", peer="database-service", with_requests=True)


app = FastAPI(title="data-bridge", lifespan=CLIENTS.lifespan)
track.install_exception_handler(app)


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok", "service": "data-bridge"}


def _store_tick(tick: dict[str, Any]) -> None:
    response = CLIENTS.session.post(peer_url("database-service") + "/ticks", json=tick, timeout=10)
    response.raise_for_status()


@app.post("/market-data/ticks", status_code=202)
async def ingest_tick(tick: TickIn) -> dict[str, Any]:
    feed_latency = (time.time() - tick.sent_at) * 1000.0 if tick.sent_at else None
    with track.market_data(tick.symbol, "tick", latency_ms=feed_latency):
        symbol = tick.symbol.upper()
        normalised: dict[str, Any] = {
            "symbol": symbol,
            "price": round(tick.price, 4),
            "volume": max(tick.volume, 0.0),
        }
        await run_in_threadpool(_store_tick, normalised)
    delivered = STREAMS.publish(symbol, {"type": "tick", **normalised})
    return {"accepted": True, "delivered": delivered}


@app.get("/market-data/{symbol}/latest")
async def latest(symbol: str) -> dict[str, Any]:
    response = await CLIENTS.http.get(f"/prices/{symbol.upper()}")
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


async def _snapshots(message: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for raw in message.get("symbols", []):
        symbol = str(raw).upper()
        snapshot = await CLIENTS.http.get(f"/prices/{symbol}")
        found.append((symbol, {"type": "snapshot", **snapshot.json()}))
    return found


@app.websocket("/ws/market")
async def market_stream(websocket: WebSocket) -> None:
    """Clients send ``{"action": "subscribe", "symbols": [...]}``; they get a snapshot per
    symbol, then every tick of those symbols; ``{"action": "ping"}`` gets a pong."""
    await STREAMS.serve(websocket, _snapshots)
