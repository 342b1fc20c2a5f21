"""A real ``chainmap serve`` whose write-ahead log lives on a 20 MB volume.

More than the volume passes through it (stored segments are reclaimed); a volume
filled by something else makes serve refuse with 503 + Retry-After (gRPC:
UNAVAILABLE with RetryInfo), say so in ``/health/detailed``, ``/metrics`` and the
log, and resume by itself once space returns; every acknowledged span ends up
stored exactly once.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import grpc
import httpx
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status

from chainmap_otel.ingest.receivers.otlp_grpc import EXPORT_METHOD
from tests.support.bulk_spans import bulky_request
from tests.support.serve_process import ServeProcess, query
from tests.support.volumes import fill, small_volume

PROTOBUF = {"Content-Type": "application/x-protobuf"}
VOLUME_BYTES = 20 * 1024 * 1024


def _detailed(serve: ServeProcess) -> dict[str, Any]:
    base = serve.url.removesuffix("/v1/traces")
    body: dict[str, Any] = httpx.get(base + "/health/detailed", timeout=60).json()
    return body


def _metric(serve: ServeProcess, name: str) -> float:
    base = serve.url.removesuffix("/v1/traces")
    for line in httpx.get(base + "/metrics", timeout=60).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} is not in /metrics")


def _wait_stored(serve: ServeProcess, deadline: float) -> None:
    while _detailed(serve)["span_writer"]["queued"]:
        assert time.monotonic() < deadline, "serve did not store what it acknowledged"
        time.sleep(0.2)


def _send_until_acknowledged(client: httpx.Client, url: str, body: bytes, deadline: float) -> int:
    """Post like an OTLP client: on 429/503 wait the Retry-After and resend; the refusals."""
    refusals = 0
    while True:
        response = client.post(url, content=body, headers=PROTOBUF)
        if response.status_code == 200:
            return refusals
        assert response.status_code in (429, 503), response.text
        assert "retry-after" in response.headers
        assert time.monotonic() < deadline, "serve kept refusing"
        refusals += 1
        time.sleep(float(response.headers["retry-after"]))


def test_a_full_wal_volume_is_reported_refused_and_outlived(tmp_path: Path) -> None:
    store_url = f"chdb://{tmp_path / 'store'}"
    with small_volume(tmp_path / "wal-volume", VOLUME_BYTES) as volume:
        serve = ServeProcess(
            store_url,
            tmp_path / "serve.log",
            env={
                "CHAINMAP_SERVE_WAL_DIR": str(volume / "wal"),
                "CHAINMAP_SERVE_WAL_SEGMENT_BYTES": str(1024 * 1024),
            },
        )
        acknowledged: list[str] = []
        try:
            serve.wait_ready()
            deadline = time.monotonic() + 600
            with httpx.Client(timeout=120) as client:
                # Three times the volume: only reclaimed segments make room for it.
                while len(acknowledged) * 1100 < 3 * VOLUME_BYTES:
                    body, ids = bulky_request("through", 400)
                    _send_until_acknowledged(client, serve.url, body, deadline)
                    acknowledged += ids
                assert _detailed(serve)["status"] == "ok"

                # A failed append first frees the log's own stored segments and tries again;
                # once the writer has stored everything, a full volume stays full.
                for _ in range(20):
                    fill(volume)
                    body, ids = bulky_request("before-full", 400)
                    response = client.post(serve.url, content=body, headers=PROTOBUF)
                    if response.status_code != 200:
                        break
                    acknowledged += ids
                _wait_stored(serve, deadline)
                ballast = fill(volume)
                body, ids = bulky_request("refused", 400)
                refused = client.post(serve.url, content=body, headers=PROTOBUF)
                assert refused.status_code == 503
                assert int(refused.headers["retry-after"]) >= 1
                assert "write-ahead log" in Status.FromString(refused.content).message
                detailed = _detailed(serve)
                assert detailed["status"] == "degraded"
                assert detailed["overall_status"] == "degraded"
                reasons = [p["reason"] for p in detailed["problems"]]
                assert any("is full" in r and str(volume) in r for r in reasons), reasons
                assert detailed["span_writer"]["refused_requests"] >= 1
                assert _metric(serve, "chainmap_requests_refused_total") >= 1
                assert _metric(serve, "chainmap_ingest_problems") >= 1
                with grpc.insecure_channel(serve.grpc_address) as channel:
                    try:
                        channel.unary_unary(EXPORT_METHOD)(body, timeout=60)
                    except grpc.RpcError as error:
                        assert error.code() is grpc.StatusCode.UNAVAILABLE
                        trailers = dict(error.trailing_metadata() or ())
                        retry = RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"])
                        assert retry.retry_delay.seconds >= 1
                    else:
                        raise AssertionError("a full volume acknowledged a gRPC export")

                ballast.unlink()  # space returns: serve resumes without being touched
                recovered = _detailed(serve)
                assert recovered["status"] == "ok", recovered["problems"]
                _send_until_acknowledged(client, serve.url, body, deadline)
                acknowledged += ids
        finally:
            code = serve.terminate()
        assert code == 0, serve.log()
    log = serve.log()
    assert "is full" in log or "No space left" in log
    assert "takes writes again" in log
    rows = query(store_url, "SELECT SpanId, count() FROM otel_traces GROUP BY SpanId")
    stored = {str(span_id): int(str(count)) for span_id, count in rows}
    assert set(acknowledged) - set(stored) == set(), "acknowledged spans are missing"
    assert {s: c for s, c in stored.items() if c != 1} == {}, "spans are stored twice"
