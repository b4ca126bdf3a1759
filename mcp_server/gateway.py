"""The gateway calls the recruiter API makes, on top of `lakehouse.client.GatewayClient`.

The gateway owns the data directory (DESIGN decision 6): every dataset read, hybrid
search and playbook-memory change goes through it over HTTP. The recruiter API only
keeps its own small state (see `store.py`).
"""

from __future__ import annotations

import threading
import time
from typing import Any
from urllib.parse import quote

import httpx

from lakehouse.client import DEFAULT_TIMEOUT, GatewayClient, KeepAliveJSON


#: manifests (column tags) change only when a dataset is re-created; re-read them this often
MANIFEST_TTL_S = 5.0


class RecruiterGateway(GatewayClient):
    def __init__(self, base_url: str, api_key: str, *, timeout: httpx.Timeout = DEFAULT_TIMEOUT,
                 transport: httpx.BaseTransport | None = None):
        super().__init__(base_url, api_key, timeout=timeout, transport=transport)
        # an injected httpx transport (an in-process app) is used for every call
        self._searches = KeepAliveJSON(self.base_url, api_key, timeout.read or 600.0) if transport is None else None
        self._manifests: dict[str, tuple[float, dict[str, Any]]] = {}
        self._manifest_lock = threading.Lock()

    def close(self) -> None:
        if self._searches is not None:
            self._searches.close()
        super().close()

    # ------------------------------------------------------------------ SQL
    def rows(self, sql: str, limit: int | None = None) -> list[dict[str, Any]]:
        """A read-only query as a list of JSON-safe dicts."""
        body: dict[str, Any] = {"sql": sql, "format": "json"}
        if limit is not None:
            body["limit"] = limit
        answer = self._json("POST", "/query/sql", json=body)
        columns = answer["columns"]
        return [dict(zip(columns, row)) for row in answer["rows"]]

    def manifest(self, name: str, *, fresh: bool = False) -> dict[str, Any]:
        """The dataset's manifest (columns, `column_tags`, `sensitivity`), cached briefly."""
        now = time.monotonic()
        with self._manifest_lock:
            cached = self._manifests.get(name)
            if cached and not fresh and now - cached[0] < MANIFEST_TTL_S:
                return cached[1]
        manifest = self.dataset(name)
        with self._manifest_lock:
            self._manifests[name] = (now, manifest)
        return manifest

    def dataset_names(self, *, max_age_s: float = MANIFEST_TTL_S) -> set[str]:
        """Live dataset names, cached up to `max_age_s` (for optional, informational reads only:
        a decision that must not miss a new dataset queries it directly)."""
        now = time.monotonic()
        with self._manifest_lock:
            cached = self._manifests.get("\0names")
            if cached and now - cached[0] < max_age_s:
                return cached[1]["names"]
        names = {d.get("name") for d in self.datasets()}
        with self._manifest_lock:
            self._manifests["\0names"] = (now, {"names": names})
        return names

    # ------------------------------------------------------------------ intelligence
    def hybrid(self, request: dict[str, Any]) -> dict[str, Any]:
        body = {k: v for k, v in request.items() if v is not None}
        if self._searches is not None:
            return self._searches.post("/vectors/hybrid", body)
        return self._json("POST", "/vectors/hybrid", json=body)

    def seed_playbook(self, fill: dict[str, Any]) -> dict[str, Any]:
        return self._json("POST", "/vectors/playbook_memory/seed", json={k: v for k, v in fill.items() if v is not None})

    def mark_failed(self, worker_id: str, name: str, city: str, state: str) -> dict[str, Any]:
        body = {"worker_id": str(worker_id), "name": name, "city": city, "state": state}
        return self._json("POST", "/vectors/playbook_memory/mark_failed", json=body)

    def delete_playbook(self, playbook_id: str) -> dict[str, Any]:
        return self._json("DELETE", f"/vectors/playbook_memory/{quote(playbook_id, safe='')}")

    def patterns(self, query: str, *, k: int = 25, city: str | None = None, state: str | None = None,
                 role: str | None = None, prior_role: str | None = None) -> dict[str, Any]:
        params = {k_: v for k_, v in {"query": query, "k": k, "city": city, "state": state, "role": role,
                                      "prior_role": prior_role}.items() if v is not None}
        return self._json("GET", "/vectors/playbook_memory/patterns", params=params)

    def memory_stats(self) -> dict[str, Any]:
        return self._json("GET", "/vectors/playbook_memory/stats")

    def health(self) -> dict[str, Any]:
        return self._json("GET", "/health")
