"""Read commands through ``chainmap serve``'s API: ``--server URL``, or the embedded store's
holder found in its directory (:mod:`chainmap_otel.storage.advert`).

chDB lets one process open a data directory, so while ``chainmap serve`` runs on the
embedded store ``chainmap health`` and the other read commands ask its API for the same
JSON the library would compute (the endpoints return the ``--format json`` contract).
Plain ``urllib``: the CLI needs no HTTP client library for this.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chainmap_otel.errors import QueryError

__all__ = ["ServeClient", "resolve_server"]

#: Analysis over long windows can take a while on a busy server.
TIMEOUT_S = 300.0
#: Largest answer read (a discover or topology JSON of a big fleet is well under this).
MAX_RESPONSE_BYTES = 64 * 1024 * 1024

Params = Mapping[str, str | int | float | Sequence[str] | None]


def resolve_server(store: str | None, server: str | None) -> ServeClient | None:
    """The API to read through: ``--server``, else the live ``chainmap serve`` advertised in
    the embedded store's directory; None means open the store directly."""
    if server is not None:
        if not server.startswith(("http://", "https://")):
            raise QueryError(
                f"--server {server!r} is not an http(s) URL; give the address chainmap serve "
                "printed, e.g. http://127.0.0.1:4318"
            )
        return ServeClient(server)
    from chainmap_otel import config
    from chainmap_otel.storage.advert import advertised_server
    from chainmap_otel.storage.location import parse_store_url

    try:
        location = parse_store_url(store if store is not None else config.clickhouse_url())
    except ValueError as exc:
        raise QueryError(str(exc)) from None
    if not location.embedded:
        return None
    advert = advertised_server(location.path)
    if advert is None:
        return None
    if advert.database != location.database:
        raise QueryError(
            f"the embedded store {location.path} is held by chainmap serve at {advert.url}, "
            f"which analyses database {advert.database!r}, not {location.database!r}: stop it "
            "to read another database, or leave the database out of --store"
        )
    return ServeClient(advert.url)


@dataclass(frozen=True)
class ServeClient:
    """GETs from one ``chainmap serve``; its errors become one-line QueryErrors."""

    url: str

    def _get(self, path: str, params: Params | None) -> bytes:
        query = []
        for key, value in (params or {}).items():
            if value is None:
                continue
            values = value if isinstance(value, list | tuple) else [value]
            query += [(key, str(v)) for v in values]
        address = self.url.rstrip("/") + path
        if query:
            address += "?" + urllib.parse.urlencode(query)
        try:
            with urllib.request.urlopen(address, timeout=TIMEOUT_S) as response:
                body: bytes = response.read(MAX_RESPONSE_BYTES)
                return body
        except urllib.error.HTTPError as exc:
            raise QueryError(f"chainmap serve at {self.url}: {_detail(exc)}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise QueryError(
                f"cannot reach chainmap serve at {self.url} ({reason}); check it runs, or "
                "give --server URL, or stop it to read the store directly"
            ) from None

    def get_json(self, path: str, params: Params | None = None) -> Any:
        body = self._get(path, params)
        try:
            return json.loads(body)
        except ValueError:
            raise QueryError(
                f"{self.url}{path} did not answer JSON; is --server a chainmap serve?"
            ) from None

    def get_text(self, path: str, params: Params | None = None) -> str:
        return self._get(path, params).decode("utf-8", errors="replace")


def _detail(exc: urllib.error.HTTPError) -> str:
    try:
        detail = json.loads(exc.read(65536)).get("detail")
    except (ValueError, AttributeError, OSError):
        detail = None
    if isinstance(detail, str):
        return detail
    return f"HTTP {exc.code} {exc.reason}"
