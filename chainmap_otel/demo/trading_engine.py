"""trading-engine (:8007): order execution and the ``/ws/orders`` update stream.

``POST /orders`` runs four stages, each a :func:`chainmap_otel.track.stage`
child span with its criticality, inside :func:`chainmap_otel.track.order_execution`.
The exchange simulator rejects a fraction of orders (``DEMO_ORDER_REJECT_RATE``):
the exception reaches :func:`chainmap_otel.track.chain_exception_handler`, which
answers 500 and logs the chains the failure affects (B3, and B1/A2 above it).
A filled order is published as an order event for settlement-service, which settles it
asynchronously in a trace of its own, linked to this one and still in chain B3.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

from fastapi import FastAPI, WebSocket
from pydantic import BaseModel

from chainmap_otel import track
from chainmap_otel.demo.platform import ORDER_REJECT_RATE, PeerClients, fault
from chainmap_otel.demo.settlement import ORDER_EVENTS, QUEUE_PEER, QUEUE_SYSTEM
from chainmap_otel.demo.streams import Subscriptions


class OrderRejectedError(RuntimeError):
    """The exchange refused the order."""


class OrderRequest(BaseModel):
    account: str
    symbol: str
    side: str = "buy"
    quantity: float = 1.0
    price: float | None = None
    order_id: str | None = None


STREAMS = Subscriptions(queue_size=100)


CLIENTS = PeerClients("trading-engine", peer="database-service")


app = FastAPI(title="trading-engine", lifespan=CLIENTS.lifespan)
track.install_exception_handler(app)


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok", "service": "trading-engine"}


@app.post("/orders")
async def place_order(request: OrderRequest) -> dict[str, Any]:
    order_id = request.order_id or uuid.uuid4().hex[:16]
    with track.order_execution(order_id, symbol=request.symbol):
        with track.stage("validate", criticality="high"):
            if request.side not in ("buy", "sell") or request.quantity <= 0:
                raise ValueError(f"order {order_id}: bad side or quantity")
            price = request.price or round(random.uniform(50, 500), 2)
        with track.stage("risk_limits", criticality="critical"):
            await asyncio.sleep(random.uniform(0.002, 0.008))
        with track.stage("route_to_exchange", criticality="critical"):
            await asyncio.sleep(random.uniform(0.01, 0.03))
            if random.random() < fault(ORDER_REJECT_RATE):
                raise OrderRejectedError(f"exchange rejected order {order_id} for {request.symbol}")
        order = {
            "order_id": order_id,
            "account": request.account,
            "symbol": request.symbol,
            "side": request.side,
            "quantity": request.quantity,
            "price": price,
            "status": "filled",
        }
        with track.stage("persist", criticality="high"):
            response = await CLIENTS.http.post("/orders", json=order)
            response.raise_for_status()
        await publish_order_event(order)
    STREAMS.publish(request.account, {"type": "fill", **order})
    return order


async def publish_order_event(order: dict[str, Any]) -> None:
    """Hand the filled order to settlement through the order-events queue (database-service's
    ``order_events`` table): the event's headers carry this trace and chain B3 on."""
    headers: dict[str, str] = {}
    with track.publish(
        headers,
        ORDER_EVENTS,
        system=QUEUE_SYSTEM,
        message_id=order["order_id"],
        attributes=QUEUE_PEER,
    ):
        response = await CLIENTS.http.post(
            "/order-events", json={"payload": order, "headers": headers}
        )
        response.raise_for_status()


async def _snapshots(message: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    account = str(message.get("account", ""))
    snapshot = await CLIENTS.http.get("/orders", params={"account": account, "limit": 5})
    return [(account, {"type": "snapshot", "orders": snapshot.json()})]


@app.websocket("/ws/orders")
async def order_updates(websocket: WebSocket) -> None:
    """Clients send ``{"action": "subscribe", "account": ...}`` and get a snapshot then fills."""
    await STREAMS.serve(websocket, _snapshots)
