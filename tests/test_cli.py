"""The `lakehouse` CLI, in-process (CliRunner) and against a running gateway."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from lakehouse.cli import app
from lakehouse.client import gateway_serves
from lakehouse.config import Config
from lakehouse.errors import DataDirLocked
from lakehouse.lakehouse import Lakehouse

PEOPLE_CSV = "id,name,city\n1,Ana,Toledo\n2,Bo,Akron\n3,Cy,Dayton\n"
PEOPLE_WITH_EMAIL_CSV = "id,name,city,email\n4,Di,Lima,di@example.com\n"
runner = CliRunner()


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch):
    for var in [v for v in os.environ if v.startswith("LAKEHOUSE_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("LAKEHOUSE_ACTOR", "cli-tester")
    monkeypatch.setenv("COLUMNS", "250")  # wide enough that rich never wraps a cell


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def people_csv(tmp_path: Path) -> Path:
    path = tmp_path / "people.csv"
    path.write_text(PEOPLE_CSV)
    return path


def lakehouse_cli(data_dir: Path, *args: str, expect_exit: int = 0):
    result = runner.invoke(app, ["--data-dir", str(data_dir), *map(str, args)])
    assert result.exit_code == expect_exit, f"exit {result.exit_code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def sql_json(data_dir: Path, sql: str) -> list[dict]:
    return json.loads(lakehouse_cli(data_dir, "sql", sql, "--format", "json").stdout)


# ---------------------------------------------------------------------- init
def test_init_creates_the_data_dir_inbox_and_a_private_config_with_an_api_key(data_dir):
    result = lakehouse_cli(data_dir, "init")
    toml = data_dir / "lakehouse.toml"
    assert (data_dir / "inbox").is_dir()
    assert stat.S_IMODE(toml.stat().st_mode) == 0o600
    [key] = Config.load(data_dir, env={}).gateway.api_keys
    assert len(key.key) >= 32 and key.role == "admin"
    assert key.key not in result.stdout  # the key stays in the file
    assert "Next steps" in result.stdout
    assert "# " in toml.read_text()  # commented
    lakehouse_cli(data_dir, "init")  # idempotent: the existing configuration is kept
    assert Config.load(data_dir, env={}).gateway.api_keys[0].key == key.key


# ---------------------------------------------------------------------- ingest & sql
def test_ingest_a_csv_prints_the_result_and_sql_reads_it_back(data_dir, people_csv):
    result = lakehouse_cli(data_dir, "ingest", people_csv, "--name", "people")
    assert "people" in result.stdout and "created" in result.stdout
    assert sql_json(data_dir, "SELECT id, name FROM people ORDER BY id") == [
        {"id": 1, "name": "Ana"}, {"id": 2, "name": "Bo"}, {"id": 3, "name": "Cy"},
    ]


def test_sql_prints_a_table_json_or_csv(data_dir, people_csv):
    lakehouse_cli(data_dir, "ingest", people_csv, "--name", "people")
    query = "SELECT name, city FROM people ORDER BY id"
    table = lakehouse_cli(data_dir, "sql", query).stdout
    assert "3 row(s)" in table and "Toledo" in table and "Dayton" in table
    as_csv = lakehouse_cli(data_dir, "sql", query, "--format", "csv").stdout
    assert list(csv.reader(io.StringIO(as_csv))) == [["name", "city"], ["Ana", "Toledo"], ["Bo", "Akron"], ["Cy", "Dayton"]]
    as_json = json.loads(lakehouse_cli(data_dir, "sql", query, "--format", "json", "--limit", "1").stdout)
    assert as_json == [{"name": "Ana", "city": "Toledo"}]


def test_ingest_a_directory_ingests_every_file_in_it(data_dir, tmp_path):
    folder = tmp_path / "drop"
    folder.mkdir()
    (folder / "workers.csv").write_text(PEOPLE_CSV)
    (folder / "clients.csv").write_text("client_id,client\n1,Acme\n")
    (folder / ".hidden.csv").write_text("junk\n")
    lakehouse_cli(data_dir, "ingest", folder)
    assert sql_json(data_dir, "SELECT count(*) AS n FROM workers") == [{"n": 3}]
    assert sql_json(data_dir, "SELECT client FROM clients") == [{"client": "Acme"}]
    names = json.loads(lakehouse_cli(data_dir, "catalog", "list", "--json").stdout)
    assert sorted(d["name"] for d in names) == ["clients", "workers"]


def test_ingesting_the_same_file_twice_is_a_noop(data_dir, people_csv):
    lakehouse_cli(data_dir, "ingest", people_csv, "--name", "people")
    assert "noop" in lakehouse_cli(data_dir, "ingest", people_csv, "--name", "people").stdout
    assert sql_json(data_dir, "SELECT count(*) AS n FROM people") == [{"n": 3}]


def test_a_schema_conflict_is_reported_in_red_with_exit_1_and_no_traceback(data_dir, people_csv, tmp_path):
    lakehouse_cli(data_dir, "ingest", people_csv, "--name", "people")
    drifted = tmp_path / "people_v2.csv"
    drifted.write_text(PEOPLE_WITH_EMAIL_CSV)
    result = lakehouse_cli(data_dir, "ingest", drifted, "--name", "people", expect_exit=1)
    assert "SchemaConflict" in result.stderr and "email" in result.stderr
    assert "Traceback" not in result.output
    assert sql_json(data_dir, "SELECT count(*) AS n FROM people") == [{"n": 3}]


def quarantined(data_dir: Path) -> list[Path]:
    folder = data_dir / "_quarantine"
    return sorted(p for p in folder.iterdir() if not p.name.endswith(".error.json")) if folder.is_dir() else []


def test_a_rejected_file_is_quarantined_like_an_upload_and_the_reason_printed(data_dir, people_csv, tmp_path):
    lakehouse_cli(data_dir, "ingest", people_csv, "--name", "people")
    drifted = tmp_path / "people_v2.csv"
    drifted.write_text(PEOPLE_WITH_EMAIL_CSV)
    result = lakehouse_cli(data_dir, "ingest", drifted, "--name", "people", expect_exit=1)
    [kept] = quarantined(data_dir)
    assert kept.name.endswith("_people_v2.csv") and kept.read_text() == PEOPLE_WITH_EMAIL_CSV
    relative = str(kept.relative_to(data_dir))
    assert "SchemaConflict" in result.stderr and f"kept in quarantine as {relative}" in result.stderr
    # The same reason file as a gateway upload's (gateway.uploads.quarantine), plus where it came from.
    reason = json.loads(kept.with_name(kept.name + ".error.json").read_text())
    assert reason["error"] == "SchemaConflict" and reason["status"] == 409
    assert reason["existing_fingerprint"] and reason["incoming_fingerprint"]
    assert reason["original_filename"] == str(drifted) and reason["source_path"] == str(drifted)
    assert reason["dataset"] == "people" and reason["mode"] == "append" and reason["via"] == "cli"
    assert reason["actor"] == "cli-tester" and reason["size_bytes"] == len(PEOPLE_WITH_EMAIL_CSV)
    assert drifted.read_text() == PEOPLE_WITH_EMAIL_CSV  # the user's file stays where it was
    assert not any((data_dir / "_uploads").iterdir())  # no staging left behind


def test_every_rejected_file_of_a_batch_is_quarantined_and_the_rest_ingested(data_dir, tmp_path):
    folder = tmp_path / "drop"
    folder.mkdir()
    (folder / "good.csv").write_text(PEOPLE_CSV)
    (folder / "garbage.parquet").write_bytes(b"\x00\x01 definitely not a table")
    (folder / "notes.docx").write_text("not a supported type")
    (folder / "empty.csv").write_text("")
    result = lakehouse_cli(data_dir, "ingest", folder, expect_exit=1)
    names = sorted(p.name.split("_", 1)[1] for p in quarantined(data_dir))
    assert names == ["empty.csv", "garbage.parquet", "notes.docx"]
    for kept in quarantined(data_dir):
        reason = json.loads(kept.with_name(kept.name + ".error.json").read_text())
        assert reason["error"] == "InvalidInput" and reason["status"] == 400 and reason["message"]
        assert kept.name.split("_", 1)[1] in result.stderr  # each failure is named with its reason
    assert result.stderr.count("kept in quarantine as _quarantine/") == 3
    assert sql_json(data_dir, "SELECT count(*) AS n FROM good") == [{"n": 3}]


@pytest.mark.parametrize("sql", ["DROP TABLE people", "COPY people TO '/tmp/x.csv'"])
def test_forbidden_sql_exits_1_naming_the_error(data_dir, people_csv, sql):
    lakehouse_cli(data_dir, "ingest", people_csv, "--name", "people")
    result = lakehouse_cli(data_dir, "sql", sql, expect_exit=1)
    assert "ReadOnlyViolation" in result.stderr
    assert "Traceback" not in result.output


def test_sql_notes_when_the_answer_came_from_the_rescue_bucket(data_dir, people_csv, tmp_path, monkeypatch):
    monkeypatch.setenv("LAKEHOUSE_STORAGE_RESCUE_DIR", str(tmp_path / "rescue"))
    lakehouse_cli(data_dir, "ingest", people_csv, "--name", "people")
    assert "rescue" not in lakehouse_cli(data_dir, "sql", "SELECT count(*) AS n FROM people").stderr
    shutil.rmtree(data_dir / "tables" / "people")
    result = lakehouse_cli(data_dir, "sql", "SELECT count(*) AS n FROM people", "--format", "json")
    assert json.loads(result.stdout) == [{"n": 3}]
    assert "rescue bucket" in result.stderr


# ---------------------------------------------------------------------- catalog, journal, maintenance
def test_catalog_list_show_tombstone_and_restore(data_dir, people_csv):
    lakehouse_cli(data_dir, "ingest", people_csv, "--name", "people")
    assert "people" in lakehouse_cli(data_dir, "catalog", "list").stdout
    shown = lakehouse_cli(data_dir, "catalog", "show", "people").stdout
    fingerprint = json.loads(lakehouse_cli(data_dir, "catalog", "list", "--json").stdout)[0]["fingerprint"]
    assert fingerprint in shown and "row_count" in shown
    lakehouse_cli(data_dir, "catalog", "tombstone", "people")
    assert "people" not in lakehouse_cli(data_dir, "catalog", "list").stdout
    assert "people" in lakehouse_cli(data_dir, "catalog", "list", "--all").stdout
    lakehouse_cli(data_dir, "sql", "SELECT * FROM people", expect_exit=1)
    lakehouse_cli(data_dir, "catalog", "restore", "people")
    assert sql_json(data_dir, "SELECT count(*) AS n FROM people") == [{"n": 3}]


def test_catalog_show_of_an_unknown_dataset_exits_1_with_not_found(data_dir):
    result = lakehouse_cli(data_dir, "catalog", "show", "nope", expect_exit=1)
    assert "NotFound" in result.stderr


def test_journal_lists_the_ingest_and_filters(data_dir, people_csv):
    lakehouse_cli(data_dir, "ingest", people_csv, "--name", "people")
    lakehouse_cli(data_dir, "catalog", "tombstone", "people")
    everything = lakehouse_cli(data_dir, "journal", "--dataset", "people").stdout
    assert "create" in everything and "tombstone" in everything and "cli-tester" in everything
    only = lakehouse_cli(data_dir, "journal", "--operation", "tombstone").stdout
    assert "tombstone" in only and "create" not in only
    assert "none" in lakehouse_cli(data_dir, "journal", "--actor", "somebody-else").stdout


def test_history_dedupe_compact_and_storage_commands_run(data_dir, people_csv, tmp_path):
    lakehouse_cli(data_dir, "ingest", people_csv, "--name", "people")
    more = tmp_path / "more.csv"
    more.write_text("id,name,city\n7,Ed,Kent\n")
    lakehouse_cli(data_dir, "ingest", more, "--name", "people")
    assert "history of people" in lakehouse_cli(data_dir, "catalog", "history", "people").stdout
    lakehouse_cli(data_dir, "catalog", "dedupe")
    assert "people" in lakehouse_cli(data_dir, "compact", "people").stdout
    lakehouse_cli(data_dir, "storage", "errors")
    lakehouse_cli(data_dir, "storage", "health")
    assert sql_json(data_dir, "SELECT count(*) AS n FROM people") == [{"n": 4}]


# ---------------------------------------------------------------------- falling back to the gateway
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningGateway:
    data_dir: Path
    url: str
    process: subprocess.Popen

    def stop(self) -> None:
        self.process.terminate()  # SIGTERM: uvicorn shuts down gracefully and the lock is released
        self.process.wait(timeout=20)


@pytest.fixture
def running_gateway(data_dir: Path, tmp_path: Path):
    """`lakehouse serve --port <free port>` in a subprocess. The port is not in the
    configuration, so the CLI must find the gateway through the URL it announces."""
    port = free_port()
    log_path = tmp_path / "gateway.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "lakehouse.cli", "--data-dir", str(data_dir), "serve", "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ),
        )
    gateway = RunningGateway(data_dir, f"http://127.0.0.1:{port}", process)
    try:
        wait_until_healthy(f"{gateway.url}/health", process, log_path)
        yield gateway
    finally:
        if process.poll() is None:
            gateway.stop()


def wait_until_healthy(url: str, process: subprocess.Popen, log_path: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"gateway exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            if httpx.get(url, timeout=1, trust_env=False).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"gateway not healthy after {timeout_s}s:\n{log_path.read_text()}")


def test_while_the_gateway_owns_the_data_dir_the_cli_talks_to_it_over_http(running_gateway, people_csv, tmp_path):
    data_dir = running_gateway.data_dir
    with pytest.raises(DataDirLocked):
        Lakehouse(data_dir)
    ingested = lakehouse_cli(data_dir, "ingest", people_csv, "--name", "people")
    assert "owned by the running gateway" in ingested.stderr
    assert "created" in ingested.stdout
    assert sql_json(data_dir, "SELECT name FROM people ORDER BY id") == [{"name": "Ana"}, {"name": "Bo"}, {"name": "Cy"}]
    assert "Toledo" in lakehouse_cli(data_dir, "sql", "SELECT city FROM people").stdout
    assert "city" in lakehouse_cli(data_dir, "sql", "SELECT city FROM people", "--format", "csv").stdout
    assert "people" in lakehouse_cli(data_dir, "catalog", "list").stdout
    lakehouse_cli(data_dir, "catalog", "tombstone", "people")
    assert "people" not in lakehouse_cli(data_dir, "catalog", "list").stdout
    lakehouse_cli(data_dir, "catalog", "restore", "people")
    # Changes were made by the gateway, so the actor is the API key's name, not the local user.
    journal = lakehouse_cli(data_dir, "journal", "--dataset", "people").stdout
    assert "create" in journal and "tombstone" in journal and "cli-tester" not in journal
    assert "ReadOnlyViolation" in lakehouse_cli(data_dir, "sql", "DROP TABLE people", expect_exit=1).stderr
    drifted = tmp_path / "people_v2.csv"
    drifted.write_text(PEOPLE_WITH_EMAIL_CSV)
    conflict = lakehouse_cli(data_dir, "ingest", drifted, "--name", "people", expect_exit=1)
    assert "SchemaConflict" in conflict.stderr
    [kept] = quarantined(data_dir)  # by the gateway, which says where
    assert f"kept in quarantine as {kept.relative_to(data_dir)}" in conflict.stderr
    lakehouse_cli(data_dir, "compact")
    lakehouse_cli(data_dir, "storage", "health")
    assert (data_dir / ".api_key").exists()  # no keys configured: the CLI used the generated one


def test_the_gateway_announces_its_url_only_while_it_runs(running_gateway, people_csv):
    announced = running_gateway.data_dir / ".gateway_url"
    assert announced.read_text().strip() == running_gateway.url
    assert gateway_serves(running_gateway.url, running_gateway.data_dir.resolve())
    assert not gateway_serves(running_gateway.url, running_gateway.data_dir.parent / "another")
    running_gateway.stop()
    assert running_gateway.process.returncode == 0  # a clean exit: the facade was closed
    assert not announced.exists()
    assert "created" in lakehouse_cli(running_gateway.data_dir, "ingest", people_csv, "--name", "people").stdout
    assert "owned by the running gateway" not in lakehouse_cli(running_gateway.data_dir, "catalog", "list").stderr


def test_a_lock_held_by_a_process_that_is_not_a_gateway_is_reported_as_such(data_dir, monkeypatch):
    monkeypatch.setenv("LAKEHOUSE_GATEWAY_PORT", str(free_port()))  # nothing listens there
    with Lakehouse(data_dir):
        result = lakehouse_cli(data_dir, "catalog", "list", expect_exit=1)
    assert "DataDirLocked" in result.stderr and "no gateway for it answers" in result.stderr
    assert "Traceback" not in result.output


@pytest.fixture
def initialised_data_dir(data_dir: Path) -> Path:
    lakehouse_cli(data_dir, "init")
    return data_dir


def test_the_cli_uses_the_key_from_lakehouse_toml_when_one_is_configured(initialised_data_dir, running_gateway, people_csv):
    data_dir = running_gateway.data_dir
    lakehouse_cli(data_dir, "ingest", people_csv, "--name", "people")
    assert sql_json(data_dir, "SELECT count(*) AS n FROM people") == [{"n": 3}]
    assert not (data_dir / ".api_key").exists()


def test_a_wrong_key_against_the_gateway_is_a_red_error_not_a_traceback(running_gateway, monkeypatch):
    monkeypatch.setenv("LAKEHOUSE_API_KEYS", "wrong-key:admin:mallory")
    result = lakehouse_cli(running_gateway.data_dir, "catalog", "list", expect_exit=1)
    assert "401" in result.stderr and "invalid API key" in result.stderr
    assert "Traceback" not in result.output


def test_serve_refuses_a_data_dir_another_process_owns(running_gateway):
    result = lakehouse_cli(running_gateway.data_dir, "serve", expect_exit=1)
    assert "DataDirLocked" in result.stderr


# ---------------------------------------------------------------------- demo data
def test_demo_data_writes_parquet_and_ingests_one_dataset_per_table(data_dir, tmp_path):
    from lakehouse.demo_data import table_sizes

    out = tmp_path / "demo"
    lakehouse_cli(data_dir, "demo-data", "--workers", "50", "--seed", "7", "--out", out)
    expected = table_sizes(50)
    assert {p.parent.name for p in out.rglob("*.parquet")} == set(expected)
    datasets = json.loads(lakehouse_cli(data_dir, "catalog", "list", "--json").stdout)
    assert {d["name"]: d["row_count"] for d in datasets} == expected
    assert sql_json(data_dir, "SELECT count(*) AS n FROM workers") == [{"n": 50}]


def test_demo_data_without_ingest_only_writes_files(data_dir, tmp_path):
    out = tmp_path / "demo"
    lakehouse_cli(data_dir, "demo-data", "--workers", "20", "--no-ingest", "--out", out)
    assert list(out.rglob("*.parquet"))
    assert json.loads(lakehouse_cli(data_dir, "catalog", "list", "--json").stdout) == []
