"""The inbox watcher: drops become datasets; originals move to processed/ or failed/."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from lakehouse.config import ApiKey, Config
from lakehouse.daemon.inbox import InboxSettings, InboxWatcher, check_inbox_location, entry_inside, move_entry
from lakehouse.errors import InvalidInput
from lakehouse.gateway import create_app
from lakehouse.gateway.state import FacadeGuard
from lakehouse.lakehouse import Lakehouse

#: short settle so the suite stays fast; the partial-write test waits well beyond it
SETTINGS = InboxSettings(settle_s=0.2, quiet_s=30.0, rescan_s=0.5, poll_s=0.02)


def wait_until(condition: Callable[[], bool], timeout_s: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.02)


def csv_rows(rows: int, start: int = 0) -> str:
    return "".join(f"{i},Worker {i},Toledo\n" for i in range(start, start + rows))


def csv_text(rows: int, start: int = 0) -> str:
    return "id,name,city\n" + csv_rows(rows, start)


def count(lakehouse: Lakehouse, table: str) -> int:
    return lakehouse.sql(f"SELECT count(*) AS n FROM {table}").column("n")[0].as_py()


class Harness:
    """A data directory (under tmp_path) with a running watcher on its inbox."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.lakehouse: Lakehouse | None = None
        self.watcher: InboxWatcher | None = None

    def start(self) -> Harness:
        self.lakehouse = Lakehouse(self.data_dir, actor="tester")
        inbox = self.lakehouse.config.inbox_path
        self.watcher = InboxWatcher(FacadeGuard(self.lakehouse), inbox, self.lakehouse.path, SETTINGS).start()
        return self

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        if self.lakehouse is not None:
            self.lakehouse.close()
        self.watcher = self.lakehouse = None

    @property
    def inbox(self) -> Path:
        return Config.load(self.data_dir, env={}).inbox_path

    def handled(self) -> int:
        return sum(self.watcher.counts.values())

    def wait_handled(self, n: int, timeout_s: float = 15.0) -> None:
        wait_until(lambda: self.handled() >= n, timeout_s, f"{n} handled file(s), have {self.watcher.counts}")

    def listing(self, folder: str) -> list[Path]:
        return sorted((self.inbox / folder).iterdir())


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path / "data").start()
    yield h
    h.stop()


def test_drop_is_queryable_and_moved_to_processed(harness: Harness):
    (harness.inbox / "workers.csv").write_text(csv_text(10_000))
    harness.wait_handled(1)
    assert count(harness.lakehouse, "workers") == 10_000
    [moved] = harness.listing("processed")
    assert moved.name.endswith("_workers.csv") and moved.read_text() == csv_text(10_000)
    assert not (harness.inbox / "workers.csv").exists()
    [event] = [e for e in harness.lakehouse.journal(dataset="workers") if e["operation"] == "create"]
    assert event["actor"] == "inbox"
    lineage = harness.lakehouse.dataset("workers")["lineage"][-1]
    assert lineage["source_system"] == "inbox" and lineage["ingest_job"] == "inbox:workers.csv"


def test_partial_write_is_ingested_once_and_complete(harness: Harness):
    path = harness.inbox / "slow.csv"
    with open(path, "w") as fh:
        fh.write(csv_text(500))
        fh.flush()
        # The writer pauses well past the settle time while keeping the file open.
        time.sleep(SETTINGS.settle_s * 4)
        assert harness.handled() == 0, "a file still open for writing must not be ingested"
        fh.write(csv_rows(500, start=500))
    harness.wait_handled(1)
    time.sleep(SETTINGS.settle_s * 2)  # room for a (wrong) second ingest to show up
    assert harness.watcher.counts == {"ingested": 1, "noop": 0, "failed": 0}
    assert count(harness.lakehouse, "slow") == 1000


def test_duplicate_file_is_a_noop_and_still_processed(harness: Harness):
    (harness.inbox / "people.csv").write_text(csv_text(3))
    harness.wait_handled(1)
    (harness.inbox / "people_again.csv").write_text(csv_text(3))
    harness.wait_handled(2)
    assert harness.watcher.counts == {"ingested": 1, "noop": 1, "failed": 0}
    assert [o.status for o in harness.watcher.recent] == ["created", "noop"]
    assert len(harness.listing("processed")) == 2 and harness.listing("failed") == []
    assert count(harness.lakehouse, "people") == 3


def test_bad_file_goes_to_failed_with_a_reason_and_its_bytes(harness: Harness):
    original = b"\x00\x01 not a table \xff"
    (harness.inbox / "scan.bin").write_bytes(original)
    (harness.inbox / "empty.csv").write_bytes(b"")
    harness.wait_handled(2)
    failed = {p.name.split("_", 1)[1]: p for p in harness.listing("failed")}
    assert set(failed) == {"scan.bin", "scan.bin.error.json", "empty.csv", "empty.csv.error.json"}
    assert failed["scan.bin"].read_bytes() == original
    report = json.loads(failed["scan.bin.error.json"].read_text())
    assert report["error"] == "InvalidInput" and "unsupported file type" in report["message"]
    assert report["file"] == "scan.bin" and report["size_bytes"] == len(original)
    assert json.loads(failed["empty.csv.error.json"].read_text())["error"] == "InvalidInput"
    assert harness.listing("processed") == []


def test_burst_of_100_files_loses_none(harness: Harness):
    for i in range(100):
        # `burst.<n>.csv` all name the dataset `burst`; distinct rows so none is a duplicate.
        (harness.inbox / f"burst.{i:03d}.csv").write_text(csv_text(2, start=2 * i))
    harness.wait_handled(100, timeout_s=45)
    assert harness.watcher.counts == {"ingested": 100, "noop": 0, "failed": 0}
    assert len(harness.listing("processed")) == 100
    assert count(harness.lakehouse, "burst") == 200
    assert [p.name for p in harness.inbox.iterdir() if p.is_file()] == []


def test_files_dropped_while_down_are_picked_up_on_start(harness: Harness):
    (harness.inbox / "first.csv").write_text(csv_text(1))
    harness.wait_handled(1)
    harness.stop()
    (harness.inbox / "second.csv").write_text(csv_text(2))
    (harness.inbox / "third.csv").write_text(csv_text(3))
    harness.start()
    harness.wait_handled(2)
    assert count(harness.lakehouse, "second") == 2 and count(harness.lakehouse, "third") == 3
    assert len(harness.listing("processed")) == 3


def test_sidecar_names_the_dataset_and_mode(harness: Harness):
    (harness.inbox / "people.csv").write_text(csv_text(5))
    harness.wait_handled(1)
    (harness.inbox / "export-0612.csv.meta.json").write_text(json.dumps({"name": "people", "mode": "replace"}))
    (harness.inbox / "export-0612.csv").write_text(csv_text(2, start=100))
    harness.wait_handled(2)
    assert count(harness.lakehouse, "people") == 2  # replaced, not appended
    names = [p.name.split("_", 1)[1] for p in harness.listing("processed")]
    assert sorted(names) == ["export-0612.csv", "export-0612.csv.meta.json", "people.csv"]


def test_invalid_sidecar_fails_the_file(harness: Harness):
    (harness.inbox / "x.csv.meta.json").write_text(json.dumps({"name": "x", "mode": "upsert"}))
    (harness.inbox / "x.csv").write_text(csv_text(1))
    harness.wait_handled(1)
    report = next(p for p in harness.listing("failed") if p.name.endswith(".error.json"))
    assert "mode" in json.loads(report.read_text())["message"]
    assert len(harness.listing("failed")) == 3  # the file, its sidecar, the report


def test_temp_names_and_dotfiles_wait_for_their_final_name(harness: Harness):
    (harness.inbox / ".hidden.csv").write_text(csv_text(1))
    part = harness.inbox / "late.csv.part"
    part.write_text(csv_text(4))
    time.sleep(SETTINGS.settle_s * 3)
    assert harness.handled() == 0
    part.rename(harness.inbox / "late.csv")
    harness.wait_handled(1)
    assert count(harness.lakehouse, "late") == 4
    assert (harness.inbox / ".hidden.csv").exists()


def test_symlink_out_of_the_inbox_is_not_followed(harness: Harness, tmp_path: Path):
    outside = tmp_path / "outside.csv"
    outside.write_text(csv_text(2))
    (harness.inbox / "link.csv").symlink_to(outside)
    harness.wait_handled(1)
    assert harness.watcher.counts["failed"] == 1
    moved = next(p for p in harness.listing("failed") if p.name.endswith("_link.csv"))
    assert moved.is_symlink()  # the link itself moved; its target untouched
    assert outside.read_text() == csv_text(2)


def test_moves_stay_inside_the_inbox(tmp_path: Path):
    data = tmp_path / "data"
    inbox = (data / "inbox").resolve()
    (inbox / "processed").mkdir(parents=True)
    for refused in (data, tmp_path, Path("/")):
        with pytest.raises(InvalidInput):
            check_inbox_location(refused, data)
    outside = tmp_path / "elsewhere.csv"
    outside.write_text("x")
    with pytest.raises(RuntimeError):
        entry_inside(inbox, outside)
    with pytest.raises(RuntimeError):
        entry_inside(inbox, inbox / "processed" / ".." / ".." / "elsewhere.csv")
    inside = inbox / "ok.csv"
    inside.write_text("x")
    with pytest.raises(RuntimeError):
        move_entry(inbox, inside, tmp_path)  # destination outside the inbox
    assert outside.exists() and inside.exists()
    assert move_entry(inbox, inside, inbox / "processed").parent == inbox / "processed"


def test_gateway_runs_the_agent_in_process(tmp_path: Path):
    config = Config.load(tmp_path / "data", env={})
    config.gateway.api_keys = [ApiKey("k", "admin", "alice")]
    config.daemon.inbox_settle_seconds = 0.2
    with Lakehouse(config=config) as lakehouse, TestClient(create_app(lakehouse, config)) as client:
        agent = client.app.state.agent
        assert agent.inbox is not None and agent.scheduler is not None
        (config.inbox_path / "via_gateway.csv").write_text(csv_text(7))
        wait_until(lambda: agent.inbox.counts["ingested"] == 1, what="the gateway's agent to ingest the drop")
        response = client.post("/query/sql", json={"sql": "SELECT count(*) AS n FROM via_gateway"}, headers={"X-API-Key": "k"})
        assert response.json()["rows"] == [[7]]


def test_gateway_without_agent_when_disabled(tmp_path: Path):
    config = Config.load(tmp_path / "data", env={"LAKEHOUSE_DAEMON_WATCH_INBOX": "false", "LAKEHOUSE_DAEMON_RUN_SCHEDULES": "0"})
    assert (config.daemon.watch_inbox, config.daemon.run_schedules) == (False, False)
    with Lakehouse(config=config) as lakehouse, TestClient(create_app(lakehouse, config)) as client:
        agent = client.app.state.agent
        assert agent.inbox is None and agent.scheduler is None
    assert not os.path.exists(config.inbox_path / "processed")
