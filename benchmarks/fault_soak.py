"""Fault soak of ``chainmap serve`` (issue 18): kill -9 every minute, a WAL volume that fills.

    python benchmarks/fault_soak.py --minutes 10

Runs ``chainmap serve`` with the embedded PostgreSQL and its write-ahead log on a
20 MB tmpfs (root; without mount rights the log lives on the ordinary disk and the
fill phases are skipped, which the report says). Meanwhile:

* ``--senders`` threads post OTLP/HTTP requests like an OTLP client (resend on
  429/503 after Retry-After, new request after a connection error) and keep the
  span ids of every 200;
* every ``--kill-every`` seconds serve is killed with SIGKILL and started again;
  once the new one answers, every process of the killed one (its descendants,
  recorded before the kill, and its PostgreSQL) still running counts as an orphan;
* every ``--fill-every`` seconds the WAL volume is filled up for ``--fill-for``
  seconds (topped up twice a second) and then emptied;
* ``/health/detailed`` is sampled every second: it must name the full volume while
  it is filled up (no room for a request before, 1.5 s later and after the
  answer) and must not name it while there is room for any request (3 s of grace
  after each fill, drain and restart; moments in between are not sampled); a
  sample saying otherwise is untrue.

At the end serve is stopped cleanly, and the store is read: acknowledged spans
not stored, and spans stored twice. The last line is a verdict.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from chainmap_otel.processes import ProcessIdentity, children_of
from chainmap_otel.registry.embedded import postmaster_of

BIN = Path(sys.executable).parent
PROTOBUF = {"Content-Type": "application/x-protobuf"}
VOLUME_BYTES = 20 * 1024 * 1024
GRACE_S = 3.0
#: Free bytes below which no soak request fits (one needs ~150 kB), and above which all do.
FULL_BELOW = 128 * 1024
ROOMY_ABOVE = 2 * 1024 * 1024


def request(spans: int, padding: int = 512) -> tuple[bytes, list[str]]:
    now = time.time_ns()
    filler = os.urandom(padding // 2).hex()
    scope = ScopeSpans()
    ids = []
    for _ in range(spans):
        span_id = os.urandom(8)
        ids.append(span_id.hex())
        scope.spans.append(
            Span(
                trace_id=os.urandom(16),
                span_id=span_id,
                name="GET /soak",
                kind=Span.SPAN_KIND_SERVER,
                start_time_unix_nano=now - 1_000_000,
                end_time_unix_nano=now,
                attributes=[KeyValue(key="padding", value=AnyValue(string_value=filler))],
            )
        )
    resource = ResourceSpans(scope_spans=[scope])
    resource.resource.attributes.append(
        KeyValue(key="service.name", value=AnyValue(string_value="soak"))
    )
    return ExportTraceServiceRequest(resource_spans=[resource]).SerializeToString(), ids


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Soak:
    root: Path
    volume: Path | None
    port: int = field(default_factory=free_port)
    acknowledged: list[str] = field(default_factory=list)
    refused: int = 0
    lost_connections: int = 0
    kills: int = 0
    orphans: list[str] = field(default_factory=list)
    samples: int = 0
    full_samples: int = 0
    lies: list[str] = field(default_factory=list)
    full: bool = False
    changed_at: float = 0.0
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    process: subprocess.Popen[bytes] | None = None
    ready_at: float = 0.0
    starts: int = 0
    fills: int = 0
    restart_s: list[float] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def data(self) -> Path:
        return self.root / "data"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHAINMAP_")}
        env.update(
            CHAINMAP_DATA_DIR=str(self.data),
            CHAINMAP_SERVE_HTTP_PORT=str(self.port),
            CHAINMAP_SERVE_GRPC_PORT="0",
            CHAINMAP_SERVE_WAL_SEGMENT_BYTES=str(1024 * 1024),
        )
        if self.volume is not None:
            env["CHAINMAP_SERVE_WAL_DIR"] = str(self.volume / "wal")
        return env

    def start(self) -> None:
        self.starts += 1
        log = open(self.root / f"serve-{self.starts}.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [str(BIN / "chainmap"), "serve", "--store", f"chdb://{self.data / 'clickhouse'}"],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"serve exited; see {log.name}")
            try:
                body = httpx.get(self.url + "/health/detailed", timeout=5).json()
                if body["chain_mapping"]["registry"]["status"] == "ready":
                    self.ready_at = time.monotonic()
                    return
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            time.sleep(0.25)
        raise SystemExit(f"serve did not get ready; see {log.name}")

    def kill_and_restart(self) -> None:
        assert self.process is not None
        before = _descendants(self.process.pid)
        postgres = postmaster_of(self.data / "postgres")
        self.ready_at = 0.0
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.kills += 1
        started = time.monotonic()
        self.start()
        self.restart_s.append(time.monotonic() - started)
        left = [p for p in before if p.alive()]
        if (
            postgres is not None
            and postgres.alive()
            and postgres != postmaster_of(self.data / "postgres")
        ):
            left.append(postgres)
        self.orphans += [f"kill {self.kills}: {p.describe()}" for p in left]

    def send(self) -> None:
        body, ids = request(200)
        with httpx.Client(timeout=60) as client:
            while not self.stop.is_set():
                try:
                    response = client.post(self.url + "/v1/traces", content=body, headers=PROTOBUF)
                except httpx.HTTPError:
                    with self.lock:
                        self.lost_connections += 1
                    body, ids = request(200)  # that one may or may not be stored
                    time.sleep(0.5)
                    continue
                if response.status_code == 200:
                    with self.lock:
                        self.acknowledged += ids
                    body, ids = request(200)
                elif response.status_code in (429, 503):
                    with self.lock:
                        self.refused += 1
                    time.sleep(float(response.headers.get("retry-after", "1")))
                else:
                    raise SystemExit(f"unexpected answer {response.status_code}: {response.text}")

    def fill_and_drain(self, every: float, hold: float) -> None:
        assert self.volume is not None
        ballast = self.volume / "ballast"
        while not self.stop.wait(every):
            self.full, self.changed_at = True, time.monotonic()
            self.fills += 1
            until = time.monotonic() + hold
            while time.monotonic() < until and not self.stop.is_set():
                _top_up(ballast)
                time.sleep(0.5)
            ballast.unlink(missing_ok=True)
            self.full, self.changed_at = False, time.monotonic()

    def watch_health(self) -> None:
        while not self.stop.wait(1.0):
            full, changed, ready = self.full, self.changed_at, self.ready_at
            if not ready or time.monotonic() - max(changed, ready) < GRACE_S:
                continue
            if not self._volume_is(full):
                continue
            if full:
                # Senders retry every second: after 1.5 s of a full volume one has hit it.
                time.sleep(1.5)
                if not self._volume_is(full):
                    continue
            try:
                body: dict[str, Any] = httpx.get(self.url + "/health/detailed", timeout=10).json()
            except (httpx.HTTPError, ValueError):
                continue
            if self.full != full or self.ready_at != ready or not self._volume_is(full):
                continue  # changed while asking
            said_full = any("is full" in p["reason"] for p in body.get("problems", []))
            self.samples += 1
            self.full_samples += full
            if said_full != full:
                self.lies.append(
                    f"volume {'full' if full else 'not full'}, health said "
                    f"{body['status']} with {body.get('problems')}"
                )

    def _volume_is(self, full: bool) -> bool:
        """Whether the volume clearly is full (no room for any request) or clearly is not.

        In between (the log itself filled it, or stored segments were just freed while
        the ballast is topped up) either answer of health can be right: not sampled.
        """
        if self.volume is None:
            return not full
        free = _free(self.volume)
        return free < FULL_BELOW if full else free >= ROOMY_ABOVE


def _free(volume: Path) -> int:
    stats = os.statvfs(volume)
    return stats.f_bavail * stats.f_frsize


def _descendants(pid: int) -> list[ProcessIdentity]:
    found = []
    for child in children_of(pid):
        found += [child, *_descendants(child.pid)]
    return found


def _top_up(ballast: Path) -> None:
    chunk = b"\0" * (256 * 1024)
    try:
        with open(ballast, "ab") as handle:
            while True:
                handle.write(chunk)
                handle.flush()
    except OSError:
        pass  # full: as intended


def _mount(path: Path) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    command = ["mount", "-t", "tmpfs", "-o", f"size={VOLUME_BYTES}", "tmpfs", str(path)]
    return subprocess.run(command, capture_output=True).returncode == 0


def _stored(root: Path) -> dict[str, int]:
    code = (
        "import json, sys\n"
        "from chainmap_otel.storage.store import open_store\n"
        "with open_store(sys.argv[1]) as store:\n"
        "    rows = store.query('SELECT SpanId, count() FROM otel_traces GROUP BY SpanId')\n"
        "    print(json.dumps({str(s): int(c) for s, c in rows.result_rows}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, f"chdb://{root / 'data' / 'clickhouse'}"],
        capture_output=True,
        text=True,
        check=True,
    )
    import json

    stored: dict[str, int] = json.loads(result.stdout)
    return stored


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{min(values):.0f}-{max(values):.0f}s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--senders", type=int, default=2)
    parser.add_argument("--kill-every", type=float, default=60.0)
    parser.add_argument("--fill-every", type=float, default=40.0)
    parser.add_argument("--fill-for", type=float, default=10.0)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()

    began = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="chainmap-fault-soak-"))
    root.chmod(0o755)  # as root, the embedded PostgreSQL runs as a user of its own
    volume = root / "wal-volume" if _mount(root / "wal-volume") else None
    soak = Soak(root, volume)
    print(f"work directory {root}; WAL volume: {'20 MB tmpfs' if volume else 'none (no mount)'}")
    threads: list[threading.Thread] = []
    try:
        soak.start()
        threads = [threading.Thread(target=soak.send) for _ in range(args.senders)]
        threads.append(threading.Thread(target=soak.watch_health))
        if volume is not None:
            threads.append(
                threading.Thread(target=soak.fill_and_drain, args=(args.fill_every, args.fill_for))
            )
        for thread in threads:
            thread.start()
        end = time.monotonic() + args.minutes * 60
        while time.monotonic() + args.kill_every <= end:
            time.sleep(args.kill_every)
            soak.kill_and_restart()
            print(f"  kill -9 #{soak.kills}: serve back, {len(soak.orphans)} orphans so far")
        time.sleep(max(0.0, end - time.monotonic()))
    finally:
        soak.stop.set()
        for thread in threads:
            thread.join(120)
        if volume is not None:
            (volume / "ballast").unlink(missing_ok=True)
    assert soak.process is not None
    last = _descendants(soak.process.pid)
    postgres = postmaster_of(soak.data / "postgres")
    soak.process.send_signal(signal.SIGTERM)
    code = soak.process.wait(timeout=300)
    time.sleep(2)
    left = [p for p in last if p.alive()]
    if postgres is not None and postgres.alive():
        left.append(postgres)
    soak.orphans += [f"after the clean stop: {p.describe()}" for p in left]
    stored = _stored(root)
    unstored = set(soak.acknowledged) - set(stored)
    twice = sum(1 for count in stored.values() if count > 1)
    if volume is not None:
        subprocess.run(["umount", "-l", str(volume)], capture_output=True)
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)

    print(f"minutes {args.minutes:g}, senders {args.senders}, kill -9 every {args.kill_every:g}s")
    print(
        f"elapsed {time.monotonic() - began:.0f}s (serve restarts took {_spread(soak.restart_s)})"
    )
    print(f"kills {soak.kills}, serve starts {soak.starts}, final stop exit code {code}")
    print(f"WAL volume filled {soak.fills} times for {args.fill_for:g}s")
    print(f"spans acknowledged {len(soak.acknowledged)}, stored {len(stored)}")
    print(f"requests refused (429/503) {soak.refused}, connections lost {soak.lost_connections}")
    print(f"orphan processes {len(soak.orphans)}")
    for line in soak.orphans[:10]:
        print(f"  {line}")
    print(f"acknowledged but unstored spans {len(unstored)}; stored twice {twice}")
    print(
        f"health samples {soak.samples} ({soak.full_samples} while full), untrue {len(soak.lies)}"
    )
    for line in soak.lies[:5]:
        print(f"  {line}")
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")
    ok = not soak.orphans and not unstored and not twice and not soak.lies and code == 0
    print("verdict:", "PASS" if ok else "FAIL")


if __name__ == "__main__":
    main()
