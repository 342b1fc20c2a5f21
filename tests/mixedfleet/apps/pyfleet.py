"""The Python side of the mixed fleet: py-gateway -> (a Node service) -> py-trading -> postgresql.

Plain FastAPI with no chainmap code, run under ``opentelemetry-instrument`` with the chainmap
distro. The role comes from OTEL_SERVICE_NAME; NODE_PEERS (JSON: fleet tag -> the Node
service's base URL) gives the tags. py-trading's database call is a CLIENT span made
by hand, as a database instrumentation would make it.
"""

from __future__ import annotations

import json
import os

import httpx
from fastapi import FastAPI
from opentelemetry import trace

app = FastAPI()
ROLE = os.environ["OTEL_SERVICE_NAME"]
NODE_PEERS: dict[str, str] = json.loads(os.environ.get("NODE_PEERS", "{}"))
tracer = trace.get_tracer("pyfleet")


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok", "service": ROLE}


def add_routes(tag: str, node: str) -> None:
    """Routes of one fleet tag: each tag has route templates of its own, so chain rules on
    ``http.route`` tell the Node services apart."""

    @app.get(f"/gw/{tag}/quotes/{{symbol}}")
    def gateway_quote(symbol: str) -> dict[str, object]:
        response = httpx.get(f"{node}/quotes/{symbol}", timeout=10)
        response.raise_for_status()
        return {"gateway": ROLE, "node": response.json()}

    @app.get(f"/trade/{tag}/{{symbol}}")
    def trade(symbol: str) -> dict[str, str]:
        with tracer.start_as_current_span(
            "SELECT trading.quotes",
            kind=trace.SpanKind.CLIENT,
            attributes={
                "db.system": "postgresql",
                "db.name": "trading",
                "db.statement": "SELECT price FROM quotes WHERE symbol = %s",
            },
        ):
            pass
        return {"trade": "accepted", "symbol": symbol, "tag": tag}


for _tag, _node in NODE_PEERS.items():
    add_routes(_tag, _node)
