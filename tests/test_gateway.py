"""The HTTP gateway over a real data directory (real facade, real core)."""

from __future__ import annotations

import base64
import json
import logging
import math
import shutil
import stat
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from lakehouse.config import ApiKey, Config
from lakehouse.errors import LakehouseError
from lakehouse.gateway import create_app
from lakehouse.gateway.serialize import ARROW_STREAM_MEDIA_TYPE, table_to_json
from lakehouse.gateway.api_errors import ApiError
from lakehouse.gateway.uploads import path_inside, safe_filename
from lakehouse.lakehouse import Lakehouse

ADMIN_KEY = "admin-key-for-tests"
READER_KEY = "reader-key-for-tests"
PEOPLE_CSV = b"id,name,city\n1,Ana,Toledo\n2,Bo,Akron\n3,Cy,Dayton\n"
PEOPLE_WITH_EMAIL_CSV = b"id,name,city,email\n4,Di,Lima,di@example.com\n"


# ---------------------------------------------------------------------- fixtures & helpers
@pytest.fixture
def config(tmp_path: Path) -> Config:
    config = Config.load(tmp_path / "data", env={})
    config.gateway.api_keys = [ApiKey(ADMIN_KEY, "admin", "alice"), ApiKey(READER_KEY, "reader", "rita")]
    return config


@pytest.fixture
def lakehouse(config: Config):
    with Lakehouse(config=config) as lakehouse:
        yield lakehouse


@pytest.fixture
def client(lakehouse: Lakehouse, config: Config) -> TestClient:
    return TestClient(create_app(lakehouse, config))


def auth(key: str = ADMIN_KEY) -> dict[str, str]:
    return {"X-API-Key": key}


def upload(client: TestClient, content: bytes, filename: str = "people.csv", key: str = ADMIN_KEY, **fields: str):
    return client.post("/ingest/file", files={"file": (filename, content, "text/csv")}, data=fields, headers=auth(key))


def query(client: TestClient, sql: str, **options):
    return client.post("/query/sql", json={"sql": sql, **options}, headers=auth())


def files_under(root: Path, excluding: Path | None = None) -> set[Path]:
    return {p for p in root.rglob("*") if excluding is None or excluding not in p.parents and p != excluding}


def quarantined(lakehouse: Lakehouse) -> list[Path]:
    folder = lakehouse.path / "_quarantine"
    return sorted(p for p in folder.iterdir() if not p.name.endswith(".error.json")) if folder.exists() else []


def upload_leftovers(lakehouse: Lakehouse) -> list[Path]:
    folder = lakehouse.path / "_uploads"
    return list(folder.rglob("*")) if folder.exists() else []


# ---------------------------------------------------------------------- auth, docs, health
def test_health_is_open_and_reports_version_data_dir_and_dataset_count(client, lakehouse):
    upload(client, PEOPLE_CSV, name="people")
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["data_dir"] == str(lakehouse.path)
    assert body["datasets"] == 1
    assert body["version"]
    assert body["uptime_s"] >= 0


@pytest.mark.parametrize("method,path", [
    ("GET", "/catalog/datasets"), ("GET", "/catalog/datasets/people"), ("POST", "/query/sql"), ("GET", "/journal"),
    ("GET", "/storage/errors"), ("GET", "/storage/bucket-health"), ("POST", "/catalog/dedupe"), ("POST", "/ingest/file"),
])
def test_every_route_but_health_refuses_a_request_without_a_key(client, method, path):
    response = client.request(method, path)
    assert response.status_code == 401
    assert response.json()["error"] == "Unauthorized"
    assert "X-API-Key" in response.json()["message"]
    assert response.headers["www-authenticate"] == "Bearer"


def test_no_request_could_be_answered_by_routes_of_two_routers(client):
    """The app includes its routers busiest first (a hybrid search is matched before the
    admin routes). That is only safe while no request matches routes of two routers, so
    the order of inclusion decides nothing but speed. (Within one router the order of
    declaration does decide: `/vectors/profiles/audit` is declared before
    `/vectors/profiles/{name}`.)"""
    import re

    from starlette.routing import Match

    routes = []  # (route, method, index of its router)
    for at, entry in enumerate(client.app.router.routes):
        for route in getattr(getattr(entry, "original_router", None), "routes", [entry]):
            routes += [(route, method, at) for method in getattr(route, "methods", None) or ()]
    assert any(route.path == "/vectors/hybrid" for route, _, _ in routes) and len(routes) > 40
    for route, method, router in routes:
        concrete = re.sub(r"\{[^}]+\}", "some-name", route.path)
        scope = {"type": "http", "path": concrete, "method": method, "root_path": ""}
        answering = {(at, r.path) for r, m, at in routes if m == method and r.matches(scope)[0] == Match.FULL}
        assert {at for at, _ in answering} == {router}, f"{method} {concrete} is answered by {sorted(answering)}"


def test_a_wrong_key_is_refused_and_a_right_one_accepted_in_either_header(client):
    assert client.get("/catalog/datasets", headers=auth("not-a-key")).status_code == 401
    assert client.get("/catalog/datasets", headers=auth("not-a-key")).json()["message"] == "invalid API key"
    assert client.get("/catalog/datasets", headers=auth()).status_code == 200
    assert client.get("/catalog/datasets", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).status_code == 200


def test_upload_without_a_key_writes_nothing(client, lakehouse):
    response = client.post("/ingest/file", files={"file": ("people.csv", PEOPLE_CSV)})
    assert response.status_code == 401
    assert upload_leftovers(lakehouse) == []
    assert lakehouse.datasets() == []


def test_a_read_only_key_can_read_but_not_change_data(client):
    upload(client, PEOPLE_CSV, name="people")
    assert client.get("/catalog/datasets", headers=auth(READER_KEY)).status_code == 200
    refused = client.post("/catalog/datasets/people/tombstone", headers=auth(READER_KEY))
    assert refused.status_code == 403
    assert "read-only" in refused.json()["message"]
    assert upload(client, PEOPLE_WITH_EMAIL_CSV, name="other", key=READER_KEY).status_code == 403
    assert [d["name"] for d in client.get("/catalog/datasets", headers=auth()).json()] == ["people"]


def test_openapi_schema_and_docs_are_served_without_a_key(client):
    schema = client.get("/openapi.json")
    assert schema.status_code == 200
    spec = schema.json()
    assert spec["info"]["title"] == "Lakehouse gateway"
    assert {"/health", "/ingest/file", "/query/sql", "/catalog/datasets", "/journal"} <= set(spec["paths"])
    assert "multipart/form-data" in spec["paths"]["/ingest/file"]["post"]["requestBody"]["content"]
    assert any(s.get("name") == "X-API-Key" for s in spec["components"]["securitySchemes"].values())
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "text/html" in docs.headers["content-type"]


def test_without_configured_keys_a_key_is_generated_into_a_private_file(tmp_path, caplog):
    config = Config.load(tmp_path / "data", env={})
    with Lakehouse(config=config) as lakehouse:
        with caplog.at_level(logging.INFO, logger="lakehouse.gateway"):
            client = TestClient(create_app(lakehouse, config))
        key_file = lakehouse.path / ".api_key"
        key = key_file.read_text().strip()
        assert len(key) >= 32
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert str(key_file) in caplog.text
        assert key not in caplog.text
        assert client.get("/catalog/datasets", headers=auth(key)).status_code == 200
        assert client.get("/catalog/datasets", headers=auth("guess")).status_code == 401
        create_app(lakehouse, config)  # a restart keeps the key clients already use
        assert key_file.read_text().strip() == key


def test_cors_allows_localhost_origins_only(client):
    def preflight(origin: str):
        return client.options("/query/sql", headers={"Origin": origin, "Access-Control-Request-Method": "POST"})

    allowed = preflight("http://localhost:5173")
    assert allowed.headers.get("access-control-allow-origin") == "http://localhost:5173"
    assert "access-control-allow-origin" not in preflight("https://evil.example").headers


# ---------------------------------------------------------------------- ingest
def test_upload_csv_creates_the_dataset_with_201_and_it_is_queryable_at_once(client):
    response = upload(client, PEOPLE_CSV, name="people")
    assert response.status_code == 201, response.text
    result = response.json()
    assert (result["dataset"], result["status"], result["rows_written"], result["total_rows"]) == ("people", "created", 3, 3)
    assert result["fingerprint"]
    rows = query(client, "SELECT id, name, city FROM people ORDER BY id").json()
    assert rows["columns"] == ["id", "name", "city"]
    assert rows["rows"] == [[1, "Ana", "Toledo"], [2, "Bo", "Akron"], [3, "Cy", "Dayton"]]
    assert rows["row_count"] == 3


def test_upload_without_a_name_derives_the_dataset_name_from_the_file_name(client):
    response = upload(client, PEOPLE_CSV, filename="Open Workers.csv")
    assert response.status_code == 201, response.text
    assert response.json()["dataset"] == "open_workers"


def test_the_same_upload_again_is_a_200_noop_that_writes_nothing(client):
    first = upload(client, PEOPLE_CSV, name="people").json()
    again = upload(client, PEOPLE_CSV, name="people")
    assert again.status_code == 200
    assert again.json()["status"] == "noop"
    assert again.json()["rows_written"] == 0
    assert again.json()["version"] == first["version"]
    assert query(client, "SELECT count(*) AS n FROM people").json()["rows"] == [[3]]


def test_appending_new_rows_with_the_same_schema_answers_200_appended(client):
    upload(client, PEOPLE_CSV, name="people")
    more = upload(client, b"id,name,city\n7,Ed,Kent\n", filename="more.csv", name="people")
    assert more.status_code == 200
    assert (more.json()["status"], more.json()["total_rows"]) == ("appended", 4)


def test_a_different_schema_under_the_same_name_is_409_with_both_fingerprints_and_the_diff(client, lakehouse):
    first = upload(client, PEOPLE_CSV, name="people").json()
    response = upload(client, PEOPLE_WITH_EMAIL_CSV, filename="people_v2.csv", name="people")
    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "SchemaConflict"
    assert body["existing_fingerprint"] == first["fingerprint"]
    assert body["incoming_fingerprint"] not in ("", first["fingerprint"])
    assert {"change": "added", "column": "email"}.items() <= body["diff"]["columns"][0].items()
    assert first["fingerprint"] in body["message"] and body["incoming_fingerprint"] in body["message"]
    assert query(client, "SELECT count(*) AS n FROM people").json()["rows"] == [[3]]  # nothing was written


def test_a_rejected_upload_is_kept_in_quarantine_with_the_reason(client, lakehouse):
    upload(client, PEOPLE_CSV, name="people")
    response = upload(client, PEOPLE_WITH_EMAIL_CSV, filename="people_v2.csv", name="people")
    [kept] = quarantined(lakehouse)
    assert kept.name.endswith("_people_v2.csv")
    assert kept.read_bytes() == PEOPLE_WITH_EMAIL_CSV
    assert response.json()["quarantined_as"] == str(kept.relative_to(lakehouse.path))
    reason = json.loads(kept.with_name(kept.name + ".error.json").read_text())
    assert reason["error"] == "SchemaConflict"
    assert reason["status"] == 409
    assert reason["original_filename"] == "people_v2.csv"
    assert reason["existing_fingerprint"] == response.json()["existing_fingerprint"]
    assert upload_leftovers(lakehouse) == []


def test_an_unparseable_file_is_quarantined_and_answers_4xx(client, lakehouse):
    response = upload(client, b"\x00\x01 definitely not a table", filename="garbage.parquet", name="garbage")
    assert 400 <= response.status_code < 500, response.text
    assert [p.name.split("_", 1)[1] for p in quarantined(lakehouse)] == ["garbage.parquet"]


@pytest.mark.parametrize("filename", ["../../../../escape.csv", "..\\..\\..\\..\\escape.csv", "/tmp/../../escape.csv"])
def test_a_path_traversal_filename_writes_nothing_outside_the_data_dir(client, lakehouse, tmp_path, filename):
    outside = tmp_path.parent.resolve()
    outside_before = files_under(outside, excluding=lakehouse.path)
    response = upload(client, PEOPLE_CSV, filename=filename)
    assert response.status_code == 201, response.text
    assert response.json()["dataset"] == "escape"  # only the basename survived
    failed = upload(client, PEOPLE_WITH_EMAIL_CSV, filename=filename, name="escape")
    assert failed.status_code == 409
    assert files_under(outside, excluding=lakehouse.path) == outside_before
    assert all(lakehouse.path in p.parents for p in quarantined(lakehouse))


@pytest.mark.parametrize("client_name,safe", [
    ("../../etc/passwd", "passwd"), ("..", "upload"), ("", "upload"), (".hidden.csv", "hidden.csv"),
    ("a b;c$(rm -rf).csv", "a_b_c_rm_-rf_.csv"), ("C:\\Users\\x\\w.csv", "w.csv"),
])
def test_safe_filename_keeps_a_harmless_basename(client_name, safe):
    assert safe_filename(client_name) == safe


@pytest.mark.parametrize("name", ["../x.csv", "/etc/x.csv", "a/b.csv", "..", "."])
def test_path_inside_refuses_names_that_leave_the_directory(tmp_path, name):
    with pytest.raises(ApiError):
        path_inside(tmp_path, name)
    assert path_inside(tmp_path, "ok.csv") == tmp_path / "ok.csv"


@pytest.mark.parametrize("size", [1_000, 200_000])  # streamed past the limit / refused by Content-Length
def test_an_upload_over_the_size_limit_is_413_and_leaves_nothing_behind(client, lakehouse, config, size):
    config.gateway.max_upload_bytes = 64
    response = upload(client, b"id,name\n" + b"1,x\n" * (size // 4), name="big")
    assert response.status_code == 413
    assert response.json()["error"] == "UploadTooLarge"
    assert "max_upload_bytes" in response.json()["message"]
    assert upload_leftovers(lakehouse) == []
    assert lakehouse.datasets() == []


def test_an_invalid_mode_is_400_and_is_not_quarantined(client, lakehouse):
    response = upload(client, PEOPLE_CSV, name="people", mode="merge")
    assert response.status_code == 400
    assert response.json()["error"] == "InvalidInput"
    assert quarantined(lakehouse) == [] and upload_leftovers(lakehouse) == []


def test_replace_mode_swaps_the_content(client):
    upload(client, PEOPLE_CSV, name="people")
    response = upload(client, PEOPLE_WITH_EMAIL_CSV, filename="v2.csv", name="people", mode="replace")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "replaced"
    assert query(client, "SELECT email FROM people").json()["rows"] == [["di@example.com"]]


def test_a_request_without_a_file_part_is_400(client):
    response = client.post("/ingest/file", data={"name": "x"}, files={"other": ("a.csv", b"a\n1\n")}, headers=auth())
    assert response.status_code == 400
    assert response.json()["error"] == "InvalidUpload"


# ---------------------------------------------------------------------- query
@pytest.mark.parametrize("sql", [
    "DROP TABLE people",
    "COPY people TO '/tmp/lakehouse-copy-out.csv'",
    "CREATE EXTERNAL TABLE ext STORED AS CSV LOCATION '/etc/passwd'",
    "INSERT INTO people VALUES (9, 'Zed', 'Lima')",
    "SELECT * FROM '/etc/passwd'",
])
def test_sql_that_is_not_a_read_only_query_is_400_with_a_clear_message(client, sql):
    upload(client, PEOPLE_CSV, name="people")
    response = query(client, sql)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "ReadOnlyViolation"
    assert "read-only" in body["message"]
    assert response.headers["X-Lakehouse-Rescue-Used"] == "false"
    assert query(client, "SELECT count(*) FROM people").json()["rows"] == [[3]]


def test_a_query_reports_whether_the_rescue_bucket_was_used(client):
    upload(client, PEOPLE_CSV, name="people")
    response = query(client, "SELECT 1 AS one")
    assert response.headers["X-Lakehouse-Rescue-Used"] == "false"
    assert response.json()["rows"] == [[1]]


def test_query_limit_truncates_and_says_so(client):
    upload(client, PEOPLE_CSV, name="people")
    body = query(client, "SELECT id FROM people ORDER BY id", limit=2).json()
    assert body["rows"] == [[1], [2]]
    assert body["row_count"] == 2 and body["truncated"] is True
    assert query(client, "SELECT id FROM people", limit=10).json()["truncated"] is False


def test_query_in_arrow_format_returns_an_ipc_stream(client):
    upload(client, PEOPLE_CSV, name="people")
    response = query(client, "SELECT id, name FROM people ORDER BY id", format="arrow")
    assert response.status_code == 200
    assert response.headers["content-type"] == ARROW_STREAM_MEDIA_TYPE
    assert response.headers["X-Lakehouse-Rescue-Used"] == "false"
    table = pa.ipc.open_stream(response.content).read_all()
    assert table.column_names == ["id", "name"]
    assert table.column("name").to_pylist() == ["Ana", "Bo", "Cy"]


def test_rows_by_key_answer_in_the_order_asked_and_a_bad_column_is_400(client):
    upload(client, PEOPLE_CSV, name="people")
    body = {"dataset": "people", "key": "id", "keys": [3, "9", "1"], "columns": ["id", "name"]}
    response = client.post("/query/lookup", json=body, headers=auth())
    assert response.status_code == 200
    assert response.json()["rows"] == [[3, "Cy"], [1, "Ana"]]
    bad = client.post("/query/lookup", json={**body, "columns": ["salary"]}, headers=auth())
    assert bad.status_code == 400 and "salary" in bad.json()["message"]
    assert client.post("/query/lookup", json={**body, "dataset": "nobody"}, headers=auth()).status_code == 404


def test_query_values_are_made_json_safe(client, lakehouse):
    typed = pa.table({
        "day": pa.array([date(2024, 5, 6)], pa.date32()),
        "at": pa.array([datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)], pa.timestamp("us", tz="UTC")),
        "pay": pa.array([Decimal("12.50")], pa.decimal128(10, 2)),
        "blob": pa.array([b"\x00\xff"], pa.binary()),
        "ratio": pa.array([math.nan], pa.float64()),
    })
    lakehouse.ingest_table(typed, "typed")
    body = query(client, "SELECT day, at, pay, blob, ratio FROM typed").json()
    [[day, at, pay, blob, ratio]] = body["rows"]
    assert day == "2024-05-06"
    assert at.startswith("2024-05-06T07:08:09")
    assert pay == "12.50"
    assert base64.b64decode(blob) == b"\x00\xff"
    assert ratio is None


def test_json_conversion_of_arrow_values_is_exact():
    table = pa.table({
        "d": pa.array([date(2020, 1, 2), None], pa.date32()),
        "ts": pa.array([datetime(2020, 1, 2, 3, 4, 5), None], pa.timestamp("s")),
        "dec": pa.array([Decimal("1.10"), None], pa.decimal128(5, 2)),
        "b": pa.array([b"hi", None], pa.binary()),
        "f": pa.array([math.inf, 1.5]),
        "l": pa.array([[date(2020, 1, 2)], []], pa.list_(pa.date32())),
    })
    assert table_to_json(table)["rows"] == [
        ["2020-01-02", "2020-01-02T03:04:05", "1.10", "aGk=", None, ["2020-01-02"]],
        [None, None, None, None, 1.5, []],
    ]


# ---------------------------------------------------------------------- catalog
def test_an_unknown_dataset_is_404(client):
    response = client.get("/catalog/datasets/nope", headers=auth())
    assert response.status_code == 404
    assert response.json()["error"] == "NotFound"
    assert "nope" in response.json()["message"]
    assert client.post("/catalog/datasets/nope/tombstone", headers=auth()).status_code == 404


def test_tombstone_hides_a_dataset_and_restore_brings_it_back(client):
    upload(client, PEOPLE_CSV, name="people")
    tombstoned = client.post("/catalog/datasets/people/tombstone", headers=auth())
    assert tombstoned.status_code == 200
    assert tombstoned.json()["tombstoned"] is True
    assert client.get("/catalog/datasets", headers=auth()).json() == []
    listed = client.get("/catalog/datasets", params={"include_tombstoned": True}, headers=auth()).json()
    assert [(d["name"], d["tombstoned"]) for d in listed] == [("people", True)]
    assert query(client, "SELECT * FROM people").status_code in (400, 404)
    assert client.post("/catalog/datasets/people/restore", headers=auth()).status_code == 200
    assert query(client, "SELECT count(*) FROM people").json()["rows"] == [[3]]


def test_dataset_manifest_history_dedupe_and_compact(client):
    first = upload(client, PEOPLE_CSV, name="people").json()
    upload(client, b"id,name,city\n7,Ed,Kent\n", filename="more.csv", name="people")
    manifest = client.get("/catalog/datasets/people", headers=auth()).json()
    assert (manifest["name"], manifest["fingerprint"], manifest["row_count"]) == ("people", first["fingerprint"], 4)
    history = client.get("/catalog/datasets/people/history", headers=auth())
    assert history.status_code == 200 and len(history.json()) >= 2
    assert client.post("/catalog/dedupe", headers=auth()).status_code == 200
    compacted = client.post("/catalog/compact", json={"dataset": "people"}, headers=auth())
    assert compacted.status_code == 200, compacted.text
    assert [r["dataset"] for r in compacted.json()] == ["people"]
    assert client.post("/catalog/compact", headers=auth()).status_code == 200  # body is optional
    assert query(client, "SELECT count(*) FROM people").json()["rows"] == [[4]]


# ---------------------------------------------------------------------- journal & storage
def test_the_journal_lists_the_ingest_with_the_key_name_as_actor(client):
    upload(client, PEOPLE_CSV, name="people")
    client.post("/catalog/datasets/people/tombstone", headers=auth())
    events = sorted(client.get("/journal", params={"dataset": "people"}, headers=auth()).json(), key=lambda e: e["seq"])
    assert [(e["operation"], e["actor"], e["dataset"]) for e in events] == [("create", "alice", "people"), ("tombstone", "alice", "people")]
    only = client.get("/journal", params={"operation": "tombstone"}, headers=auth()).json()
    assert [e["operation"] for e in only] == ["tombstone"]
    assert client.get("/journal", params={"actor": "nobody"}, headers=auth()).json() == []


def test_storage_errors_and_bucket_health_answer_lists(client):
    errors = client.get("/storage/errors", headers=auth())
    health = client.get("/storage/bucket-health", headers=auth())
    assert errors.status_code == 200 and isinstance(errors.json(), list)
    assert health.status_code == 200 and isinstance(health.json(), list) and health.json()


# ---------------------------------------------------------------------- errors & logging
def test_an_unwritable_bucket_is_503_with_the_bucket_named_and_the_failure_journaled(client, lakehouse):
    tables = lakehouse.path / "tables"
    if tables.exists():
        shutil.rmtree(tables)
    tables.write_text("a file where the primary bucket's directory should be")
    response = upload(client, PEOPLE_CSV, name="people")
    assert response.status_code == 503
    body = response.json()
    assert (body["error"], body["bucket"], body["operation"]) == ("BucketUnavailable", "primary", "write")
    assert quarantined(lakehouse)  # the upload is not lost
    errors = client.get("/storage/errors", headers=auth()).json()
    assert [(e["bucket"], e["operation"], e["target"]) for e in errors] == [("primary", "write", "people")]
    health = client.get("/storage/bucket-health", headers=auth()).json()
    assert [h["writable"] for h in health if h["bucket"] == "primary"] == [False]


def test_a_read_served_from_the_rescue_bucket_says_so_in_a_header(tmp_path, config):
    config.storage.rescue_dir = str(tmp_path / "rescue")
    with Lakehouse(config=config) as lakehouse:
        lakehouse.ingest_table(pa.table({"id": [1, 2]}), "people")
    shutil.rmtree(config.data_path / "tables" / "people")  # the primary copy is gone
    with Lakehouse(config=config) as lakehouse:
        response = query(TestClient(create_app(lakehouse, config)), "SELECT count(*) AS n FROM people")
    assert response.status_code == 200
    assert response.json()["rows"] == [[2]]
    assert response.headers["X-Lakehouse-Rescue-Used"] == "true"


def test_an_unexpected_error_is_a_generic_500_with_the_traceback_only_in_the_log(client, lakehouse, monkeypatch, caplog):
    def broken(*_args):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(lakehouse, "datasets", broken)
    with caplog.at_level(logging.INFO, logger="lakehouse.gateway"):
        response = client.get("/catalog/datasets", headers=auth())
    assert response.status_code == 500
    assert response.json()["error"] == "InternalError"
    assert "secret internals" not in response.text
    assert "RuntimeError: secret internals" in caplog.text
    assert "GET /catalog/datasets -> 500" in caplog.text


def test_an_internal_core_error_is_a_generic_500_too(client, lakehouse, monkeypatch, caplog):
    def failing(*_args):
        raise LakehouseError("internal error: I/O: /srv/secret/path unreadable")

    monkeypatch.setattr(lakehouse, "storage_errors", failing)
    with caplog.at_level(logging.INFO, logger="lakehouse.gateway"):
        response = client.get("/storage/errors", headers=auth())
    assert response.status_code == 500
    assert response.json()["error"] == "InternalError"
    assert "/srv/secret/path" not in response.text
    assert "/srv/secret/path" in caplog.text


def test_each_request_is_logged_with_method_path_status_and_duration(client, caplog):
    with caplog.at_level(logging.INFO, logger="lakehouse.gateway"):
        client.get("/health")
        client.get("/journal")
    assert any(r.getMessage().startswith("GET /health -> 200 (") and r.getMessage().endswith(" ms)") for r in caplog.records)
    assert any(r.getMessage().startswith("GET /journal -> 401") for r in caplog.records)


_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8), st.dates(), st.datetimes(),
    st.decimals(allow_nan=False, allow_infinity=False), st.binary(max_size=8), st.timedeltas(),
)
_content = st.recursive(_leaves, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=4),
    st.frozensets(st.one_of(st.integers(), st.text(max_size=5)), max_size=3)), max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(_content)
def test_a_json_answer_renders_dates_decimals_bytes_sets_and_nan_as_the_full_conversion_does(content):
    import json

    from lakehouse.gateway.serialize import to_jsonable
    from lakehouse.http import SafeJSONResponse

    rendered = json.loads(SafeJSONResponse(content).body)
    assert rendered == json.loads(json.dumps(to_jsonable(content), allow_nan=False))
