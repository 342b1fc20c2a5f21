"""Realistic traffic for the demo platform: feeds, API clients, WebSocket users, a scheduler.

Each scenario fires at its own rate with jitter, without waiting for earlier calls
(open-loop, like real clients), bounded by a cap on calls in flight. The load
generator itself is not instrumented: traces start at the platform's edge, as
they do for real users.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import connect

from chainmap_otel.demo.platform import SYMBOLS

#: Calls in flight at most; beyond it a scenario skips its turn (and counts it).
MAX_IN_FLIGHT = 64
ACCOUNTS = ("acct-001", "acct-002", "acct-003")


@dataclass(frozen=True)
class Scenario:
    name: str
    per_second: float
    run: Callable[[], Awaitable[int]]  # returns an HTTP status (or 101 for a WebSocket session)


@dataclass
class LoadStats:
    """What the load generator sent and got back, per scenario."""

    calls: Counter[str] = field(default_factory=Counter)
    server_errors: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    ws_messages: Counter[str] = field(default_factory=Counter)
    skipped: int = 0

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    @property
    def errors(self) -> int:
        return sum(self.server_errors.values()) + sum(self.failures.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "calls": dict(self.calls),
            "server_errors": dict(self.server_errors),
            "failures": dict(self.failures),
            "statuses": dict(self.statuses),
            "websocket_messages": dict(self.ws_messages),
            "skipped": self.skipped,
            "total": self.total,
        }


class LoadDriver:
    """Drives the platform at ``urls`` (service name -> base URL)."""

    def __init__(self, urls: Mapping[str, str], client: httpx.AsyncClient) -> None:
        self.urls = dict(urls)
        self.client = client
        self.stats = LoadStats()
        self._in_flight: set[asyncio.Task[None]] = set()

    def scenarios(self) -> list[Scenario]:
        return [
            Scenario("market ticks (A1)", 8.0, self.tick),
            Scenario("market quotes (B1)", 3.0, self.quote),
            Scenario("trading decisions (B1>A2>B3)", 2.5, self.decision),
            Scenario("orders (B1>B3)", 2.0, self.order),
            Scenario("P&L report (no chain)", 0.6, self.pnl_report),
            Scenario("model training", 0.1, self.train),
            Scenario("WebSocket /ws/market (C1)", 0.5, self.market_stream),
            Scenario("WebSocket /ws/orders (C2)", 0.4, self.order_stream),
        ]

    # -- scenarios -----------------------------------------------------------------------

    async def tick(self) -> int:
        symbol = random.choice(SYMBOLS)
        response = await self.client.post(
            self.urls["data-bridge"] + "/market-data/ticks",
            json={
                "symbol": symbol,
                "price": round(random.uniform(20, 600), 4),
                "volume": round(random.uniform(1, 1000), 2),
                "sent_at": time.time() - random.uniform(0.001, 0.02),
            },
        )
        return response.status_code

    async def quote(self) -> int:
        symbol = random.choice(SYMBOLS)
        response = await self.client.get(self.urls["api-gateway"] + f"/api/v1/market/{symbol}")
        return response.status_code

    async def decision(self) -> int:
        response = await self.client.post(
            self.urls["api-gateway"] + "/api/v1/trading/decision",
            json={"symbol": random.choice(SYMBOLS), "account": random.choice(ACCOUNTS)},
        )
        return response.status_code

    async def order(self) -> int:
        response = await self.client.post(
            self.urls["api-gateway"] + "/api/v1/orders",
            json={
                "account": random.choice(ACCOUNTS),
                "symbol": random.choice(SYMBOLS),
                "side": random.choice(("buy", "sell")),
                "quantity": random.randint(1, 50),
            },
        )
        return response.status_code

    async def pnl_report(self) -> int:
        response = await self.client.get(self.urls["api-gateway"] + "/reports/pnl")
        return response.status_code

    async def train(self) -> int:
        response = await self.client.post(
            self.urls["ai-market-model"] + "/train", json={"pipeline_id": "intraday"}
        )
        return response.status_code

    async def _ws_session(self, url: str, subscribe: dict[str, Any], name: str) -> int:
        async with connect(url, open_timeout=10, close_timeout=5) as websocket:
            await websocket.send(json.dumps(subscribe))
            ends = time.monotonic() + random.uniform(1.5, 3.5)
            while (left := ends - time.monotonic()) > 0:
                try:
                    await asyncio.wait_for(websocket.recv(), timeout=min(left, 0.5))
                    self.stats.ws_messages[name] += 1
                except TimeoutError:
                    await websocket.send(json.dumps({"action": "ping"}))
        return 101

    async def market_stream(self) -> int:
        url = self.urls["data-bridge"].replace("http", "ws", 1) + "/ws/market"
        symbols = random.sample(SYMBOLS, 2)
        return await self._ws_session(
            url, {"action": "subscribe", "symbols": symbols}, "WebSocket /ws/market (C1)"
        )

    async def order_stream(self) -> int:
        url = self.urls["trading-engine"].replace("http", "ws", 1) + "/ws/orders"
        return await self._ws_session(
            url,
            {"action": "subscribe", "account": random.choice(ACCOUNTS)},
            "WebSocket /ws/orders (C2)",
        )

    # -- driving -------------------------------------------------------------------------

    async def _call(self, scenario: Scenario) -> None:
        self.stats.calls[scenario.name] += 1
        try:
            status = await scenario.run()
        except Exception as exc:  # transport errors, timeouts, WebSocket protocol errors
            self.stats.failures[scenario.name] += 1
            self.stats.statuses[type(exc).__name__] += 1
            return
        self.stats.statuses[str(status)] += 1
        if status >= 500:
            self.stats.server_errors[scenario.name] += 1

    async def _fire(self, scenario: Scenario, until: float, first_at: float) -> None:
        await asyncio.sleep(first_at)
        interval = 1.0 / scenario.per_second
        while time.monotonic() < until:
            if len(self._in_flight) < MAX_IN_FLIGHT:
                task = asyncio.create_task(self._call(scenario))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
            else:
                self.stats.skipped += 1
            await asyncio.sleep(random.uniform(0.5, 1.5) * interval)

    async def run(
        self,
        duration_s: float,
        on_progress: Callable[[LoadStats, float], None] | None = None,
        drain_s: float = 15.0,
    ) -> LoadStats:
        """Fire every scenario for ``duration_s``, then wait up to ``drain_s`` for calls in flight."""
        started = time.monotonic()
        until = started + duration_s
        scenarios = self.scenarios()
        firing = [
            asyncio.create_task(self._fire(scenario, until, first_at=0.05 * index))
            for index, scenario in enumerate(scenarios)
        ]
        while time.monotonic() < until:
            if on_progress is not None:
                on_progress(self.stats, time.monotonic() - started)
            await asyncio.sleep(0.2)
        await asyncio.gather(*firing)
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=drain_s)
        for task in list(self._in_flight):
            task.cancel()
        if on_progress is not None:
            on_progress(self.stats, duration_s)
        return self.stats


async def drive(
    urls: Mapping[str, str],
    duration_s: float,
    on_progress: Callable[[LoadStats, float], None] | None = None,
) -> LoadStats:
    """Run the demo load against ``urls`` for ``duration_s`` seconds."""
    limits = httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=32)
    async with httpx.AsyncClient(timeout=20.0, limits=limits) as client:
        return await LoadDriver(urls, client).run(duration_s, on_progress)
