"""Governed actions: every state-changing call goes through this registry.

A tool is registered with its name, the least role allowed to call it and the function
doing the work. `ToolRegistry.call` checks the caller's role (403 below it), runs the
function, and appends one line to `_recruiter/tools_audit.jsonl` (fsync'd) whatever the
outcome:

    {"id", "at" (UTC, RFC 3339), "staffer" (API key name), "role", "tool", "args",
     "outcome": "ok" | "error", "status" (HTTP status), "message", "duration_ms"}

`ToolRegistry.audit` filters that log by staffer, tool, outcome and time, so "what did
Sarah do today" is `GET /tools/audit?staffer=sarah&since=today`.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time as dtime, timezone
from typing import Any, Callable

from pydantic import BaseModel

from lakehouse.errors import error_message
from lakehouse.http import ApiError
from mcp_server.auth import RANK, Caller
from mcp_server.errors import ERRORS
from mcp_server.store import Store

AUDIT_FILE = "tools_audit.jsonl"


@dataclass(frozen=True)
class Tool:
    name: str
    role: str
    fn: Callable[..., Any]
    description: str = ""
    #: one line for the audit's `message` when the call succeeded
    summarize: Callable[[Any], str] | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "description": self.description}


def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def parse_instant(value: str | None, *, end_of_day: bool = False) -> datetime | None:
    """`today`, `yesterday`, a date (`2026-04-21`, local midnight) or an ISO 8601 instant
    (without an offset it is local time: the agency runs the box in its own time zone)."""
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    if text.lower() in ("today", "yesterday"):
        day = date.today()
        if text.lower() == "yesterday":
            day = date.fromordinal(day.toordinal() - 1)
        text = day.isoformat()
    try:
        if len(text) == 10:
            moment = datetime.combine(date.fromisoformat(text), dtime.max if end_of_day else dtime.min)
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ApiError(400, "InvalidInput", f"not a date or ISO 8601 instant: {value!r}") from exc
    if moment.tzinfo is None:
        moment = moment.astimezone()  # local time
    return moment.astimezone(timezone.utc)


def jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


class ToolRegistry:
    def __init__(self, store: Store):
        self._store = store
        self._tools: dict[str, Tool] = {}

    # ------------------------------------------------------------------ registration
    def register(self, name: str, role: str, fn: Callable[..., Any], description: str = "",
                 summarize: Callable[[Any], str] | None = None) -> Tool:
        if role not in RANK:
            raise ValueError(f"unknown role {role!r}")
        if name in self._tools:
            raise ValueError(f"tool {name!r} is already registered")
        tool = Tool(name, role, fn, description, summarize)
        self._tools[name] = tool
        return tool

    def tool(self, name: str, role: str, description: str = "", summarize: Callable[[Any], str] | None = None):
        """Decorator form of `register`."""
        def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.register(name, role, fn, description or (fn.__doc__ or "").strip().split("\n")[0], summarize)
            return fn
        return wrap

    def list(self) -> list[dict[str, Any]]:
        return [t.to_dict() for t in self._tools.values()]

    def __contains__(self, name: str) -> bool:
        return name in self._tools

    # ------------------------------------------------------------------ invocation
    def call(self, name: str, caller: Caller, /, **args: Any) -> Any:
        """Run tool `name` as `caller`; the call is audited whatever happens."""
        tool = self._tools.get(name)
        if tool is None:
            raise ApiError(404, "NotFound", f"no tool named {name!r}")
        started = time.perf_counter()
        if not caller.at_least(tool.role):
            error = ApiError(403, "Forbidden", f"{caller.name!r} has the role {caller.role!r}; {name!r} needs {tool.role!r} or above")
            self._record(tool, caller, args, "error", 403, error.message, started)
            raise error
        try:
            result = tool.fn(caller, **args)
        except ApiError as exc:
            self._record(tool, caller, args, "error", exc.status, exc.message, started)
            raise
        except Exception as exc:  # noqa: BLE001 - recorded, then re-raised unchanged
            status = ERRORS.status_of(exc)  # the status the caller is answered with
            self._record(tool, caller, args, "error", status, f"{type(exc).__name__}: {error_message(exc)}", started)
            raise
        message = "ok"
        if tool.summarize is not None:
            try:
                message = tool.summarize(result)
            except Exception:  # noqa: BLE001 - a summary must never fail an action
                message = "ok"
        self._record(tool, caller, args, "ok", 200, message, started)
        return result

    def _record(self, tool: Tool, caller: Caller, args: dict[str, Any], outcome: str, status: int, message: str, started: float) -> None:
        self._store.append(AUDIT_FILE, {
            "id": uuid.uuid4().hex[:16],
            "at": now_utc(),
            "staffer": caller.name,
            "role": caller.role,
            "tool": tool.name,
            "args": jsonable(args),
            "outcome": outcome,
            "status": status,
            "message": message,
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
        })

    # ------------------------------------------------------------------ the audit
    def audit(self, *, staffer: str | None = None, tool: str | None = None, since: str | None = None,
              until: str | None = None, outcome: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Matching audit entries, oldest first (`limit` keeps the newest)."""
        low = parse_instant(since)
        high = parse_instant(until, end_of_day=True)
        out = []
        for entry in self._store.records(AUDIT_FILE):
            if staffer and entry.get("staffer", "").lower() != staffer.lower():
                continue
            if tool and entry.get("tool") != tool:
                continue
            if outcome and entry.get("outcome") != outcome:
                continue
            if low or high:
                at = datetime.fromisoformat(entry["at"])
                if (low and at < low) or (high and at >= high):
                    continue
            out.append(entry)
        return out[-limit:] if limit else out
