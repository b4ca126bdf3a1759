"""The SQL surface: read-only, time travel, hot cache, compaction."""

from __future__ import annotations

import pytest

from lakehouse.errors import InvalidInput, NotFound, ReadOnlyViolation

from conftest import workers_table

FORBIDDEN = [
    "INSERT INTO workers VALUES (1, 'x', 'r', 'c', 's', 0.1)",
    "UPDATE workers SET name = 'x'",
    "DELETE FROM workers",
    "DROP TABLE workers",
    "CREATE TABLE evil AS SELECT * FROM workers",
    "CREATE VIEW v AS SELECT * FROM workers",
    "CREATE EXTERNAL TABLE leak STORED AS CSV LOCATION '/etc/passwd'",
    "COPY workers TO '/tmp/stolen.csv'",
    "SET datafusion.execution.batch_size = 1",
    "SELECT * FROM '/etc/passwd'",
    "SELECT * FROM 'data/tables/workers/part-0.parquet'",
    "SELECT 1; DROP TABLE workers",
]


@pytest.mark.parametrize("sql", FORBIDDEN)
def test_every_state_changing_or_file_reading_statement_is_refused(lh, sql):
    lh.ingest_table(workers_table(3), "workers")
    with pytest.raises(ReadOnlyViolation):
        lh.sql(sql)
    assert lh.sql("SELECT count(*) AS n FROM workers").column("n")[0].as_py() == 3


def test_allowed_queries_work(lh):
    lh.ingest_table(workers_table(6), "workers")
    out = lh.sql(
        "WITH c AS (SELECT state, count(*) AS n FROM workers GROUP BY state) "
        "SELECT state, n FROM c ORDER BY state"
    )
    assert out.to_pylist() == [{"state": "IL", "n": 2}, {"state": "OH", "n": 4}]


def test_bad_sql_and_unknown_tables_are_client_errors(lh):
    with pytest.raises(InvalidInput):
        lh.sql("SELEC nonsense")
    with pytest.raises(NotFound):
        lh.sql("SELECT * FROM nowhere")


def test_time_travel_by_version_and_timestamp(lh):
    lh.ingest_table(workers_table(2), "workers")
    first_time = lh.history("workers")[0]["timestamp_ms"]
    lh.ingest_table(workers_table(3, start=3), "workers")
    count = "SELECT count(*) AS n FROM workers"
    assert lh.sql(count).column("n")[0].as_py() == 5
    assert lh.sql_as_of(count, "workers", version=0).column("n")[0].as_py() == 2
    import datetime as dt

    at = dt.datetime.fromtimestamp(first_time / 1000, dt.timezone.utc)
    assert lh.sql_as_of(count, "workers", timestamp=at).column("n")[0].as_py() == 2
    with pytest.raises(NotFound):
        lh.sql_as_of(count, "workers", version=99)


def test_rows_appended_since_a_version_are_read_alone_until_a_commit_rewrites_files(lh):
    lh.ingest_table(workers_table(4), "workers")
    since = lh.dataset("workers")["version"]
    ids = "SELECT worker_id FROM workers ORDER BY worker_id"
    assert lh.sql_appended_since(ids, "workers", since).num_rows == 0
    lh.ingest_table(workers_table(2, start=10), "workers")
    lh.ingest_table(workers_table(1, start=20), "workers")
    assert lh.sql_appended_since(ids, "workers", since).column("worker_id").to_pylist() == [10, 11, 20]
    lh.update_rows("workers", "worker_id", 2, {"name": "Renamed"})
    assert lh.sql_appended_since(ids, "workers", since) is None, "an update rewrote a file: only a full read can tell"
    assert lh.sql_appended_since(ids, "workers", 99) is None, "a version that never existed is no base"


def test_hot_cache_pins_small_tables_and_never_serves_stale_rows(lh):
    lh.ingest_table(workers_table(3), "workers")
    for _ in range(3):
        lh.sql("SELECT * FROM workers")
    assert "workers" in lh._query.cache_stats()["pinned_tables"]
    lh.ingest_table(workers_table(2, start=10), "workers")
    assert lh.sql("SELECT count(*) AS n FROM workers").column("n")[0].as_py() == 5


def test_rows_by_key_come_back_in_the_order_asked_cold_hot_and_after_a_write(lh):
    lh.ingest_table(workers_table(6), "workers")
    asked = ["5", "404", "2", "5", "1"]
    in_sql = "SELECT worker_id, name FROM workers WHERE CAST(worker_id AS VARCHAR) IN ('5', '404', '2', '1')"
    expected = sorted(lh.sql(in_sql).to_pylist(), key=lambda r: [5, 2, 1].index(r["worker_id"]))
    cold = lh.lookup("workers", "worker_id", asked, ["worker_id", "name"])
    assert cold.to_pylist() == expected, "same rows as the IN filter, in the order asked, unknown key absent"
    for _ in range(3):  # make the table hot: lookups then answer from the key index
        lh.lookup("workers", "worker_id", asked, ["worker_id", "name"])
    assert "workers" in lh._query.cache_stats()["pinned_tables"]
    assert lh.lookup("workers", "worker_id", asked, ["worker_id", "name"]).to_pylist() == expected
    lh.update_rows("workers", "worker_id", 2, {"name": "Renamed"})
    after = lh.lookup("workers", "worker_id", [2, 5], ["name"]).column("name").to_pylist()
    assert after == ["Renamed", "Worker 5"], "a write is seen at once, never the old index"
    assert lh.lookup("workers", "worker_id", []).num_rows == 0


def test_a_lookup_narrowed_by_other_text_columns_keeps_the_rows_the_sql_keeps_cold_and_hot(lh):
    lh.ingest_table(workers_table(12), "workers")
    sql = ("SELECT worker_id FROM workers WHERE city IN ('Toledo', 'Chicago') AND role = 'Welder' "
           "AND state IN ('OH', 'XX') ORDER BY worker_id")
    expected = [r["worker_id"] for r in lh.sql(sql).to_pylist()]
    assert expected, "the filter keeps some rows"
    for _ in range(4):  # the first lookups read through DataFusion, later ones the pinned table's key index
        got = lh.lookup("workers", "city", ["Toledo", "Chicago"], ["worker_id"], equal={"role": ["Welder"], "state": ["OH", "XX"]})
        assert sorted(got.column("worker_id").to_pylist()) == expected
    assert "workers" in lh._query.cache_stats()["pinned_tables"], "the key index path was reached"
    with pytest.raises(InvalidInput, match="not text"):
        lh.lookup("workers", "city", ["Toledo"], ["worker_id"], equal={"reliability": ["0.6"]})


def test_a_lookup_on_a_column_that_does_not_exist_is_refused_with_the_columns_named(lh):
    lh.ingest_table(workers_table(2), "workers")
    with pytest.raises(InvalidInput, match="worker_id"):
        lh.lookup("workers", "id", ["1"])
    with pytest.raises(InvalidInput, match="no column"):
        lh.lookup("workers", "worker_id", ["1"], ["salary"])
    with pytest.raises(NotFound):
        lh.lookup("nowhere", "worker_id", ["1"])


def test_compaction_merges_small_files_without_changing_answers(lh):
    lh.ingest_table(workers_table(2), "workers")
    for i in range(20):
        lh.ingest_table(workers_table(2, start=10 + 2 * i), "workers")
    query = "SELECT role, state, count(*) AS n, sum(worker_id) AS s FROM workers GROUP BY role, state ORDER BY role, state"
    before = lh.sql(query)
    reports = lh.compact("workers")
    assert reports[0]["files_removed"] == 21 and reports[0]["files_added"] == 1
    assert lh.sql(query).equals(before)
    assert lh.dataset("workers")["row_count"] == 42
    assert lh.journal(operation="compact")[-1]["details"]["files_removed"] == 21
