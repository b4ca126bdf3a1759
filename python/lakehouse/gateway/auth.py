"""API-key authentication.

Keys come from `config.gateway.api_keys`. With none configured the gateway generates
one into `<data_dir>/.api_key` (mode 0600) so a fresh install is never open; the CLI
reads it from there (`Config.client_api_key`). A key's `name` is the actor recorded
for every change made with it; read-only roles get 403 on mutations.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from lakehouse.config import ApiKey, Config, read_api_key_file
from lakehouse.gateway.api_errors import ApiError

log = logging.getLogger("lakehouse.gateway")

#: name given to the generated key; it becomes the actor of changes made with it
GENERATED_KEY_NAME = "admin"

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key from lakehouse.toml or <data_dir>/.api_key")
_bearer = HTTPBearer(auto_error=False, description="The same API key as `Authorization: Bearer <key>`")


class KeyRing:
    def __init__(self, keys: list[ApiKey]):
        self._keys = list(keys)

    def find(self, presented: str) -> ApiKey | None:
        # Compare against every key in constant time so timing reveals nothing.
        found = None
        for candidate in self._keys:
            if secrets.compare_digest(candidate.key.encode(), presented.encode()):
                found = candidate
        return found


def load_key_ring(config: Config) -> KeyRing:
    if config.gateway.api_keys:
        return KeyRing(config.gateway.api_keys)
    key = ensure_key_file(config.api_key_file)
    return KeyRing([ApiKey(key=key, role="admin", name=GENERATED_KEY_NAME)])


def ensure_key_file(path: Path) -> str:
    """The key stored at `path`, generating it first if there is none. Kept across
    restarts so clients configured with it keep working."""
    existing = read_api_key_file(path)
    if existing:
        log.info("no api_keys configured; using the generated key stored in %s", path)
        return existing
    key = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    os.chmod(path, 0o600)  # O_CREAT's mode does not apply to a file that already existed
    log.warning("no api_keys configured; generated a key into %s (mode 0600) - the CLI reads it from there", path)
    return key


def authenticated(
    request: Request,
    api_key: str | None = Security(_api_key_header),
    bearer: HTTPAuthorizationCredentials | None = Security(_bearer),
) -> ApiKey:
    """Dependency: the `ApiKey` presented in `X-API-Key` or `Authorization: Bearer`."""
    presented = api_key or (bearer.credentials if bearer else None)
    challenge = {"WWW-Authenticate": "Bearer"}
    if not presented:
        raise ApiError(401, "Unauthorized", "missing API key: send it in the X-API-Key header or as 'Authorization: Bearer <key>'", challenge)
    key = request.app.state.key_ring.find(presented)
    if key is None:
        raise ApiError(401, "Unauthorized", "invalid API key", challenge)
    return key


def may_write(key: ApiKey = Depends(authenticated)) -> ApiKey:
    """Dependency for mutations: the caller's key, if its role may change data."""
    if not key.can_write:
        raise ApiError(403, "Forbidden", f"API key {key.name!r} has the read-only role {key.role!r}")
    return key
