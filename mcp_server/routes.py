"""The recruiter API's endpoints. Reads go straight to `Recruiting` / `Workspaces`; every
state-changing call goes through the tools registry (`state.tools.call`), which checks
the caller's role and writes the audit line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request
from pydantic import BaseModel, Field

from lakehouse.http import ApiError, KeyRing, SafeJSONResponse
from lakehouse.lakehouse import quote_ident
from mcp_server import masking
from mcp_server.auth import Caller, caller
from mcp_server.gateway import RecruiterGateway
from mcp_server.recruiting import Recruiting, normalizer
from mcp_server.store import Store
from mcp_server.tools import ToolRegistry
from mcp_server.workspaces import Workspaces


@dataclass
class RecruiterState:
    gateway: RecruiterGateway
    store: Store
    tools: ToolRegistry
    recruiting: Recruiting
    workspaces: Workspaces
    key_ring: KeyRing


def state(request: Request) -> RecruiterState:
    return request.app.state.recruiter


# ---------------------------------------------------------------------- request bodies
class WorkerRef(BaseModel):
    worker_id: str | int | None = None
    name: str | None = None


class Contract(BaseModel):
    contract_id: str | None = None
    role: str | None = None
    city: str | None = None
    state: str | None = None
    count: int | None = Field(default=None, ge=1, le=500)
    start_date: str | None = None
    end_date: str | None = None
    client: str | None = None
    valid_until: str | None = Field(default=None, description="playbooks seeded from this contract stop boosting after this date")


class SearchRequest(BaseModel):
    query: str | None = Field(default=None, description="what the recruiter typed; natural language is read when the normalizer is installed")
    k: int = Field(default=10, ge=1, le=500)
    role: str | None = None
    city: str | None = None
    state: str | None = None
    availability: str | None = None
    certifications: list[str] = Field(default_factory=list)
    min_reliability: float | None = Field(default=None, ge=0, le=1)
    max_pay_rate: float | None = Field(default=None, ge=0)
    radius_miles: float | None = Field(default=None, gt=0)
    lat: float | None = None
    lon: float | None = None
    exclude_worker_ids: list[str] = Field(default_factory=list)
    use_playbook_memory: bool = True
    playbook_memory_k: int = Field(default=200, ge=1, le=10_000)
    client: str | None = Field(default=None, description="the client's blacklist is excluded automatically")
    normalize: bool = Field(default=True, description="fill missing role/city/state from the query text (needs the normalizer)")
    workspace_id: str | None = None


class MatchRequest(Contract):
    text: str | None = Field(default=None, description="the contract in words, e.g. 'need 3 welders in Nashville, TN by Monday'")
    query: str | None = Field(default=None, description="semantic query (default: 'reliable <role> in <city>, <state>')")
    k: int | None = Field(default=None, ge=1, le=500, description="candidates returned (default max(3 x count, 10))")
    availability: str | None = None
    certifications: list[str] = Field(default_factory=list)
    min_reliability: float | None = Field(default=None, ge=0, le=1)
    max_pay_rate: float | None = Field(default=None, ge=0)
    radius_miles: float | None = Field(default=None, gt=0)
    use_playbook_memory: bool = True
    workspace_id: str | None = None


class LogRequest(BaseModel):
    action: str = Field(description="Call, SMS or Placed")
    workers: list[WorkerRef] = Field(default_factory=list)
    names: list[str] = Field(default_factory=list, description="shorthand for workers given by name only")
    contract: Contract
    note: str | None = None
    workspace_id: str | None = None


class LogFailureRequest(BaseModel):
    worker_id: str | int | None = None
    name: str | None = None
    contract: Contract | None = None
    city: str | None = None
    state: str | None = None
    note: str | None = None
    workspace_id: str | None = None


class BlacklistAdd(BaseModel):
    workers: list[WorkerRef] = Field(default_factory=list)
    worker_id: str | int | None = None
    name: str | None = None
    reason: str | None = None


class BlacklistRemove(BaseModel):
    worker_id: str | int


class WorkspaceCreate(BaseModel):
    contract: Contract
    name: str | None = None
    owner: str | None = Field(default=None, description="default: the caller")


class Handoff(BaseModel):
    to_staffer: str = Field(min_length=1)
    note: str | None = None


class SaveSearch(BaseModel):
    name: str = Field(min_length=1)
    search: SearchRequest


class ShortlistAdd(BaseModel):
    workers: list[WorkerRef] = Field(default_factory=list)
    names: list[str] = Field(default_factory=list)
    note: str | None = None


class MemoryQuery(BaseModel):
    query: str | None = None
    text: str | None = Field(default=None, description="natural language (needs the normalizer)")
    role: str | None = None
    city: str | None = None
    state: str | None = None
    k: int = Field(default=10, ge=1, le=100)
    client: str | None = None
    contacts: bool = Field(default=False, description="add contact columns (masked per role) to playbook_workers: one more query")


class SeedRequest(BaseModel):
    role: str
    city: str
    state: str
    workers: list[WorkerRef] = Field(min_length=1)
    operation: str | None = None
    date: str | None = None
    valid_from: str | None = None
    valid_until: str | None = None


def refs(workers: list[WorkerRef], names: list[str] = ()) -> list[dict[str, Any]]:
    out = [w.model_dump(exclude_none=True) for w in workers]
    out += [{"name": n} for n in names]
    for w in out:
        if "worker_id" in w:
            w["worker_id"] = str(w["worker_id"])
    return out


# ---------------------------------------------------------------------- routers
public = APIRouter(tags=["health"])
router = APIRouter()


@public.get("/health", summary="Liveness, gateway reachability, whether natural language is understood (no key needed)")
def health(request: Request) -> SafeJSONResponse:
    s = state(request)
    try:
        gateway = s.gateway.health().get("status", "ok")
    except Exception as exc:  # noqa: BLE001
        gateway = f"unreachable: {exc}"
    return SafeJSONResponse({"status": "ok", "gateway": gateway, "gateway_url": s.gateway.base_url,
                             "natural_language": normalizer() is not None, "data_dir": str(s.store.root.parent)})


@router.get("/whoami", tags=["auth"])
def whoami(who: Caller = Depends(caller)) -> SafeJSONResponse:
    return SafeJSONResponse({"name": who.name, "role": who.role})


# ------------------------------------------------------------------ search & match
@router.post("/search", tags=["search"], summary="Hybrid search; the client's blacklist is excluded; results masked per role")
def search(body: SearchRequest, request: Request, who: Caller = Depends(caller)) -> SafeJSONResponse:
    s = state(request)
    if body.workspace_id:
        s.workspaces.entry(body.workspace_id)  # 404 before any work
    result = s.recruiting.search(who, body.model_dump(exclude={"workspace_id"}))
    if body.workspace_id:
        s.workspaces.record(body.workspace_id, who.name, "search", f"searched {result.get('query') or body.query!r}: {len(result['sources'])} result(s)")
    return SafeJSONResponse(result)


@router.post("/match", tags=["search"], summary="A contract -> ranked candidates (booked, no-show and blacklisted workers excluded)")
def match(body: MatchRequest, request: Request, who: Caller = Depends(caller)) -> SafeJSONResponse:
    s = state(request)
    if body.workspace_id:
        s.workspaces.entry(body.workspace_id)
    result = s.recruiting.match(who, body.model_dump(exclude={"workspace_id"}))
    if body.workspace_id:
        c = result["contract"]
        s.workspaces.record(body.workspace_id, who.name, "match",
                            f"matched {c['role']} x{c['count']} in {c['city']}, {c['state']}: {len(result['candidates'])} candidate(s)")
    return SafeJSONResponse(result)


# ------------------------------------------------------------------ governed actions
@router.post("/log", tags=["actions"], summary="Call / SMS / Placed; Placed seeds playbook memory and books the shift")
def log_action(body: LogRequest, request: Request, who: Caller = Depends(caller)) -> SafeJSONResponse:
    s = state(request)
    args = {"action": body.action, "workers": refs(body.workers, body.names), "contract": body.contract.model_dump(exclude_none=True),
            "note": body.note, "workspace_id": body.workspace_id}
    if body.workspace_id:
        s.workspaces.entry(body.workspace_id)
    return SafeJSONResponse(s.tools.call("log", who, **args))


@router.post("/log_failure", tags=["actions"], summary="No-show: halves the worker's boost here from the next query")
def log_failure(body: LogFailureRequest, request: Request, who: Caller = Depends(caller)) -> SafeJSONResponse:
    s = state(request)
    contract = body.contract.model_dump(exclude_none=True) if body.contract else {}
    contract.setdefault("city", body.city)
    contract.setdefault("state", body.state)
    worker = refs([WorkerRef(worker_id=body.worker_id, name=body.name)])[0]
    if not worker:
        raise ApiError(400, "InvalidInput", "send worker_id or name")
    if body.workspace_id:
        s.workspaces.entry(body.workspace_id)
    return SafeJSONResponse(s.tools.call("log_failure", who, worker=worker, contract={k: v for k, v in contract.items() if v},
                                         note=body.note, workspace_id=body.workspace_id))


@router.get("/call_log", tags=["actions"], summary="Call / SMS / Placed / No-show actions, oldest first")
def call_log(request: Request, staffer: str | None = None, worker_id: str | None = None, channel: str | None = None,
             since: str | None = None, limit: int | None = Query(None, ge=1), who: Caller = Depends(caller)) -> SafeJSONResponse:
    rows = state(request).recruiting.call_log(staffer=staffer, worker_id=worker_id, channel=channel, since=since, limit=limit)
    return SafeJSONResponse({"entries": state(request).recruiting.mask(rows, who), "count": len(rows)})


@router.get("/clients/{client}/blacklist", tags=["blacklists"])
def get_blacklist(client: str, request: Request, who: Caller = Depends(caller)) -> SafeJSONResponse:
    s = state(request)
    answer = s.recruiting.blacklist(client)
    answer["workers"] = s.recruiting.mask(answer["workers"], who)
    return SafeJSONResponse(answer)


@router.post("/clients/{client}/blacklist", tags=["blacklists"], summary="Add workers (by id or name) to a client's blacklist")
def add_blacklist(client: str, body: BlacklistAdd, request: Request, who: Caller = Depends(caller)) -> SafeJSONResponse:
    workers = refs(body.workers) + ([refs([WorkerRef(worker_id=body.worker_id, name=body.name)])[0]] if body.worker_id or body.name else [])
    if not workers:
        raise ApiError(400, "InvalidInput", "send workers, worker_id or name")
    return SafeJSONResponse(state(request).tools.call("blacklist_add", who, client=client, workers=workers, reason=body.reason))


@router.delete("/clients/{client}/blacklist", tags=["blacklists"], summary="Remove a worker (`?worker_id=` or body)")
def remove_blacklist(client: str, request: Request, worker_id: str | None = None,
                     body: BlacklistRemove | None = Body(default=None), who: Caller = Depends(caller)) -> SafeJSONResponse:
    target = worker_id or (str(body.worker_id) if body else None)
    if not target:
        raise ApiError(400, "InvalidInput", "send worker_id")
    return SafeJSONResponse(state(request).tools.call("blacklist_remove", who, client=client, worker_id=target))


@router.delete("/clients/{client}/blacklist/{worker_id}", tags=["blacklists"])
def remove_blacklist_path(client: str, worker_id: str, request: Request, who: Caller = Depends(caller)) -> SafeJSONResponse:
    return SafeJSONResponse(state(request).tools.call("blacklist_remove", who, client=client, worker_id=worker_id))


# ------------------------------------------------------------------ workspaces
@router.post("/workspaces", tags=["workspaces"], summary="A workspace for a contract (the same contract_id returns the existing one)")
def create_workspace(body: WorkspaceCreate, request: Request, who: Caller = Depends(caller)) -> SafeJSONResponse:
    result = state(request).tools.call("workspace_create", who, contract=body.contract.model_dump(exclude_none=True),
                                       name=body.name, owner=body.owner)
    return SafeJSONResponse(result, status_code=201 if result["created"] else 200)


@router.get("/workspaces", tags=["workspaces"])
def list_workspaces(request: Request, owner: str | None = None, who: Caller = Depends(caller)) -> SafeJSONResponse:
    return SafeJSONResponse({"workspaces": state(request).workspaces.list(owner)})


@router.get("/workspaces/{workspace_id}", tags=["workspaces"])
def get_workspace(workspace_id: str, request: Request, who: Caller = Depends(caller)) -> SafeJSONResponse:
    s = state(request)
    ws = s.workspaces.get(workspace_id)
    ws["shortlist"] = s.recruiting.mask(ws["shortlist"], who)
    return SafeJSONResponse(ws)


@router.post("/workspaces/{workspace_id}/handoff", tags=["workspaces"], summary="Reassign to another staffer (pointer swap, nothing copied)")
def handoff(workspace_id: str, body: Handoff, request: Request, who: Caller = Depends(caller)) -> SafeJSONResponse:
    return SafeJSONResponse(state(request).tools.call("workspace_handoff", who, workspace_id=workspace_id,
                                                      to_staffer=body.to_staffer, note=body.note))


@router.post("/workspaces/{workspace_id}/searches", tags=["workspaces"], status_code=201)
def save_search(workspace_id: str, body: SaveSearch, request: Request, who: Caller = Depends(caller)) -> SafeJSONResponse:
    saved = state(request).tools.call("workspace_save_search", who, workspace_id=workspace_id, name=body.name,
                                      search=body.search.model_dump(exclude_none=True, exclude={"workspace_id"}))
    return SafeJSONResponse(saved, status_code=201)


@router.post("/workspaces/{workspace_id}/searches/{search_id}/run", tags=["workspaces"], summary="Run a saved search again")
def run_saved_search(workspace_id: str, search_id: str, request: Request, who: Caller = Depends(caller)) -> SafeJSONResponse:
    s = state(request)
    saved = s.workspaces.saved_search(workspace_id, search_id)
    body = SearchRequest(**saved["search"])
    result = s.recruiting.search(who, body.model_dump(exclude={"workspace_id"}))
    s.workspaces.record(workspace_id, who.name, "search", f"ran saved search {saved['name']!r}: {len(result['sources'])} result(s)")
    return SafeJSONResponse({**result, "saved_search": saved})


@router.post("/workspaces/{workspace_id}/shortlist", tags=["workspaces"])
def add_shortlist(workspace_id: str, body: ShortlistAdd, request: Request, who: Caller = Depends(caller)) -> SafeJSONResponse:
    s = state(request)
    return SafeJSONResponse(s.tools.call("shortlist_add", who, workspace_id=workspace_id, workers=refs(body.workers, body.names), note=body.note))


@router.delete("/workspaces/{workspace_id}/shortlist/{worker_id}", tags=["workspaces"])
def remove_shortlist(workspace_id: str, worker_id: str, request: Request, who: Caller = Depends(caller)) -> SafeJSONResponse:
    return SafeJSONResponse(state(request).tools.call("shortlist_remove", who, workspace_id=workspace_id, worker_id=worker_id))


@router.get("/workspaces/{workspace_id}/activity", tags=["workspaces"], summary="Activity log, raw or per day / ISO week / month")
def workspace_activity(workspace_id: str, request: Request, view: str | None = Query(None, description="daily | weekly | monthly"),
                       staffer: str | None = None, since: str | None = None, until: str | None = None,
                       who: Caller = Depends(caller)) -> SafeJSONResponse:
    return SafeJSONResponse(state(request).workspaces.activity(workspace_id, view=view, staffer=staffer, since=since, until=until))


# ------------------------------------------------------------------ memory
@router.post("/memory/query", tags=["memory"], summary="Every memory surface for a role + place in one call")
def memory_query(body: MemoryQuery, request: Request, who: Caller = Depends(caller)) -> SafeJSONResponse:
    return SafeJSONResponse(state(request).recruiting.memory_query(who, body.model_dump()))


@router.post("/memory/seed", tags=["memory"], summary="Seed a sealed fill directly (governed; names checked against workers)")
def seed(body: SeedRequest, request: Request, who: Caller = Depends(caller)) -> SafeJSONResponse:
    return SafeJSONResponse(state(request).tools.call("seed_playbook", who, fill=body.model_dump(exclude_none=True, exclude={"workers"}),
                                                      workers=refs(body.workers)))


@router.delete("/memory/playbooks/{playbook_id}", tags=["memory"], summary="Delete a playbook (admin)")
def delete_playbook(playbook_id: str, request: Request, who: Caller = Depends(caller)) -> SafeJSONResponse:
    return SafeJSONResponse(state(request).tools.call("delete_playbook", who, playbook_id=playbook_id))


@router.get("/memory/stats", tags=["memory"])
def memory_stats(request: Request, who: Caller = Depends(caller)) -> SafeJSONResponse:
    s = state(request)
    stats = s.gateway.memory_stats()
    if who.role == "viewer":  # endorsed names are person names
        stats["top_endorsed"] = [{**e, "name": masking.mask_value(e["name"], "name", masking.INITIALS)} for e in stats.get("top_endorsed", [])]
    return SafeJSONResponse(stats)


# ------------------------------------------------------------------ governance
@router.get("/tools", tags=["governance"], summary="The governed tools and the role each needs")
def list_tools(request: Request, who: Caller = Depends(caller)) -> SafeJSONResponse:
    return SafeJSONResponse({"tools": state(request).tools.list()})


@router.get("/tools/audit", tags=["governance"], summary="Who did what, with what arguments, when, and how it ended")
def audit(request: Request, staffer: str | None = None, tool: str | None = None,
          since: str | None = Query(None, description="'today', a date (local midnight) or an ISO 8601 instant"),
          until: str | None = Query(None, description="a date (inclusive) or an ISO 8601 instant (exclusive)"),
          outcome: str | None = Query(None, description="ok | error"), limit: int | None = Query(None, ge=1),
          who: Caller = Depends(caller)) -> SafeJSONResponse:
    if not who.at_least("recruiter"):
        raise ApiError(403, "Forbidden", f"{who.name!r} has the role {who.role!r}; the audit needs recruiter or above")
    entries = state(request).tools.audit(staffer=staffer, tool=tool, since=since, until=until, outcome=outcome, limit=limit)
    return SafeJSONResponse({"entries": entries, "count": len(entries)})


@router.get("/policy/masking", tags=["governance"], summary="What each role sees of PII / PHI / Financial columns")
def masking_policy(who: Caller = Depends(caller)) -> SafeJSONResponse:
    return SafeJSONResponse({**masking.policy_document(), "your_role": who.role})


@router.get("/datasets/{name}/ai_safe", tags=["governance"], summary="Rows with every PII / PHI / Financial column removed or masked")
def ai_safe(name: str, request: Request, mode: str = Query("drop", description="drop | mask"),
            limit: int = Query(100, ge=1, le=10_000), offset: int = Query(0, ge=0), who: Caller = Depends(caller)) -> SafeJSONResponse:
    if mode not in ("drop", "mask"):
        raise ApiError(400, "InvalidInput", f"mode must be drop or mask, not {mode!r}")
    s = state(request)
    manifest = s.gateway.manifest(name, fresh=True)
    columns = [c["name"] for c in manifest.get("columns", [])]
    tags = masking.effective_tags(manifest.get("column_tags"), columns)
    select, removed, masked = masking.ai_safe_select(name, columns, tags, mode)
    if not select:
        rows: list[dict[str, Any]] = []
    else:
        rows = s.gateway.rows(f"SELECT {select} FROM {quote_ident(name)} LIMIT {int(limit)} OFFSET {int(offset)}")
    return SafeJSONResponse({
        "dataset": name, "mode": mode, "sensitivity": manifest.get("sensitivity"),
        "columns": [c for c in columns if c not in removed], "removed_columns": removed, "masked_columns": masked,
        "column_tags": {c: tags[c] for c in tags}, "rows": rows, "row_count": len(rows), "offset": offset,
    })
