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
