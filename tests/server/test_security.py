"""``chainmap serve`` as a hostile network sees it: tokens, TLS, Host names, stalled clients.

One real serve process (its own chDB directory) with ``CHAINMAP_INGEST_TOKEN``, TLS on
both listeners from a self-signed certificate made for the test, and short connection
deadlines; the real OTLP exporters of the SDK talk to it.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from chainmap_otel.ingest.receivers.otlp_grpc import EXPORT_METHOD
from tests.support.otlp_payloads import request_of, sdk_spans
from tests.support.processes import free_port

TOKEN = "s3cret-token"
SERVE = """
import logging, sys
from chainmap_otel.server import run_server
logging.basicConfig(level=logging.INFO)
run_server(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), log_level="info")
"""
# Generous: the server closes stalled connections after 1 s; without deadlines it never would.
CLOSE_WITHIN_S = 30.0


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate it signed for 127.0.0.1: (ca, cert, key)."""
    ca, ca_key = directory / "ca.pem", directory / "ca-key.pem"
    cert, key, csr = directory / "cert.pem", directory / "key.pem", directory / "cert.csr"
    ext = directory / "server.ext"
    ext.write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
    )
    for command in (
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", str(ca_key),
         "-out", str(ca), "-subj", "/CN=chainmap test CA"],
        ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
         "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
         "-CAcreateserial", "-days", "1", "-out", str(cert), "-extfile", str(ext)],
    ):  # fmt: skip
        subprocess.run(["openssl", *command], check=True, capture_output=True, timeout=60)
    return ca, cert, key


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHAINMAP_", "OTEL_"))}
    env.update(extra)
    return env


@dataclass
class Secured:
    process: subprocess.Popen[bytes]
    log: Path
    http_port: int
    grpc_port: int
    cert: Path

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.http_port}"

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base, verify=ssl.create_default_context(cafile=self.cert), timeout=60
        )

    def accepted(self) -> int:
        with self.client() as client:
            return int(client.get("/health/detailed").json()["span_writer"]["accepted"])


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    directory = tmp_path_factory.mktemp("secured")
    ca, cert, key = make_certificates(directory)
    http_port, grpc_port = free_port(), free_port()
    env = clean_env(
        CHAINMAP_INGEST_TOKEN=TOKEN,
        CHAINMAP_TLS_CERT_FILE=str(cert),
        CHAINMAP_TLS_KEY_FILE=str(key),
        CHAINMAP_SERVE_HEADER_TIMEOUT_S="1",
        CHAINMAP_SERVE_BODY_TIMEOUT_S="1",
    )
    log = directory / "serve.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", SERVE, f"chdb://{directory / 'store'}", "127.0.0.1",
             str(http_port), str(grpc_port)],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    served = Secured(process, log, http_port, grpc_port, ca)
    deadline = time.monotonic() + 90
    while True:
        if process.poll() is not None:
            raise AssertionError(f"chainmap serve exited early:\n{log.read_text()}")
        try:
            served.accepted()
            break
        except (httpx.HTTPError, KeyError, TypeError):
            if time.monotonic() > deadline:
                raise AssertionError(f"chainmap serve did not answer:\n{log.read_text()}") from None
            time.sleep(0.2)
    yield served
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)


def http_exporter(secured: Secured, token: str | None) -> OTLPSpanExporter:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return OTLPSpanExporter(
        endpoint=f"{secured.base}/v1/traces",
        certificate_file=str(secured.cert),
        headers=headers,
        timeout=30,
    )


def test_http_ingest_needs_the_token(secured: Secured, monkeypatch: pytest.MonkeyPatch) -> None:
    # requests lets these override a session's own CA file; the exporter sets only that.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    body = request_of(sdk_spans("checkout", 3)).SerializeToString()
    protobuf = {"Content-Type": "application/x-protobuf"}
    with secured.client() as client:
        missing = client.post("/v1/traces", content=body, headers=protobuf)
        wrong = client.post(
            "/v1/traces", content=body, headers={**protobuf, "Authorization": "Bearer nope"}
        )
        basic = client.post(
            "/v1/traces", content=body, headers={**protobuf, "Authorization": f"Basic {TOKEN}"}
        )
    for response in (missing, wrong, basic):
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "Bearer"
        assert "CHAINMAP_INGEST_TOKEN" in response.json()["detail"]
    assert TOKEN not in wrong.text and "nope" not in wrong.text
    before = secured.accepted()
    assert (
        http_exporter(secured, "nope").export(sdk_spans("checkout", 2)) is SpanExportResult.FAILURE
    )
    assert http_exporter(secured, None).export(sdk_spans("checkout", 2)) is SpanExportResult.FAILURE
    assert secured.accepted() == before
    spans = sdk_spans("checkout", 2)
    assert http_exporter(secured, TOKEN).export(spans) is SpanExportResult.SUCCESS
    assert secured.accepted() == before + len(spans)


def test_grpc_ingest_needs_the_token(secured: Secured) -> None:
    credentials = grpc.ssl_channel_credentials(secured.cert.read_bytes())
    target = f"127.0.0.1:{secured.grpc_port}"

    def exporter(token: str | None) -> GrpcSpanExporter:
        headers = {"authorization": f"Bearer {token}"} if token is not None else None
        return GrpcSpanExporter(
            endpoint=target, credentials=credentials, headers=headers, timeout=30
        )

    before = secured.accepted()
    assert exporter("nope").export(sdk_spans("ledger", 2)) is SpanExportResult.FAILURE
    assert exporter(None).export(sdk_spans("ledger", 2)) is SpanExportResult.FAILURE
    assert secured.accepted() == before
    spans = sdk_spans("ledger", 2)
    assert exporter(TOKEN).export(spans) is SpanExportResult.SUCCESS
    assert secured.accepted() == before + len(spans)
    payload = request_of(sdk_spans("ledger", 1)).SerializeToString()
    with grpc.secure_channel(target, credentials) as channel:
        call = channel.unary_unary(EXPORT_METHOD)
        with pytest.raises(grpc.RpcError) as refused:
            call(payload, metadata=(("authorization", "Bearer nope"),), timeout=30)
        assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
        assert "CHAINMAP_INGEST_TOKEN" in str(refused.value.details())
        call(payload, metadata=(("authorization", f"Bearer {TOKEN}"),), timeout=30)


def test_plain_text_is_refused_on_both_tls_listeners(secured: Secured) -> None:
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{secured.http_port}/health/detailed", timeout=10)
    with grpc.insecure_channel(f"127.0.0.1:{secured.grpc_port}") as channel:
        with pytest.raises(grpc.RpcError) as failed:
            channel.unary_unary(EXPORT_METHOD)(b"", timeout=10)
        assert failed.value.code() is grpc.StatusCode.UNAVAILABLE


def test_foreign_host_headers_are_refused(secured: Secured) -> None:
    with secured.client() as client:
        evil = client.get("/api/v1/chains", headers={"Host": "evil.example"})
        assert evil.status_code == 400
        detail = evil.json()["detail"]
        assert "'evil.example'" in detail and "CHAINMAP_ALLOWED_HOSTS" in detail
        for host in (f"localhost:{secured.http_port}", f"127.0.0.1:{secured.http_port}"):
            assert client.get("/health/detailed", headers={"Host": host}).status_code == 200


def tls_socket(secured: Secured) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=secured.cert)
    raw = socket.create_connection(("127.0.0.1", secured.http_port), timeout=CLOSE_WITHIN_S)
    return context.wrap_socket(raw, server_hostname="127.0.0.1")


def closed_by_server(sock: ssl.SSLSocket) -> bool:
    """True once the server closes the connection (waits up to CLOSE_WITHIN_S)."""
    sock.settimeout(CLOSE_WITHIN_S)
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return True
    except TimeoutError:
        return False
    except (ssl.SSLError, ConnectionResetError):
        return True


@pytest.mark.parametrize(
    "sent",
    [
        b"",
        b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty",
        b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\n"
        b"Authorization: Bearer " + TOKEN.encode() + b"\r\nContent-Length: 1000\r\n\r\n0123",
    ],
    ids=["silent", "half-headers", "half-body"],
)
def test_stalled_connections_are_closed(secured: Secured, sent: bytes) -> None:
    with tls_socket(secured) as sock:
        sock.sendall(sent)
        assert closed_by_server(sock)


def test_listening_beyond_loopback_without_a_token_warns(tmp_path: Path) -> None:
    chainmap = str(Path(sys.executable).parent / "chainmap")
    process = subprocess.Popen(
        [chainmap, "serve", "--host", "0.0.0.0", "--http-port", str(free_port()),
         "--grpc-port", "0", "--store", f"chdb://{tmp_path / 'store'}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=clean_env(), text=True,
    )  # fmt: skip
    lines: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if "press Ctrl-C" in line:
                break
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    output = "".join(lines)
    assert "0.0.0.0 WITHOUT AUTHENTICATION" in output, output
    assert "CHAINMAP_INGEST_TOKEN" in output
