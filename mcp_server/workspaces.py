"""Workspaces: one per contract, owned by one staffer, survive restarts.

Layout under `_recruiter/workspaces/`:

* `index.json`            id -> {owner, name, contract, created_*, updated_at, handoffs}
                          (the only file a handoff rewrites: the owner is a pointer)
* `<id>/workspace.json`   saved searches and the shortlist
* `<id>/activity.jsonl`   everything done in the workspace, one line per event

A handoff is a pointer swap: the index entry's `owner` changes and one activity line is
appended; the workspace's content is neither copied nor rewritten, and its id stays.
Activity can be read raw or aggregated per day, ISO week or month.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime
from typing import Any

from lakehouse.http import ApiError
from mcp_server.auth import Caller
from mcp_server.store import Store
from mcp_server.tools import now_utc, parse_instant

INDEX = "workspaces/index.json"
VIEWS = ("daily", "weekly", "monthly")


def _content(workspace_id: str) -> str:
    return f"workspaces/{workspace_id}/workspace.json"


def _activity(workspace_id: str) -> str:
    return f"workspaces/{workspace_id}/activity.jsonl"


def period_of(at: str, view: str) -> str:
    moment = datetime.fromisoformat(at).astimezone()  # periods in the agency's local time
    if view == "daily":
        return moment.date().isoformat()
    if view == "weekly":
        year, week, _ = moment.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{moment.year}-{moment.month:02d}"


class Workspaces:
    def __init__(self, store: Store):
        self.store = store

    # ------------------------------------------------------------------ reads
    def _index(self) -> dict[str, Any]:
        return self.store.read(INDEX, {})

    def entry(self, workspace_id: str) -> dict[str, Any]:
        entry = self._index().get(workspace_id)
        if entry is None:
            raise ApiError(404, "NotFound", f"no workspace {workspace_id!r}")
        return entry

    def list(self, owner: str | None = None) -> list[dict[str, Any]]:
        entries = self._index().values()
        return [e for e in entries if not owner or e["owner"].lower() == owner.lower()]

    def get(self, workspace_id: str, recent: int = 20) -> dict[str, Any]:
        entry = self.entry(workspace_id)
        content = self.store.read(_content(workspace_id), {"saved_searches": [], "shortlist": []})
        activity = self.store.records(_activity(workspace_id))
        return {**entry, **content, "activity_count": len(activity), "recent_activity": activity[-recent:]}

    def activity(self, workspace_id: str, *, view: str | None = None, staffer: str | None = None,
                 since: str | None = None, until: str | None = None) -> dict[str, Any]:
        self.entry(workspace_id)
        low, high = parse_instant(since), parse_instant(until, end_of_day=True)
        events = []
        for e in self.store.records(_activity(workspace_id)):
            at = datetime.fromisoformat(e["at"])
            if (staffer and e["actor"].lower() != staffer.lower()) or (low and at < low) or (high and at >= high):
                continue
            events.append(e)
        if not view:
            return {"workspace_id": workspace_id, "events": events, "count": len(events)}
        if view not in VIEWS:
            raise ApiError(400, "InvalidInput", f"view must be one of {', '.join(VIEWS)}, not {view!r}")
        buckets: dict[str, dict[str, Any]] = {}
        for e in events:
            period = period_of(e["at"], view)
            b = buckets.setdefault(period, {"period": period, "count": 0, "by_kind": Counter(), "by_staffer": Counter(),
                                            "first": e["at"], "last": e["at"]})
            b["count"] += 1
            b["by_kind"][e["kind"]] += 1
            b["by_staffer"][e["actor"]] += 1
            b["last"] = e["at"]
        periods = [{**b, "by_kind": dict(b["by_kind"]), "by_staffer": dict(b["by_staffer"])} for _, b in sorted(buckets.items())]
        return {"workspace_id": workspace_id, "view": view, "periods": periods, "count": len(events)}

    # ------------------------------------------------------------------ writes (called through the tools registry)
    def record(self, workspace_id: str, actor: str, kind: str, summary: str, **details: Any) -> None:
        self.store.append(_activity(workspace_id), {"at": now_utc(), "actor": actor, "kind": kind, "summary": summary,
                                                    **({"details": details} if details else {})})
        with self.store.locked():
            index = self._index()
            if workspace_id in index:
                index[workspace_id]["updated_at"] = now_utc()
                self.store.write(INDEX, index)

    def create(self, who: Caller, *, contract: dict[str, Any], name: str | None = None, owner: str | None = None) -> dict[str, Any]:
        contract = {k: v for k, v in contract.items() if v not in (None, "")}
        for f in ("role", "city", "state"):
            if not contract.get(f):
                raise ApiError(400, "InvalidInput", f"the contract needs {f}")
        with self.store.locked():
            index = self._index()
            contract_id = contract.get("contract_id")
            if contract_id:
                for existing in index.values():
                    if existing["contract"].get("contract_id") == contract_id:
                        return {**existing, "created": False}
            workspace_id = "ws_" + uuid.uuid4().hex[:12]
            at = now_utc()
            entry = {
                "id": workspace_id,
                "name": name or f"{contract['role']} in {contract['city']}, {contract['state']}"
                        + (f" for {contract['client']}" if contract.get("client") else ""),
                "owner": owner or who.name, "contract": contract, "created_by": who.name, "created_at": at,
                "updated_at": at, "handoffs": [],
            }
            self.store.write(_content(workspace_id), {"saved_searches": [], "shortlist": []})
            index[workspace_id] = entry
            self.store.write(INDEX, index)
        self.record(workspace_id, who.name, "create", f"created for {entry['owner']}")
        return {**entry, "created": True}

    def handoff(self, who: Caller, *, workspace_id: str, to_staffer: str, note: str | None = None) -> dict[str, Any]:
        to_staffer = to_staffer.strip()
        if not to_staffer:
            raise ApiError(400, "InvalidInput", "to_staffer is empty")
        with self.store.locked():
            index = self._index()
            entry = index.get(workspace_id)
            if entry is None:
                raise ApiError(404, "NotFound", f"no workspace {workspace_id!r}")
            if entry["owner"].lower() != who.name.lower() and who.role != "admin":
                raise ApiError(403, "Forbidden", f"{who.name!r} does not own workspace {workspace_id} ({entry['owner']!r} does)")
            previous = entry["owner"]
            entry["owner"] = to_staffer
            entry["handoffs"].append({"from": previous, "to": to_staffer, "by": who.name, "at": now_utc(), "note": note})
            self.store.write(INDEX, index)  # the pointer swap: content files are untouched
        self.record(workspace_id, who.name, "handoff", f"handed off from {previous} to {to_staffer}", note=note)
        return {**self.entry(workspace_id), "from": previous}

    def save_search(self, who: Caller, *, workspace_id: str, name: str, search: dict[str, Any]) -> dict[str, Any]:
        self.entry(workspace_id)
        saved = {"id": "s_" + uuid.uuid4().hex[:10], "name": name, "search": search, "by": who.name, "at": now_utc()}

        def change(doc: dict[str, Any]) -> None:
            doc.setdefault("saved_searches", []).append(saved)

        self.store.update(_content(workspace_id), {"saved_searches": [], "shortlist": []}, change)
        self.record(workspace_id, who.name, "save_search", f"saved search {name!r}", search_id=saved["id"])
        return saved

    def saved_search(self, workspace_id: str, search_id: str) -> dict[str, Any]:
        content = self.store.read(_content(workspace_id), {"saved_searches": []})
        for s in content.get("saved_searches", []):
            if s["id"] == search_id:
                return s
        raise ApiError(404, "NotFound", f"no saved search {search_id!r} in workspace {workspace_id!r}")

    def shortlist_add(self, who: Caller, *, workspace_id: str, workers: list[dict[str, Any]], note: str | None = None) -> list[dict[str, Any]]:
        """`workers` are already resolved ({worker_id, name})."""
        self.entry(workspace_id)
        at = now_utc()

        def change(doc: dict[str, Any]) -> list[dict[str, Any]]:
            shortlist = doc.setdefault("shortlist", [])
            present = {s["worker_id"] for s in shortlist}
            added = [{"worker_id": w["worker_id"], "name": w["name"], "note": note, "by": who.name, "at": at}
                     for w in workers if w["worker_id"] not in present]
            shortlist.extend(added)
            return added

        added = self.store.update(_content(workspace_id), {"saved_searches": [], "shortlist": []}, change)
        if added:
            self.record(workspace_id, who.name, "shortlist_add", f"shortlisted {', '.join(a['name'] for a in added)}",
                        worker_ids=[a["worker_id"] for a in added])
        return added

    def shortlist_remove(self, who: Caller, *, workspace_id: str, worker_id: str) -> dict[str, Any]:
        self.entry(workspace_id)

        def change(doc: dict[str, Any]) -> dict[str, Any] | None:
            shortlist = doc.setdefault("shortlist", [])
            for i, s in enumerate(shortlist):
                if s["worker_id"] == str(worker_id):
                    return shortlist.pop(i)
            return None

        removed = self.store.update(_content(workspace_id), {"saved_searches": [], "shortlist": []}, change)
        if removed is None:
            raise ApiError(404, "NotFound", f"worker {worker_id} is not on workspace {workspace_id}'s shortlist")
        self.record(workspace_id, who.name, "shortlist_remove", f"removed {removed['name']} from the shortlist", worker_id=str(worker_id))
        return removed
