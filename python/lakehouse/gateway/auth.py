"""API-key authentication.

Keys come from `config.gateway.api_keys`. With none configured the gateway generates
one into `<data_dir>/.api_key` (mode 0600) so a fresh install is never open; the CLI
reads it from there (`Config.client_api_key`). A key's `name` is the actor recorded
for every change made with it; read-only roles get 403 on mutations.
"""

from __future__ import annotations

import logging

from fastapi import Depends

from lakehouse.config import ApiKey, Config
from lakehouse.http import ApiError, KeyRing, api_key_auth, ensure_key_file

log = logging.getLogger("lakehouse.gateway")

#: name given to the generated key; it becomes the actor of changes made with it
GENERATED_KEY_NAME = "admin"


def load_key_ring(config: Config) -> KeyRing[ApiKey]:
    if config.gateway.api_keys:
        return KeyRing(config.gateway.api_keys)
    key = ensure_key_file(config.api_key_file, log, setting="api_keys", hint=" - the CLI reads it from there")
    return KeyRing([ApiKey(key=key, role="admin", name=GENERATED_KEY_NAME)])


#: Dependency: the `ApiKey` presented in `X-API-Key` or `Authorization: Bearer` (401 without a valid one).
authenticated = api_key_auth(
    lambda request: request.app.state.key_ring,
    missing_message="missing API key: send it in the X-API-Key header or as 'Authorization: Bearer <key>'",
    key_description="API key from lakehouse.toml or <data_dir>/.api_key",
)


async def may_write(key: ApiKey = Depends(authenticated)) -> ApiKey:
    """Dependency for mutations: the caller's key, if its role may change data."""
    if not key.can_write:
        raise ApiError(403, "Forbidden", f"API key {key.name!r} has the read-only role {key.role!r}")
    return key
