"""open_store: URLs, masking, the embedded store's lock, unreachable servers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from chainmap_otel.errors import StoreError, StoreLockedError
from chainmap_otel.storage.store import (
    TraceStore,
    lock_holder,
    mask_url,
    open_store,
    parse_store_url,
)


def test_urls_name_path_database_and_credentials() -> None:
    embedded = parse_store_url("chdb:///var/lib/chainmap/clickhouse")
    assert (embedded.scheme, embedded.path, embedded.database) == (
        "chdb",
        "/var/lib/chainmap/clickhouse",
        "otel",
    )
    assert parse_store_url("chdb:///data?database=traces").database == "traces"
    server = parse_store_url("https://ops:p%40ss@ch.internal/traces")
    assert (server.host, server.port, server.username, server.password, server.database) == (
        "ch.internal",
        8443,
        "ops",
        "p@ss",
        "traces",
    )
    assert server.display() == "https://ops:***@ch.internal:8443/traces"
    assert parse_store_url("http://ch:8123").database == "otel"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("chdb://", "names no data directory"),
        ("postgres://x/y", "unknown scheme"),
        ("http://ch:8123/bad-name", "not a plain identifier"),
        ("http:///otel", "names no host"),
    ],
)
def test_bad_urls_say_what_to_fix(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_store_url(url)


def test_passwords_are_masked() -> None:
    assert mask_url("http://u:secret@h:8123/db") == "http://u:***@h:8123/db"
    assert mask_url("chdb:///data") == "chdb:///data"


def test_unreachable_server_names_the_url_and_the_fix() -> None:
    with pytest.raises(StoreError) as caught:
        open_store("http://reader:hunter2@127.0.0.1:9/otel", connect_timeout=1)
    message = str(caught.value)
    assert "http://reader:***@127.0.0.1:9/otel" in message
    assert "CHAINMAP_CLICKHOUSE_URL" in message
    assert "hunter2" not in message


def test_a_second_data_directory_in_one_process_is_refused(
    chdb_store: TraceStore, tmp_path: Path
) -> None:
    with pytest.raises(StoreError, match="one data directory per process"):
        open_store(f"chdb://{tmp_path}/other")


def test_the_same_directory_opens_again_in_one_process(
    chdb_store: TraceStore, chdb_path: Path
) -> None:
    with open_store(f"chdb://{chdb_path}") as again:
        assert again.query("SELECT 1").result_rows == [(1,)]
    assert chdb_store.query("SELECT 2").result_rows == [(2,)]
    assert f"pid {os.getpid()}" in lock_holder(chdb_path)


def test_a_second_process_gets_a_clear_message(chdb_store: TraceStore, chdb_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        from chainmap_otel.errors import StoreLockedError
        from chainmap_otel.storage.store import open_store
        try:
            open_store("chdb://{chdb_path}")
        except StoreLockedError as exc:
            print(exc)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    message = out.stdout.strip()
    assert str(chdb_path) in message
    assert f"pid {os.getpid()}" in message
    assert "chainmap serve" in message and "http://127.0.0.1:4318" in message
    assert issubclass(StoreLockedError, StoreError)


def test_the_lock_is_released_when_the_holder_exits(tmp_path: Path) -> None:
    directory = tmp_path / "store"
    hold = (
        "import sys\n"
        "from chainmap_otel.storage.store import open_store\n"
        f"s = open_store('chdb://{directory}')\n"
        "s.command('CREATE TABLE t (x UInt8) ENGINE = MergeTree ORDER BY x')\n"
        "s.command('INSERT INTO t VALUES (7)')\n"
        "s.close()\n"
    )
    reopen = (
        "from chainmap_otel.storage.store import open_store\n"
        f"print(open_store('chdb://{directory}').query('SELECT x FROM t').result_rows)\n"
    )
    for code, expected in ((hold, ""), (reopen, "[(7,)]")):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == expected


def test_insert_spans_takes_rows_or_columns(chdb_store: TraceStore) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        chdb_store.insert_spans()
    with pytest.raises(ValueError, match="lack"):
        chdb_store.insert_spans(columns={"Timestamp": [1]})
    assert chdb_store.insert_spans(rows=[]) == 0
