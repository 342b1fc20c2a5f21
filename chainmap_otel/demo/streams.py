"""WebSocket subscriptions of the demo services: keyed fan-out of updates to clients.

data-bridge streams ticks per symbol and trading-engine fills per account with the same
protocol: ``{"action": "subscribe", ...}`` registers keys and sends a snapshot per key,
``{"action": "ping"}`` gets a pong, and every message is a
:func:`chainmap_otel.track.websocket_session` event.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect

from chainmap_otel import track

Update = dict[str, Any]
#: Turns a subscribe message into (key, snapshot update) pairs.
Subscriber = Callable[[dict[str, Any]], Awaitable[list[tuple[str, Update]]]]


class Subscriptions:
    """Queues of the connected clients, per key; publishing never blocks the publisher."""

    def __init__(self, queue_size: int) -> None:
        self._queue_size = queue_size
        self._queues: defaultdict[str, set[asyncio.Queue[Update]]] = defaultdict(set)

    def publish(self, key: str, update: Update) -> int:
        """Hand ``update`` to every client subscribed to ``key``; full queues skip it."""
        delivered = 0
        for queue in list(self._queues.get(key, ())):
            if not queue.full():
                queue.put_nowait(update)
                delivered += 1
        return delivered

    async def serve(self, websocket: WebSocket, subscribe: Subscriber) -> None:
        """Run one client's connection until it disconnects."""
        await websocket.accept()
        updates: asyncio.Queue[Update] = asyncio.Queue(maxsize=self._queue_size)
        keys: set[str] = set()

        async def forward() -> None:
            while True:
                await websocket.send_json(await updates.get())

        forwarder = asyncio.create_task(forward())
        try:
            with track.websocket_session(uuid.uuid4().hex[:12]) as session:
                while True:
                    message = await websocket.receive_json()
                    action = str(message.get("action", ""))
                    if action == "subscribe":
                        for key, snapshot in await subscribe(message):
                            keys.add(key)
                            self._queues[key].add(updates)
                            await updates.put(snapshot)
                    elif action == "ping":
                        await updates.put({"type": "pong"})
                    session.message_processed(action or "unknown")
        except WebSocketDisconnect:
            pass
        finally:
            forwarder.cancel()
            for key in keys:
                self._queues[key].discard(updates)
