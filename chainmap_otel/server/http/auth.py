"""Who may talk to ``chainmap serve``: bearer tokens, allowed ``Host`` headers, TLS files.

Bearer tokens follow the OpenTelemetry Collector's ``bearertokenauth`` extension, so an
exporter configured for a Collector works unchanged: the client sends
``Authorization: Bearer <token>`` (HTTP header, or ``authorization`` gRPC metadata) and
the server compares the whole value in constant time; a missing or wrong value is
401 / ``UNAUTHENTICATED``. One :class:`BearerToken` serves every router:
``require_bearer(CHAINMAP_INGEST_TOKEN)`` guards OTLP ingest, and any write API guards
itself the same way with its own variable (e.g. ``CHAINMAP_API_TOKEN``).

The ``Host`` check defends the loopback listener against DNS rebinding: a browser page
on ``evil.example`` that resolves to 127.0.0.1 sends ``Host: evil.example`` and is
refused. Allowed are the bind address's names, or ``CHAINMAP_ALLOWED_HOSTS``.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import grpc
from fastapi import HTTPException, Request

from chainmap_otel import config

logger = logging.getLogger(__name__)

__all__ = [
    "AllowedHostsMiddleware",
    "BearerToken",
    "GrpcBearerInterceptor",
    "TlsFiles",
    "allowed_hosts_for",
    "is_loopback",
    "require_bearer",
    "tls_files",
    "warn_if_exposed",
]

_SCHEME = "Bearer"


class BearerToken:
    """The accepted ``Authorization`` values for one token (no token: everything passes)."""

    def __init__(self, token: str | None, variable: str = "the token") -> None:
        token = (token or "").strip()
        self.variable = variable
        self._expected = f"{_SCHEME} {token}".encode() if token else None

    @classmethod
    def from_env(cls, var: config.EnvVar) -> BearerToken:
        return cls(config.env_str(var), var.name)

    @property
    def enabled(self) -> bool:
        return self._expected is not None

    def problem(self, authorization: str | None) -> str | None:
        """Why ``authorization`` (the header value) is refused, or None when it is accepted."""
        if self._expected is None:
            return None
        if not authorization:
            return (
                f"missing or empty authorization header: send 'Authorization: Bearer <token>' "
                f"with the token of {self.variable}"
            )
        presented = authorization.strip().encode("utf-8", "replace")
        if not hmac.compare_digest(presented, self._expected):
            return f"scheme or token does not match: use 'Bearer <token>' with {self.variable}"
        return None


def require_bearer(token: BearerToken | config.EnvVar) -> Callable[..., Awaitable[None]]:
    """A FastAPI dependency refusing requests without the token: 401 ``{"detail": ...}``.

    ``app.include_router(router, dependencies=[Depends(require_bearer(CHAINMAP_API_TOKEN))])``
    """
    checker = token if isinstance(token, BearerToken) else BearerToken.from_env(token)

    async def bearer_token(request: Request) -> None:
        problem = checker.problem(request.headers.get("authorization"))
        if problem is not None:
            logger.info("refused %s %s: %s", request.method, request.url.path, problem)
            raise HTTPException(401, problem, headers={"WWW-Authenticate": _SCHEME})

    return bearer_token


class GrpcBearerInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """A grpc server interceptor: calls without the token end with ``UNAUTHENTICATED``."""

    def __init__(self, token: BearerToken) -> None:
        self._token = token

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        metadata = dict(details.invocation_metadata or ())
        problem = self._token.problem(metadata.get("authorization"))
        if problem is None:
            return continuation(details)

        def refuse(request: Any, context: Any) -> Any:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, problem)

        return grpc.unary_unary_rpc_method_handler(refuse)


# --------------------------------------------------------------------------- Host header


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``: only this machine can connect."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def allowed_hosts_for(bind_host: str, configured: str | None = None) -> list[str] | None:
    """Host names a request may name: ``configured`` (comma-separated) else the bind address's.

    None means no check: a wildcard bind (0.0.0.0, ::) answers to any name unless
    ``CHAINMAP_ALLOWED_HOSTS`` lists them.
    """
    text = configured if configured is not None else config.env_str(config.CHAINMAP_ALLOWED_HOSTS)
    listed = [h.strip().lower() for h in text.split(",") if h.strip()]
    if listed:
        return None if "*" in listed else listed
    if _wildcard(bind_host):
        return None
    names = {bind_host.strip("[]").lower()}
    if is_loopback(bind_host):
        names |= {"localhost", "127.0.0.1", "::1"}
    else:
        names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
    return sorted(names)


def _host_name(header: str) -> str:
    """``Host`` without its port: ``[::1]:4318`` -> ``::1``, ``a.b:80`` -> ``a.b``."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class AllowedHostsMiddleware:
    """ASGI middleware: HTTP requests naming another host get 400 ``{"detail": ...}``."""

    def __init__(self, app: Any, allowed: Iterable[str]) -> None:
        self.app = app
        self.allowed = frozenset(allowed)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        header = next((v for k, v in scope.get("headers", ()) if k == b"host"), b"")
        name = _host_name(header.decode("latin-1"))
        if name in self.allowed:
            await self.app(scope, receive, send)
            return
        shown = name if len(name) <= 80 else name[:77] + "..."
        detail = (
            f"Host header {shown!r} is not served here; use one of "
            f"{', '.join(sorted(self.allowed))} or add it to {config.CHAINMAP_ALLOWED_HOSTS.name}"
        )
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = json.dumps({"detail": detail}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 400,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


# --------------------------------------------------------------------------- TLS


@dataclass(frozen=True)
class TlsFiles:
    """PEM certificate chain and private key both listeners serve TLS with."""

    cert: str
    key: str

    def grpc_credentials(self) -> Any:
        with open(self.key, "rb") as key, open(self.cert, "rb") as cert:
            return grpc.ssl_server_credentials([(key.read(), cert.read())])


def tls_files(cert: str | None = None, key: str | None = None) -> TlsFiles | None:
    """The TLS files (arguments, else ``CHAINMAP_TLS_CERT_FILE``/``_KEY_FILE``), or None.

    Raises ``ValueError`` naming the file and the fix when only one is given, a file cannot
    be read, is not PEM, the key is encrypted or is not the certificate's.
    """
    cert = cert if cert is not None else config.env_str(config.CHAINMAP_TLS_CERT_FILE)
    key = key if key is not None else config.env_str(config.CHAINMAP_TLS_KEY_FILE)
    if not cert and not key:
        return None
    if not cert or not key:
        raise ValueError(
            f"TLS needs both {config.CHAINMAP_TLS_CERT_FILE.name} and "
            f"{config.CHAINMAP_TLS_KEY_FILE.name}; set both or neither"
        )
    for path, var in ((cert, config.CHAINMAP_TLS_CERT_FILE), (key, config.CHAINMAP_TLS_KEY_FILE)):
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise ValueError(f"{var.name}={path}: cannot read it ({exc.strerror})") from None
    _check_pair(cert, key)
    return TlsFiles(cert, key)


def _encrypted() -> bytes:
    raise _EncryptedKey


class _EncryptedKey(Exception):
    pass


def _check_pair(cert: str, key: str) -> None:
    """Load the pair as the listeners will, so a bad file is reported as what it is (not as
    a port that cannot be listened on), naming the file and the fix."""
    cert_var, key_var = config.CHAINMAP_TLS_CERT_FILE.name, config.CHAINMAP_TLS_KEY_FILE.name
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=cert)
    except ssl.SSLError as exc:
        raise ValueError(
            f"{cert_var}={cert}: not a PEM certificate ({exc.reason or exc}); point it at the "
            "server's certificate chain, PEM blocks starting -----BEGIN CERTIFICATE-----"
        ) from None
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key, password=_encrypted)
    except _EncryptedKey:
        raise ValueError(
            f"{key_var}={key}: the private key is encrypted and serve cannot ask for its "
            "passphrase; decrypt it (openssl pkey -in KEY -out KEY.plain) and point at that"
        ) from None
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise ValueError(
                f"{key_var}={key} is not the private key of {cert_var}={cert} (key values "
                "mismatch); use the key the certificate was issued for"
            ) from None
        raise ValueError(
            f"{key_var}={key}: not a PEM private key ({exc.reason or exc}); point it at the "
            "certificate's key, a PEM block starting -----BEGIN PRIVATE KEY-----"
        ) from None


def warn_if_exposed(host: str, token: BearerToken, tls: TlsFiles | None) -> None:
    """A loud warning when ``host`` is reachable from other machines and ingest is open."""
    if is_loopback(host):
        return
    if not token.enabled:
        logger.warning(
            "chainmap serve listens on %s WITHOUT AUTHENTICATION: anyone who reaches this "
            "address can write spans. Set %s (senders then need 'Authorization: Bearer "
            "<token>') or listen on 127.0.0.1",
            host,
            config.CHAINMAP_INGEST_TOKEN.name,
        )
    elif tls is None:
        logger.warning(
            "chainmap serve listens on %s without TLS: the ingest token crosses the network "
            "in clear text. Set %s and %s",
            host,
            config.CHAINMAP_TLS_CERT_FILE.name,
            config.CHAINMAP_TLS_KEY_FILE.name,
        )
