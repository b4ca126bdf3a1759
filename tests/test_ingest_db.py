"""Streaming ingest from the real PostgreSQL and MariaDB servers on this machine.

Every object these tests create in a database is named `lh_test_*` and dropped by
the fixture that made it; everything on disk lives under pytest's `tmp_path`.
"""

from __future__ import annotations

import os

import hashlib
import json
import threading
import time
import uuid
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from lakehouse import Lakehouse
from lakehouse.config import ApiKey, Config
from lakehouse.errors import InvalidInput, SchemaConflict
from lakehouse.ingest.db import DbSource, SourceUnavailable, open_db_stream, redact_dsn, redact_text
from lakehouse.ingest.db_sync import read_jsonl, sync_db, sync_log_path

import psycopg  # noqa: E402  (declared in the test extra)
import pymysql  # noqa: E402

PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
MY_DSN = "mysql://root@127.0.0.1:3306/test"
ROWS = 20_000
#: columns whose text is JSON: compared parsed, since each side may space it differently
JSON_COLUMNS = {"profile", "meta"}

PG_CREATE = """
DROP TABLE IF EXISTS {t};
DROP TYPE IF EXISTS {t}_status;
CREATE TYPE {t}_status AS ENUM ('available', 'placed', 'inactive');
CREATE TABLE {t} (
  id bigint PRIMARY KEY, shift_count smallint, hours integer, active boolean, rating real, score double precision,
  pay_rate numeric(10,2), lifetime_pay numeric(50,10), bonus numeric, name text, city varchar(40), state char(2),
  born date, shift_start time, updated_at timestamptz, created_at timestamp, profile jsonb, meta json,
  skills text[], shift_hours integer[], worker_uuid uuid, photo bytea, status {t}_status, notice interval)
"""
PG_INSERT = """
INSERT INTO {t}
SELECT g, (g % 300)::smallint, g * 7, g % 3 = 0, (g % 50) / 10.0, g / 7.0,
  CASE WHEN g % 11 = 0 THEN NULL ELSE 15 + (g % 4000) / 100.0 END, 12345678901234567890123456789.0123456789 + g, g / 3.0,
  CASE WHEN g % 13 = 0 THEN NULL ELSE 'Zoë Ångström-Łukasz ' || g || ' 😀 ''quoted''' END,
  (ARRAY['Toledo', 'Chicago', 'São Paulo', 'Dayton'])[1 + g % 4], (ARRAY['OH', 'IL', 'SP', 'OH'])[1 + g % 4],
  date '1960-01-01' + (g % 15000), time '06:00' + (g % 600) * interval '1 minute',
  timestamptz '2024-01-01 00:00:00+02' + g * interval '1 minute 1.5 second',
  timestamp '2024-01-01 00:00:00' + g * interval '1 minute',
  jsonb_build_object('skills', jsonb_build_array('weld', 'forklift'), 'years', g % 30, 'note', 'ünïcode'),
  CASE WHEN g % 5 = 0 THEN NULL ELSE '{{"a": [1, 2, {{"b": null}}]}}'::json END,
  CASE WHEN g % 7 = 0 THEN NULL ELSE ARRAY['weld', 'it''s', NULL] END, ARRAY[g % 8, NULL, 12],
  md5(g::text)::uuid, decode(md5(g::text), 'hex'),
  (ARRAY['available', 'placed', 'inactive'])[1 + g % 3]::{t}_status, (g % 90) * interval '1 day 1 hour'
FROM generate_series({first}, {last}) g
"""
# The columns as text where the two sides render them differently (time, interval, uuid).
PG_CHECK_SELECT = "SELECT *, shift_start::text AS shift_start, notice::text AS notice, worker_uuid::text AS worker_uuid FROM {t}"

MY_CREATE = """
CREATE TABLE {t} (
  id bigint PRIMARY KEY, tiny tinyint, shift_count smallint, hours int, big_unsigned bigint unsigned, active boolean,
  rating float, score double, pay_rate decimal(10,2), lifetime_pay decimal(50,10), name varchar(120) CHARACTER SET utf8mb4,
  notes text CHARACTER SET utf8mb4, state char(2), born date, shift_start time, updated_at timestamp(6) NULL,
  created_at datetime(6), hired_year year, profile json, worker_uuid uuid, photo blob,
  status enum('available', 'placed', 'inactive'), flags bit(8), skills set('weld', 'drive', 'lift'))
"""
MY_INSERT = """
INSERT INTO {t}
SELECT seq, seq % 100, seq % 300, seq * 7, 18446744073709551615 - seq, seq % 3 = 0, (seq % 50) / 10.0, seq / 8.0,
  IF(seq % 11 = 0, NULL, 15 + (seq % 4000) / 100.0), 12345678901234567890123456789.0123456789 + seq,
  IF(seq % 13 = 0, NULL, CONCAT('Zoë Ångström-Łukasz ', seq, ' 😀 ''quoted''')), 'line1\\nline2 \\\\ back', 'OH',
  DATE_ADD('1960-01-01', INTERVAL seq % 15000 DAY), SEC_TO_TIME(seq % 86400),
  TIMESTAMP('2024-01-01 00:00:00.250000') + INTERVAL seq MINUTE, TIMESTAMP('2024-01-01') + INTERVAL seq MINUTE, 2000 + seq % 50,
  JSON_OBJECT('skills', JSON_ARRAY('weld', 'forklift'), 'years', seq % 30, 'note', 'ünïcode'), UUID(), UNHEX(MD5(seq)),
  ELT(1 + seq % 3, 'available', 'placed', 'inactive'), seq % 256, IF(seq % 2 = 0, 'weld,lift', '')
FROM seq_{first}_to_{last}
"""
# PyMySQL renames duplicate names, so the columns rendered differently are fixed in Python.
MY_CHECK_SELECT = "SELECT * FROM {t}"


# ---------------------------------------------------------------------- canonical rows
def canon(value, column: str = "") -> str:
    """One text per value that both sides agree on (the checksum's unit)."""
    kind = type(value)
    if kind is str:
        return _canon_json(json.loads(value)) if column in JSON_COLUMNS else value
    if kind is int or kind is Decimal:
        return str(value)
    if value is None:
        return "\\N"
    if kind is bool:
        return "1" if value else "0"
    if kind is float:
        return f"{value:.6g}"
    if kind is dict or column in JSON_COLUMNS:
        return _canon_json(value)
    if kind is datetime:
        if value.tzinfo:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value.isoformat()
    if kind is list:
        return "[" + ",".join(canon(v) for v in value) + "]"
    if kind in (bytes, bytearray, memoryview):
        return bytes(value).hex()
    return value.isoformat() if kind is date else str(value)


def _canon_json(value) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def checksum(rows: list[dict]) -> int:
    """Order-independent: the sum of the rows' hashes."""
    total = 0
    columns = sorted(rows[0]) if rows else []
    for row in rows:
        text = "|".join([canon(row[k], k) for k in columns])
        total += int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    return total % (1 << 64)


def source_rows_pg(sql: str) -> list[dict]:
    with psycopg.connect(PG_DSN) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(sql).fetchall()


def source_rows_mysql(sql: str) -> list[dict]:
    conn = pymysql.connect(host="127.0.0.1", user="root", database="test", charset="utf8mb4",
                           init_command="SET time_zone = '+00:00'", cursorclass=pymysql.cursors.DictCursor)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())
    finally:
        conn.close()


def ids_in_lake(lh: Lakehouse) -> tuple[int, int, int]:
    """(rows, distinct ids, max id) of dataset `workers`."""
    row = lh.sql("SELECT count(*) AS n, count(DISTINCT id) AS d, max(id) AS m FROM workers").to_pylist()[0]
    return row["n"], row["d"], row["m"]


def lake_rows(lh: Lakehouse, name: str) -> list[dict]:
    return lh.sql(f'SELECT * FROM "{name}"').to_pylist()


# ---------------------------------------------------------------------- fixtures
def _pg_execute(sql: str) -> None:
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(sql)


def _my_execute(sql: str) -> None:
    conn = pymysql.connect(host="127.0.0.1", user="root", database="test", charset="utf8mb4", autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def _server_up(execute) -> bool:
    try:
        execute("SELECT 1")
        return True
    except Exception:
        return False


# The servers are part of the test environment (`make test` starts them): a server that
# is down is a failure, not a skip, unless a developer opts out explicitly.
_ALLOW_SKIP = os.environ.get("LAKEHOUSE_ALLOW_DB_SKIP") == "1"
needs_pg = pytest.mark.skipif(_ALLOW_SKIP and not _server_up(_pg_execute), reason="PostgreSQL is not running on 127.0.0.1:5432")
needs_mysql = pytest.mark.skipif(_ALLOW_SKIP and not _server_up(_my_execute), reason="MariaDB is not running on 127.0.0.1:3306")


class PgTable:
    def __init__(self, name: str):
        self.name = name

    def insert(self, first: int, last: int) -> None:
        _pg_execute(PG_INSERT.format(t=self.name, first=first, last=last))

    def check_rows(self) -> list[dict]:
        return source_rows_pg(PG_CHECK_SELECT.format(t=self.name))


class MyTable:
    def __init__(self, name: str):
        self.name = name

    def insert(self, first: int, last: int) -> None:
        _my_execute(MY_INSERT.format(t=self.name, first=first, last=last))

    def check_rows(self) -> list[dict]:
        rows = source_rows_mysql(MY_CHECK_SELECT.format(t=self.name))
        for row in rows:  # TIME as its text, BIT as its number: what the lakehouse keeps
            seconds = int(row["shift_start"].total_seconds())
            row["shift_start"] = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
            row["flags"] = int.from_bytes(row["flags"], "big")
        return rows


@pytest.fixture
def pg_table():
    name = f"lh_test_workers_{uuid.uuid4().hex[:8]}"
    _pg_execute(PG_CREATE.format(t=name))
    table = PgTable(name)
    table.insert(1, ROWS)
    yield table
    _pg_execute(f"DROP TABLE IF EXISTS {name}; DROP TYPE IF EXISTS {name}_status")


@pytest.fixture
def my_table():
    name = f"lh_test_workers_{uuid.uuid4().hex[:8]}"
    _my_execute(MY_CREATE.format(t=name))
    table = MyTable(name)
    table.insert(1, ROWS)
    yield table
    _my_execute(f"DROP TABLE IF EXISTS {name}")


SOURCES = {
    "postgres": pytest.param(("postgres", PG_DSN, "pg_table"), marks=needs_pg, id="postgres"),
    "mysql": pytest.param(("mysql", MY_DSN, "my_table"), marks=needs_mysql, id="mysql"),
}


@pytest.fixture(params=list(SOURCES.values()))
def source(request):
    dialect, dsn, fixture = request.param
    return dialect, dsn, request.getfixturevalue(fixture)


# ---------------------------------------------------------------------- tests
def test_full_table_streams_in_with_faithful_types_and_matching_checksum(lh, source):
    dialect, dsn, table = source
    result = sync_db(lh, dsn, table=table.name, name="workers", batch_rows=3_000)
    assert result["status"] == "ok" and result["rows"] == ROWS and result["dataset_status"] == "created"
    assert lh.sql("SELECT count(*) AS n FROM workers").column("n")[0].as_py() == ROWS
    assert checksum(lake_rows(lh, "workers")) == checksum(table.check_rows())
    types = dict(zip(lh.sql("SELECT * FROM workers LIMIT 1").schema.names, lh.sql("SELECT * FROM workers LIMIT 1").schema.types))
    assert types["pay_rate"] == pa.decimal128(10, 2)
    assert types["lifetime_pay"] == pa.string()  # precision 50 > 38: kept exact as text
    assert types["updated_at"] == pa.timestamp("us", tz="UTC") and types["created_at"] == pa.timestamp("us")
    assert types["born"] == pa.date32() and types["shift_start"] == pa.string()
    assert types["profile"] == pa.string() and types["worker_uuid"] == pa.string()
    assert types["photo"] == pa.binary() and types["status"] == pa.string() and types["active"] == pa.bool_()
    lineage = json.dumps(lh.dataset("workers"))
    assert dialect in lineage


@needs_pg
def test_postgres_specific_types(lh, pg_table):
    sync_db(lh, PG_DSN, table=pg_table.name, name="workers")
    schema = lh.sql("SELECT skills, shift_hours, bonus, shift_count, rating FROM workers LIMIT 1").schema
    assert pa.types.is_list(schema.field("skills").type) and schema.field("skills").type.value_type == pa.string()
    assert schema.field("shift_hours").type.value_type == pa.int32()
    assert schema.field("bonus").type == pa.string()  # unconstrained numeric: any precision, so text
    assert schema.field("shift_count").type == pa.int16() and schema.field("rating").type == pa.float32()
    row = lh.sql("SELECT worker_uuid, notice, skills FROM workers WHERE id = 1").to_pylist()[0]
    assert uuid.UUID(row["worker_uuid"]) == uuid.UUID(hashlib.md5(b"1").hexdigest())
    assert row["notice"] == "1 day 01:00:00" and row["skills"] == ["weld", "it's", None]


@needs_mysql
def test_mysql_specific_types(lh, my_table):
    sync_db(lh, MY_DSN, table=my_table.name, name="workers")
    schema = lh.sql("SELECT big_unsigned, tiny, hired_year, flags FROM workers LIMIT 1").schema
    assert schema.field("tiny").type == pa.int8() and schema.field("hired_year").type == pa.int16()
    assert schema.field("flags").type == pa.int64()
    big = lh.sql("SELECT max(big_unsigned) AS m FROM workers").column("m")[0].as_py()
    assert int(big) == 18446744073709551615 - 1


def test_incremental_sync_reads_only_new_rows(lh, source):
    dialect, dsn, table = source
    first = sync_db(lh, dsn, table=table.name, name="workers", watermark="id")
    assert first["rows"] == ROWS and first["watermark"] == {"type": "int", "value": str(ROWS)}
    unchanged = sync_db(lh, dsn, table=table.name, name="workers", watermark="id")
    assert unchanged["rows"] == 0 and unchanged["dataset_status"] == "up_to_date" and unchanged["version"] == first["version"]
    table.insert(ROWS + 1, ROWS + 500)
    second = sync_db(lh, dsn, table=table.name, name="workers", watermark="id")
    assert second["rows"] == 500 and second["dataset_status"] == "appended"
    assert second["watermark"]["value"] == str(ROWS + 500)
    assert ids_in_lake(lh) == (ROWS + 500, ROWS + 500, ROWS + 500)  # every row once
    log = read_jsonl(sync_log_path(lh.path))
    assert [e["status"] for e in log] == ["ok", "ok", "ok"] and [e["rows"] for e in log] == [ROWS, 0, 500]
    assert all(e["start"] <= e["end"] for e in log)


def test_timestamp_watermark_round_trips(lh, source):
    dialect, dsn, table = source
    sync_db(lh, dsn, table=table.name, name="workers", watermark="updated_at")
    table.insert(ROWS + 1, ROWS + 10)
    again = sync_db(lh, dsn, table=table.name, name="workers", watermark="updated_at")
    assert again["rows"] == 10 and again["watermark"]["type"] == "datetime"


def test_query_source_and_snapshot_replace(lh, source):
    dialect, dsn, table = source
    query = f"SELECT id, name, city FROM {table.name} WHERE id <= 100"
    if dialect == "mysql":
        query = f"SELECT id, name, state FROM {table.name} WHERE id <= 100"
    first = sync_db(lh, dsn, query=query, name="some_workers")
    again = sync_db(lh, dsn, query=query, name="some_workers")
    assert first["rows"] == again["rows"] == 100 and first["mode"] == "replace"
    assert lh.sql("SELECT count(*) AS n FROM some_workers").column("n")[0].as_py() == 100
    with pytest.raises(InvalidInput):
        sync_db(lh, dsn, query=query)  # a query needs a name


def test_schema_is_known_before_the_first_row(source):
    dialect, dsn, table = source
    stream = open_db_stream(DbSource(dsn, table=table.name, batch_rows=1_000))
    try:
        assert "pay_rate" in stream.reader.schema.names and stream.rows == 0
        first = stream.reader.read_next_batch()
        assert first.num_rows == 1_000 and first.schema == stream.reader.schema
    finally:
        stream.close()


# ---------------------------------------------------------------------- dropped connections
# Each source sleeps on every 5000th row, so a sync is still running when it is killed.
PG_SLOW = "SELECT w.* FROM {t} w CROSS JOIN LATERAL (SELECT 1 FROM pg_sleep(CASE WHEN w.id % 5000 = 0 THEN 0.2 ELSE 0 END)) s"
MY_SLOW = "SELECT * FROM {t} WHERE id % 5000 <> 0 OR SLEEP(0.2) = 0"


def _kill_pg_backend_after(delay_s: float, app_name: str) -> threading.Thread:
    def kill() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            rows = source_rows_pg(
                "SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity WHERE application_name = "
                f"'{app_name}' AND state = 'active' AND query_start < now() - interval '{delay_s} seconds'"
            )
            if rows:
                return
            time.sleep(0.05)

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


def _kill_mysql_connection_after(delay_s: float, marker: str) -> threading.Thread:
    def kill() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            rows = source_rows_mysql(
                "SELECT id FROM information_schema.processlist WHERE id <> CONNECTION_ID() "
                f"AND info LIKE '%{marker}%' AND time_ms > {delay_s * 1000}"
            )
            if rows:
                _my_execute(f"KILL {rows[0]['id']}")
                return
            time.sleep(0.05)

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


def test_dropped_connection_writes_nothing_and_next_run_resumes(lh, source):
    dialect, dsn, table = source
    if dialect == "postgres":
        dsn = f"{dsn}?application_name={table.name}"  # how the killer finds our backend
        query, kill_after = PG_SLOW.format(t=table.name), _kill_pg_backend_after
    else:
        query, kill_after = MY_SLOW.format(t=table.name), _kill_mysql_connection_after
    first = sync_db(lh, dsn, query=query, name="workers", watermark="id")
    assert first["rows"] == ROWS
    versions_before = lh.history("workers")
    table.insert(ROWS + 1, 2 * ROWS)

    killer = kill_after(0.3, table.name)
    with pytest.raises(SourceUnavailable):
        sync_db(lh, dsn, query=query, name="workers", watermark="id", batch_rows=500)
    killer.join()
    assert lh.history("workers") == versions_before  # no partial version
    assert lh.sql("SELECT count(*) AS n FROM workers").column("n")[0].as_py() == ROWS
    failed = read_jsonl(sync_log_path(lh.path))[-1]
    assert failed["status"] == "error" and failed["error"] and failed["watermark"]["value"] == str(ROWS)

    resumed = sync_db(lh, dsn, query=query, name="workers", watermark="id")
    assert resumed["rows"] == ROWS
    assert ids_in_lake(lh) == (2 * ROWS, 2 * ROWS, 2 * ROWS)  # every row once, none lost


# ---------------------------------------------------------------------- passwords
PASSWORD = "Sup3r$ecret-p@ss/wörd"


@pytest.fixture
def pg_role_with_password(pg_table):
    role = f"lh_test_role_{uuid.uuid4().hex[:8]}"
    _pg_execute(f"CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'; GRANT SELECT ON {pg_table.name} TO {role}")
    yield role
    _pg_execute(f"REVOKE ALL ON {pg_table.name} FROM {role}; DROP ROLE IF EXISTS {role}")


def _files_containing(root: Path, needles: list[str]) -> list[Path]:
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            if any(n.encode() in data for n in needles):
                found.append(path)
    return found


@needs_pg
def test_password_never_leaks(tmp_path, pg_table, pg_role_with_password, caplog):
    dsn = f"postgresql://{pg_role_with_password}:{quote(PASSWORD, safe='')}@127.0.0.1:5432/test"
    spellings = [PASSWORD, quote(PASSWORD, safe="")]
    config = Config.load(tmp_path / "data", env={})
    config.gateway.api_keys = [ApiKey("k", "admin", "alice")]
    with Lakehouse(config=config) as lh:
        ok = sync_db(lh, dsn, table=pg_table.name, name="workers", watermark="id")
        assert ok["rows"] == ROWS and "***" in ok["dsn"]
        with pytest.raises(SourceUnavailable) as missing:
            sync_db(lh, dsn, table="lh_test_no_such_table", name="ghost")
        bad_host = dsn.replace("127.0.0.1:5432", "127.0.0.1:1")
        with pytest.raises(SourceUnavailable) as unreachable:
            sync_db(lh, bad_host, table=pg_table.name, name="workers")
        client = TestClient(__import__("lakehouse.gateway", fromlist=["create_app"]).create_app(lh, config))
        response = client.post("/ingest/db", json={"dsn": bad_host, "table": pg_table.name, "name": "workers"}, headers={"X-API-Key": "k"})
        assert response.status_code == 502
        texts = [str(missing.value), str(unreachable.value), response.text, caplog.text,
                 json.dumps(lh.datasets()), json.dumps(lh.journal(), default=str)]
        for text in texts:
            assert not any(s in text for s in spellings)
    assert _files_containing(tmp_path, spellings) == []


@settings(max_examples=300, deadline=None)
@given(password=st.text(min_size=4, max_size=40), user=st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True),
       in_query=st.booleans())
def test_redact_dsn_never_shows_the_password(password, user, in_query):
    encoded = quote(password, safe="")
    skeleton = f"postgresql://{user}:@db.example:5432/app?sslmode=require&password="
    assume(password not in skeleton and encoded not in skeleton and "***" not in password)
    dsn = (f"postgresql://{user}@db.example:5432/app?sslmode=require&password={encoded}" if in_query
           else f"postgresql://{user}:{encoded}@db.example:5432/app?sslmode=require")
    redacted = redact_dsn(dsn)
    assert password not in redacted and encoded not in redacted and user in redacted
    error = f"connection to {dsn} failed: password authentication failed ({password}) [{encoded}]"
    scrubbed = redact_text(error, dsn)
    assert password not in scrubbed and encoded not in scrubbed


def test_redact_dsn_examples():
    assert redact_dsn("postgresql://bob:hunter2@h:5432/db") == "postgresql://bob:***@h:5432/db"
    assert redact_dsn("mysql://root@127.0.0.1:3306/test") == "mysql://root@127.0.0.1:3306/test"
    assert redact_dsn("postgresql://h/db?user=a&password=x1") == "postgresql://h/db?user=a&password=***"


def test_bad_requests_are_invalid_input(lh):
    with pytest.raises(InvalidInput):
        DbSource("oracle://x@h/db", table="t")
    with pytest.raises(InvalidInput):
        DbSource(PG_DSN, table="t", query="SELECT 1")
    with pytest.raises(InvalidInput):
        DbSource(PG_DSN)


# ---------------------------------------------------------------------- surfaces
@needs_pg
def test_cli_ingest_db(tmp_path, pg_table):
    from lakehouse.cli import app

    data_dir = tmp_path / "data"
    result = CliRunner().invoke(app, ["--data-dir", str(data_dir), "ingest-db", PG_DSN, "--table", pg_table.name,
                                      "--name", "workers", "--watermark", "id", "--batch-rows", "5000"])
    assert result.exit_code == 0, result.output
    assert "workers" in result.output
    with Lakehouse(data_dir) as lh:
        assert lh.dataset("workers")["row_count"] == ROWS
    both = CliRunner().invoke(app, ["--data-dir", str(data_dir), "ingest-db", PG_DSN, "--table", "a", "--query", "b"])
    assert both.exit_code != 0


@needs_mysql
def test_gateway_ingest_db(tmp_path, my_table):
    from lakehouse.gateway import create_app

    config = Config.load(tmp_path / "data", env={})
    config.gateway.api_keys = [ApiKey("k", "admin", "alice")]
    with Lakehouse(config=config) as lh:
        client = TestClient(create_app(lh, config))
        body = {"dsn": MY_DSN, "table": my_table.name, "name": "workers", "watermark": "id", "batch_rows": 4000}
        created = client.post("/ingest/db", json=body, headers={"X-API-Key": "k"})
        assert created.status_code == 201, created.text
        assert created.json()["rows"] == ROWS
        again = client.post("/ingest/db", json=body, headers={"X-API-Key": "k"})
        assert again.status_code == 200 and again.json()["rows"] == 0
        both = client.post("/ingest/db", json={**body, "query": "SELECT 1"}, headers={"X-API-Key": "k"})
        assert both.status_code == 400
        assert lh.journal(dataset="workers")[0]["actor"] == "alice"


# ---------------------------------------------------------------------- upsert by key
UPDATE_SQL = {
    "postgres": "UPDATE {t} SET name = 'changed ' || id, updated_at = now() WHERE id <= 100",
    "mysql": "UPDATE {t} SET name = CONCAT('changed ', id), updated_at = NOW(6) WHERE id <= 100",
}


def _execute(dialect: str, sql: str) -> None:
    (_pg_execute if dialect == "postgres" else _my_execute)(sql)


def test_upsert_by_key_replaces_changed_rows_instead_of_adding_duplicates(lh, source):
    dialect, dsn, table = source
    first = sync_db(lh, dsn, table=table.name, name="workers", watermark="updated_at", key="id")
    assert first["mode"] == "upsert" and first["rows"] == ROWS and first["dataset_status"] == "created"
    _execute(dialect, UPDATE_SQL[dialect].format(t=table.name))  # 100 rows change...
    table.insert(ROWS + 1, ROWS + 50)  # ...and 50 are new

    second = sync_db(lh, dsn, table=table.name, name="workers", watermark="updated_at", key="id")
    assert second["rows"] == 150 and second["dataset_status"] == "upserted"
    assert (second["rows_replaced"], second["rows_added"]) == (100, 50)
    assert ids_in_lake(lh) == (ROWS + 50, ROWS + 50, ROWS + 50)  # every id once
    changed = lh.sql("SELECT count(*) AS n FROM workers WHERE name LIKE 'changed %'").column("n")[0].as_py()
    assert changed == 100
    assert checksum(lake_rows(lh, "workers")) == checksum(table.check_rows())  # exactly the source, values included
    [delete] = lh.journal(dataset="workers", operation="delete")
    assert delete["details"]["via"] == "db_upsert" and delete["details"]["rows"] == 100

    again = sync_db(lh, dsn, table=table.name, name="workers", watermark="updated_at", key="id")
    assert again["rows"] == 0 and again["dataset_status"] == "up_to_date" and again["version"] == second["version"]


@needs_pg
def test_without_a_key_the_same_changes_are_appended_beside_the_old_rows(lh, pg_table):
    """What the upsert fixes: an incremental append keeps both versions of a changed row."""
    sync_db(lh, PG_DSN, table=pg_table.name, name="workers", watermark="updated_at")
    _pg_execute(UPDATE_SQL["postgres"].format(t=pg_table.name))
    sync_db(lh, PG_DSN, table=pg_table.name, name="workers", watermark="updated_at")
    assert ids_in_lake(lh) == (ROWS + 100, ROWS, ROWS)


@needs_pg
def test_an_upsert_replacing_many_keys_deletes_them_in_bounded_chunks(lh, pg_table, monkeypatch):
    import lakehouse.ingest.db_sync as db_sync

    monkeypatch.setattr(db_sync, "DELETE_KEYS_PER_COMMIT", 30)  # the core cannot parse huge IN lists
    sync_db(lh, PG_DSN, table=pg_table.name, name="workers", watermark="updated_at", key="id")
    _pg_execute(UPDATE_SQL["postgres"].format(t=pg_table.name))
    result = sync_db(lh, PG_DSN, table=pg_table.name, name="workers", watermark="updated_at", key="id")
    assert result["rows_replaced"] == 100
    deletes = lh.journal(dataset="workers", operation="delete")
    assert sorted(e["details"]["keys"] for e in deletes) == [10, 30, 30, 30]
    assert ids_in_lake(lh) == (ROWS, ROWS, ROWS)
    assert checksum(lake_rows(lh, "workers")) == checksum(pg_table.check_rows())


@needs_pg
def test_duplicate_keys_in_one_increment_keep_the_latest_row(lh):
    name = f"lh_test_events_{uuid.uuid4().hex[:8]}"
    _pg_execute(f"CREATE TABLE {name} (seq bigint, worker_id int, status text, at timestamptz)")
    try:
        _pg_execute(f"INSERT INTO {name} VALUES (1, 1, 'new', '2026-01-01'), (2, 2, 'new', '2026-01-01')")
        sync_db(lh, PG_DSN, table=name, name="status", watermark="at", key="worker_id")
        _pg_execute(f"INSERT INTO {name} VALUES (3, 1, 'placed', '2026-01-02'), (4, 1, 'ended', '2026-01-03'), "
                    f"(5, NULL, 'orphan', '2026-01-03')")
        result = sync_db(lh, PG_DSN, table=name, name="status", watermark="at", key="worker_id")
        assert result["rows_replaced"] == 1
        rows = lh.sql("SELECT worker_id, status FROM status ORDER BY worker_id NULLS LAST").to_pylist()
        assert rows == [{"worker_id": 1, "status": "ended"}, {"worker_id": 2, "status": "new"},
                        {"worker_id": None, "status": "orphan"}]
    finally:
        _pg_execute(f"DROP TABLE IF EXISTS {name}")


@needs_pg
def test_an_upsert_with_a_schema_conflict_writes_nothing(lh, pg_table):
    sync_db(lh, PG_DSN, table=pg_table.name, name="workers", watermark="updated_at", key="id")
    history = lh.history("workers")
    _pg_execute(f"ALTER TABLE {pg_table.name} ADD COLUMN email text; "
                + UPDATE_SQL["postgres"].format(t=pg_table.name))
    with pytest.raises(SchemaConflict):
        sync_db(lh, PG_DSN, table=pg_table.name, name="workers", watermark="updated_at", key="id")
    assert lh.history("workers") == history  # the delete did not run either
    assert ids_in_lake(lh) == (ROWS, ROWS, ROWS)
    assert list((lh.path / "_sync" / "staging").iterdir()) == []  # no staged increment left behind


def test_upsert_arguments_are_checked(lh):
    with pytest.raises(InvalidInput, match="needs a watermark"):
        sync_db(lh, PG_DSN, table="t", key="id")
    with pytest.raises(InvalidInput, match="upsert"):
        sync_db(lh, PG_DSN, table="t", watermark="at", key="id", mode="append")
    with pytest.raises(InvalidInput, match="needs a key"):
        sync_db(lh, PG_DSN, table="t", watermark="at", mode="upsert")


@needs_pg
def test_an_unknown_key_column_is_invalid_input(lh, pg_table):
    with pytest.raises(InvalidInput, match="key column 'nope'"):
        sync_db(lh, PG_DSN, table=pg_table.name, name="workers", watermark="id", key="nope")


# ---------------------------------------------------------------------- rows at the watermark
LATE_ROW_SQL = {
    "postgres": "INSERT INTO {t} (id, name, updated_at) SELECT {id}, 'late', max(updated_at) FROM {t}",
    "mysql": "INSERT INTO {t} (id, name, updated_at) SELECT {id}, 'late', MAX(updated_at) FROM {t}",
}


def test_a_row_arriving_later_with_the_last_watermark_value_is_not_missed(lh, source):
    dialect, dsn, table = source
    first = sync_db(lh, dsn, table=table.name, name="workers", watermark="updated_at")
    assert first["rows"] == ROWS
    # Committed after the sync, with exactly the watermark the sync ended at.
    _execute(dialect, LATE_ROW_SQL[dialect].format(t=table.name, id=ROWS + 1))
    late = sync_db(lh, dsn, table=table.name, name="workers", watermark="updated_at")
    assert late["rows"] == 1 and late["skipped_already_synced"] == 1 and late["watermark"] == first["watermark"]
    assert ids_in_lake(lh) == (ROWS + 1, ROWS + 1, ROWS + 1)  # the late row, and no boundary row twice
    again = sync_db(lh, dsn, table=table.name, name="workers", watermark="updated_at")
    assert again["rows"] == 0 and again["dataset_status"] == "up_to_date"
    table.insert(ROWS + 2, ROWS + 10)
    newer = sync_db(lh, dsn, table=table.name, name="workers", watermark="updated_at")
    assert newer["rows"] == 9 and ids_in_lake(lh) == (ROWS + 10, ROWS + 10, ROWS + 10)


@needs_pg
def test_identical_rows_at_the_watermark_are_counted_not_collapsed(lh):
    name = f"lh_test_events_{uuid.uuid4().hex[:8]}"
    _pg_execute(f"CREATE TABLE {name} (worker_id int, event text, at date)")
    try:
        _pg_execute(f"INSERT INTO {name} VALUES (1, 'shift', '2026-03-01'), (1, 'shift', '2026-03-01')")
        assert sync_db(lh, PG_DSN, table=name, name="events", watermark="at")["rows"] == 2
        _pg_execute(f"INSERT INTO {name} VALUES (1, 'shift', '2026-03-01')")  # a third, identical, arrives late
        assert sync_db(lh, PG_DSN, table=name, name="events", watermark="at")["rows"] == 1
        assert lh.sql("SELECT count(*) AS n FROM events").column("n")[0].as_py() == 3
    finally:
        _pg_execute(f"DROP TABLE IF EXISTS {name}")


@needs_pg
def test_a_sync_state_from_before_the_boundary_digests_reads_strictly_after_it(lh, pg_table):
    sync_db(lh, PG_DSN, table=pg_table.name, name="workers", watermark="id")
    log = sync_log_path(lh.path)
    legacy = [{k: v for k, v in entry.items() if k not in ("boundary", "skipped_already_synced")} for entry in read_jsonl(log)]
    log.write_text("".join(json.dumps(entry) + "\n" for entry in legacy))  # as an older version wrote it
    unchanged = sync_db(lh, PG_DSN, table=pg_table.name, name="workers", watermark="id")
    assert unchanged["rows"] == 0  # `> watermark`: the last row is not read a second time
    pg_table.insert(ROWS + 1, ROWS + 5)
    assert sync_db(lh, PG_DSN, table=pg_table.name, name="workers", watermark="id")["rows"] == 5
    assert "boundary" in read_jsonl(log)[-1]  # from now on the rows at the watermark are known
    assert ids_in_lake(lh) == (ROWS + 5, ROWS + 5, ROWS + 5)


# ---------------------------------------------------------------------- passwords apart from the DSN
PASSWORD_VAR = "LAKEHOUSE_TEST_DB_PASSWORD"


@needs_pg
def test_password_env_connects_and_the_password_is_stored_nowhere(tmp_path, pg_table, pg_role_with_password, monkeypatch):
    from lakehouse.daemon.schedules import ScheduleJob, Scheduler, ScheduleStore
    from lakehouse.gateway.state import FacadeGuard

    monkeypatch.setenv(PASSWORD_VAR, PASSWORD)
    dsn = f"postgresql://{pg_role_with_password}@127.0.0.1:5432/test"
    spellings = [PASSWORD, quote(PASSWORD, safe="")]
    with Lakehouse(tmp_path / "data") as lh:
        ok = sync_db(lh, dsn, table=pg_table.name, name="workers", watermark="id", password_env=PASSWORD_VAR)
        assert ok["rows"] == ROWS and ok["dsn"] == f"postgresql://{pg_role_with_password}:***@127.0.0.1:5432/test"
        # The same sync state whether the password came from the environment or the DSN.
        inline = f"postgresql://{pg_role_with_password}:{quote(PASSWORD, safe='')}@127.0.0.1:5432/test"
        assert sync_db(lh, inline, table=pg_table.name, name="workers", watermark="id")["rows"] == 0
        with pytest.raises(SourceUnavailable) as wrong:
            sync_db(lh, dsn.replace("5432", "1"), table=pg_table.name, name="x", password=PASSWORD)
        assert not any(s in str(wrong.value) for s in spellings)
        for refused in ("HOME", "AWS_SECRET_ACCESS_KEY"):  # not readable by a stored job or a request
            with pytest.raises(InvalidInput, match="LAKEHOUSE_"):
                sync_db(lh, dsn, table=pg_table.name, name="workers", password_env=refused)
        with pytest.raises(InvalidInput, match="not set"):
            sync_db(lh, dsn, table=pg_table.name, name="workers", password_env="LAKEHOUSE_TEST_UNSET_VARIABLE")
        with pytest.raises(InvalidInput, match="one place"):
            sync_db(lh, inline, table=pg_table.name, name="workers", password_env=PASSWORD_VAR)

        # The schedule equivalent: the job stores the variable's name, the agent reads it at run time.
        scheduler = Scheduler(FacadeGuard(lh), lh.path)
        scheduler.add(ScheduleJob.from_dict({"id": "ats", "cron": "0 0 1 1 *", "kind": "db", "dataset": "candidates",
                                             "source": {"dsn": dsn, "table": pg_table.name, "watermark": "id", "key": "id",
                                                        "password_env": PASSWORD_VAR}}))
        run = scheduler.run("ats")
        assert (run["status"], run["rows"]) == ("ok", ROWS), run
        assert lh.dataset("candidates")["row_count"] == ROWS
        with pytest.raises(InvalidInput, match="password_env"):
            ScheduleStore(lh.path).add(ScheduleJob.from_dict({"id": "inline", "cron": "0 0 1 1 *", "kind": "db",
                                                              "source": {"dsn": inline, "table": pg_table.name}}))
        texts = [json.dumps(lh.datasets()), json.dumps(lh.journal(), default=str), json.dumps(scheduler.runs())]
        assert not any(s in text for s in spellings for text in texts)
    assert _files_containing(tmp_path, spellings) == []


@needs_pg
def test_cli_password_env_reads_any_variable_of_the_user(tmp_path, pg_table, pg_role_with_password, monkeypatch):
    from lakehouse.cli import app

    monkeypatch.setenv("MY_OWN_PG_PASSWORD", PASSWORD)
    dsn = f"postgresql://{pg_role_with_password}@127.0.0.1:5432/test"
    argv = ["--data-dir", str(tmp_path / "data"), "ingest-db", dsn, "--table", pg_table.name, "--name", "workers",
            "--watermark", "id", "--key", "id", "--password-env", "MY_OWN_PG_PASSWORD"]
    assert PASSWORD not in " ".join(argv)  # what `ps` would show
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    assert "upsert" in result.output and PASSWORD not in result.output
    with Lakehouse(tmp_path / "data") as lh:
        assert lh.dataset("workers")["row_count"] == ROWS
    unset = CliRunner().invoke(app, [*argv[:-1], "NO_SUCH_VARIABLE_HERE"])
    assert unset.exit_code == 2 and "not set" in unset.output
    assert _files_containing(tmp_path, [PASSWORD, quote(PASSWORD, safe="")]) == []


@needs_pg
def test_gateway_ingest_db_upserts_with_a_key_and_reads_password_env(tmp_path, pg_table, pg_role_with_password, monkeypatch):
    from lakehouse.gateway import create_app

    monkeypatch.setenv(PASSWORD_VAR, PASSWORD)
    config = Config.load(tmp_path / "data", env={})
    config.gateway.api_keys = [ApiKey("k", "admin", "alice")]
    dsn = f"postgresql://{pg_role_with_password}@127.0.0.1:5432/test"
    body = {"dsn": dsn, "table": pg_table.name, "name": "workers", "watermark": "updated_at", "key": "id",
            "password_env": PASSWORD_VAR}
    with Lakehouse(config=config) as lh:
        client = TestClient(create_app(lh, config))
        created = client.post("/ingest/db", json=body, headers={"X-API-Key": "k"})
        assert created.status_code == 201, created.text
        _pg_execute(UPDATE_SQL["postgres"].format(t=pg_table.name))
        upserted = client.post("/ingest/db", json=body, headers={"X-API-Key": "k"})
        assert upserted.status_code == 200 and upserted.json()["dataset_status"] == "upserted", upserted.text
        assert ids_in_lake(lh) == (ROWS, ROWS, ROWS)
        refused = client.post("/ingest/db", json={**body, "password_env": "HOME"}, headers={"X-API-Key": "k"})
        assert refused.status_code == 400 and "LAKEHOUSE_" in refused.json()["message"]
