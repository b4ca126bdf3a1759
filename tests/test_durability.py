"""Restart, rescue bucket, error journal, single-writer lock, append log."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap

import pytest

from lakehouse import Lakehouse
from lakehouse.config import Config
from lakehouse.errors import BucketUnavailable, DataDirLocked, InvalidInput

from conftest import workers_table


def _snapshot(lh: Lakehouse) -> dict:
    return {
        "datasets": lh.datasets(include_tombstoned=True),
        "journal": lh.journal(),
        "answer": lh.sql("SELECT * FROM workers ORDER BY worker_id").to_pylist(),
        "history": lh.history("workers"),
    }


def test_restart_reloads_catalog_journal_and_answers_identically(tmp_path):
    data = tmp_path / "data"
    with Lakehouse(data, actor="sarah") as lh:
        lh.ingest_table(workers_table(4), "workers")
        lh.ingest_table(workers_table(2, start=5), "workers")
        lh.ingest_table(workers_table(2), "clients")
        lh.tombstone("clients")
        lh.update_rows("workers", "worker_id", 1, {"city": "Akron"})
        before = _snapshot(lh)
    with Lakehouse(data, actor="sarah") as lh:
        assert _snapshot(lh) == before


def test_unflushed_append_log_rows_are_replayed_after_a_crash(tmp_path):
    data = tmp_path / "data"
    lh = Lakehouse(data)
    lh.ingest_table(workers_table(2), "workers")
    row = {"worker_id": 99, "name": "Late Joiner", "role": "Welder", "city": "Toledo", "state": "OH", "reliability": 0.9}
    lh.append_rows("workers", [row])
    assert lh.sql("SELECT count(*) AS n FROM workers").column("n")[0].as_py() == 2  # acknowledged, not yet flushed
    lh._lock.release()  # simulate the process dying: no flush, no close
    lh._lock = None
    with Lakehouse(data) as again:
        assert again.sql("SELECT name FROM workers WHERE worker_id = 99").column("name")[0].as_py() == "Late Joiner"
        assert again.dataset("workers")["row_count"] == 3
        assert again.journal(operation="insert")[-1]["details"]["via"] == "append_log_replay"
    with Lakehouse(data) as third:  # replayed exactly once
        assert third.sql("SELECT count(*) AS n FROM workers WHERE worker_id = 99").column("n")[0].as_py() == 1


def test_append_log_refuses_rows_that_do_not_fit_the_schema(lh):
    lh.ingest_table(workers_table(2), "workers")
    with pytest.raises(InvalidInput, match="do not fit"):
        lh.append_rows("workers", [{"worker_id": "not a number"}])
    assert lh._append_log.pending_rows("workers") == 0


def test_append_log_flushes_in_batches(tmp_path):
    cfg = Config.load(tmp_path / "data")
    cfg.storage.append_flush_rows = 10
    with Lakehouse(tmp_path / "data", config=cfg) as lh:
        lh.ingest_table(workers_table(1), "workers")
        version = lh.dataset("workers")["version"]
        for i in range(25):
            lh.append_rows("workers", [{"worker_id": 100 + i, "name": f"w{i}"}])
        # two automatic flushes of 10, five rows still buffered
        assert lh.dataset("workers")["version"] == version + 2
        assert lh.sql("SELECT count(*) AS n FROM workers").column("n")[0].as_py() == 21
        lh.flush()
        assert lh.sql("SELECT count(*) AS n FROM workers").column("n")[0].as_py() == 26


def test_a_second_process_gets_a_clear_lock_error(tmp_path):
    data = tmp_path / "data"
    with Lakehouse(data):
        code = textwrap.dedent(f"""
            from lakehouse import Lakehouse
            from lakehouse.errors import DataDirLocked
            try:
                Lakehouse({str(data)!r})
            except DataDirLocked as e:
                print("LOCKED", e)
        """)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert out.stdout.startswith("LOCKED"), out.stderr
        assert "locked by another process" in out.stdout
    with Lakehouse(data):  # released on close
        pass


def test_same_process_second_open_is_refused_too(tmp_path):
    with Lakehouse(tmp_path / "data"):
        with pytest.raises(DataDirLocked):
            Lakehouse(tmp_path / "data")


def _with_rescue(tmp_path) -> Config:
    cfg = Config.load(tmp_path / "data")
    cfg.storage.rescue_dir = str(tmp_path / "rescue")
    return cfg


def test_unreadable_primary_is_served_from_the_rescue_copy(tmp_path):
    data = tmp_path / "data"
    with Lakehouse(data, config=_with_rescue(tmp_path)) as lh:
        lh.ingest_table(workers_table(4), "workers")
        lh.ingest_table(workers_table(2, start=5), "workers")
        expected = lh.sql("SELECT * FROM workers ORDER BY worker_id")
        assert lh.rescue_used is False
    shutil.move(data / "tables" / "workers", tmp_path / "moved-away")  # the primary copy is gone
    with Lakehouse(data, config=_with_rescue(tmp_path)) as lh:
        got = lh.sql("SELECT * FROM workers ORDER BY worker_id")
        assert got.equals(expected)
        assert lh.rescue_used is True
        errors = lh.storage_errors()
        assert any(e["operation"] == "read" and e["target"] == "workers" and "rescue" in e["error"] for e in errors)


def test_failed_write_is_an_error_that_is_journaled_and_listed(tmp_path):
    data = tmp_path / "data"
    with Lakehouse(data) as lh:
        shutil.rmtree(data / "tables")
        (data / "tables").write_text("not a directory any more")
        with pytest.raises(BucketUnavailable) as info:
            lh.ingest_table(workers_table(2), "workers")
        assert "primary" in str(info.value)
        errors = lh.storage_errors()
        assert errors and errors[-1]["bucket"] == "primary" and errors[-1]["target"] == "workers"
        assert lh.datasets() == []  # nothing registered
        health = lh.bucket_health()
        assert health[0]["writable"] is False
