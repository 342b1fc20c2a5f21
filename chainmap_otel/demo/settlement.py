"""settlement-service (:8009): settles filled orders asynchronously, from the order-events queue.

trading-engine publishes an order event after placing an order
(:func:`chainmap_otel.track.publish`, inside chain B3); database-service keeps the events in its
``order_events`` table, the demo's message queue. This service's consumer claims them and
settles each one in a trace of its own, linked to the producer's span
(:func:`chainmap_otel.track.consume`): chain B3 continues here through the message's headers,
after however long the event waited. Claiming is the broker's work and makes no spans.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import httpx
from fastapi import FastAPI
from opentelemetry.instrumentation.utils import suppress_instrumentation

from chainmap_otel import track
from chainmap_otel.demo.platform import PeerClients

logger = logging.getLogger(__name__)

#: The queue's name (``messaging.destination.name``) and the system holding it.
ORDER_EVENTS = "order-events"
QUEUE_SYSTEM = "postgresql"
#: How the producer's edge to the queue is named in topology (``peer.service``).
QUEUE_PEER = {"peer.service": ORDER_EVENTS}
#: Seconds between polls of an empty queue.
POLL_INTERVAL_S = 0.2
CLAIM_BATCH = 20

CLIENTS = PeerClients("settlement-service", peer="database-service")


async def claim(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    """The oldest events of the queue, now this consumer's; none when the queue is down."""
    with suppress_instrumentation():
        try:
            response = await http.post("/order-events/claim", params={"limit": CLAIM_BATCH})
            response.raise_for_status()
        except httpx.HTTPError as exc:
            logger.debug("order-events queue not reachable: %s", exc)
            return []
    events: list[dict[str, Any]] = response.json()
    return events


async def settle(http: httpx.AsyncClient, event: dict[str, Any]) -> None:
    """One event, in a CONSUMER span linked to its producer (a trace of its own)."""
    order: dict[str, Any] = event.get("payload") or {}
    headers = event.get("headers") or {}
    with track.consume(
        headers,
        ORDER_EVENTS,
        system=QUEUE_SYSTEM,
        message_id=str(event.get("id", "")),
        attributes={track.ATTR_ORDER_ID: str(order.get("order_id", ""))},
    ):
        with track.stage("settle", criticality="high"):
            amount = float(order.get("quantity", 0)) * float(order.get("price", 0))
            response = await http.post(
                "/settlements",
                json={
                    "order_id": str(order.get("order_id", "")),
                    "account": str(order.get("account", "")),
                    "amount": round(amount, 2),
                },
            )
            response.raise_for_status()


async def consume(stopping: asyncio.Event) -> None:
    while not stopping.is_set():
        events = await claim(CLIENTS.http)
        for event in events:
            try:
                await settle(CLIENTS.http, event)
            except httpx.HTTPError as exc:  # recorded on the consumer span; next event
                logger.warning("settling event %s failed: %s", event.get("id"), exc)
        if not events:
            with suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), POLL_INTERVAL_S)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with CLIENTS.lifespan(app):
        stopping = asyncio.Event()
        consumer = asyncio.create_task(consume(stopping), name="order-events consumer")
        try:
            yield
        finally:
            # The event being settled is finished (its span ends normally), then no more.
            stopping.set()
            try:
                await asyncio.wait_for(consumer, timeout=5)
            except (TimeoutError, asyncio.CancelledError):
                logger.warning("the order-events consumer did not stop within 5 s")


app = FastAPI(title="settlement-service", lifespan=lifespan)


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok", "service": "settlement-service"}
