"""Profiles (named scopes): 403 outside the bindings with the allowed list, an audit
entry for every profile search, activation warming only the bound indexes (and applying
the profile's HNSW override), persistence across reopening, gateway and CLI."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from lakehouse import Lakehouse
from lakehouse.config import ApiKey, Config
from lakehouse.errors import InvalidInput, NotFound, OutOfScope
from lakehouse.vectors.profiles import Profiles
from test_vectors import profiles_table

CLIENTS = pa.table({
    "client_id": ["c1", "c2", "c3", "c4"],
    "notes": ["steel fabrication shop needing welders", "hospital ICU staffing", "warehouse distribution center", "restaurant group"],
})
THREATS = pa.table({"ioc": ["t1", "t2"], "summary": ["phishing domain impersonating payroll", "ransomware loader hash"]})


def build(lake: Lakehouse) -> Lakehouse:
    lake.ingest_table(profiles_table(), "workers")
    lake.ingest_table(CLIENTS, "clients")
    lake.ingest_table(THREATS, "threats")
    lake.vectors.create("workers", ["role", "bio"], "worker_id")
    lake.vectors.create("clients", ["notes"], "client_id")
    lake.vectors.create("threats", ["summary"], "ioc")
    return lake


@pytest.fixture
def lake(lh: Lakehouse) -> Lakehouse:
    return build(lh)


def test_a_search_outside_the_bindings_is_refused_listing_the_allowed_indexes(lake: Lakehouse):
    profiles = Profiles(lake.vectors)
    profiles.put("recruiting", ["workers", "clients"])
    assert profiles.search("recruiting", "workers", "arc welding", 2, actor="sarah")["hits"][0]["doc_id"] == "w1"
    with pytest.raises(OutOfScope) as refused:
        profiles.search("recruiting", "threats", "phishing", 2, actor="sarah")
    message, details = refused.value.args
    assert "threats" in message and "['clients', 'workers']" in message
    assert details == {"profile": "recruiting", "index": "threats", "allowed": ["clients", "workers"]}
    with pytest.raises(NotFound):
        profiles.search("nobody", "workers", "welder", 2)


def test_a_dataset_binding_allows_every_index_over_that_dataset(lake: Lakehouse):
    lake.vectors.create("workers", ["bio"], "worker_id", name="workers_bio")
    profiles = Profiles(lake.vectors)
    assert profiles.put("by_dataset", ["workers"])["allowed_indexes"] == ["workers", "workers_bio"]
    assert profiles.search("by_dataset", "workers_bio", "nurse", 1)["hits"][0]["doc_id"] == "w3"


def test_every_profile_search_is_audited_with_its_actor(lake: Lakehouse):
    profiles = Profiles(lake.vectors)
    profiles.put("recruiting", ["workers"])
    profiles.put("security", ["threats"])
    t0 = datetime.now(timezone.utc) - timedelta(seconds=1)
    profiles.search("recruiting", "workers", "forklift night shift", 3, actor="sarah")
    profiles.search("recruiting", "workers", "ICU nurse", 2, actor="kim")
    with pytest.raises(OutOfScope):
        profiles.search("recruiting", "threats", "ransomware", 2, actor="kim")
    profiles.search("security", "threats", "ransomware", 1, actor="sec-analyst")

    entries = profiles.audit()
    assert [(e["actor"], e["profile"], e["index"], e["status"]) for e in entries] == [
        ("sarah", "recruiting", "workers", "ok"),
        ("kim", "recruiting", "workers", "ok"),
        ("kim", "recruiting", "threats", "refused"),
        ("sec-analyst", "security", "threats", "ok"),
    ]
    first = entries[0]
    assert first["query"] == "forklift night shift" and first["k"] == 3 and first["results"] == 3
    assert datetime.fromisoformat(first["at"]) >= t0
    assert entries[2]["results"] == 0 and "outside profile" in entries[2]["error"]
    assert [e["actor"] for e in profiles.audit(profile="recruiting", actor="kim")] == ["kim", "kim"]
    assert len(profiles.audit(profile="security")) == 1
    assert profiles.audit(since=(datetime.now(timezone.utc) + timedelta(minutes=1)).isoformat()) == []
    assert len(profiles.audit(since=t0.isoformat())) == 4 and len(profiles.audit(limit=1)) == 1
    with pytest.raises(InvalidInput):
        profiles.audit(since="yesterday-ish")


def test_activate_warms_only_the_bound_indexes(lake: Lakehouse):
    Profiles(lake.vectors).put("recruiting", ["workers", "clients"])
    path = lake.path
    lake.close()
    with Lakehouse(path) as reopened:
        assert reopened.vectors._active == {}  # nothing opened yet after a restart
        result = Profiles(reopened.vectors).activate("recruiting", actor="sarah")
        assert result["warmed"] == ["clients", "workers"] and result["hnsw_applied"] == []
        assert set(reopened.vectors._active) == {"clients", "workers"}  # threats stays cold
        assert Profiles(reopened.vectors).get("recruiting")["activated_by"] == "sarah"


def test_activate_applies_the_profile_hnsw_override_once(lake: Lakehouse):
    profiles = Profiles(lake.vectors)
    profiles.put("fast", ["workers"], hnsw={"ef_search": 40}, vector_backend="hnsw", embedding_model="nomic-embed-text")
    assert profiles.pending_hnsw("fast") == [{"index": "workers", "from": {"ef_search": 64}, "to": {"ef_search": 40}}]
    first = profiles.activate("fast")
    assert [(a["index"], a["changed"], a["version"]) for a in first["hnsw_applied"]] == [("workers", True, 2)]
    versions = lake.vectors.versions("workers")
    assert versions["active"] == 2 and versions["versions"][-1]["params"]["ef_search"] == 40
    assert "profile 'fast'" in versions["history"][-1]["reason"]
    assert any("nomic-embed-text" in note for note in first["notes"])  # the index keeps its own model
    assert profiles.pending_hnsw("fast") == [] and profiles.activate("fast")["hnsw_applied"] == []
    assert lake.vectors.search("workers", "truck driver", 1)["hits"][0]["doc_id"] == "w7"


def test_profiles_survive_reopening_the_data_directory(lake: Lakehouse):
    profiles = Profiles(lake.vectors)
    saved = profiles.put("recruiting", ["workers"], hnsw={"ef_search": 48}, vector_backend="hnsw", bucket="primary",
                         embedding_model="all-MiniLM-L6-v2", description="day shift recruiters", actor="admin")
    profiles.put("temp", ["clients"])
    profiles.remove("temp")
    profiles.search("recruiting", "workers", "welder", 1, actor="sarah")
    path = lake.path
    lake.close()
    with Lakehouse(path) as reopened:
        again = Profiles(reopened.vectors)
        assert [p["name"] for p in again.list()] == ["recruiting"]
        assert again.get("recruiting") == saved
        assert [e["actor"] for e in again.audit()] == ["sarah"]
        assert again.search("recruiting", "workers", "welder", 1)["hits"][0]["doc_id"] == "w1"
        with pytest.raises(OutOfScope):
            again.search("recruiting", "clients", "hospital", 1)


def test_bad_profiles_are_refused_clearly(lake: Lakehouse):
    profiles = Profiles(lake.vectors)
    with pytest.raises(InvalidInput, match="ghost"):
        profiles.put("p", ["ghost"])
    with pytest.raises(InvalidInput):
        profiles.put("bad name!", ["workers"])
    with pytest.raises(InvalidInput, match="reserved"):  # GET /vectors/profiles/audit is the audit log
        profiles.put("audit", ["workers"])
    with pytest.raises(InvalidInput):
        profiles.put("p", [])
    with pytest.raises(InvalidInput):
        profiles.put("p", ["workers"], vector_backend="faiss")
    with pytest.raises(InvalidInput):
        profiles.put("p", ["workers"], hnsw={"beam": 3})
    with pytest.raises(NotFound):
        profiles.remove("p")


# ---------------------------------------------------------------------- gateway and CLI
ADMIN = {"X-API-Key": "admin-key"}
READER = {"X-API-Key": "reader-key"}


@pytest.fixture
def client(tmp_path: Path):
    from lakehouse.gateway import create_app
    from lakehouse.gateway.routes_vector_admin import router

    config = Config.load(tmp_path / "data", env={})
    config.gateway.api_keys = [ApiKey("admin-key", "admin", "alice"), ApiKey("reader-key", "reader", "rita")]
    with Lakehouse(config=config) as lake:
        build(lake)
        app = create_app(lake, config)
        if not any(getattr(r, "path", "") == "/vectors/profiles" for r in app.routes):
            app.include_router(router)  # until app.py includes it
        yield TestClient(app)


def test_profiles_over_http_refuse_with_403_and_audit(client: TestClient):
    body = {"name": "recruiting", "bound": ["workers", "clients"], "hnsw": {"ef_search": 64}}
    assert client.post("/vectors/profiles", json=body, headers=READER).status_code == 403
    created = client.post("/vectors/profiles", json=body, headers=ADMIN)
    assert created.status_code == 201 and created.json()["allowed_indexes"] == ["clients", "workers"]
    assert [p["name"] for p in client.get("/vectors/profiles", headers=READER).json()["profiles"]] == ["recruiting"]

    activated = client.post("/vectors/profiles/recruiting/activate", headers=READER)
    assert activated.status_code == 200 and activated.json()["warmed"] == ["clients", "workers"]
    found = client.post("/vectors/profiles/recruiting/search", json={"index": "workers", "query": "CDL truck", "k": 2}, headers=READER)
    assert found.status_code == 200 and found.json()["hits"][0]["doc_id"] == "w7" and found.json()["profile"] == "recruiting"
    refused = client.post("/vectors/profiles/recruiting/search", json={"index": "threats", "query": "phishing"}, headers=READER)
    assert refused.status_code == 403
    assert refused.json()["error"] == "OutOfScope" and refused.json()["allowed"] == ["clients", "workers"]
    assert client.post("/vectors/profiles/ghost/search", json={"index": "workers", "query": "x"}, headers=READER).status_code == 404

    audit = client.get("/vectors/profiles/audit", params={"profile": "recruiting"}, headers=READER).json()["entries"]
    assert [(e["actor"], e["index"], e["status"]) for e in audit] == [("rita", "workers", "ok"), ("rita", "threats", "refused")]
    assert client.get("/vectors/profiles/audit", params={"actor": "alice"}, headers=READER).json()["entries"] == []
    assert client.delete("/vectors/profiles/recruiting", headers=READER).status_code == 403
    assert client.delete("/vectors/profiles/recruiting", headers=ADMIN).status_code == 200
    assert client.get("/vectors/profiles/recruiting", headers=READER).status_code == 404


def test_cli_manages_profiles_and_shows_the_audit(tmp_path: Path, monkeypatch):
    for var in [v for v in os.environ if v.startswith("LAKEHOUSE_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("COLUMNS", "220")
    from test_autotune import _cli_app

    data = tmp_path / "data"
    with Lakehouse(data) as lake:
        build(lake)
    app, runner = _cli_app(), CliRunner()
    run = lambda *args: runner.invoke(app, ["--data-dir", str(data), *args])  # noqa: E731
    added = run("profiles", "add", "recruiting", "--bind", "workers", "--bind", "clients", "--hnsw", "ef=64")
    assert added.exit_code == 0, added.output
    assert "recruiting" in run("profiles", "list").output
    activated = run("profiles", "activate", "recruiting")
    assert activated.exit_code == 0 and "warmed" in activated.output
    assert run("profiles", "search", "recruiting", "workers", "registered nurse", "-k", "1").exit_code == 0
    refused = run("profiles", "search", "recruiting", "threats", "phishing")
    assert refused.exit_code != 0 and "allowed" in refused.output
    audit = run("profiles", "audit", "--profile", "recruiting")
    assert audit.exit_code == 0 and "refused" in audit.output and "registered nurse" in audit.output
    assert run("profiles", "remove", "recruiting").exit_code == 0
    assert "none" in run("profiles", "list").output
