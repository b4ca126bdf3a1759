"""The recruiter API: app factory and `python -m mcp_server`.

It talks to the Lakehouse gateway over HTTP for everything in the data directory
(DESIGN decision 6) and keeps its own small state under `<data_dir>/_recruiter/`.

Environment (for `python -m mcp_server`):

    MCP_GATEWAY_URL   gateway base URL (default: the URL the gateway announced in
                      <data_dir>/.gateway_url, else http://127.0.0.1:3100)
    MCP_API_KEY       the gateway API key this service uses (default: <data_dir>/.api_key,
                      the key a gateway without configured keys generates)
    MCP_DATA_DIR      the Lakehouse data directory (default ./data)
    MCP_API_KEYS      this service's own keys, "key:role:name,..." with roles admin,
                      recruiter, viewer (default: one generated admin key in
                      <data_dir>/_recruiter/.api_key)
    MCP_SEED_ACTIONS  log actions that seed playbook memory (default "Placed"; the
                      original product also seeded on "Call,SMS")
    MCP_HOST, MCP_PORT  bind address (default 127.0.0.1:3700)
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import httpx
from fastapi import FastAPI

from lakehouse.config import GatewayConfig
from lakehouse.http import KeyRing, configure_logging, ensure_key_file, install_http_plumbing, run_server
from mcp_server.auth import Caller, parse_keys
from mcp_server.errors import ERRORS
from mcp_server.gateway import RecruiterGateway
from mcp_server.recruiting import ACTIONS, Recruiting
from mcp_server.routes import RecruiterState, public, router
from mcp_server.store import Store
from mcp_server.tools import ToolRegistry
from mcp_server.workspaces import Workspaces

log = logging.getLogger("mcp_server")

DEFAULT_PORT = 3700
DEFAULT_GATEWAY_URL = "http://127.0.0.1:3100"

DESCRIPTION = """\
JSON API for recruiters: hybrid search with client blacklists, contract matching that
skips booked workers, Call / SMS / Placed / No-show logging that teaches playbook
memory, per-contract workspaces, the one-call memory bundle, and governed actions
(every state change audited; `GET /tools/audit`). Keys carry a role (admin, recruiter,
viewer); PII / PHI / Financial columns are masked per role (`GET /policy/masking`).
Send the key as `X-API-Key`. Errors are `{"error": <kind>, "message": <why>}`.
"""


def register_tools(tools: ToolRegistry, recruiting: Recruiting, workspaces: Workspaces) -> None:
    """Every state-changing action, with the least role allowed to take it."""

    def log_action(who: Caller, *, action: str, workers: list[dict[str, Any]], contract: dict[str, Any],
                   note: str | None = None, workspace_id: str | None = None) -> dict[str, Any]:
        result = recruiting.log_action(who, action=action, workers=workers, contract=contract, note=note, workspace_id=workspace_id)
        if workspace_id:
            names = ", ".join(w["name"] for w in result["logged"]) or "nobody"
            workspaces.record(workspace_id, who.name, result["action"], f"{action} {names}", call_ids=result["call_ids"],
                              rejected_ghost_names=result["rejected_ghost_names"])
        return result

    def log_failure(who: Caller, *, worker: dict[str, Any], contract: dict[str, Any], note: str | None = None,
                    workspace_id: str | None = None) -> dict[str, Any]:
        result = recruiting.log_failure(who, worker=worker, contract=contract, note=note, workspace_id=workspace_id)
        if workspace_id and result["recorded"]:
            workspaces.record(workspace_id, who.name, "no_show", f"no-show: {result['name']}", worker_id=result["worker_id"])
        return result

    def seed(who: Caller, *, fill: dict[str, Any], workers: list[dict[str, Any]]) -> dict[str, Any]:
        found = recruiting.resolve(workers, city=fill["city"], state=fill["state"])
        if not found.workers:
            return {"op": None, "playbook": None, **found.to_dict()}
        answer = recruiting.gateway.seed_playbook({**fill, "staffer": who.name,
                                                   "workers": [{"worker_id": w["worker_id"], "name": w["name"]} for w in found.workers]})
        return {**answer, **found.to_dict()}

    def shortlist_add(who: Caller, *, workspace_id: str, workers: list[dict[str, Any]], note: str | None = None) -> dict[str, Any]:
        workspaces.entry(workspace_id)
        found = recruiting.resolve(workers)
        added = workspaces.shortlist_add(who, workspace_id=workspace_id, workers=found.workers, note=note) if found.workers else []
        return {"added": added, **found.to_dict()}

    def ghosts(result: dict[str, Any]) -> str:
        rejected = result.get("rejected_ghost_names") or []
        return "ok" + (f"; rejected ghost names: {', '.join(rejected)}" if rejected else "")

    tools.register("log", "recruiter", log_action, "Log a Call / SMS / Placed action (Placed seeds memory and books the shift)",
                   lambda r: f"{r['action']}: {len(r['logged'])} logged" + (f", seed {r['seeded']['op']}" if r["seeded"] else "")
                   + (f"; rejected ghost names: {', '.join(r['rejected_ghost_names'])}" if r["rejected_ghost_names"] else ""))
    tools.register("log_failure", "recruiter", log_failure, "Record a no-show (mark_failed: the boost halves from the next query)",
                   lambda r: f"failures={r['failures']}" if r["recorded"] else ghosts(r))
    tools.register("blacklist_add", "recruiter", recruiting.blacklist_add, "Add workers to a client's blacklist",
                   lambda r: f"added {len(r['added'])}" + ("; " + ghosts(r) if r["rejected_ghost_names"] else ""))
    tools.register("blacklist_remove", "recruiter", recruiting.blacklist_remove, "Remove a worker from a client's blacklist")
    tools.register("workspace_create", "recruiter", workspaces.create, "Create a workspace for a contract",
                   lambda r: f"{r['id']} ({'created' if r['created'] else 'existing'})")
    tools.register("workspace_handoff", "recruiter", workspaces.handoff, "Hand a workspace to another staffer (owner or admin)",
                   lambda r: f"{r['id']}: {r['from']} -> {r['owner']}")
    tools.register("workspace_save_search", "recruiter", workspaces.save_search, "Save a search in a workspace", lambda r: r["id"])
    tools.register("shortlist_add", "recruiter", shortlist_add, "Shortlist workers in a workspace",
                   lambda r: f"added {len(r['added'])}" + ("; " + ghosts(r) if r["rejected_ghost_names"] else ""))
    tools.register("shortlist_remove", "recruiter", workspaces.shortlist_remove, "Remove a worker from a workspace's shortlist")
    tools.register("seed_playbook", "recruiter", seed, "Seed a sealed fill into playbook memory",
                   lambda r: f"{r['op']} {r['playbook']['id']}" if r.get("playbook") else ghosts(r))
    tools.register("delete_playbook", "admin", lambda who, *, playbook_id: recruiting.gateway.delete_playbook(playbook_id),
                   "Delete a playbook from memory")


def create_app(gateway_url: str, api_key: str, data_dir: str | os.PathLike, *, api_keys: list[Caller] | str | None = None,
               seed_actions: list[str] | None = None, transport: httpx.BaseTransport | None = None) -> FastAPI:
    """The recruiter API over the gateway at `gateway_url` (using `api_key` there), with its
    own state under `<data_dir>/_recruiter/`. `api_keys` are this API's keys (a list of
    `Caller` or a "key:role:name,..." string); `transport` lets tests call an in-process gateway."""
    store = Store(data_dir)
    if isinstance(api_keys, str):
        api_keys = parse_keys(api_keys)
    if not api_keys:
        api_keys = [Caller(key=ensure_key_file(store.path(".api_key"), log, setting="MCP_API_KEYS"), role="admin", name="admin")]
    gateway = RecruiterGateway(gateway_url, api_key, transport=transport)
    actions = {a.strip().lower() for a in (seed_actions or ["placed"]) if a.strip()}
    unknown = actions - set(ACTIONS)
    if unknown:
        raise ValueError(f"unknown seed actions {sorted(unknown)}: use Call, SMS, Placed")
    executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="recruiter")
    recruiting = Recruiting(gateway, store, seed_actions=frozenset(actions), executor=executor)
    workspaces = Workspaces(store)
    tools = ToolRegistry(store)
    register_tools(tools, recruiting, workspaces)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        executor.shutdown(wait=False)
        gateway.close()

    app = FastAPI(title="Lakehouse recruiter API", description=DESCRIPTION, lifespan=lifespan)
    app.state.recruiter = RecruiterState(gateway=gateway, store=store, tools=tools, recruiting=recruiting,
                                         workspaces=workspaces, key_ring=KeyRing(api_keys))
    app.include_router(public)
    app.include_router(router)
    # The web pages are served from localhost, like the gateway's default origins.
    install_http_plumbing(app, ERRORS, cors_origin_regex=GatewayConfig.cors_origin_regex)
    return app


def settings_from_env(env: dict[str, str] | None = None) -> dict[str, Any]:
    env = dict(os.environ if env is None else env)
    data_dir = Path(env.get("MCP_DATA_DIR") or "data")
    url = env.get("MCP_GATEWAY_URL")
    if not url:
        try:
            url = (data_dir / ".gateway_url").read_text().strip()
        except OSError:
            url = ""
    key = env.get("MCP_API_KEY")
    if not key:
        try:
            key = (data_dir / ".api_key").read_text().strip()
        except OSError:
            key = ""
    if not key:
        raise SystemExit("no gateway API key: set MCP_API_KEY (or run the gateway once so it writes <data_dir>/.api_key)")
    return {
        "gateway_url": url or DEFAULT_GATEWAY_URL, "api_key": key, "data_dir": data_dir,
        "api_keys": env.get("MCP_API_KEYS") or None,
        "seed_actions": [a for a in (env.get("MCP_SEED_ACTIONS") or "Placed").split(",") if a.strip()],
        "host": env.get("MCP_HOST") or "127.0.0.1", "port": int(env.get("MCP_PORT") or DEFAULT_PORT),
    }


def main() -> None:
    configure_logging()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per gateway call would drown the request log
    s = settings_from_env()
    app = create_app(s["gateway_url"], s["api_key"], s["data_dir"], api_keys=s["api_keys"], seed_actions=s["seed_actions"])
    log.info("recruiter API on http://%s:%d over the gateway at %s (data dir %s)", s["host"], s["port"], s["gateway_url"], s["data_dir"])
    run_server(app, host=s["host"], port=s["port"])


if __name__ == "__main__":
    main()
