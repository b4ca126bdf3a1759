"""Cron-style ingest schedules: stored, run, recorded; missed runs coalesced."""

from __future__ import annotations

import json
import os
import sys
import time
import types
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from lakehouse.cli import app as cli_app
from lakehouse.config import ApiKey, Config
from lakehouse.daemon.schedules import (
    DB_MODULE,
    ScheduleExists,
    ScheduleJob,
    Scheduler,
    ScheduleStore,
    cron_weekdays,
    missed_run,
    parse_cron,
)
from lakehouse.errors import InvalidInput, NotFound
from lakehouse.gateway import create_app
from lakehouse.gateway.state import FacadeGuard
from lakehouse.lakehouse import Lakehouse

UTC = timezone.utc
NEVER = "0 0 1 1 *"  # once a year: never fires during a test unless asked to catch up


def wait_until(condition, timeout_s: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def lakehouse(tmp_path: Path) -> Iterator[Lakehouse]:
    with Lakehouse(tmp_path / "data", actor="tester") as lake:
        yield lake


def scheduler_for(lakehouse: Lakehouse, grace_s: float = 3600.0) -> Scheduler:
    return Scheduler(FacadeGuard(lakehouse), lakehouse.path, misfire_grace_s=grace_s)


def file_job(job_id: str, path: Path, cron: str = NEVER, **extra) -> ScheduleJob:
    return ScheduleJob.from_dict({"id": job_id, "cron": cron, "kind": "file", "path": str(path), **extra})


# ---------------------------------------------------------------------- cron
def test_cron_lines_parse_with_crontab_weekdays():
    assert cron_weekdays("1-5") == "mon-fri" and cron_weekdays("0,7") == "sun,sun" and cron_weekdays("*/2") == "*/2"
    monday_2am = parse_cron("0 2 * * 1").get_next_fire_time(None, datetime(2026, 6, 3, tzinfo=UTC))  # a Wednesday
    assert monday_2am.weekday() == 0 and monday_2am.hour == 2
    every_second = parse_cron("* * * * * *")
    start = datetime(2026, 1, 1, 12, 0, 0, 500_000, tzinfo=UTC)
    assert every_second.get_next_fire_time(None, start) - start < timedelta(seconds=1)
    for bad in ("* * *", "61 * * * *", "0 0 * * funday"):
        with pytest.raises(InvalidInput):
            parse_cron(bad)


def test_missed_run_policy_coalesces_within_grace():
    hourly = parse_cron("0 * * * *")
    t = datetime(2026, 3, 10, 12, 30).astimezone()  # 12:30 in the local zone the cron uses
    assert missed_run(hourly, t - timedelta(minutes=20), t, 3600) == "none"  # nothing fired since
    assert missed_run(hourly, t - timedelta(hours=5), t, 3600) == "run"  # five missed -> one run
    assert missed_run(hourly, t - timedelta(hours=5), t, 60) == "skip"  # the latest is 30 min old
    assert missed_run(hourly, t - timedelta(hours=5), t, 0) == "run"  # 0 = no limit


# ---------------------------------------------------------------------- storage
def test_jobs_persist_across_restart(lakehouse: Lakehouse, tmp_path: Path):
    scheduler = scheduler_for(lakehouse).start()
    scheduler.add(file_job("nightly", tmp_path / "exports" / "*.csv", cron="0 2 * * *", dataset="workers"))
    scheduler.add(file_job("other", tmp_path / "x.csv"))
    with pytest.raises(ScheduleExists, match="already exists"):
        scheduler.add(file_job("nightly", tmp_path / "y.csv"))
    scheduler.remove("other")
    with pytest.raises(NotFound):
        scheduler.remove("other")
    assert scheduler.next_run_times()["nightly"] is not None
    scheduler.stop()

    reopened = ScheduleStore(lakehouse.path)
    assert [(j.id, j.cron, j.dataset) for j in reopened.jobs()] == [("nightly", "0 2 * * *", "workers")]
    stored = json.loads((lakehouse.path / "_schedules" / "jobs.json").read_text())
    assert stored[0]["path"].endswith("*.csv")
    assert oct((lakehouse.path / "_schedules" / "jobs.json").stat().st_mode & 0o777) == "0o600"


def test_invalid_jobs_are_refused():
    for values in ({"id": "../x", "cron": NEVER, "kind": "file", "path": "a"},
                   {"id": "a", "cron": NEVER, "kind": "ftp", "path": "a"},
                   {"id": "a", "cron": NEVER, "kind": "file"},
                   {"id": "a", "cron": NEVER, "kind": "db", "source": {"table": "t"}},
                   {"id": "a", "cron": NEVER, "kind": "file", "path": "a", "mode": "upsert"},
                   {"id": "a", "cron": NEVER, "kind": "file", "path": "a", "colour": "red"},
                   # database sources: no password in the stored DSN, only a permitted variable's name
                   {"id": "a", "cron": NEVER, "kind": "db", "source": {"dsn": "postgresql://u:pw@h/db", "table": "t"}},
                   {"id": "a", "cron": NEVER, "kind": "db", "source": {"dsn": "postgresql://u@h/db?password=pw", "table": "t"}},
                   {"id": "a", "cron": NEVER, "kind": "db", "source": {"dsn": "postgresql://u@h/db", "table": "t",
                                                                        "password_env": "AWS_SECRET_ACCESS_KEY"}},
                   {"id": "a", "cron": NEVER, "kind": "db", "source": {"dsn": "postgresql://u@h/db", "table": "t", "key": "id"}},
                   {"id": "a", "cron": NEVER, "kind": "db", "mode": "upsert", "source": {"dsn": "postgresql://u@h/db", "table": "t"}},
                   {"id": "a", "cron": NEVER, "kind": "db", "mode": "append",
                    "source": {"dsn": "postgresql://u@h/db", "table": "t", "watermark": "at", "key": "id"}},
                   {"id": "a", "cron": NEVER, "kind": "db", "source": {"dsn": "postgresql://u@h/db", "table": "t", "passwd": "x"}}):
        with pytest.raises(InvalidInput):
            ScheduleJob.from_dict(values)
    upsert = ScheduleJob.from_dict({"id": "a", "cron": NEVER, "kind": "db", "mode": "upsert", "source": {
        "dsn": "postgresql://u@h/db", "table": "t", "watermark": "at", "key": "id", "password_env": "LAKEHOUSE_ATS_PASSWORD"}})
    assert upsert.source["key"] == "id"


# ---------------------------------------------------------------------- runs
def test_file_job_runs_and_records_each_run(lakehouse: Lakehouse, tmp_path: Path):
    exports = tmp_path / "exports"
    exports.mkdir()
    (exports / "a.csv").write_text("id,name\n1,a\n2,b\n")
    (exports / "b.csv").write_text("id,name\n3,c\n")
    scheduler = scheduler_for(lakehouse)
    scheduler.add(file_job("exports", exports / "*.csv", dataset="people"))

    first = scheduler.run("exports")
    assert (first["status"], first["rows"], first["error"]) == ("ok", 3, None)
    again = scheduler.run("exports")
    assert (again["status"], again["rows"]) == ("noop", 0)  # same bytes: nothing new
    assert lakehouse.sql("SELECT count(*) AS n FROM people").column("n")[0].as_py() == 3
    assert sorted(p.name for p in exports.iterdir()) == ["a.csv", "b.csv"]  # never moved

    runs = scheduler.runs("exports")
    assert [r["status"] for r in runs] == ["noop", "ok"]  # newest first
    assert {"job_id", "start", "end", "status", "rows", "duration_s", "error", "trigger"} <= set(runs[0])
    lines = (lakehouse.path / "_schedules" / "runs.jsonl").read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["trigger"] == "manual"
    assert scheduler.store.get("exports").last_run_at == runs[0]["start"]


def test_failing_run_is_recorded_with_its_reason(lakehouse: Lakehouse, tmp_path: Path):
    scheduler = scheduler_for(lakehouse)
    scheduler.add(file_job("nothing", tmp_path / "missing" / "*.csv"))
    (tmp_path / "bad.csv").write_text("")
    scheduler.add(file_job("bad", tmp_path / "bad.csv"))
    assert scheduler.run("nothing")["error"]["error"] == "NoFiles"
    bad = scheduler.run("bad")
    assert bad["status"] == "failed" and bad["error"]["first"]["error"] == "InvalidInput"
    assert (tmp_path / "bad.csv").exists()


def test_cron_job_fires_on_schedule(lakehouse: Lakehouse, tmp_path: Path):
    (tmp_path / "tick.csv").write_text("id\n1\n")
    scheduler = scheduler_for(lakehouse).start()
    try:
        scheduler.add(file_job("every-second", tmp_path / "tick.csv", cron="* * * * * *"))
        wait_until(lambda: scheduler.runs("every-second"), what="a scheduled run")
    finally:
        scheduler.stop()
    run = scheduler.runs("every-second")[-1]
    assert (run["trigger"], run["status"], run["rows"]) == ("cron", "ok", 1)


def test_missed_runs_after_restart_run_once(lakehouse: Lakehouse, tmp_path: Path):
    (tmp_path / "daily.csv").write_text("id\n1\n")
    two_days_ago = (datetime.now(UTC) - timedelta(days=2, hours=1)).isoformat()
    store = ScheduleStore(lakehouse.path)
    store.add(file_job("daily", tmp_path / "daily.csv", cron="0 0 * * *", created_at=two_days_ago))

    scheduler = scheduler_for(lakehouse, grace_s=0).start()  # 0 = catch up however old
    try:
        wait_until(lambda: scheduler.runs("daily"), what="the catch-up run")
        time.sleep(0.3)  # a second (wrong) catch-up would show up here
    finally:
        scheduler.stop()
    runs = scheduler.runs("daily")
    assert [(r["trigger"], r["status"]) for r in runs] == [("catch_up", "ok")]  # two missed, one run

    # Restarting again: nothing was missed since that run.
    scheduler = scheduler_for(lakehouse, grace_s=0).start()
    time.sleep(0.3)
    scheduler.stop()
    assert len(scheduler.runs("daily")) == 1


def test_missed_runs_older_than_grace_are_recorded_not_run(lakehouse: Lakehouse, tmp_path: Path):
    (tmp_path / "yearly.csv").write_text("id\n1\n")
    long_ago = (datetime.now(UTC) - timedelta(days=800)).isoformat()
    ScheduleStore(lakehouse.path).add(file_job("yearly", tmp_path / "yearly.csv", created_at=long_ago))
    scheduler = scheduler_for(lakehouse, grace_s=60).start()
    scheduler.stop()
    [run] = scheduler.runs("yearly")
    assert run["status"] == "missed" and "misfire_grace_seconds" in run["error"]["message"]
    assert "yearly" not in {d["name"] for d in lakehouse.datasets()}


# ---------------------------------------------------------------------- database jobs
DB_JOB = {"id": "ats", "cron": NEVER, "kind": "db", "dataset": "candidates",
          "source": {"dsn": "postgresql://etl@db.local:5432/ats", "table": "public.candidates", "watermark": "updated_at",
                     "key": "candidate_id", "password_env": "LAKEHOUSE_ATS_PASSWORD"}}


def fake_db_sync(monkeypatch) -> list:
    calls = []
    fake = types.ModuleType(DB_MODULE)
    fake.sync_db = lambda lh, **spec: calls.append((lh, spec)) or {"rows": 42}
    monkeypatch.setitem(sys.modules, DB_MODULE, fake)
    return calls


def test_db_job_calls_the_db_sync_with_its_key_and_password_variable(lakehouse: Lakehouse, monkeypatch):
    calls = fake_db_sync(monkeypatch)
    scheduler = scheduler_for(lakehouse)
    scheduler.add(ScheduleJob.from_dict(DB_JOB))
    run = scheduler.run("ats")
    assert (run["status"], run["rows"]) == ("ok", 42)
    [(lh, spec)] = calls
    assert lh is lakehouse
    assert spec == {**DB_JOB["source"], "name": "candidates", "actor": "scheduler"}
    assert spec["key"] == "candidate_id" and spec["password_env"] == "LAKEHOUSE_ATS_PASSWORD"


def test_a_db_job_stored_with_a_password_before_the_rule_still_runs_and_is_masked(lakehouse: Lakehouse, monkeypatch):
    calls = fake_db_sync(monkeypatch)
    old = {**DB_JOB, "source": {"dsn": "postgresql://etl:s3cret@db.local:5432/ats", "table": "public.candidates"}}
    jobs_file = lakehouse.path / "_schedules" / "jobs.json"
    jobs_file.parent.mkdir(parents=True)
    jobs_file.write_text(json.dumps([ScheduleJob(**old).to_dict()]))  # as an older version stored it
    store = ScheduleStore(lakehouse.path)
    assert "s3cret" not in json.dumps([job.public() for job in store.jobs()])
    assert scheduler_for(lakehouse).run("ats")["status"] == "ok"
    assert calls[0][1]["dsn"] == old["source"]["dsn"]


def test_db_job_without_db_support_fails_clearly(lakehouse: Lakehouse, monkeypatch):
    monkeypatch.setitem(sys.modules, DB_MODULE, types.ModuleType(DB_MODULE))  # no sync_db in it
    scheduler = scheduler_for(lakehouse)
    scheduler.add(ScheduleJob.from_dict(DB_JOB))
    run = scheduler.run("ats")
    assert run["status"] == "failed" and "sync_db" in run["error"]["message"]


# ---------------------------------------------------------------------- gateway & CLI
def test_gateway_schedule_routes(tmp_path: Path):
    config = Config.load(tmp_path / "data", env={})
    config.gateway.api_keys = [ApiKey("k", "admin", "alice"), ApiKey("r", "reader", "rita")]
    config.daemon.watch_inbox = False
    (tmp_path / "w.csv").write_text("id\n1\n")
    headers = {"X-API-Key": "k"}
    job = {"id": "w", "cron": "* * * * * *", "kind": "file", "path": str(tmp_path / "w.csv")}
    with Lakehouse(config=config) as lakehouse, TestClient(create_app(lakehouse, config)) as client:
        assert client.post("/schedules", json=job, headers={"X-API-Key": "r"}).status_code == 403
        assert client.post("/schedules", json=job, headers=headers).status_code == 201
        duplicate = client.post("/schedules", json={**job, "cron": "0 3 * * *"}, headers=headers)
        assert duplicate.status_code == 409, duplicate.text  # a conflict with what is stored, not a bad request
        assert duplicate.json()["error"] == "ScheduleExists" and "already exists" in duplicate.json()["message"]
        assert duplicate.json()["id"] == "w"
        assert client.post("/schedules", json={**job, "id": "x", "cron": "nope"}, headers=headers).status_code == 400
        [listed] = client.get("/schedules", headers=headers).json()
        assert listed["id"] == "w" and listed["next_run_at"]
        # The gateway runs the agent, so the new job fires without a restart.
        wait_until(lambda: client.get("/schedules/runs", headers=headers).json(), what="a run via the gateway")
        assert client.get("/schedules/runs", params={"job_id": "w"}, headers=headers).json()[0]["status"] == "ok"
        assert client.delete("/schedules/w", headers=headers).status_code == 200
        assert client.delete("/schedules/w", headers=headers).status_code == 404
        assert client.get("/schedules", headers=headers).json() == []


def test_cli_schedule_commands(tmp_path: Path, monkeypatch):
    for var in [v for v in os.environ if v.startswith("LAKEHOUSE_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    data = ["--data-dir", str(tmp_path / "data")]
    added = runner.invoke(cli_app, [*data, "schedule", "add", "nightly", "--cron", "0 2 * * *", "--path", "exports/*.csv"])
    assert added.exit_code == 0, added.output
    listed = runner.invoke(cli_app, [*data, "schedule", "list", "--json"])
    [job] = json.loads(listed.output)
    assert job["path"] == str(tmp_path / "exports" / "*.csv")  # relative to where the command ran
    assert runner.invoke(cli_app, [*data, "schedule", "runs"]).exit_code == 0
    assert runner.invoke(cli_app, [*data, "schedule", "remove", "nightly"]).exit_code == 0
    missing = runner.invoke(cli_app, [*data, "schedule", "remove", "nightly"])
    assert missing.exit_code == 1 and "NotFound" in missing.output
    assert runner.invoke(cli_app, [*data, "schedule", "add", "x", "--cron", "0 2 * * *"]).exit_code == 2


def test_cli_adding_a_schedule_id_twice_is_a_clear_error(tmp_path: Path, monkeypatch):
    for var in [v for v in os.environ if v.startswith("LAKEHOUSE_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("COLUMNS", "250")
    runner = CliRunner()
    add = [f"--data-dir={tmp_path / 'data'}", "schedule", "add", "nightly", "--cron", "0 2 * * *", "--path", str(tmp_path / "a.csv")]
    assert runner.invoke(cli_app, add).exit_code == 0
    again = runner.invoke(cli_app, add)
    assert again.exit_code == 1
    assert "ScheduleExists" in again.output and "already exists" in again.output
    assert "lakehouse schedule remove nightly" in again.output and "Traceback" not in again.output
    [job] = json.loads(runner.invoke(cli_app, [f"--data-dir={tmp_path / 'data'}", "schedule", "list", "--json"]).output)
    assert job["cron"] == "0 2 * * *"  # the stored job is untouched
