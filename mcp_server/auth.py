"""API keys of the recruiter API, each with a role and a name.

Configured like the gateway's keys: `MCP_API_KEYS="key:role:name,key2:role2:name2"`
(or `api_keys=[...]` given to `create_app`). The name is the staffer recorded in the
tools audit for every action taken with the key. Roles, least to most powerful:

* `viewer`    reads search results with names and contact details masked; may not call
              any state-changing tool (403).
* `recruiter` searches, logs calls / placements / no-shows, manages blacklists and
              workspaces; sees worker names but masked email / phone / SSN.
* `admin`     everything, unmasked; deletes playbooks.

With no key configured the app generates one admin key into
`<data_dir>/_recruiter/.api_key` (mode 0600), so a fresh install is never open.
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

log = logging.getLogger("mcp_server")

ROLES = ("viewer", "recruiter", "admin")
RANK = {role: i for i, role in enumerate(ROLES)}
#: spellings accepted for the roles (the gateway's read-only names map to viewer)
ALIASES = {"read": "viewer", "reader": "viewer", "readonly": "viewer", "staffer": "recruiter", "write": "recruiter"}


class ApiError(Exception):
    """An error answered as `{"error": kind, "message": why}` with `status`."""

    def __init__(self, status: int, error: str, message: str, headers: dict[str, str] | None = None, **details):
        super().__init__(message)
        self.status, self.error, self.message, self.headers, self.details = status, error, message, headers or {}, details


@dataclass(frozen=True)
class Caller:
    key: str
    role: str
    name: str

    def at_least(self, role: str) -> bool:
        return RANK[self.role] >= RANK[role]

    def __repr__(self) -> str:  # never print the key itself
        return f"Caller(name={self.name!r}, role={self.role!r})"


def normalize_role(role: str) -> str:
    role = ALIASES.get(role.strip().lower(), role.strip().lower())
    if role not in RANK:
        raise ValueError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    return role


def parse_keys(spec: str) -> list[Caller]:
    """`key:role:name` entries separated by commas (role defaults to admin, name to the key's first 6 chars)."""
    keys = []
    for entry in spec.split(","):
        if not entry.strip():
            continue
        parts = entry.strip().split(":")
        key = parts[0]
        role = normalize_role(parts[1]) if len(parts) > 1 and parts[1] else "admin"
        name = parts[2] if len(parts) > 2 and parts[2] else key[:6]
        keys.append(Caller(key=key, role=role, name=name))
    return keys


def ensure_key_file(path: Path) -> str:
    try:
        existing = path.read_text().strip()
    except FileNotFoundError:
        existing = ""
    if existing:
        return existing
    key = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    log.warning("no MCP_API_KEYS configured; generated an admin key into %s (mode 0600)", path)
    return key


class KeyRing:
    def __init__(self, keys: list[Caller]):
        self._keys = list(keys)

    def find(self, presented: str) -> Caller | None:
        found = None
        for candidate in self._keys:  # constant time over all keys
            if secrets.compare_digest(candidate.key.encode(), presented.encode()):
                found = candidate
        return found


_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)
_bearer = HTTPBearer(auto_error=False)


def caller(
    request: Request,
    api_key: str | None = Security(_api_key_header),
    bearer: HTTPAuthorizationCredentials | None = Security(_bearer),
) -> Caller:
    """Dependency: who is calling (401 without a valid key)."""
    presented = api_key or (bearer.credentials if bearer else None)
    challenge = {"WWW-Authenticate": "Bearer"}
    if not presented:
        raise ApiError(401, "Unauthorized", "missing API key: send it in the X-API-Key header", challenge)
    found = request.app.state.recruiter.key_ring.find(presented)
    if found is None:
        raise ApiError(401, "Unauthorized", "invalid API key", challenge)
    return found
