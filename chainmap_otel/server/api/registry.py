"""The registry's write endpoints of ``chainmap serve``, and the registry's parts of the
chain list and of ``/health/detailed``.

``POST /api/v1/chains``, ``PUT /api/v1/chains/{id}`` and ``DELETE /api/v1/chains/{id}``
write the registry (the reads, ``GET /api/v1/chains[/{id}]``, stay in the chain API and
gain the registry's ``version``). Writes need ``Authorization: Bearer
$CHAINMAP_API_TOKEN``; without a configured token they answer 403 saying how to enable
them. ``PUT``/``DELETE`` need ``If-Match`` with the chain's version (its ``ETag``): a
write based on an older version gets 412.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from chainmap_otel import config
from chainmap_otel.errors import (
    ChainDefinitionError,
    NotFoundError,
    QueryError,
    RegistryConflictError,
    RegistryError,
)
from chainmap_otel.tagging.definitions import ID_PATTERN

if TYPE_CHECKING:
    from chainmap_otel.registry.chains import ChainRegistry, StoredChain
    from chainmap_otel.server.operations import Operations

__all__ = [
    "add_registry_fields",
    "install_registry_api",
    "operations_health",
    "registry_errors",
    "require_write_token",
]

_PREFIX = "/api/v1/chains"
#: Largest definition body accepted (a chain is a few hundred bytes).
MAX_DEFINITION_BYTES = 64 * 1024
#: A chain version as If-Match carries it: ASCII digits (``str.isdigit`` also takes "²").
_VERSION = re.compile(r"[0-9]{1,18}", re.ASCII)


def require_write_token(request: Request) -> None:
    """The bearer-token check of every write endpoint (one dependency, constant-time compare)."""
    token = config.env_str(config.CHAINMAP_API_TOKEN)
    if not token:
        raise HTTPException(
            403,
            "write endpoints are disabled: set CHAINMAP_API_TOKEN on chainmap serve and send "
            "Authorization: Bearer <token>",
        )
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), token.encode()
    ):
        raise HTTPException(
            401,
            "missing or wrong bearer token: send Authorization: Bearer $CHAINMAP_API_TOKEN",
            headers={"WWW-Authenticate": 'Bearer realm="chainmap"'},
        )


def _operations(request: Request) -> Operations:
    operations: Operations | None = getattr(request.app.state, "operations", None)
    if operations is None:
        raise HTTPException(
            503,
            "this chainmap serve runs without a chain registry (CHAINMAP_REGISTRY_URL=off); "
            "unset it or point it at PostgreSQL",
        )
    return operations


def _registry(request: Request) -> ChainRegistry:
    registry = _operations(request).source.registry
    if registry is None or _operations(request).source.status != "ready":
        source = _operations(request).source
        raise HTTPException(
            503, f"the chain registry is not reachable yet ({source.error or source.status})"
        )
    return registry


def _if_match(request: Request, required: bool) -> int | None:
    raw = request.headers.get("if-match")
    if raw is None:
        if required:
            raise HTTPException(
                428,
                "header If-Match is required: send the chain's current version "
                '(the ETag of GET /api/v1/chains/{id}), e.g. If-Match: "3"',
            )
        return None
    text = raw.strip().removeprefix("W/").strip('"')
    if not _VERSION.fullmatch(text):
        shown = raw[:40].encode("ascii", "backslashreplace").decode("ascii")
        raise HTTPException(
            400,
            f"header If-Match={shown!r} is not a chain version (ASCII digits); "
            'send e.g. If-Match: "3"',
        )
    return int(text)


def _chain_id(chain_id: str) -> str:
    """The path's chain id, checked before it reaches PostgreSQL (which refuses NUL)."""
    if not ID_PATTERN.match(chain_id):
        raise HTTPException(
            422,
            f"path parameter chain_id={chain_id[:80]!r} is not a chain id: 1-64 letters, digits, "
            "'_', '-', '.'",
        )
    return chain_id


@contextmanager
def registry_errors() -> Iterator[None]:
    """The registry's errors as HTTP answers: 422 bad definition, 412 stale version, 404, 400
    bad query, 503 registry unreachable."""
    try:
        yield
    except ChainDefinitionError as exc:
        raise HTTPException(422, "; ".join(exc.problems)) from None
    except RegistryConflictError as exc:
        raise HTTPException(
            412, str(exc), headers=_etag(exc.current_version) if exc.current_version else None
        ) from None
    except NotFoundError as exc:
        raise HTTPException(404, str(exc)) from None
    except QueryError as exc:
        raise HTTPException(400, str(exc)) from None
    except RegistryError as exc:
        raise HTTPException(503, str(exc)) from None


def _etag(version: int | None) -> dict[str, str]:
    return {"ETag": f'"{version}"'} if version is not None else {}


async def _definition(request: Request) -> dict[str, Any]:
    body = await request.body()
    if len(body) > MAX_DEFINITION_BYTES:
        raise HTTPException(413, f"the definition is over {MAX_DEFINITION_BYTES} bytes")
    try:
        raw = json.loads(body or b"null", parse_constant=_not_json)
    except (ValueError, RecursionError) as exc:
        reason = str(exc) if isinstance(exc, ValueError) else "nested too deeply"
        raise HTTPException(
            400, f"the request body is not JSON ({reason[:200]}); send a chain definition"
        ) from None
    if isinstance(raw, dict) and isinstance(raw.get("definition"), dict):
        raw = raw["definition"]
    if not isinstance(raw, dict):
        raise HTTPException(
            422, "the body must be a chain definition object: {id, name, category, entry, ...}"
        )
    return raw


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON number")


def _stored(stored: StoredChain, status: int = 200) -> JSONResponse:
    return JSONResponse(stored.to_json(), status_code=status, headers=_etag(stored.version))


def registry_router() -> APIRouter:
    router = APIRouter(prefix=_PREFIX, tags=["registry"])
    write = [Depends(require_write_token)]

    @router.post("", summary="Add a chain to the registry", dependencies=write, status_code=201)
    async def create_chain(request: Request) -> JSONResponse:
        raw = await _definition(request)
        registry = _registry(request)
        with registry_errors():
            stored = await _threaded(registry.create, raw, "api", "created through the API")
        await _threaded(_operations(request).source.reload)
        return _stored(stored, 201)

    @router.put("/{chain_id}", summary="Replace a chain's definition", dependencies=write)
    async def replace_chain(request: Request, chain_id: str) -> JSONResponse:
        chain_id = _chain_id(chain_id)
        expected = _if_match(request, required=True)
        raw = await _definition(request)
        registry = _registry(request)
        with registry_errors():
            stored = await _threaded(
                registry.update, chain_id, raw, expected, "api", "changed through the API"
            )
        await _threaded(_operations(request).source.reload)
        return _stored(stored)

    @router.delete(
        "/{chain_id}", summary="Delete a chain (a new, deleted version)", dependencies=write
    )
    async def delete_chain(request: Request, chain_id: str) -> JSONResponse:
        chain_id = _chain_id(chain_id)
        expected = _if_match(request, required=True)
        registry = _registry(request)
        with registry_errors():
            stored = await _threaded(
                registry.delete, chain_id, expected, "api", "deleted through the API"
            )
        await _threaded(_operations(request).source.reload)
        return _stored(stored)

    @router.get("/{chain_id}/history", summary="Every stored version of a chain")
    def chain_history(request: Request, chain_id: str) -> dict[str, Any]:
        chain_id = _chain_id(chain_id)
        registry = _registry(request)
        with registry_errors():
            versions = registry.history(chain_id)
        return {"chain_id": chain_id, "versions": [v.to_json() for v in versions]}

    return router


async def _threaded(func: Any, *args: Any) -> Any:
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(func, *args)


def install_registry_api(app: FastAPI) -> None:
    """Add the registry write routes (before the chain API's routes)."""
    app.include_router(registry_router())


def add_registry_fields(request: Request, chains: list[dict[str, Any]]) -> int | None:
    """Add the registry's ``registry`` block (version, author, ...) to chain JSON objects.

    Returns the version of the last chain (the ETag of a single-chain answer), None without
    a registry.
    """
    operations: Operations | None = getattr(request.app.state, "operations", None)
    if operations is None:
        return None
    versions = operations.versions()
    last: int | None = None
    for chain in chains:
        found = versions.get(chain["id"])
        chain["registry"] = found
        last = found["version"] if found else None
    return last


def operations_health(request: Request, store_ok: bool) -> dict[str, Any]:
    """``chain_mapping`` and ``overall_status`` of ``/health/detailed``.

    ``overall_status`` is ``healthy`` when the store is usable, the registry (if on)
    reachable and no alert fires; else ``degraded``.
    """
    operations: Operations | None = getattr(request.app.state, "operations", None)
    if operations is None:
        from chainmap_otel.server.operations import catalog_statistics

        mapping: dict[str, Any] = {
            "enabled": False,
            "statistics": catalog_statistics(request.app.state.catalog),
            "active_alerts": [],
            "monitoring_status": {"running": False},
        }
        firing = False
        registry_ok = True
    else:
        mapping = operations.chain_mapping()
        firing = any(a["state"] == "firing" for a in mapping["active_alerts"])
        registry = mapping["registry"]
        registry_ok = registry["status"] == "ready" and not (
            registry.get("embedded_postgres") or {}
        ).get("error")
    healthy = store_ok and registry_ok and not firing
    return {"chain_mapping": mapping, "overall_status": "healthy" if healthy else "degraded"}
