"""Ingest -> catalog -> SQL, idempotence, schema conflicts, tombstones, dedupe."""

from __future__ import annotations

import json
import shutil

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from lakehouse import Lakehouse
from lakehouse.errors import InvalidInput, NotFound, SchemaConflict, error_details

from conftest import workers_table


def test_new_dataset_is_queryable_at_once(lh):
    result = lh.ingest_table(workers_table(5), "workers")
    assert result.status == "created"
    assert result.total_rows == 5
    assert lh.sql("SELECT count(*) AS n FROM workers").column("n")[0].as_py() == 5


def test_same_schema_appends_rows_as_a_new_version(lh):
    first = lh.ingest_table(workers_table(5), "workers")
    second = lh.ingest_table(workers_table(3, start=6), "workers")
    assert second.status == "appended"
    assert second.version == first.version + 1
    assert second.total_rows == 8
    assert lh.dataset("workers")["row_count"] == 8
    assert lh.sql("SELECT max(worker_id) AS m FROM workers").column("m")[0].as_py() == 8


def test_ingesting_the_same_file_twice_is_a_noop(lh, tmp_path):
    path = tmp_path / "workers.csv"
    pacsv.write_csv(workers_table(4), path)
    first = lh.ingest_file(path)
    events_before = lh.journal()
    again = lh.ingest_file(path)
    assert again.status == "noop"
    assert again.version == first.version
    assert "already ingested" in again.reason
    assert lh.dataset("workers")["row_count"] == 4
    new_events = lh.journal()[len(events_before):]
    assert [e["operation"] for e in new_events] == ["noop"]


def test_schema_drift_is_a_conflict_naming_both_fingerprints_and_columns(lh):
    registered = lh.ingest_table(workers_table(3), "workers")
    drifted = workers_table(3).set_column(0, "worker_id", pa.array(["a", "b", "c"]))
    with pytest.raises(SchemaConflict) as info:
        lh.ingest_table(drifted, "workers")
    details = error_details(info.value)
    assert details["existing_fingerprint"] == registered.fingerprint
    assert details["incoming_fingerprint"] != registered.fingerprint
    assert details["incoming_fingerprint"] in str(info.value)
    assert {"change": "changed", "column": "worker_id", "existing": "int64 null", "incoming": "string null"} in details["diff"]["columns"]
    # nothing was written
    assert lh.dataset("workers")["version"] == registered.version
    assert lh.history("workers")[0]["version"] == registered.version


def test_replace_swaps_content_atomically_as_a_new_version(lh):
    lh.ingest_table(workers_table(5), "workers")
    other = pa.table({"id": [1, 2]})
    result = lh.ingest_table(other, "workers", mode="replace")
    assert result.status == "replaced"
    assert lh.sql("SELECT * FROM workers").column_names == ["id"]
    old = lh.sql_as_of("SELECT count(*) AS n FROM workers", "workers", version=0)
    assert old.column("n")[0].as_py() == 5


def test_csv_and_parquet_and_arrow_with_same_columns_share_a_fingerprint(lh, tmp_path):
    table = workers_table(4)
    pacsv.write_csv(table, tmp_path / "a.csv")
    pq.write_table(table, tmp_path / "b.parquet")
    fps = {
        lh.ingest_file(tmp_path / "a.csv", "from_csv").fingerprint,
        lh.ingest_file(tmp_path / "b.parquet", "from_parquet").fingerprint,
        lh.ingest_table(table, "from_arrow").fingerprint,
    }
    assert len(fps) == 1


def test_manifest_records_lineage_owner_and_row_count(lh, tmp_path):
    path = tmp_path / "workers.csv"
    pacsv.write_csv(workers_table(4), path)
    result = lh.ingest_file(path, actor="sarah")
    m = lh.dataset("workers")
    assert m["owner"] == "sarah"
    assert m["row_count"] == 4
    assert m["lineage"][-1]["source_hash"] == result.source_hash
    assert m["lineage"][-1]["ingest_job"] == "file:workers.csv"
    assert [c["name"] for c in m["columns"]] == workers_table().column_names
    assert m["fingerprint"].startswith("sha256:")


def test_tombstoned_dataset_disappears_from_sql_and_comes_back_on_restore(lh):
    lh.ingest_table(workers_table(3), "workers")
    lh.tombstone("workers")
    assert lh.datasets() == []
    with pytest.raises(NotFound):
        lh.sql("SELECT * FROM workers")
    lh.restore("workers")
    assert lh.sql("SELECT count(*) AS n FROM workers").column("n")[0].as_py() == 3
    ops = [e["operation"] for e in lh.journal(dataset="workers")]
    assert ops[-2:] == ["tombstone", "restore"]


def test_dedupe_collapses_duplicate_manifests_idempotently(tmp_path):
    data = tmp_path / "data"
    with Lakehouse(data) as lh:
        lh.ingest_table(workers_table(3), "workers")
    manifests = list((data / "_catalog" / "manifests").glob("*.json"))
    original = json.loads(manifests[0].read_text())
    stale = dict(original, id="00000000-stale", row_count=None, updated_at="2999-01-01T00:00:00Z")
    (manifests[0].parent / "00000000-stale.json").write_text(json.dumps(stale))
    with Lakehouse(data) as lh:
        report = lh.dedupe()
        assert report["removed"] == 1
        assert report["groups"][0]["winner"] == original["id"]
        assert lh.dedupe()["removed"] == 0
        assert len(lh.datasets()) == 1


def test_invalid_names_and_unknown_files_are_clear_errors(lh, tmp_path):
    with pytest.raises(InvalidInput, match="invalid dataset name"):
        lh.ingest_table(workers_table(1), "../etc/passwd")
    with pytest.raises(InvalidInput, match="no such file"):
        lh.ingest_file(tmp_path / "missing.csv")
    odd = tmp_path / "notes.docx"
    odd.write_bytes(b"hello")
    with pytest.raises(InvalidInput, match="unsupported file type"):
        lh.ingest_file(odd)


def test_row_update_and_delete_are_journaled_with_old_and_new_values(lh):
    lh.ingest_table(workers_table(3), "workers")
    assert lh.update_rows("workers", "worker_id", 2, {"city": "Dayton"}, actor="kim") == 1
    assert lh.sql("SELECT city FROM workers WHERE worker_id = 2").column("city")[0].as_py() == "Dayton"
    event = lh.journal(operation="update")[-1]
    assert event["actor"] == "kim"
    assert event["details"]["key"] == {"worker_id": 2}
    assert event["details"]["old"] == [{"city": "Toledo"}]
    assert event["details"]["new"] == {"city": "Dayton"}
    assert lh.delete_rows("workers", "worker_id", 3) == 1
    assert lh.dataset("workers")["row_count"] == 2
    assert lh.journal(operation="delete")[-1]["details"]["old"][0]["worker_id"] == 3


def _batches(n_batches: int, rows: int, fail_at: int | None = None):
    for i in range(n_batches):
        if i == fail_at:
            raise ConnectionError("source connection dropped")
        yield pa.record_batch({"id": pa.array(range(i * rows, (i + 1) * rows), pa.int64())})


def test_a_record_batch_stream_lands_as_one_commit(lh):
    reader = pa.RecordBatchReader.from_batches(pa.schema([("id", pa.int64())]), _batches(20, 1000))
    result = lh.ingest_table(reader, "events")
    assert (result.status, result.rows_written, result.version) == ("created", 20_000, 0)
    assert lh.sql("SELECT count(DISTINCT id) AS n FROM events").column("n")[0].as_py() == 20_000


def test_a_stream_that_fails_midway_leaves_no_partial_version(lh):
    lh.ingest_table(pa.table({"id": pa.array([-1], pa.int64())}), "events")
    reader = pa.RecordBatchReader.from_batches(pa.schema([("id", pa.int64())]), _batches(20, 1000, fail_at=7))
    with pytest.raises(Exception, match="connection dropped"):
        lh.ingest_table(reader, "events")
    assert lh.history("events")[0]["version"] == 0
    assert lh.sql("SELECT count(*) AS n FROM events").column("n")[0].as_py() == 1
    assert lh.dataset("events")["version"] == 0
