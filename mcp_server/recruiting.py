"""What the recruiter API does, independent of HTTP: resolve worker names, apply client
blacklists and bookings, search and match through the gateway, log calls, placements
and no-shows, and answer the one-call memory query.

State kept here (under `_recruiter/`, see `store.py`):

* `blacklists.json`  client -> blacklisted workers (who added them, when, why)
* `bookings.jsonl`   one line per worker booked by a `Placed` log (and per no-show), with
                     the shift dates: `/match` excludes workers booked for an
                     overlapping shift, together with the `placements` dataset's bookings
* `call_log.jsonl`   every Call / SMS / Placed / No-show action, one line per worker

Playbook memory itself lives in the gateway (`/vectors/playbook_memory/*`).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Callable

from lakehouse.http import ApiError
from lakehouse.intelligence.hybrid import id_filter
from lakehouse.lakehouse import quote_ident, sql_literal
from mcp_server import masking
from mcp_server.auth import Caller
from mcp_server.gateway import RecruiterGateway
from mcp_server.store import Store
from mcp_server.tools import now_utc

log = logging.getLogger("mcp_server")

WORKERS = "workers"
PLACEMENTS = "placements"
JOB_ORDERS = "job_orders"
CLIENTS = "clients"
BLACKLISTS = "blacklists.json"
BOOKINGS = "bookings.jsonl"
CALL_LOG = "call_log.jsonl"

#: worker columns asked of hybrid search beside the ranking ones (with every tagged
#: column); tagged columns are masked per role before they leave this service
CONTACT_COLUMNS = ("phone", "email", "zip", "available_from")
#: log actions -> call-log channel
ACTIONS = {"call": "call", "sms": "sms", "placed": "placed"}
GHOST_NOTE = ("{n} name(s) are not in the workers dataset and were skipped (nothing logged, seeded or booked "
              "for them): {names}. Check the spelling or send worker_id.")


def today_iso() -> str:
    return date.today().isoformat()


def parse_day(value: Any, what: str) -> str:
    text = str(value).strip()[:10]
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError as exc:
        raise ApiError(400, "InvalidInput", f"{what} must be a date YYYY-MM-DD, not {value!r}") from exc


def client_key(client: str) -> str:
    key = " ".join(str(client).split()).lower()
    if not key:
        raise ApiError(400, "InvalidInput", "client is empty")
    return key


# ---------------------------------------------------------------------- natural language
_NORMALIZER: dict[str, Any] = {"fn": None, "checked": 0.0}
NORMALIZER_RECHECK_S = 60.0


def normalizer() -> Callable[[Any], dict[str, Any]] | None:
    """`lakehouse.intelligence.normalizer.normalize` when that module exists (imported
    lazily; its absence is re-checked at most once a minute)."""
    if _NORMALIZER["fn"] is not None:
        return _NORMALIZER["fn"]
    if time.monotonic() - _NORMALIZER["checked"] < NORMALIZER_RECHECK_S and _NORMALIZER["checked"]:
        return None
    _NORMALIZER["checked"] = time.monotonic()
    try:
        from lakehouse.intelligence import normalizer as module  # type: ignore[attr-defined]
    except ImportError:
        return None
    except Exception:  # noqa: BLE001 - a broken optional module must not break search
        log.exception("lakehouse.intelligence.normalizer failed to import; natural-language input is off")
        return None
    _NORMALIZER["fn"] = getattr(module, "normalize", None)
    return _NORMALIZER["fn"]


def normalize_text(text: str) -> dict[str, Any]:
    """role / count / city / state / date parsed from `text` (only the fields it found)."""
    fn = normalizer()
    if fn is None:
        raise ApiError(400, "InvalidInput", "natural-language input needs lakehouse.intelligence.normalizer, which is not "
                       "installed here: send role, city and state as fields")
    try:
        parsed = fn(text) or {}
    except Exception as exc:  # noqa: BLE001
        raise ApiError(400, "InvalidInput", f"could not read {text!r}: {exc}") from exc
    out: dict[str, Any] = {}
    for key in ("role", "city", "state", "count", "date"):
        value = parsed.get(key) if isinstance(parsed, dict) else None
        if value not in (None, "", []):
            out[key] = value.isoformat() if hasattr(value, "isoformat") else value
    return out


# ---------------------------------------------------------------------- workers
@dataclass
class Resolution:
    workers: list[dict[str, Any]] = field(default_factory=list)  # worker_id, name, role, city, state
    ghost_names: list[str] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)  # {name, worker_id, reason}

    def note(self) -> str | None:
        parts = []
        if self.ghost_names:
            parts.append(GHOST_NOTE.format(n=len(self.ghost_names), names=", ".join(self.ghost_names)))
        others = [r for r in self.rejected if r["reason"] != "not in the workers dataset"]
        if others:
            parts.append("; ".join(f"{r.get('name') or r.get('worker_id')}: {r['reason']}" for r in others))
        return " ".join(parts) or None

    def to_dict(self) -> dict[str, Any]:
        return {"rejected_ghost_names": self.ghost_names, "rejected": self.rejected, "note": self.note()}


def _clean_name(name: Any) -> str:
    return " ".join(str(name or "").split())


class Recruiting:
    def __init__(self, gateway: RecruiterGateway, store: Store, *, seed_actions: frozenset[str] = frozenset({"placed"}),
                 executor: ThreadPoolExecutor | None = None):
        self.gateway = gateway
        self.store = store
        self.seed_actions = seed_actions
        self.executor = executor or ThreadPoolExecutor(max_workers=6, thread_name_prefix="recruiter")
        self._tags: tuple[dict[str, Any], dict[str, str], list[str]] | None = None

    # ------------------------------------------------------------------ masking
    def worker_tags(self) -> tuple[dict[str, str], list[str]]:
        """The workers dataset's effective tags and columns, worked out once per manifest
        read (the gateway client keeps a manifest a few seconds; every search asks)."""
        manifest = self.gateway.manifest(WORKERS)
        cached = self._tags
        if cached is None or cached[0] is not manifest:
            columns = [c["name"] for c in manifest.get("columns", [])]
            cached = self._tags = (manifest, masking.effective_tags(manifest.get("column_tags"), columns), columns)
        return cached[1], cached[2]

    def mask(self, rows: list[dict[str, Any]], who: Caller) -> list[dict[str, Any]]:
        if who.role == "admin" or not rows:
            return rows
        tags, _ = self.worker_tags()
        return masking.mask_rows(rows, tags, who.role)

    def worker_id_in(self, ids: list[str]) -> str:
        """`worker_id IN (...)` for ids given as text, compared as numbers when the column
        and the ids allow it (see `lakehouse.intelligence.hybrid.id_filter`)."""
        return id_filter(ids, self.gateway.manifest(WORKERS).get("columns", []))

    # ------------------------------------------------------------------ names -> workers
    def resolve(self, entries: list[dict[str, Any]], *, city: str | None = None, state: str | None = None) -> Resolution:
        """Match `[{name?, worker_id?}]` against the workers dataset. Unknown names are
        ghosts; an id whose name differs, or a name shared by several workers that the
        contract's city cannot tell apart, is rejected with the reason."""
        out = Resolution()
        ids = sorted({str(e["worker_id"]).strip() for e in entries if e.get("worker_id") not in (None, "")})
        names = sorted({_clean_name(e.get("name")).lower() for e in entries if _clean_name(e.get("name"))})
        if not ids and not names:
            return out
        clauses = []
        if ids:
            clauses.append(self.worker_id_in(ids))
        if names:
            clauses.append(f"lower(trim(name)) IN ({', '.join(sql_literal(n) for n in names)})")
        rows = self.gateway.rows(
            f"SELECT CAST(worker_id AS VARCHAR) AS worker_id, name, role, city, state FROM {quote_ident(WORKERS)} "
            f"WHERE {' OR '.join(clauses)}"
        )
        by_id = {r["worker_id"]: r for r in rows}
        by_name: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            by_name[_clean_name(r["name"]).lower()].append(r)
        seen = set()
        for entry in entries:
            name = _clean_name(entry.get("name"))
            wid = str(entry.get("worker_id")).strip() if entry.get("worker_id") not in (None, "") else None
            if wid is not None:
                row = by_id.get(wid)
                if row is None:
                    out.rejected.append({"name": name or None, "worker_id": wid, "reason": "not in the workers dataset"})
                    out.ghost_names.append(name or wid)
                    continue
                if name and name.lower() != _clean_name(row["name"]).lower():
                    out.rejected.append({"name": name, "worker_id": wid, "reason": f"worker {wid} is {row['name']!r}, not {name!r}"})
                    continue
            else:
                matches = by_name.get(name.lower(), [])
                if not matches:
                    out.rejected.append({"name": name, "worker_id": None, "reason": "not in the workers dataset"})
                    out.ghost_names.append(name)
                    continue
                if len(matches) > 1 and city:
                    local = [m for m in matches if str(m["city"]).lower() == city.lower()
                             and (not state or str(m["state"]).lower() == state.lower())]
                    matches = local or matches
                if len(matches) > 1:
                    out.rejected.append({"name": name, "worker_id": None, "reason": (
                        f"{len(matches)} workers share this name ({', '.join(m['worker_id'] for m in matches[:5])}): send worker_id")})
                    continue
                row = matches[0]
            if row["worker_id"] not in seen:
                seen.add(row["worker_id"])
                out.workers.append(dict(row))
        return out

    # ------------------------------------------------------------------ blacklists
    def blacklist(self, client: str) -> dict[str, Any]:
        doc = self.store.read(BLACKLISTS, {})
        entry = doc.get(client_key(client)) or {"client": client, "workers": {}}
        workers = [{"worker_id": wid, **info} for wid, info in sorted(entry["workers"].items())]
        return {"client": entry["client"], "workers": workers, "count": len(workers)}

    def blacklisted_ids(self, client: str | None) -> list[str]:
        if not client:
            return []
        doc = self.store.read(BLACKLISTS, {})
        return sorted((doc.get(client_key(client)) or {}).get("workers", {}))

    def blacklist_add(self, who: Caller, *, client: str, workers: list[dict[str, Any]], reason: str | None = None) -> dict[str, Any]:
        key = client_key(client)
        found = self.resolve(workers)
        at = now_utc()

        def change(doc: dict[str, Any]) -> list[str]:
            entry = doc.setdefault(key, {"client": " ".join(client.split()), "workers": {}})
            added = []
            for w in found.workers:
                if w["worker_id"] not in entry["workers"]:
                    added.append(w["worker_id"])
                entry["workers"][w["worker_id"]] = {"name": w["name"], "reason": reason, "added_by": who.name, "at": at}
            return added

        added = self.store.update(BLACKLISTS, {}, change) if found.workers else []
        return {**self.blacklist(client), "added": added, **found.to_dict()}

    def blacklist_remove(self, who: Caller, *, client: str, worker_id: str) -> dict[str, Any]:
        key = client_key(client)

        def change(doc: dict[str, Any]) -> bool:
            return (doc.get(key) or {}).get("workers", {}).pop(str(worker_id), None) is not None

        removed = self.store.update(BLACKLISTS, {}, change)
        if not removed:
            raise ApiError(404, "NotFound", f"worker {worker_id} is not on {client!r}'s blacklist")
        return {**self.blacklist(client), "removed": str(worker_id)}

    # ------------------------------------------------------------------ bookings
    def ledger_bookings(self, start: str, end: str) -> dict[str, list[str]]:
        """Workers this service's own bookings (Placed logs, no-shows) hold for a shift
        overlapping [start, end]. The `placements` dataset's bookings are the gateway's to
        apply: hybrid search leaves them out (`booked_between`) in the same call."""
        ledger: dict[str, str] = {}
        for b in self.store.records(BOOKINGS):
            if b["start_date"] <= end and b["end_date"] >= start:
                ledger[b["worker_id"]] = b["event"] if b["event"] == "no_show" else ledger.get(b["worker_id"], b["event"])
        return {"booked": sorted(w for w, e in ledger.items() if e != "no_show"),
                "no_show": sorted(w for w, e in ledger.items() if e == "no_show")}

    # ------------------------------------------------------------------ search
    def search(self, who: Caller, body: dict[str, Any]) -> dict[str, Any]:
        """Hybrid search with the client's blacklist excluded, results masked for `who`."""
        started = time.perf_counter()
        request = dict(body)
        client = request.pop("client", None)
        normalize = request.pop("normalize", True)
        inferred: dict[str, Any] = {}
        if normalize and request.get("query") and not all(request.get(f) for f in ("role", "city", "state")) and normalizer():
            parsed = normalize_text(request["query"])
            inferred = {f: parsed[f] for f in ("role", "city", "state") if f in parsed and not request.get(f)}
            request.update(inferred)
        if not request.get("query"):
            request["query"] = " ".join(str(request[f]) for f in ("role", "city", "state") if request.get(f)) or None
        if not request.get("query"):
            raise ApiError(400, "InvalidInput", "send a query text, or at least a role / city / state")
        blacklisted = self.blacklisted_ids(client)
        request["exclude_worker_ids"] = sorted(set(request.get("exclude_worker_ids") or []) | set(blacklisted))
        request["columns"] = self.contact_columns()
        result = self.gateway.hybrid(request)
        dropped = []
        if inferred and result["sql_matches"] == 0:  # what the parser read matched nothing: fall back to the text alone
            for f in inferred:
                request.pop(f, None)
            dropped = sorted(inferred)
            result = self.gateway.hybrid(request)
        result["sources"] = self.mask(result["sources"], who)
        result["client"] = client
        result["blacklist_applied"] = len(blacklisted)
        if inferred:
            result["normalized"] = {"inferred": inferred, "dropped_after_zero_matches": dropped}
        result.setdefault("latency_ms", {})["recruiter_total_ms"] = round((time.perf_counter() - started) * 1000, 3)
        return result

    def contact_columns(self) -> list[str]:
        """Worker columns a recruiter sees beside the ranking ones: the contacts and every
        tagged column. Hybrid search returns them with each source (no second query)."""
        tags, columns = self.worker_tags()
        return [c for c in columns if (c in CONTACT_COLUMNS or c in tags) and c != "worker_id"]

    # ------------------------------------------------------------------ match
    def contract_from(self, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The contract with natural-language `text` folded in; returns (contract, inferred)."""
        contract = {k: v for k, v in body.items() if v not in (None, "")}
        inferred: dict[str, Any] = {}
        text = contract.pop("text", None)
        if text:
            parsed = normalize_text(text)
            mapping = {"role": "role", "city": "city", "state": "state", "count": "count", "date": "start_date"}
            for src, dst in mapping.items():
                if src in parsed and not contract.get(dst):
                    inferred[dst] = parsed[src]
            contract.update(inferred)
        missing = [f for f in ("role", "city", "state") if not contract.get(f)]
        if missing:
            raise ApiError(400, "InvalidInput", f"the contract needs {', '.join(missing)}" + ("" if text else " (or a `text` to read them from)"))
        contract["count"] = max(1, int(contract.get("count") or 1))
        contract["start_date"] = parse_day(contract.get("start_date") or today_iso(), "start_date")
        contract["end_date"] = parse_day(contract.get("end_date") or contract["start_date"], "end_date")
        if contract["end_date"] < contract["start_date"]:
            raise ApiError(400, "InvalidInput", "end_date is before start_date")
        return contract, inferred

    def match(self, who: Caller, body: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        k = body.pop("k", None)
        query = body.pop("query", None)
        filters = {f: body.pop(f, None) for f in ("availability", "certifications", "min_reliability", "max_pay_rate", "radius_miles")}
        use_memory = body.pop("use_playbook_memory", True)
        contract, inferred = self.contract_from(body)
        ledger = self.ledger_bookings(contract["start_date"], contract["end_date"])
        blacklisted = self.blacklisted_ids(contract.get("client"))
        request = {
            "query": query or f"reliable {contract['role']} in {contract['city']}, {contract['state']}",
            "k": max(k or max(contract["count"] * 3, 10), contract["count"]),
            "role": contract["role"], "city": contract["city"], "state": contract["state"],
            "exclude_worker_ids": sorted(set(blacklisted) | set(ledger["booked"]) | set(ledger["no_show"])),
            "booked_between": [contract["start_date"], contract["end_date"]], "bookings_dataset": PLACEMENTS,
            "use_playbook_memory": use_memory, "columns": self.contact_columns(),
            **{f: v for f, v in filters.items() if v not in (None, [])},
        }
        result = self.gateway.hybrid(request)  # one call: the filter, the bookings, the rank and the boost
        candidates = self.mask(result["sources"], who)
        bookings = result.get("bookings") or {}
        latency = dict(result.get("latency_ms") or {})
        latency["recruiter_total_ms"] = round((time.perf_counter() - started) * 1000, 3)
        return {
            "contract": contract,
            "normalized": {"inferred": inferred} if inferred else None,
            "candidates": candidates,
            "recommended": [c["worker_id"] for c in candidates[: contract["count"]]],
            "shortfall": max(0, contract["count"] - len(candidates)),
            "excluded": {"blacklisted": blacklisted, "booked": sorted(set(ledger["booked"]) | set(bookings.get("excluded", []))),
                         "no_show": ledger["no_show"], "note": bookings.get("note")},
            "sql_matches": result["sql_matches"],
            "search_path": result.get("search_path"),
            "playbook_boost": result.get("playbook_boost"),
            "latency_ms": latency,
        }

    # ------------------------------------------------------------------ logging actions
    def log_action(self, who: Caller, *, action: str, workers: list[dict[str, Any]], contract: dict[str, Any],
                   note: str | None = None, workspace_id: str | None = None) -> dict[str, Any]:
        channel = ACTIONS.get(action.strip().lower())
        if channel is None:
            raise ApiError(400, "InvalidInput", f"action must be Call, SMS or Placed, not {action!r}")
        for f in ("role", "city", "state"):
            if not contract.get(f):
                raise ApiError(400, "InvalidInput", f"the contract needs {f}")
        found = self.resolve(workers, city=contract["city"], state=contract["state"])
        at = now_utc()
        start = parse_day(contract.get("start_date") or today_iso(), "start_date")
        end = parse_day(contract.get("end_date") or start, "end_date")
        calls = []
        for w in found.workers:
            calls.append({
                "call_id": uuid.uuid4().hex[:16], "at": at, "staffer": who.name, "channel": channel,
                "outcome": "placed" if channel == "placed" else "contacted", "worker_id": w["worker_id"], "name": w["name"],
                "role": contract["role"], "city": contract["city"], "state": contract["state"],
                "client": contract.get("client"), "contract_id": contract.get("contract_id"),
                "start_date": start, "end_date": end, "note": note, "workspace_id": workspace_id,
            })
        seeded = None
        if found.workers and channel in self.seed_actions:
            fill = {
                "role": contract["role"], "city": contract["city"], "state": contract["state"],
                "workers": [{"worker_id": w["worker_id"], "name": w["name"]} for w in found.workers],
                "staffer": who.name, "date": today_iso(), "valid_until": contract.get("valid_until"),
                "attributes": {k: v for k, v in {"client": contract.get("client"), "contract_id": contract.get("contract_id"),
                                                 "source": f"recruiter_api:{channel}"}.items() if v},
            }
            answer = self.gateway.seed_playbook(fill)
            seeded = {"op": answer["op"], "playbook_id": answer["playbook"]["id"], "operation": answer["playbook"]["operation"]}
        if channel == "placed" and found.workers:
            self.store.append(BOOKINGS, *[{
                "at": at, "event": "booked", "worker_id": w["worker_id"], "name": w["name"], "start_date": start,
                "end_date": end, "role": contract["role"], "city": contract["city"], "state": contract["state"],
                "client": contract.get("client"), "contract_id": contract.get("contract_id"), "by": who.name,
            } for w in found.workers])
        self.store.append(CALL_LOG, *calls)
        return {
            "action": channel, "logged": [{"worker_id": w["worker_id"], "name": w["name"]} for w in found.workers],
            "call_ids": [c["call_id"] for c in calls], "seeded": seeded,
            "booked": channel == "placed" and bool(found.workers), **found.to_dict(),
        }

    def log_failure(self, who: Caller, *, worker: dict[str, Any], contract: dict[str, Any], note: str | None = None,
                    workspace_id: str | None = None) -> dict[str, Any]:
        for f in ("city", "state"):
            if not contract.get(f):
                raise ApiError(400, "InvalidInput", f"a no-show needs the contract's {f}")
        found = self.resolve([worker], city=contract["city"], state=contract["state"])
        if not found.workers:
            return {"recorded": False, "failures": None, **found.to_dict()}
        w = found.workers[0]
        failures = self.gateway.mark_failed(w["worker_id"], w["name"], contract["city"], contract["state"])["failures"]
        at = now_utc()
        start = parse_day(contract.get("start_date") or today_iso(), "start_date")
        end = parse_day(contract.get("end_date") or start, "end_date")
        self.store.append(BOOKINGS, {
            "at": at, "event": "no_show", "worker_id": w["worker_id"], "name": w["name"], "start_date": start, "end_date": end,
            "role": contract.get("role"), "city": contract["city"], "state": contract["state"],
            "client": contract.get("client"), "contract_id": contract.get("contract_id"), "by": who.name,
        })
        self.store.append(CALL_LOG, {
            "call_id": uuid.uuid4().hex[:16], "at": at, "staffer": who.name, "channel": "no_show", "outcome": "no_show",
            "worker_id": w["worker_id"], "name": w["name"], "role": contract.get("role"), "city": contract["city"],
            "state": contract["state"], "client": contract.get("client"), "contract_id": contract.get("contract_id"),
            "start_date": start, "end_date": end, "note": note, "workspace_id": workspace_id,
        })
        return {"recorded": True, "worker_id": w["worker_id"], "name": w["name"], "failures": failures,
                "penalty": f"this worker's playbook boost in {contract['city']}, {contract['state']} is multiplied by "
                           f"0.5^{failures} from the next query", **found.to_dict()}

    def call_log(self, *, staffer: str | None = None, worker_id: str | None = None, channel: str | None = None,
                 since: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        from mcp_server.tools import parse_instant
        from datetime import datetime

        low = parse_instant(since)
        out = [c for c in self.store.records(CALL_LOG)
               if (not staffer or c["staffer"].lower() == staffer.lower()) and (not worker_id or c["worker_id"] == str(worker_id))
               and (not channel or c["channel"] == channel.lower())
               and (low is None or datetime.fromisoformat(c["at"]) >= low)]
        return out[-limit:] if limit else out

    # ------------------------------------------------------------------ the memory bundle
    def memory_query(self, who: Caller, body: dict[str, Any]) -> dict[str, Any]:
        """Every memory surface for one role + place in one call (see README)."""
        started = time.perf_counter()
        body = {k: v for k, v in body.items() if v not in (None, "")}
        inferred: dict[str, Any] = {}
        text = body.get("text") or body.get("query")
        if text and not all(body.get(f) for f in ("role", "city", "state")) and (body.get("text") or normalizer()):
            parsed = normalize_text(text)
            inferred = {f: parsed[f] for f in ("role", "city", "state") if f in parsed and not body.get(f)}
            body.update(inferred)
        role, city, state = body.get("role"), body.get("city"), body.get("state")
        if not (role or city or state or body.get("query")):
            raise ApiError(400, "InvalidInput", "send role / city / state, or a query text")
        query = body.get("query") or " ".join(str(v) for v in (role, "in", city, state) if v)
        k = int(body.get("k") or 10)
        client = body.get("client")
        latency: dict[str, float] = {}

        def timed(name: str, fn: Callable[[], Any]) -> Callable[[], Any]:
            def run() -> Any:
                t = time.perf_counter()
                try:
                    return fn()
                except Exception as exc:  # noqa: BLE001 - one failing source must not sink the bundle
                    log.warning("memory source %s failed: %s", name, exc)
                    return {"error": type(exc).__name__, "message": _message(exc)}
                finally:
                    latency[f"{name}_ms"] = round((time.perf_counter() - t) * 1000, 3)
            return run

        hybrid_request = {"query": query, "k": max(k, 25), "role": role, "city": city, "state": state,
                          "use_playbook_memory": True, "exclude_worker_ids": self.blacklisted_ids(client),
                          # contact columns, as /search shows them (opt-in: more to read and mask)
                          "columns": self.contact_columns() if body.get("contacts") else None}
        jobs = {
            "hybrid": timed("hybrid", lambda: self.gateway.hybrid(hybrid_request)),
            # one call: the patterns across similar fills, and the prior fills of this role here
            "patterns": timed("patterns", lambda: self.gateway.patterns(query, k=25, city=city, state=state,
                                                                        prior_role=role if role and city and state else None)),
            "prior_placements": timed("prior_placements", lambda: self.prior_placements(role, city, state)),
            "tags": timed("masking_tags", lambda: self.worker_tags()[0]),
        }
        futures = {name: self.executor.submit(fn) for name, fn in jobs.items()}
        got = {name: f.result() for name, f in futures.items()}
        t = time.perf_counter()
        ledger = self._ledger(role, city, state)
        latency["call_log_ms"] = round((time.perf_counter() - t) * 1000, 3)

        hybrid = got["hybrid"]
        sources = hybrid.get("sources", []) if "error" not in hybrid else []
        playbook_workers = [s for s in sources if s.get("boost", 0) > 0][:k]
        reliable = self._reliable(sources, ledger)
        tags = got["tags"] if isinstance(got["tags"], dict) and "error" not in got["tags"] else None
        if who.role != "admin":
            if tags is None:  # cannot tell what is sensitive: fail closed
                raise ApiError(503, "MaskingUnavailable", "could not read the workers dataset's column tags")
            playbook_workers = masking.mask_rows(playbook_workers, tags, who.role)
            reliable = masking.mask_rows(reliable, tags, who.role)
        patterns = got["patterns"]
        if "error" in patterns:
            prior_playbooks = patterns
        else:
            patterns = dict(patterns)
            prior_playbooks = {"similar": patterns.pop("similar_in_role", [])}
        latency["total_ms"] = round((time.perf_counter() - started) * 1000, 3)
        return {
            "query": {"text": query, "role": role, "city": city, "state": state, "client": client, "inferred": inferred or None},
            "playbook_workers": playbook_workers,
            "playbook_boost": hybrid.get("playbook_boost") if "error" not in hybrid else hybrid,
            "discovered_patterns": patterns,
            "prior_fills": {
                "playbooks": prior_playbooks.get("similar", []) if "error" not in prior_playbooks else prior_playbooks,
                "placements": got["prior_placements"],
                "logged_here": ledger["placed_entries"][-10:],
            },
            "reliable_workers": reliable,
            "top_staffers": ledger["top_staffers"],
            "latency_ms": latency,
        }

    def prior_placements(self, role: str | None, city: str | None, state: str | None, limit: int = 20) -> list[dict[str, Any]]:
        """Past placements on job orders of this role and place (from the datasets)."""
        if not (role and city and state) or not {PLACEMENTS, JOB_ORDERS} <= self.gateway.dataset_names():
            return []
        sql = (
            "SELECT p.placement_id, CAST(p.worker_id AS VARCHAR) AS worker_id, p.start_date, p.end_date, p.outcome, p.rating, "
            "c.name AS client "
            f"FROM {quote_ident(PLACEMENTS)} p JOIN {quote_ident(JOB_ORDERS)} o ON p.order_id = o.order_id "
            f"LEFT JOIN {quote_ident(CLIENTS)} c ON p.client_id = c.client_id "
            f"WHERE lower(o.role) = lower({sql_literal(role)}) AND lower(o.city) = lower({sql_literal(city)}) "
            f"AND lower(o.state) = lower({sql_literal(state)}) ORDER BY p.start_date DESC LIMIT {int(limit)}"
        )
        try:
            return self.gateway.rows(sql)
        except Exception as exc:  # noqa: BLE001 - the demo tables are optional
            if "not found" in _message(exc).lower():  # e.g. no placements / job_orders dataset here
                return []
            raise

    def _ledger(self, role: str | None, city: str | None, state: str | None) -> dict[str, Any]:
        def same(a: Any, b: Any) -> bool:
            return b is None or str(a or "").lower() == str(b).lower()

        placed, failures = [], Counter()
        for c in self.store.records(CALL_LOG):
            if not (same(c.get("city"), city) and same(c.get("state"), state)):
                continue
            if c["channel"] == "no_show":
                failures[c["worker_id"]] += 1
            elif c["channel"] == "placed" and same(c.get("role"), role):
                placed.append(c)
        staffers = Counter(c["staffer"] for c in placed)
        return {
            "placed_entries": [{k: c.get(k) for k in ("at", "staffer", "worker_id", "name", "client", "start_date")} for c in placed],
            "failures": failures,
            "top_staffers": [{"staffer": s, "placements": n} for s, n in staffers.most_common(5)],
        }

    @staticmethod
    def _reliable(sources: list[dict[str, Any]], ledger: dict[str, Any], top: int = 10) -> list[dict[str, Any]]:
        """Workers most endorsed for this role + place with no recorded failure: endorsements
        are the memory's citations (the gateway lists up to 5) or this API's Placed logs,
        whichever is larger; failures are No-shows logged here or reported by the memory."""
        placed_by: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for entry in ledger["placed_entries"]:
            placed_by[entry["worker_id"]].append(entry)
        info: dict[str, dict[str, Any]] = {}
        for s in sources:
            memory_failures = max((int(m.group(1)) for r in s.get("reasons", []) if (m := _NO_SHOWS.search(r))), default=0)
            info[s["worker_id"]] = {
                "worker_id": s["worker_id"], "name": s.get("name"), "endorsements": len(s.get("citations") or []),
                "boost": s.get("boost", 0.0), "reliability": s.get("reliability"), "failures": memory_failures,
            }
        for wid, entries in placed_by.items():
            row = info.setdefault(wid, {"worker_id": wid, "name": entries[-1]["name"], "endorsements": 0, "boost": 0.0,
                                        "reliability": None, "failures": 0})
            row["endorsements"] = max(row["endorsements"], len(entries))
            row["staffers"] = sorted({e["staffer"] for e in entries})
            row["last_placed"] = entries[-1]["at"][:10]
        out = []
        for wid, row in info.items():
            row["failures"] = max(row["failures"], ledger["failures"].get(wid, 0))
            if row["endorsements"] > 0 and row["failures"] == 0:
                row.setdefault("staffers", [])
                out.append(row)
        out.sort(key=lambda r: (-r["endorsements"], -len(r["staffers"]), -(r["boost"] or 0.0), r["worker_id"]))
        return out[:top]


_NO_SHOWS = re.compile(r"(\d+) no-show")


def _message(exc: BaseException) -> str:
    return str(exc.args[0]) if exc.args else str(exc)
