"""`/vectors/*` over HTTP and `lakehouse vectors ...` on the command line."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from lakehouse.cli import app as cli_app
from lakehouse.config import ApiKey, Config
from lakehouse.gateway import create_app
from lakehouse.lakehouse import Lakehouse
from test_vectors import PROFILES, profiles_table

ADMIN = {"X-API-Key": "admin-key"}
READER = {"X-API-Key": "reader-key"}


@pytest.fixture
def client(tmp_path: Path):
    config = Config.load(tmp_path / "data", env={})
    config.gateway.api_keys = [ApiKey("admin-key", "admin", "alice"), ApiKey("reader-key", "reader", "rita")]
    with Lakehouse(config=config) as lake:
        lake.ingest_table(profiles_table(), "workers")
        yield TestClient(create_app(lake, config))


def wait_for(client: TestClient, job: dict) -> dict:
    deadline = time.monotonic() + 60
    while job["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
        job = client.get(f"/vectors/jobs/{job['id']}", headers=ADMIN).json()
    return job


def test_an_index_built_as_a_background_job_is_searchable(client: TestClient):
    response = client.post("/vectors/index", json={"dataset": "workers", "text_columns": ["role", "bio"], "id_column": "worker_id"}, headers=ADMIN)
    assert response.status_code == 202, response.text
    job = wait_for(client, response.json()["job"])
    assert job["status"] == "succeeded", job
    assert job["progress"]["done"] == job["progress"]["total"] == len(PROFILES)
    found = client.post("/vectors/search", json={"index": "workers", "query": "arc welding of steel", "k": 2}, headers=READER)
    assert found.status_code == 200
    body = found.json()
    assert body["hits"][0]["doc_id"] == "w1" and body["version"] == 1
    assert set(body["latency_ms"]) >= {"embed_ms", "search_ms", "total_ms"}
    listed = client.get("/vectors/indexes", headers=READER).json()["indexes"]
    assert [(i["name"], i["active_version"], i["stale"]) for i in listed] == [("workers", 1, False)]


def test_refresh_promote_and_rollback_over_http(client: TestClient):
    client.post("/vectors/index", json={"dataset": "workers", "text_columns": ["bio"], "id_column": "worker_id", "wait": True}, headers=ADMIN)
    csv = b"worker_id,role,bio\nw20,Beekeeper,apiary beekeeper honey harvesting\n"
    assert client.post("/ingest/file", files={"file": ("workers.csv", csv, "text/csv")}, data={"name": "workers"}, headers=ADMIN).status_code in (200, 201)
    jobs = client.post("/vectors/refresh/workers", headers=ADMIN).json()["jobs"]
    assert wait_for(client, jobs[0])["result"]["embedded"] == 1
    versions = client.get("/vectors/indexes/workers/versions", headers=READER).json()
    assert versions["active"] == 2 and len(versions["versions"]) == 2
    assert client.post("/vectors/indexes/workers/rollback", headers=ADMIN).json()["to"] == 1
    assert client.post("/vectors/indexes/workers/promote", json={"version": 2}, headers=ADMIN).json()["to"] == 2


def test_errors_are_clear_4xx(client: TestClient):
    bad_column = client.post("/vectors/index", json={"dataset": "workers", "text_columns": ["nope"], "id_column": "worker_id"}, headers=ADMIN)
    assert bad_column.status_code == 400 and "nope" in bad_column.json()["message"]
    assert client.post("/vectors/search", json={"index": "ghost", "query": "x"}, headers=READER).status_code == 404
    assert client.post("/vectors/index", json={"dataset": "workers", "text_columns": ["bio"], "id_column": "worker_id"}, headers=READER).status_code == 403
    assert client.post("/vectors/refresh/ghost", headers=ADMIN).status_code == 404
    assert client.post("/vectors/indexes/ghost/rollback", headers=ADMIN).status_code == 404


def test_cli_builds_searches_and_lists(tmp_path: Path, monkeypatch):
    for var in [v for v in os.environ if v.startswith("LAKEHOUSE_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("COLUMNS", "200")
    data = tmp_path / "data"
    with Lakehouse(data) as lake:
        lake.ingest_table(profiles_table(), "workers")
    runner = CliRunner()
    built = runner.invoke(cli_app, ["--data-dir", str(data), "vectors", "index", "workers", "--text", "role", "--text", "bio", "--id", "worker_id"])
    assert built.exit_code == 0, built.output
    found = runner.invoke(cli_app, ["--data-dir", str(data), "vectors", "search", "workers", "truck driving job", "-k", "2"])
    assert found.exit_code == 0, found.output
    others = [f"w{i}" for i in (1, 2, 3, 4, 5, 6, 8) if f"w{i} " in found.output]
    assert "w7" in found.output and all(found.output.index("w7") < found.output.index(o) for o in others)
    listed = runner.invoke(cli_app, ["--data-dir", str(data), "vectors", "list"])
    assert "workers" in listed.output and "hnsw" in listed.output
