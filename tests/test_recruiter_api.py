"""The recruiter API (mcp_server/) against a real gateway: a real data directory, the real
embedding model and a real vector index, the gateway served by uvicorn on a loopback
port, the recruiter API calling it over HTTP."""

from __future__ import annotations

import socket
import sys
import threading
import time
from datetime import date, timedelta
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import uvicorn
from fastapi.testclient import TestClient

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `mcp_server` is a top-level folder of the repository, not installed
    sys.path.insert(0, str(REPO))

from lakehouse.config import ApiKey, Config  # noqa: E402
from lakehouse.gateway import create_app as create_gateway  # noqa: E402
from lakehouse.lakehouse import Lakehouse  # noqa: E402
from mcp_server import recruiting  # noqa: E402
from mcp_server.app import create_app  # noqa: E402

GATEWAY_KEY = "gw-service-key"
KEYS = "olga-key:admin:olga,sarah-key:recruiter:sarah,kim-key:recruiter:kim,victor-key:viewer:victor"
ADMIN = {"X-API-Key": "olga-key"}
SARAH = {"X-API-Key": "sarah-key"}
KIM = {"X-API-Key": "kim-key"}
VIEWER = {"X-API-Key": "victor-key"}

TODAY = date.today()

# ---------------------------------------------------------------------- a small bench
ROLES = {
    "Welder": ("MIG and TIG welding", "structural steel", "AWS D1.1"),
    "Electrician": ("commercial wiring", "conduit bending", "NFPA 70E"),
    "Forklift Operator": ("pallet loading", "warehouse inventory", "OSHA forklift"),
}
CITIES = [("Toledo", "OH", "419"), ("Akron", "OH", "330"), ("Nashville", "TN", "615"), ("Dayton", "OH", "937")]
FIRST = ["Ana", "Bo", "Cy", "Di", "Ed", "Fay", "Gus", "Hal", "Ivy", "Jo"]
LAST = ["Ruiz", "Chen", "Diaz", "Evans", "Fox", "Grant", "Hill", "Ito", "Jones", "Khan", "Lee", "Moss"]
TRAITS = ["Known for showing up early.", "Open to nights and weekends.", "Quick learner.", "Go-to person for tough jobs.",
          "Has finished every assignment this year."]


def bench() -> list[dict]:
    rows, wid = [], 1000
    for ci, (city, state, area) in enumerate(CITIES):
        for ri, (role, (skill, specialty, cert)) in enumerate(ROLES.items()):
            for i in range(10):
                wid += 1
                first, last = FIRST[i], LAST[(ci * 3 + ri + i) % len(LAST)]
                years = 1 + (i * 7 + ri * 3 + ci) % 20
                rows.append({
                    "worker_id": wid, "name": f"{first} {last} {city[:2]}{ri}", "role": role, "city": city, "state": state,
                    "phone": f"({area}) 555-{wid % 10000:04d}", "email": f"{first.lower()}.{last.lower()}{wid}@example.com",
                    "skills": f"{skill}, {specialty}", "certifications": cert if i % 2 == 0 else "OSHA-10",
                    "reliability": round(0.55 + ((i * 37 + ci * 11 + ri * 5) % 45) / 100, 2),
                    "archetype": ["steady", "flexible", "specialist"][i % 3], "availability": "available",
                    "pay_rate": 22.0 + (i % 5) * 3.5,
                    "profile": f"{role} with {years} years of {skill} in {city}, {state}; strongest in {specialty}. {TRAITS[i % len(TRAITS)]}",
                })
    return rows


WORKERS = bench()
BY_ID = {str(w["worker_id"]): w for w in WORKERS}


def workers_table() -> pa.Table:
    table = pa.Table.from_pylist(WORKERS)
    return table.set_column(0, "worker_id", pa.array([w["worker_id"] for w in WORKERS], pa.int64()))


def ids_of(role: str, city: str) -> list[str]:
    return [str(w["worker_id"]) for w in WORKERS if w["role"] == role and w["city"] == city]


# ---------------------------------------------------------------------- servers
class ServerThread:
    """An ASGI app served by a real uvicorn on a free loopback port, in a thread."""

    def __init__(self, app):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP_NODELAY needs the protocol named
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "gateway did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


class Gateway:
    """One gateway for the module: the index is built once (embedding is the slow part).
    Tests that teach playbook memory use their own (role, city) so they do not meet."""

    def __init__(self, url: str, tmp: Path):
        self.url, self.tmp = url, tmp
        # the gateway under test, over HTTP (a second app over the same facade would bypass its lock)
        self.http = httpx.Client(base_url=url, headers={"X-API-Key": GATEWAY_KEY}, timeout=120, trust_env=False)


class Env:
    """Per test: the shared gateway and a fresh recruiter-API state directory."""

    def __init__(self, gateway: Gateway, tmp: Path):
        self.gateway_url, self.gw, self.tmp = gateway.url, gateway.http, tmp
        self.mcp_dir = tmp / "recruiter-state"

    def app(self) -> TestClient:
        return TestClient(create_app(self.gateway_url, GATEWAY_KEY, self.mcp_dir, api_keys=KEYS))

    def ingest_parquet(self, table: pa.Table, name: str) -> None:
        path = self.tmp / f"{name}.parquet"
        pq.write_table(table, path)
        with open(path, "rb") as fh:
            r = self.gw.post("/ingest/file", files={"file": (path.name, fh)}, data={"name": name})
        assert r.status_code in (200, 201), r.text


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("recruiter-gateway")
    config = Config.load(tmp / "data", env={})
    config.gateway.api_keys = [ApiKey(GATEWAY_KEY, "admin", "recruiter-api")]
    with Lakehouse(config=config, actor="setup") as lake:
        lake.ingest_table(workers_table(), "workers")
        with ServerThread(create_gateway(lake, config)) as server:
            g = Gateway(server.url, tmp)
            built = g.http.post("/vectors/index", json={"dataset": "workers", "text_columns": ["role", "skills", "certifications", "profile"],
                                                        "id_column": "worker_id", "wait": True})
            assert built.status_code == 201, built.text
            try:
                yield g
            finally:
                g.http.close()


@pytest.fixture
def env(gateway: Gateway, tmp_path: Path) -> Env:
    return Env(gateway, tmp_path)


@pytest.fixture
def api(env: Env):
    with env.app() as client:
        yield client


def search(api: TestClient, headers=SARAH, **body) -> dict:
    r = api.post("/search", json=body, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def rank_of(result: dict, worker_id: str) -> int:
    return [s["worker_id"] for s in result["sources"]].index(worker_id)


def source(result: dict, worker_id: str) -> dict:
    return next(s for s in result["sources"] if s["worker_id"] == worker_id)


# ---------------------------------------------------------------------- tests
def test_ghost_names_are_rejected_and_nothing_is_logged_or_seeded_for_them(api: TestClient):
    real = BY_ID[ids_of("Welder", "Akron")[0]]
    r = api.post("/log", headers=SARAH, json={
        "action": "Placed", "names": [real["name"], "Nobody McGhost", "Zed Phantom"],
        "contract": {"role": "Welder", "city": "Akron", "state": "OH"},
    })
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["rejected_ghost_names"] == ["Nobody McGhost", "Zed Phantom"]
    assert "not in the workers dataset" in body["note"] and "Nobody McGhost" in body["note"]
    assert body["logged"] == [{"worker_id": str(real["worker_id"]), "name": real["name"]}]
    assert body["seeded"]["op"] == "ADD" and body["seeded"]["operation"] == "Welder x1 in Akron, OH"  # the ghosts were not counted

    only_ghosts = api.post("/log", headers=SARAH, json={"action": "Placed", "names": ["Nobody McGhost"],
                                                        "contract": {"role": "Welder", "city": "Akron", "state": "OH"}}).json()
    assert only_ghosts["logged"] == [] and only_ghosts["seeded"] is None and only_ghosts["rejected_ghost_names"] == ["Nobody McGhost"]
    # an id that does not exist is a ghost too; an id whose name differs is rejected with the reason
    by_id = api.post("/log", headers=SARAH, json={"action": "Call", "workers": [{"worker_id": 999999, "name": "Ghost Id"},
                                                                                {"worker_id": real["worker_id"], "name": "Someone Else"}],
                                                  "contract": {"role": "Welder", "city": "Akron", "state": "OH"}}).json()
    assert by_id["rejected_ghost_names"] == ["Ghost Id"] and by_id["logged"] == []
    assert "is " + repr(real["name"]) in by_id["rejected"][1]["reason"]
    logged = api.get("/call_log", headers=ADMIN).json()["entries"]
    assert [e["name"] for e in logged] == [real["name"]]  # only the real worker, once
    assert api.get("/tools/audit?tool=log", headers=ADMIN).json()["entries"][0]["message"].endswith("rejected ghost names: Nobody McGhost, Zed Phantom")


def test_a_placement_seeds_memory_and_the_next_search_ranks_the_worker_higher_with_a_citation(api: TestClient):
    query = {"query": "structural steel welder", "role": "Welder", "city": "Toledo", "state": "OH", "k": 10}
    before = search(api, **query)
    assert before["sql_matches"] == 10
    placed = before["sources"][6]["worker_id"]
    assert source(before, placed)["boost"] == 0 and source(before, placed)["citations"] == []
    r = api.post("/log", headers=SARAH, json={"action": "Placed", "workers": [{"worker_id": placed}],
                                              "contract": {"role": "Welder", "city": "Toledo", "state": "OH", "client": "Acme"}})
    assert r.status_code == 200 and r.json()["seeded"]["op"] == "ADD", r.text
    after = search(api, **query)
    assert rank_of(after, placed) < 6, [s["worker_id"] for s in after["sources"]]
    worker = source(after, placed)
    assert worker["boost"] == pytest.approx(0.25, abs=1e-3)
    assert worker["citations"][0]["operation"] == "Welder x1 in Toledo, OH" and worker["citations"][0]["exact_match"]
    assert any("playbook boost" in reason for reason in worker["reasons"])
    assert " matched=1 " in after["playbook_boost"] and "target_geo=Toledo, OH" in after["playbook_boost"]


def test_a_no_show_penalty_applies_on_the_next_query(api: TestClient):
    a, b, c = ids_of("Electrician", "Akron")[:3]
    query = {"query": "commercial electrician", "role": "Electrician", "city": "Akron", "state": "OH", "k": 10}
    contract = {"role": "Electrician", "city": "Akron", "state": "OH"}
    api.post("/log", headers=SARAH, json={"action": "Placed", "workers": [{"worker_id": w} for w in (a, b, c)], "contract": contract})
    first = search(api, **query)
    assert source(first, a)["boost"] == pytest.approx(0.5 / 3, abs=1e-3)  # 1.0 * 0.5 * e^0 / 3 workers
    r = api.post("/log_failure", headers=SARAH, json={"worker_id": a, "contract": contract, "note": "did not show at 7am"})
    assert r.status_code == 200, r.text
    assert r.json()["recorded"] and r.json()["failures"] == 1 and r.json()["name"] == BY_ID[a]["name"]
    second = search(api, **query)
    assert source(second, a)["boost"] == pytest.approx(0.5 / 3 * 0.5, abs=1e-3)  # halved from the very next query
    assert source(second, b)["boost"] == pytest.approx(0.5 / 3, abs=1e-3)  # the others keep theirs
    assert any("no-show" in reason for reason in source(second, a)["reasons"])
    api.post("/log_failure", headers=KIM, json={"name": BY_ID[a]["name"], "city": "Akron", "state": "OH"})
    assert source(search(api, **query), a)["boost"] == pytest.approx(0.5 / 3 * 0.25, abs=1e-3)
    ghost = api.post("/log_failure", headers=SARAH, json={"name": "Casper Ghost", "city": "Akron", "state": "OH"}).json()
    assert ghost["recorded"] is False and ghost["rejected_ghost_names"] == ["Casper Ghost"]


def test_blacklists_are_isolated_between_clients(api: TestClient):
    welders = ids_of("Welder", "Nashville")
    flagged = welders[0]
    r = api.post("/clients/Acme Steel/blacklist", headers=SARAH, json={"worker_id": flagged, "reason": "walked off site"})
    assert r.status_code == 200 and r.json()["added"] == [flagged], r.text
    ghost = api.post("/clients/Acme Steel/blacklist", headers=SARAH, json={"name": "Nobody McGhost"}).json()
    assert ghost["rejected_ghost_names"] == ["Nobody McGhost"] and ghost["count"] == 1
    query = {"query": "welder", "role": "Welder", "city": "Nashville", "state": "TN", "k": 10}

    acme = search(api, client="acme steel", **query)  # client names match case-insensitively
    midstate = search(api, client="MidState", **query)
    nobody = search(api, **query)
    assert flagged not in [s["worker_id"] for s in acme["sources"]] and acme["blacklist_applied"] == 1
    assert flagged in [s["worker_id"] for s in midstate["sources"]] and midstate["blacklist_applied"] == 0
    assert flagged in [s["worker_id"] for s in nobody["sources"]]
    assert acme["sql_matches"] == 9 and midstate["sql_matches"] == 10
    matched = api.post("/match", headers=SARAH, json={"role": "Welder", "city": "Nashville", "state": "TN", "client": "Acme Steel", "k": 10}).json()
    assert flagged not in [c["worker_id"] for c in matched["candidates"]] and matched["excluded"]["blacklisted"] == [flagged]
    other = api.post("/match", headers=SARAH, json={"role": "Welder", "city": "Nashville", "state": "TN", "client": "MidState", "k": 10}).json()
    assert flagged in [c["worker_id"] for c in other["candidates"]]

    listed = api.get("/clients/ACME STEEL/blacklist", headers=KIM).json()
    assert [(w["worker_id"], w["reason"], w["added_by"]) for w in listed["workers"]] == [(flagged, "walked off site", "sarah")]
    assert api.get("/clients/MidState/blacklist", headers=KIM).json()["workers"] == []
    assert api.delete(f"/clients/Acme Steel/blacklist/{flagged}", headers=KIM).status_code == 200
    assert flagged in [s["worker_id"] for s in search(api, client="Acme Steel", **query)["sources"]]
    assert api.delete(f"/clients/Acme Steel/blacklist?worker_id={flagged}", headers=KIM).status_code == 404


def test_booked_workers_are_excluded_from_refills(env: Env, api: TestClient):
    dayton = ids_of("Welder", "Dayton")
    on_assignment, no_showed_before, placed_here, no_show_here = dayton[:4]
    start = TODAY + timedelta(days=30)
    env.ingest_parquet(pa.table({
        "placement_id": pa.array([1, 2], pa.int64()), "order_id": pa.array([10, 10], pa.int64()),
        "worker_id": pa.array([int(on_assignment), int(no_showed_before)], pa.int64()), "client_id": pa.array([7, 7], pa.int64()),
        "start_date": pa.array([start - timedelta(days=10)] * 2, pa.date32()),
        "end_date": pa.array([start + timedelta(days=20)] * 2, pa.date32()),
        "outcome": ["ongoing", "no_show"], "rating": pa.array([None, None], pa.float64()),
    }), "placements")
    shift = {"role": "Welder", "city": "Dayton", "state": "OH", "client": "Riverfront Steel",
             "start_date": (start + timedelta(days=2)).isoformat(), "end_date": (start + timedelta(days=4)).isoformat()}
    assert api.post("/log", headers=SARAH, json={"action": "Placed", "workers": [{"worker_id": placed_here}], "contract": shift}).status_code == 200
    assert api.post("/log_failure", headers=SARAH, json={"worker_id": no_show_here, "contract": shift}).json()["recorded"]

    refill = api.post("/match", headers=SARAH, json={**shift, "count": 2, "k": 10})
    assert refill.status_code == 200, refill.text
    body = refill.json()
    found = [c["worker_id"] for c in body["candidates"]]
    assert not {on_assignment, placed_here, no_show_here} & set(found), found
    assert no_showed_before in found  # a no-show placement does not hold the worker
    assert set(body["excluded"]["booked"]) == {on_assignment, placed_here}
    assert body["excluded"]["no_show"] == [no_show_here]
    assert len(body["candidates"]) == 7 and body["recommended"] == found[:2] and body["shortfall"] == 0
    assert body["contract"]["count"] == 2 and "bookings_ms" in body["latency_ms"] and body["excluded"]["note"] is None

    later = {**shift, "start_date": (start + timedelta(days=60)).isoformat(), "end_date": (start + timedelta(days=61)).isoformat()}
    free_again = [c["worker_id"] for c in api.post("/match", headers=SARAH, json={**later, "k": 10}).json()["candidates"]]
    assert {on_assignment, placed_here, no_show_here} <= set(free_again)
    bad = api.post("/match", headers=SARAH, json={"role": "Welder", "city": "Dayton"})
    assert bad.status_code == 400 and bad.json()["error"] == "InvalidInput" and "state" in bad.json()["message"]


def test_the_audit_records_every_action_with_its_actor_and_filters(api: TestClient):
    toledo = ids_of("Forklift Operator", "Toledo")
    contract = {"role": "Forklift Operator", "city": "Toledo", "state": "OH", "contract_id": "JO-1"}
    ws = api.post("/workspaces", headers=SARAH, json={"contract": contract}).json()
    calls = [
        api.post("/log", headers=SARAH, json={"action": "Call", "workers": [{"worker_id": toledo[0]}], "contract": contract}),
        api.post("/log", headers=SARAH, json={"action": "SMS", "workers": [{"worker_id": toledo[1]}], "contract": contract}),
        api.post("/log", headers=SARAH, json={"action": "Placed", "workers": [{"worker_id": toledo[0]}], "contract": contract}),
        api.post("/log_failure", headers=SARAH, json={"worker_id": toledo[0], "contract": contract}),
        api.post("/clients/Acme/blacklist", headers=SARAH, json={"worker_id": toledo[2]}),
        api.delete(f"/clients/Acme/blacklist/{toledo[2]}", headers=SARAH),
        api.post(f"/workspaces/{ws['id']}/handoff", headers=SARAH, json={"to_staffer": "kim"}),
        api.post("/memory/seed", headers=KIM, json={"role": "Forklift Operator", "city": "Toledo", "state": "OH",
                                                    "workers": [{"worker_id": toledo[3]}], "date": TODAY.isoformat()}),
        api.post("/log", headers=VIEWER, json={"action": "Call", "workers": [{"worker_id": toledo[0]}], "contract": contract}),
        api.delete("/memory/playbooks/nope", headers=KIM),
    ]
    assert [c.status_code for c in calls] == [200, 200, 200, 200, 200, 200, 200, 200, 403, 403], [c.text for c in calls]
    assert calls[8].json()["error"] == "Forbidden"

    sarah_today = api.get("/tools/audit", params={"staffer": "sarah", "since": "today"}, headers=ADMIN).json()["entries"]
    assert [e["tool"] for e in sarah_today] == ["workspace_create", "log", "log", "log", "log_failure", "blacklist_add",
                                                 "blacklist_remove", "workspace_handoff"]
    assert all(e["staffer"] == "sarah" and e["role"] == "recruiter" and e["outcome"] == "ok" for e in sarah_today)
    placed = sarah_today[3]
    assert placed["args"]["action"] == "Placed" and placed["args"]["workers"] == [{"worker_id": toledo[0]}]
    assert placed["message"].startswith("placed: 1 logged, seed ADD")
    assert sarah_today[-1]["message"] == f"{ws['id']}: sarah -> kim"
    for entry in sarah_today:
        assert TODAY.isoformat() <= entry["at"][:10] <= (TODAY + timedelta(days=1)).isoformat() and entry["duration_ms"] >= 0

    denied = api.get("/tools/audit", params={"outcome": "error"}, headers=SARAH).json()["entries"]
    assert [(e["staffer"], e["tool"], e["status"]) for e in denied] == [("victor", "log", 403), ("kim", "delete_playbook", 403)]
    kim = api.get("/tools/audit", params={"staffer": "KIM", "tool": "seed_playbook"}, headers=ADMIN).json()["entries"]
    assert len(kim) == 1 and kim[0]["message"].startswith("UPDATE ")  # same operation + date as sarah's fill: refined, not duplicated
    assert api.get("/tools/audit", params={"until": (TODAY - timedelta(days=1)).isoformat()}, headers=ADMIN).json()["count"] == 0
    assert api.get("/tools/audit", params={"since": "2000-01-01T00:00:00Z", "limit": 2}, headers=ADMIN).json()["count"] == 2
    assert api.get("/tools/audit", headers=VIEWER).status_code == 403
    assert api.get("/tools/audit", params={"since": "next tuesday"}, headers=ADMIN).status_code == 400
    assert {t["name"]: t["role"] for t in api.get("/tools", headers=VIEWER).json()["tools"]}["delete_playbook"] == "admin"


def test_viewers_may_read_but_every_state_changing_tool_is_forbidden(api: TestClient):
    contract = {"role": "Welder", "city": "Toledo", "state": "OH"}
    wid = ids_of("Welder", "Toledo")[0]
    attempts = {
        "log": api.post("/log", headers=VIEWER, json={"action": "Call", "workers": [{"worker_id": wid}], "contract": contract}),
        "log_failure": api.post("/log_failure", headers=VIEWER, json={"worker_id": wid, "contract": contract}),
        "blacklist_add": api.post("/clients/Acme/blacklist", headers=VIEWER, json={"worker_id": wid}),
        "blacklist_remove": api.delete(f"/clients/Acme/blacklist/{wid}", headers=VIEWER),
        "workspace_create": api.post("/workspaces", headers=VIEWER, json={"contract": contract}),
        "seed_playbook": api.post("/memory/seed", headers=VIEWER, json={**contract, "workers": [{"worker_id": wid}]}),
        "delete_playbook": api.delete("/memory/playbooks/x", headers=VIEWER),
    }
    assert {tool: r.status_code for tool, r in attempts.items()} == {tool: 403 for tool in attempts}
    assert api.get("/call_log", headers=ADMIN).json()["count"] == 0
    assert api.get("/clients/Acme/blacklist", headers=VIEWER).json()["count"] == 0
    audited = api.get("/tools/audit", params={"staffer": "victor"}, headers=ADMIN).json()["entries"]
    assert sorted(e["tool"] for e in audited) == sorted(attempts) and {e["outcome"] for e in audited} == {"error"}
    assert search(api, headers=VIEWER, query="welder", role="Welder", city="Toledo", state="OH")["sources"]
    assert api.post("/search", json={"query": "welder"}).status_code == 401
    assert api.post("/search", json={"query": "welder"}, headers={"X-API-Key": "wrong"}).status_code == 401


def test_masking_per_role_in_search_match_and_memory(env: Env, api: TestClient):
    manifest = env.gw.get("/catalog/datasets/workers").json()
    tags = manifest["column_tags"]
    assert tags.get("name") == tags.get("email") == tags.get("phone") == "PII" and tags.get("pay_rate") == "Financial", tags
    query = {"query": "warehouse forklift", "role": "Forklift Operator", "city": "Dayton", "state": "OH", "k": 3}
    admin, recruiter, viewer = (search(api, headers=h, **query)["sources"] for h in (ADMIN, SARAH, VIEWER))
    wid = admin[0]["worker_id"]
    truth = BY_ID[wid]
    a, r, v = admin[0], next(s for s in recruiter if s["worker_id"] == wid), next(s for s in viewer if s["worker_id"] == wid)
    assert (a["name"], a["email"], a["phone"], a["pay_rate"]) == (truth["name"], truth["email"], truth["phone"], truth["pay_rate"])
    assert "masked_fields" not in a
    local, domain = truth["email"].split("@")
    assert r["name"] == truth["name"] and r["pay_rate"] == truth["pay_rate"]
    assert r["email"] == f"{local[0]}***@{domain}" and r["phone"] == f"***-***-{truth['phone'][-4:]}"
    assert r["masked_fields"] == ["email", "phone"]
    first, last, _ = truth["name"].split(" ")
    assert v["name"].startswith(f"{first[0]}. {last[0]}.") and v["email"] == "***" and v["phone"] == "***" and v["pay_rate"] is None
    assert v["masked_fields"] == ["email", "name", "pay_rate", "phone"]
    assert v["role"] == truth["role"] and v["final_score"] == a["final_score"]  # unflagged columns and scores are untouched

    contract = {"role": "Forklift Operator", "city": "Dayton", "state": "OH", "k": 3}
    api.post("/log", headers=SARAH, json={"action": "Placed", "workers": [{"worker_id": wid}], "contract": contract})
    m_admin = api.post("/match", headers=ADMIN, json=contract).json()["candidates"]
    m_viewer = api.post("/match", headers=VIEWER, json=contract).json()["candidates"]
    assert "@" in m_admin[0]["email"] and all(c["email"] == "***" and c["pay_rate"] is None for c in m_viewer)
    memory = {"role": "Forklift Operator", "city": "Dayton", "state": "OH", "contacts": True}
    mem_admin = api.post("/memory/query", headers=ADMIN, json=memory).json()
    mem_recruiter = api.post("/memory/query", headers=SARAH, json=memory).json()
    mem_viewer = api.post("/memory/query", headers=VIEWER, json=memory).json()
    assert mem_admin["playbook_workers"][0]["name"] == truth["name"] and "@" in mem_admin["playbook_workers"][0]["email"]
    assert mem_recruiter["playbook_workers"][0]["name"] == truth["name"] and mem_recruiter["playbook_workers"][0]["email"].startswith(f"{local[0]}***@")
    assert mem_viewer["playbook_workers"][0]["name"] != truth["name"] and mem_viewer["reliable_workers"][0]["name"] != truth["name"]
    assert mem_viewer["playbook_workers"][0]["email"] == "***"
    policy = api.get("/policy/masking", headers=VIEWER).json()
    assert policy["your_role"] == "viewer" and policy["roles"]["recruiter"]["PII/name"] == "clear"


def test_the_ai_safe_view_has_no_pii_phi_or_financial_values(env: Env, api: TestClient):
    dropped = api.get("/datasets/workers/ai_safe", params={"limit": 500}, headers=VIEWER)
    assert dropped.status_code == 200, dropped.text
    body = dropped.json()
    assert set(body["removed_columns"]) >= {"name", "email", "phone", "pay_rate"} and body["row_count"] == len(WORKERS)
    assert not set(body["removed_columns"]) & set(body["columns"]) and {"role", "city", "skills"} <= set(body["columns"])
    text = str(body["rows"])
    assert "@example.com" not in text and "555-" not in text and WORKERS[0]["name"] not in text
    assert all(set(row) == set(body["columns"]) for row in body["rows"])
    masked = api.get("/datasets/workers/ai_safe", params={"mode": "mask", "limit": 5}, headers=ADMIN).json()
    assert masked["removed_columns"] == [] and {row["email"] for row in masked["rows"]} == {"***"}
    assert {row["pay_rate"] for row in masked["rows"]} == {"***"} and masked["rows"][0]["role"] in ROLES
    assert api.get("/datasets/nope/ai_safe", headers=ADMIN).status_code == 404
    assert api.get("/datasets/workers/ai_safe", params={"mode": "raw"}, headers=ADMIN).status_code == 400


def test_memory_query_returns_every_section_in_one_call(api: TestClient):
    n = ids_of("Forklift Operator", "Nashville")
    contract = {"role": "Forklift Operator", "city": "Nashville", "state": "TN"}
    api.post("/log", headers=SARAH, json={"action": "Placed", "workers": [{"worker_id": n[0]}, {"worker_id": n[1]}], "contract": contract})
    api.post("/log", headers=KIM, json={"action": "Placed", "workers": [{"worker_id": n[0]}], "contract": contract})
    welder = ids_of("Welder", "Nashville")[0]
    api.post("/log", headers=KIM, json={"action": "Placed", "workers": [{"worker_id": welder}],
                                        "contract": {"role": "Welder", "city": "Nashville", "state": "TN"}})
    api.post("/log_failure", headers=KIM, json={"worker_id": n[1], "contract": contract})
    api.post("/memory/query", headers=SARAH, json=contract)  # warm the query embedding
    r = api.post("/memory/query", headers=SARAH, json={**contract, "k": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) >= {"query", "playbook_workers", "playbook_boost", "discovered_patterns", "prior_fills", "reliable_workers",
                         "top_staffers", "latency_ms"}
    boosted = {w["worker_id"]: w for w in body["playbook_workers"]}
    assert set(boosted) == {n[0], n[1]} and boosted[n[0]]["boost"] > boosted[n[1]]["boost"] > 0
    assert boosted[n[0]]["citations"] and boosted[n[0]]["citations"][0]["operation"].startswith("Forklift Operator x")
    assert body["discovered_patterns"]["playbooks"] >= 2 and body["discovered_patterns"]["certifications"]
    prior = body["prior_fills"]
    assert {p["operation"] for p in prior["playbooks"]} == {"Forklift Operator x2 in Nashville, TN", "Forklift Operator x1 in Nashville, TN"}
    assert isinstance(prior["placements"], list) and len(prior["logged_here"]) == 3
    reliable = body["reliable_workers"]
    assert reliable[0]["worker_id"] == n[0] and reliable[0]["endorsements"] == 2 and reliable[0]["staffers"] == ["kim", "sarah"]
    assert n[1] not in [w["worker_id"] for w in reliable]  # a no-show is never "reliable"
    assert welder not in [w["worker_id"] for w in reliable]  # another role
    assert body["top_staffers"][0] == {"staffer": "sarah", "placements": 2}
    assert set(body["latency_ms"]) >= {"hybrid_ms", "patterns_ms", "prior_placements_ms", "call_log_ms", "total_ms"}
    print(f"memory/query latency: {body['latency_ms']}")
    assert body["latency_ms"]["total_ms"] < 1000
    assert api.post("/memory/query", headers=SARAH, json={}).status_code == 400


def test_workspaces_saved_searches_shortlists_activity_views_and_zero_copy_handoff(env: Env, api: TestClient):
    contract = {"contract_id": "JO-77", "role": "Welder", "city": "Akron", "state": "OH", "client": "Acme", "count": 2}
    created = api.post("/workspaces", headers=SARAH, json={"contract": contract})
    assert created.status_code == 201, created.text
    ws = created.json()
    assert ws["owner"] == "sarah" and ws["name"] == "Welder in Akron, OH for Acme"
    assert api.post("/workspaces", headers=KIM, json={"contract": contract}).json()["id"] == ws["id"]  # one per contract

    saved = api.post(f"/workspaces/{ws['id']}/searches", headers=SARAH, json={
        "name": "steel welders", "search": {"query": "structural steel welder", "role": "Welder", "city": "Akron", "state": "OH", "k": 3}})
    assert saved.status_code == 201, saved.text
    rerun = api.post(f"/workspaces/{ws['id']}/searches/{saved.json()['id']}/run", headers=SARAH).json()
    assert len(rerun["sources"]) == 3
    akron = ids_of("Welder", "Akron")
    short = api.post(f"/workspaces/{ws['id']}/shortlist", headers=SARAH, json={"workers": [{"worker_id": akron[0]}], "names": ["Ghosty Person"]}).json()
    assert [a["worker_id"] for a in short["added"]] == [akron[0]] and short["rejected_ghost_names"] == ["Ghosty Person"]
    search(api, workspace_id=ws["id"], query="welder", role="Welder", city="Akron", state="OH")
    api.post("/log", headers=SARAH, json={"action": "Call", "workers": [{"worker_id": akron[0]}], "contract": contract, "workspace_id": ws["id"]})

    folder = env.mcp_dir / "_recruiter" / "workspaces" / ws["id"]
    content = folder / "workspace.json"
    before = (content.stat().st_ino, content.stat().st_mtime_ns, content.read_bytes())
    handed = api.post(f"/workspaces/{ws['id']}/handoff", headers=SARAH, json={"to_staffer": "kim", "note": "Sarah is off tomorrow"})
    assert handed.status_code == 200, handed.text
    assert handed.json()["owner"] == "kim" and handed.json()["id"] == ws["id"] and handed.json()["from"] == "sarah"
    assert (content.stat().st_ino, content.stat().st_mtime_ns, content.read_bytes()) == before  # nothing copied or rewritten
    assert sorted(p.name for p in (env.mcp_dir / "_recruiter" / "workspaces").iterdir() if p.is_dir()) == [ws["id"]]
    assert api.post(f"/workspaces/{ws['id']}/handoff", headers=SARAH, json={"to_staffer": "sarah"}).status_code == 403  # no longer hers
    assert [w["id"] for w in api.get("/workspaces", params={"owner": "kim"}, headers=KIM).json()["workspaces"]] == [ws["id"]]
    assert api.get("/workspaces", params={"owner": "sarah"}, headers=KIM).json()["workspaces"] == []
    full = api.get(f"/workspaces/{ws['id']}", headers=KIM).json()
    assert full["shortlist"][0]["worker_id"] == akron[0] and full["saved_searches"][0]["name"] == "steel welders"
    assert full["handoffs"][0]["from"] == "sarah" and full["handoffs"][0]["to"] == "kim"

    raw = api.get(f"/workspaces/{ws['id']}/activity", headers=KIM).json()
    kinds = [e["kind"] for e in raw["events"]]
    assert kinds == ["create", "save_search", "search", "shortlist_add", "search", "call", "handoff"]
    for view in ("daily", "weekly", "monthly"):
        periods = api.get(f"/workspaces/{ws['id']}/activity", params={"view": view}, headers=KIM).json()["periods"]
        assert len(periods) == 1 and periods[0]["count"] == len(kinds) and periods[0]["by_staffer"] == {"sarah": len(kinds)}
        assert periods[0]["by_kind"]["search"] == 2
    daily = api.get(f"/workspaces/{ws['id']}/activity", params={"view": "daily"}, headers=KIM).json()["periods"][0]
    assert daily["period"] == TODAY.isoformat()
    assert api.get(f"/workspaces/{ws['id']}/activity", params={"view": "hourly"}, headers=KIM).status_code == 400
    assert api.get("/workspaces/ws_nope", headers=KIM).status_code == 404
    viewer = api.get(f"/workspaces/{ws['id']}", headers=VIEWER).json()
    assert viewer["shortlist"][0]["name"] != BY_ID[akron[0]]["name"]


def test_state_survives_a_restart_of_the_recruiter_api(env: Env):
    wid = ids_of("Electrician", "Nashville")[0]
    contract = {"role": "Electrician", "city": "Nashville", "state": "TN", "start_date": (TODAY + timedelta(days=5)).isoformat(),
                "end_date": (TODAY + timedelta(days=9)).isoformat()}
    with env.app() as first:
        first.post("/clients/Acme/blacklist", headers=SARAH, json={"worker_id": ids_of("Electrician", "Nashville")[1]})
        first.post("/log", headers=SARAH, json={"action": "Placed", "workers": [{"worker_id": wid}], "contract": contract})
        ws = first.post("/workspaces", headers=SARAH, json={"contract": contract}).json()
    with env.app() as second:
        assert second.get("/clients/acme/blacklist", headers=KIM).json()["count"] == 1
        matched = second.post("/match", headers=KIM, json={**contract, "client": "Acme", "k": 10}).json()
        assert matched["excluded"]["booked"] == [wid] and len(matched["excluded"]["blacklisted"]) == 1
        assert len(matched["candidates"]) == 8
        assert second.get(f"/workspaces/{ws['id']}", headers=KIM).json()["owner"] == "sarah"
        assert [e["tool"] for e in second.get("/tools/audit", headers=ADMIN).json()["entries"]] == ["blacklist_add", "log", "workspace_create"]
        assert second.get("/call_log", params={"staffer": "sarah"}, headers=ADMIN).json()["entries"][0]["worker_id"] == wid


def test_natural_language_uses_the_normalizer_when_present_and_is_refused_without_it(api: TestClient, monkeypatch):
    monkeypatch.setattr(recruiting, "_NORMALIZER", {"fn": None, "checked": time.monotonic()})
    refused = api.post("/match", headers=SARAH, json={"text": "need 2 welders in Toledo, OH"})
    assert refused.status_code == 400 and "normalizer" in refused.json()["message"]
    structured = search(api, query="welder", role="Welder", city="Toledo", state="OH", k=3)
    assert "normalized" not in structured and structured["sql_matches"] == 10

    seen = []

    def fake_normalize(raw):
        seen.append(raw)
        return {"role": "Welder", "count": 2, "city": "Toledo", "state": "OH", "date": (TODAY + timedelta(days=3)).isoformat()}

    monkeypatch.setattr(recruiting, "_NORMALIZER", {"fn": fake_normalize, "checked": time.monotonic()})
    matched = api.post("/match", headers=SARAH, json={"text": "need 2 welders in Toledo, OH by Thursday"}).json()
    assert seen == ["need 2 welders in Toledo, OH by Thursday"]
    assert matched["contract"]["role"] == "Welder" and matched["contract"]["count"] == 2
    assert matched["contract"]["start_date"] == (TODAY + timedelta(days=3)).isoformat() and len(matched["recommended"]) == 2
    found = search(api, query="2 welders in toledo oh", k=3)
    assert found["normalized"]["inferred"] == {"role": "Welder", "city": "Toledo", "state": "OH"} and found["sql_matches"] == 10

    monkeypatch.setattr(recruiting, "_NORMALIZER", {"fn": lambda raw: {"role": "Welders, Cutters, Solderers", "city": "Toledo", "state": "OH"},
                                                    "checked": time.monotonic()})
    fallback = search(api, query="welders in toledo", k=3)  # the parsed role matches nothing: the text alone still answers
    assert fallback["normalized"]["dropped_after_zero_matches"] == ["city", "role", "state"] and fallback["sources"]


def test_errors_have_one_shape(api: TestClient, env: Env):
    assert api.get("/health").json()["gateway"] == "ok"
    bad = api.post("/log", headers=SARAH, json={"action": "Email", "names": ["x"], "contract": {"role": "Welder", "city": "Toledo", "state": "OH"}})
    assert bad.status_code == 400 and set(bad.json()) == {"error", "message"}
    missing = api.post("/log", headers=SARAH, json={"action": "Call"})
    assert missing.status_code == 422 and missing.json()["error"] == "InvalidRequest"
    down = TestClient(create_app("http://127.0.0.1:9", GATEWAY_KEY, env.tmp / "other", api_keys=KEYS))
    unreachable = down.post("/search", headers=SARAH, json={"query": "welder"})
    assert unreachable.status_code == 502 and unreachable.json()["error"] == "GatewayUnavailable"


def test_natural_language_with_the_real_normalizer(api: TestClient, monkeypatch):
    pytest.importorskip("lakehouse.intelligence.normalizer")
    monkeypatch.setattr(recruiting, "_NORMALIZER", {"fn": None, "checked": 0.0})  # import it for real
    matched = api.post("/match", headers=SARAH, json={"text": "need 2 welders in Toledo, OH by Thursday"})
    assert matched.status_code == 200, matched.text
    contract = matched.json()["contract"]
    assert (contract["role"], contract["count"], contract["city"], contract["state"]) == ("Welder", 2, "Toledo", "OH")
    assert contract["start_date"] > TODAY.isoformat() and len(matched.json()["recommended"]) == 2
    found = search(api, query="3 electricians akron ohio", k=5)
    assert found["normalized"]["inferred"] == {"role": "Electrician", "city": "Akron", "state": "OH"}
    assert found["sql_matches"] == 10 and {s["role"] for s in found["sources"]} == {"Electrician"}
    assert api.get("/health").json()["natural_language"] is True


# ---------------------------------------------------------------------- the search transport
def test_search_calls_keep_one_connection_per_thread_and_bring_gateway_errors_back_as_lakehouse_errors(env: Env):
    from lakehouse import errors
    from lakehouse.client import KeepAliveJSON

    client = KeepAliveJSON(env.gateway_url, GATEWAY_KEY, timeout_s=60)
    try:
        first = client.post("/vectors/hybrid", {"query": "welder", "k": 3, "city": "Toledo", "state": "OH"})
        again = client.post("/vectors/hybrid", {"query": "welder", "k": 3, "city": "Toledo", "state": "OH"})
        assert [s["worker_id"] for s in first["sources"]] == [s["worker_id"] for s in again["sources"]]
        assert len(first["sources"]) == 3 and set(s["worker_id"] for s in first["sources"]) <= set(ids_of("Welder", "Toledo"))
        assert len(client._open) == 1  # the second call reused the first one's connection
        with pytest.raises(errors.InvalidInput, match="no column"):
            client.post("/vectors/hybrid", {"query": "welder", "columns": ["shoe_size"]})
        bad_key = KeepAliveJSON(env.gateway_url, "not-a-key", timeout_s=60)
        with pytest.raises(Exception) as refused:
            bad_key.post("/vectors/hybrid", {"query": "welder"})
        assert type(refused.value).__name__ == "GatewayError" and "401" in str(refused.value)
        bad_key.close()
    finally:
        client.close()


def test_a_search_on_a_connection_the_gateway_closed_is_sent_again_on_a_new_one():
    """A server may close an idle keep-alive connection at any moment; the recruiter's
    search must not fail for it. This server answers each connection once and closes it
    without saying so, the worst case."""
    import http.server

    from lakehouse.client import GatewayError
    from lakehouse.client import KeepAliveJSON

    connections = []

    class OneAnswerPerConnection(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # no "Connection: close" in the answer

        def do_POST(self):
            connections.append(self.client_address)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            answer = body if self.headers["X-API-Key"] == "k" else b'{"error":"Forbidden","message":"no"}'
            self.send_response(200 if answer is body else 403)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)
            self.close_connection = True

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), OneAnswerPerConnection)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    client = KeepAliveJSON(url, "k", timeout_s=10)
    try:
        assert [client.post("/echo", {"n": n})["n"] for n in range(3)] == [0, 1, 2]
        assert len(connections) == 3  # each call after the first met a closed connection and went again
        with pytest.raises(GatewayError, match="403"):
            KeepAliveJSON(url, "wrong", timeout_s=10).post("/echo", {})
    finally:
        client.close()
        server.shutdown()
        server.server_close()
    with pytest.raises(GatewayError, match="cannot reach the gateway"):
        KeepAliveJSON(url, "k", timeout_s=2).post("/echo", {})
