"""What every HTTP surface of serve says when a request is wrong: library errors as HTTP
errors with the parameter named as the API names it (``query parameter since``, or the path
segment ``trace_id``), FastAPI's validation errors on one line, and a time window read from
a query string (whose ``+`` arrives as a space)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import HTTPException, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from chainmap_otel.analysis.timewindow import TimeWindow, parse_window
from chainmap_otel.errors import (
    NotFoundError,
    ParameterError,
    QueryError,
    QueryTimeoutError,
    StoreError,
)

__all__ = [
    "API_ROOT",
    "one_line_validation_errors",
    "parameter_name",
    "parse_api_window",
    "restored_plus",
    "translated_errors",
]

#: Every JSON API path starts here (the web pages do not).
API_ROOT = "/api/"
CHAINS_PATH = "/api/v1/chains"
# "+" in a query string arrives as a space: "...T12:00:00 00:00" meant "+00:00".
_LOST_PLUS = re.compile(r" (\d{2}(?::?\d{2})?)$")


#: Parameters that are segments of the URL path; every other one is a query parameter.
_PATH_PARAMETERS = frozenset({"chain_id", "node", "trace_id"})
#: Where a client finds the ids of a kind that was not found.
_LISTED_BY = {"chain": f"GET {CHAINS_PATH} lists them"}


def parameter_name(parameter: str) -> str:
    """How the API names a library parameter: ``query parameter since``, or ``trace_id``
    for a path segment."""
    return parameter if parameter in _PATH_PARAMETERS else f"query parameter {parameter}"


@contextmanager
def translated_errors() -> Iterator[None]:
    """Library errors as HTTP errors, parameters named as the API names them.

    ParameterError and other QueryErrors -> 400, NotFoundError -> 404, StoreError -> 503.
    A query stopped by ``CHAINMAP_QUERY_TIMEOUT_S`` is a 504: the store is up, the
    request asked for more work than it may do.
    """
    try:
        yield
    except ParameterError as exc:
        raise HTTPException(400, exc.describe(parameter_name)) from None
    except NotFoundError as exc:
        listed = _LISTED_BY.get(exc.kind)
        detail = exc.describe(parameter_name) + (f" ({listed})" if listed else "")
        raise HTTPException(404, detail) from None
    except QueryTimeoutError as exc:
        raise HTTPException(504, str(exc)) from None
    except StoreError as exc:
        if "DB::Exception" in str(exc) and "UNKNOWN_TABLE" not in str(exc):
            # The store answered but refused the query: not an outage, so not a 503.
            raise HTTPException(
                500,
                f"the analysis query failed: {exc}; check the schema is current "
                "(chainmap schema apply) and report the query error if it is",
            ) from None
        raise HTTPException(
            503,
            f"the trace store cannot be queried: {exc}; check that ClickHouse is up "
            "(CHAINMAP_CLICKHOUSE_URL) and the schema applied (chainmap schema apply)",
        ) from None
    except QueryError as exc:
        raise HTTPException(400, str(exc)) from None


def restored_plus(value: str | None) -> str | None:
    """A time from a query string with the ``+`` of its zone offset back (``+`` arrives as
    a space)."""
    return _LOST_PLUS.sub(r"+\1", value.strip()) if value else value


def parse_api_window(
    since: str | None, until: str | None, environment: str | None = None
) -> TimeWindow:
    """``parse_window`` on the query parameters; a bad one is a 400 naming it."""
    with translated_errors():
        return parse_window(restored_plus(since), restored_plus(until), environment=environment)


async def one_line_validation_errors(request: Request, exc: Exception) -> Response:
    """One-line ``detail`` for the API's typed parameters; other routes keep FastAPI's form."""
    assert isinstance(exc, RequestValidationError)
    if not (request.url.path.startswith(API_ROOT) or request.url.path.startswith("/health")):
        return await request_validation_exception_handler(request, exc)
    parts = []
    for error in exc.errors():
        where = [str(p) for p in error.get("loc", ()) if p not in ("query", "path")]
        value = error.get("input")
        name = parameter_name(".".join(where))
        parts.append(f"{name}={value!r}: {error.get('msg', 'invalid')}")
    return JSONResponse({"detail": "; ".join(parts) or "invalid request"}, status_code=400)
