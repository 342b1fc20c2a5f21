"""The HTTP listener's own limits: connection timeouts.

uvicorn times out idle keep-alive connections but not a client that connects and then
sends nothing, or sends half a request and stalls (a half-open or slowloris
connection): each holds a socket and a protocol object for ever. :func:`timed_protocol`
gives uvicorn's HTTP/1.1 protocol a header deadline (from connecting, or from a kept-alive
request's first byte, until its headers are complete) and a body deadline (from the
headers until the body is complete); past either, the connection is closed.

Where reads run (their own bounded pool) is :mod:`chainmap_otel.server.http.pool`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from chainmap_otel import config

__all__ = ["timed_protocol"]


class _TimedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with header and body deadlines (class attributes, seconds)."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._phase: str | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._enter("headers")

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        state = self.conn.their_state
        self._enter("headers" if state is h11.IDLE else "body" if state is h11.SEND_BODY else None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._enter(None)
        super().connection_lost(exc)

    def _enter(self, phase: str | None) -> None:
        if phase == self._phase:
            return
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._phase = phase
        if phase is not None:
            seconds = self.header_timeout_s if phase == "headers" else self.body_timeout_s
            if seconds > 0:
                self._deadline = self.loop.call_later(seconds, self._expired, phase)

    def _expired(self, phase: str) -> None:
        self._deadline = None
        if self._phase == phase and not self.transport.is_closing():
            self.logger.info(
                "closing a connection from %s: its request %s did not arrive in time",
                f"{self.client[0]}:{self.client[1]}" if self.client else "a client",
                phase,
            )
            self.transport.close()


def timed_protocol(
    header_timeout_s: float | None = None, body_timeout_s: float | None = None
) -> type:
    """The ``http=`` protocol class for ``uvicorn.Config`` (arguments else their env vars)."""
    header = (
        header_timeout_s
        if header_timeout_s is not None
        else config.env_float(config.CHAINMAP_SERVE_HEADER_TIMEOUT_S)
    )
    body = (
        body_timeout_s
        if body_timeout_s is not None
        else config.env_float(config.CHAINMAP_SERVE_BODY_TIMEOUT_S)
    )
    return type(
        "TimedH11Protocol",
        (_TimedH11Protocol,),
        {"header_timeout_s": header, "body_timeout_s": body},
    )
