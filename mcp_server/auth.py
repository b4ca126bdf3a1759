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

from dataclasses import dataclass

from lakehouse.config import READ_ONLY_ROLES
from lakehouse.http import api_key_auth

ROLES = ("viewer", "recruiter", "admin")
RANK = {role: i for i, role in enumerate(ROLES)}
#: spellings accepted for the roles (the gateway's read-only names map to viewer)
ALIASES = {**{role: "viewer" for role in READ_ONLY_ROLES}, "staffer": "recruiter", "write": "recruiter"}


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


#: Dependency: who is calling (401 without a valid key).
caller = api_key_auth(
    lambda request: request.app.state.recruiter.key_ring,
    missing_message="missing API key: send it in the X-API-Key header",
)
