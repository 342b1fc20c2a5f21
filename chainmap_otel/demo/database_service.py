"""database-service (:8008): persistence for ticks and orders on PostgreSQL through psycopg 3.

Plain synchronous endpoints (FastAPI runs them in its thread pool) over a small
pool of psycopg connections; ``opentelemetry-instrument`` traces every query
through opentelemetry-instrumentation-psycopg, which is how the database node
appears in the chains' topology.
"""

from __future__ import annotations

import os
import queue
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import psycopg
from fastapi import FastAPI, HTTPException
from opentelemetry.instrumentation.utils import suppress_instrumentation
from psycopg.types.json import Jsonb
from pydantic import BaseModel

from chainmap_otel import track
from chainmap_otel.demo.platform import DATABASE_URL
from chainmap_otel.tagging.integration import ChainMappingHealth

SCHEMA = """
CREATE TABLE IF NOT EXISTS ticks (
    id BIGSERIAL PRIMARY KEY,
    symbol TEXT NOT NULL,
    price DOUBLE PRECISION NOT NULL,
    volume DOUBLE PRECISION NOT NULL,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS ticks_symbol_id ON ticks (symbol, id DESC);
CREATE TABLE IF NOT EXISTS orders (
    order_id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    quantity DOUBLE PRECISION NOT NULL,
    price DOUBLE PRECISION NOT NULL,
    status TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS orders_account ON orders (account, created_at DESC);
CREATE TABLE IF NOT EXISTS order_events (
    id BIGSERIAL PRIMARY KEY,
    payload JSONB NOT NULL,
    headers JSONB NOT NULL,
    published_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS settlements (
    order_id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    amount DOUBLE PRECISION NOT NULL,
    settled_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
"""
INSERT_TICK = "INSERT INTO ticks (symbol, price, volume) VALUES (%s, %s, %s)"
LATEST_PRICE = "SELECT price, received_at FROM ticks WHERE symbol = %s ORDER BY id DESC LIMIT 1"
INSERT_ORDER = """
INSERT INTO orders (order_id, account, symbol, side, quantity, price, status)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (order_id) DO UPDATE SET status = EXCLUDED.status
"""
ORDERS_OF = """
SELECT order_id, symbol, side, quantity, price, status FROM orders
WHERE account = %s ORDER BY created_at DESC LIMIT %s
"""
PNL_REPORT = """
SELECT symbol,
       sum(CASE WHEN side = 'buy' THEN quantity ELSE -quantity END) AS position,
       sum(CASE WHEN side = 'buy' THEN -quantity * price ELSE quantity * price END) AS cash
FROM orders WHERE status = 'filled' GROUP BY symbol ORDER BY symbol
"""
INSERT_EVENT = "INSERT INTO order_events (payload, headers) VALUES (%s, %s) RETURNING id"
CLAIM_EVENTS = """
DELETE FROM order_events WHERE id IN (
    SELECT id FROM order_events ORDER BY id FOR UPDATE SKIP LOCKED LIMIT %s
) RETURNING id, payload, headers
"""
INSERT_SETTLEMENT = """
INSERT INTO settlements (order_id, account, amount) VALUES (%s, %s, %s)
ON CONFLICT (order_id) DO NOTHING
"""
POOL_SIZE = 4


class ConnectionPool:
    """A few autocommit connections; ``psycopg.connect`` is the instrumented entry point."""

    def __init__(self, url: str, size: int) -> None:
        self._url = url
        self._idle: queue.LifoQueue[psycopg.Connection[Any]] = queue.LifoQueue()
        self._all: list[psycopg.Connection[Any]] = []
        for _ in range(size):
            connection = psycopg.connect(url, autocommit=True)
            self._all.append(connection)
            self._idle.put(connection)

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        connection = self._idle.get(timeout=10)
        try:
            if connection.closed:
                connection = psycopg.connect(self._url, autocommit=True)
            yield connection
        finally:
            self._idle.put(connection)

    def close(self) -> None:
        for connection in self._all:
            connection.close()


class Tick(BaseModel):
    symbol: str
    price: float
    volume: float = 0.0


class Order(BaseModel):
    order_id: str
    account: str
    symbol: str
    side: str
    quantity: float
    price: float
    status: str


class OrderEvent(BaseModel):
    """A message of the ``order_events`` queue: the order and the headers its producer set."""

    payload: dict[str, Any]
    headers: dict[str, str]


class Settlement(BaseModel):
    order_id: str
    account: str
    amount: float


_pool: ConnectionPool | None = None


def pool() -> ConnectionPool:
    if _pool is None:
        raise HTTPException(status_code=503, detail="database-service is starting")
    return _pool


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    global _pool
    url = os.environ.get(DATABASE_URL)
    if not url:
        raise RuntimeError(f"database-service needs {DATABASE_URL}=postgresql://...")
    _pool = ConnectionPool(url, POOL_SIZE)
    with _pool.connection() as connection:
        connection.execute(SCHEMA)
    yield
    _pool.close()
    _pool = None


app = FastAPI(title="database-service", lifespan=lifespan)
track.install_exception_handler(app)


CHAIN_MAPPING = ChainMappingHealth()


@app.get("/health")
def health() -> dict[str, str]:
    pool()
    return {"status": "ok", "service": "database-service"}


@app.get("/health/detailed")
def detailed_health() -> dict[str, Any]:
    """The spec's database health with its ``chain_mapping`` block (from chainmap serve)."""
    try:
        with pool().connection() as connection:
            connection.execute("SELECT 1")
        database = {"status": "healthy"}
    except Exception as exc:  # the health answer reports it; it never raises
        database = {"status": "unhealthy", "error": f"{type(exc).__name__}: {exc}"}
    chain_mapping = CHAIN_MAPPING()
    healthy = database["status"] == "healthy" and chain_mapping["overall_status"] == "healthy"
    return {
        "status": "healthy" if database["status"] == "healthy" else "degraded",
        "service": "database-service",
        "database": database,
        "chain_mapping": chain_mapping,
        "overall_status": "healthy" if healthy else "degraded",
    }


@app.post("/ticks", status_code=201)
def store_tick(tick: Tick) -> dict[str, bool]:
    with pool().connection() as connection:
        connection.execute(INSERT_TICK, (tick.symbol, tick.price, tick.volume))
    return {"stored": True}


@app.get("/prices/{symbol}")
def latest_price(symbol: str) -> dict[str, Any]:
    with pool().connection() as connection:
        row = connection.execute(LATEST_PRICE, (symbol,)).fetchone()
    if row is None:
        return {"symbol": symbol, "price": None}
    return {"symbol": symbol, "price": row[0], "at": row[1].isoformat()}


@app.post("/orders", status_code=201)
def store_order(order: Order) -> dict[str, str]:
    with pool().connection() as connection:
        connection.execute(
            INSERT_ORDER,
            (
                order.order_id,
                order.account,
                order.symbol,
                order.side,
                order.quantity,
                order.price,
                order.status,
            ),
        )
    return {"order_id": order.order_id, "status": order.status}


@app.get("/orders")
def orders_of(account: str, limit: int = 20) -> list[dict[str, Any]]:
    with pool().connection() as connection:
        rows = connection.execute(ORDERS_OF, (account, min(max(limit, 1), 200))).fetchall()
    columns = ("order_id", "symbol", "side", "quantity", "price", "status")
    return [dict(zip(columns, row, strict=True)) for row in rows]


@app.get("/reports/pnl")
def pnl_report() -> list[dict[str, Any]]:
    with pool().connection() as connection:
        rows = connection.execute(PNL_REPORT).fetchall()
    return [{"symbol": s, "position": p, "cash": c} for s, p, c in rows]


@app.post("/order-events", status_code=201)
def publish_order_event(event: OrderEvent) -> dict[str, int]:
    """Enqueue an order event (the ``order_events`` table is the demo's message queue)."""
    with pool().connection() as connection:
        row = connection.execute(
            INSERT_EVENT, (Jsonb(event.payload), Jsonb(event.headers))
        ).fetchone()
    return {"id": int(row[0]) if row else 0}


@app.post("/order-events/claim")
def claim_order_events(limit: int = 20) -> list[dict[str, Any]]:
    """Hand the oldest events to a consumer and remove them from the queue.

    A broker's own work, polled all the time: it runs without instrumentation (the poll
    request is excluded from tracing too, see ``demo.stack.service_env``), so it adds no
    traces; the consumer's spans start from each event's headers.
    """
    with suppress_instrumentation(), pool().connection() as connection:
        rows = connection.execute(CLAIM_EVENTS, (min(max(limit, 1), 100),)).fetchall()
    return [{"id": i, "payload": payload, "headers": headers} for i, payload, headers in rows]


@app.post("/settlements", status_code=201)
def store_settlement(settlement: Settlement) -> dict[str, str]:
    with pool().connection() as connection:
        connection.execute(
            INSERT_SETTLEMENT, (settlement.order_id, settlement.account, settlement.amount)
        )
    return {"order_id": settlement.order_id, "status": "settled"}
