"""open_store: URLs, masking, the embedded store's lock, unreachable servers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from chainmap_otel.errors import StoreError
from chainmap_otel.storage.location import lock_holder, mask_url, parse_store_url
from chainmap_otel.storage.store import TraceStore, open_store


def test_urls_name_path_database_and_credentials() -> None:
    embedded = parse_store_url("chdb:///var/lib/chainmap/clickhouse")
    assert (embedded.scheme, embedded.path, embedded.database) == (
        "chdb",
        "/var/lib/chainmap/clickhouse",
        "default",
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
    # The Collector's clickhouseexporter writes default.otel_traces when left on its defaults.
    assert parse_store_url("http://ch:8123").database == "default"
    assert parse_store_url("chdb:///data").display() == "chdb:///data"


def test_no_database_in_the_url_reads_the_collector_default(
    chdb_store: TraceStore, chdb_path: Path
) -> None:
    assert chdb_store.database == "default"
    assert chdb_store.table_exists("otel_traces")
    assert chdb_store.traces_location_problem() is None


def test_otel_traces_in_another_database_is_named_with_the_fix(
    chdb_store: TraceStore, chdb_path: Path
) -> None:
    from chainmap_otel.storage.schema import schema_versions

    other, empty = "t_collector_db", "t_wrong_db"
    chdb_store.command(f"CREATE DATABASE IF NOT EXISTS {other}")
    chdb_store.command(f"CREATE DATABASE IF NOT EXISTS {empty}")
    try:
        chdb_store.command(schema_versions(other)[0].statements[0])
        store = open_store(f"chdb://{chdb_path}?database={empty}", create_database=False)
        try:
            problem = store.traces_location_problem()
            assert problem is not None
            assert f"no table {empty}.otel_traces" in problem
            # Other tests' databases of the shared session may be listed too.
            listed = problem.split("exists in database ", 1)[1].split(" of the same server")[0]
            assert {"default", other} <= set(listed.split(", "))
            assert f"chdb://{chdb_path}?database=default" in problem
            with pytest.raises(StoreError, match=f"exists in database default, .*{other}"):
                store.query(f"SELECT count() FROM {empty}.otel_traces")
        finally:
            store.close()
        with pytest.raises(StoreError) as caught:
            open_store(f"chdb://{chdb_path}?database=t_missing_db", create_database=False)
        assert "database t_missing_db does not exist" in str(caught.value)
        assert re.search(
            f"exists in database default, (.*, )?{other}(, .*)? of the same", str(caught.value)
        )
    finally:
        for name in (other, empty):
            chdb_store.command(f"DROP DATABASE IF EXISTS {name}")


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
        from chainmap_otel.errors import StoreError
        from chainmap_otel.storage.store import open_store
        try:
            open_store("chdb://{chdb_path}")
        except StoreError as exc:  # what a caller of the store catches
            print(type(exc).__name__, exc)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    kind, message = out.stdout.strip().split(" ", 1)
    assert kind == "StoreLockedError"
    assert str(chdb_path) in message
    assert f"pid {os.getpid()}" in message
    assert "chainmap serve" in message and "http://127.0.0.1:4318" in message


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


def test_the_cluster_is_the_stores_own(chdb_store: TraceStore) -> None:
    """Shard tables and ON CLUSTER come from the store, set once (env at open, or schema
    apply --cluster), never re-read from the environment statement by statement."""
    from chainmap_otel.storage.location import parse_store_url
    from chainmap_otel.storage.schema import apply_schema

    remote = TraceStore(None, parse_store_url("http://ch:8123/otel"), cluster="prod")
    assert remote.cluster_parts() == {"local": "_local", "on_cluster": "ON CLUSTER prod"}
    with pytest.raises(ValueError, match="cluster"):
        TraceStore(None, parse_store_url("http://ch:8123/otel"), cluster="prod; DROP")
    assert chdb_store.cluster is None
    assert chdb_store.cluster_parts() == {"local": "", "on_cluster": ""}
    apply_schema(chdb_store, cluster="", progress=lambda line: None)  # "" is one server
    assert chdb_store.cluster is None
