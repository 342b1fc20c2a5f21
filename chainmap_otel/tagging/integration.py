"""The chain API and chain health inside a service's own FastAPI app: the platform spec's
``ChainMappingGatewayIntegration`` and its ``/health/detailed`` ``chain_mapping`` block.

::

    from chainmap_otel.tagging.integration import ChainMappingHealth, install_chain_api

    install_chain_api(app)            # GET /api/v1/chains..., /health/chains
    chain_mapping = ChainMappingHealth()

    @app.get("/health/detailed")
    def detailed() -> dict:
        return {"status": "healthy", "chain_mapping": chain_mapping()}

Both read a running ``chainmap serve`` over HTTP (``CHAINMAP_SERVE_URL``, else the OTLP
endpoint the service exports to): the service imports neither chDB nor the analysis, and
the answers are serve's own JSON, so they agree with its CLI, web view and ``/metrics``. A
``chainmap serve --store clickhouse://...`` next to a ClickHouse server serves the same for
a fleet that writes there through Collectors. Every call is bounded (a timeout and a size
cap) and made with instrumentation suppressed, so it adds no span to the service's traces;
serve being down is a 503 naming it (the router) or ``overall_status: degraded`` with the
reason (the health block), never an exception in the service.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, detach, set_value

from chainmap_otel.config import CHAINMAP_SERVE_URL, env_str

if TYPE_CHECKING:
    from fastapi import APIRouter, FastAPI

__all__ = [
    "ChainMappingHealth",
    "ServeUnavailable",
    "chain_api_router",
    "install_chain_api",
    "serve_url",
]

logger = logging.getLogger(__name__)

#: Largest answer relayed (a chain list or topology of a big fleet is well under this).
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
#: The paths the router answers, relayed to serve as they are.
CHAIN_API_PATHS = ("/api/v1/chains", "/api/v1/chains/{path:path}", "/health/chains")


def serve_url(explicit: str | None = None) -> str:
    """Where ``chainmap serve`` answers: ``explicit``, ``CHAINMAP_SERVE_URL``, the OTLP
    endpoint the service exports to, else http://127.0.0.1:4318."""
    for candidate in (
        explicit,
        env_str(CHAINMAP_SERVE_URL),
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip().removesuffix("/v1/traces"),
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip(),
    ):
        if candidate and candidate.startswith(("http://", "https://")):
            return candidate.rstrip("/")
    return "http://127.0.0.1:4318"


class ServeUnavailable(Exception):
    """``chainmap serve`` did not answer (down, slow, or not a chainmap serve)."""


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes


def fetch(base: str, path_and_query: str, timeout: float) -> Answer:
    """One GET to serve, with instrumentation suppressed and the answer size capped."""
    token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
    try:
        request = urllib.request.Request(base + path_and_query, headers={"Accept": "*/*"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                body = response.read(MAX_RESPONSE_BYTES + 1)
                status, kind = response.status, response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            body = exc.read(MAX_RESPONSE_BYTES + 1)
            status, kind = exc.code, exc.headers.get("Content-Type", "")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServeUnavailable(
                f"chainmap serve at {base} did not answer ({reason}); start it, or set "
                f"{CHAINMAP_SERVE_URL.name} to where it runs"
            ) from None
    finally:
        detach(token)
    if len(body) > MAX_RESPONSE_BYTES:
        raise ServeUnavailable(
            f"chainmap serve at {base} answered more than {MAX_RESPONSE_BYTES} bytes"
        )
    return Answer(status, kind or "application/json", body)


def chain_api_router(url: str | None = None, timeout: float = 10.0) -> APIRouter:
    """A router answering the chain API (``/api/v1/chains...``) and ``/health/chains`` with
    serve's answers (status, type and body as serve sent them)."""
    from fastapi import APIRouter, Request
    from fastapi.responses import JSONResponse, Response
    from starlette.concurrency import run_in_threadpool

    base = serve_url(url)
    router = APIRouter(tags=["chains"])

    async def relay(request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        try:
            answer = await run_in_threadpool(fetch, base, target, timeout)
        except ServeUnavailable as exc:
            return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "5"})
        return Response(answer.body, status_code=answer.status, media_type=answer.content_type)

    # FastAPI reads the annotations at runtime; these names are local to this function.
    relay.__annotations__ = {"request": Request, "return": Response}
    for path in CHAIN_API_PATHS:
        router.add_api_route(path, relay, methods=["GET"])
    return router


def install_chain_api(app: FastAPI, url: str | None = None) -> None:
    """Mount :func:`chain_api_router` on ``app`` (call it before routes that would shadow it)."""
    app.include_router(chain_api_router(url))


class ChainMappingHealth:
    """The ``chain_mapping`` block of a service's ``/health/detailed``: serve's own block
    (enabled, registry, statistics, active alerts, monitoring status) and its
    ``overall_status``, read at most every ``ttl`` seconds; callable from any thread."""

    def __init__(self, url: str | None = None, timeout: float = 1.0, ttl: float = 5.0) -> None:
        self.url = serve_url(url)
        self.timeout = timeout
        self.ttl = ttl
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, Any]] | None = None

    def __call__(self) -> dict[str, Any]:
        with self._lock:
            now = time.monotonic()
            if self._cached is not None and now - self._cached[0] < self.ttl:
                return dict(self._cached[1])
            block = self._read()
            self._cached = (now, block)
            return dict(block)

    def _read(self) -> dict[str, Any]:
        try:
            answer = fetch(self.url, "/health/detailed", self.timeout)
            body = json.loads(answer.body)
            mapping = body["chain_mapping"]
            if not isinstance(mapping, dict):
                raise ValueError("chain_mapping is not an object")
            return {**mapping, "overall_status": str(body["overall_status"]), "source": self.url}
        except ServeUnavailable as exc:
            reason = str(exc)
        except (ValueError, KeyError, TypeError) as exc:
            reason = f"{self.url}/health/detailed is not chainmap serve's health ({exc})"
        logger.warning("chain mapping health unavailable: %s", reason)
        return {"enabled": False, "error": reason, "overall_status": "degraded", "source": self.url}
