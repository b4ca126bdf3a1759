"""The gateway calls the recruiter API makes, on top of `lakehouse.client.GatewayClient`.

The gateway owns the data directory (DESIGN decision 6): every dataset read, hybrid
search and playbook-memory change goes through it over HTTP. The recruiter API only
keeps its own small state (see `store.py`).
"""

from __future__ import annotations

import http.client
import threading
import time
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import orjson

from lakehouse.client import CLIENT_KEEP_ALIVE_S, DEFAULT_TIMEOUT, GatewayClient, GatewayError, error_from_body


#: manifests (column tags) change only when a dataset is re-created; re-read them this often
MANIFEST_TTL_S = 5.0


class KeepAliveJSON:
    """JSON over keep-alive HTTP/1.1 connections to the gateway, one per thread, on the
    standard library's http.client: the transport of the calls every `/match` and
    `/search` makes. httpx costs ~0.3-0.5 ms of CPU more per call (its request and
    response models, a pool lock) and sends the headers and the body in two writes, so
    the gateway parses each request in two reads.

    Only for idempotent calls: a request that meets a connection the gateway closed is
    sent once more on a new one. A connection idle past `CLIENT_KEEP_ALIVE_S` is
    replaced before use, as the httpx client does, so that retry is rare."""

    def __init__(self, base_url: str, api_key: str, timeout_s: float):
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"KeepAliveJSON speaks plain HTTP to a host, not {base_url!r}")
        self.base_url = base_url
        self._address = (parts.hostname, parts.port or 80)
        self._prefix = parts.path.rstrip("/")
        self._headers = {"X-API-Key": api_key, "Content-Type": "application/json", "Accept": "application/json"}
        self._timeout_s = timeout_s
        self._local = threading.local()
        self._open: set[http.client.HTTPConnection] = set()  # every thread's, for close()
        self._open_lock = threading.Lock()

    def post(self, path: str, body: Any) -> Any:
        """The decoded answer of a POST; a gateway error raised as the facade's exception."""
        data = orjson.dumps(body)
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request("POST", self._prefix + path, body=data, headers=self._headers)
                response = conn.getresponse()
                content = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                self._drop()
                if attempt == 2:
                    raise GatewayError(f"cannot reach the gateway at {self.base_url}: {exc}") from exc
                continue
            except (OSError, http.client.HTTPException) as exc:
                self._drop()
                raise GatewayError(f"cannot reach the gateway at {self.base_url}: {exc}") from exc
            self._local.used = time.monotonic()
            if response.will_close:
                self._drop()
            if response.status >= 400:
                raise error_from_body(response.status, response.reason, content)
            return orjson.loads(content)
        raise AssertionError("unreachable")

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is not None and time.monotonic() - self._local.used > CLIENT_KEEP_ALIVE_S:
            self._drop()
            conn = None
        if conn is None:
            conn = self._local.conn = http.client.HTTPConnection(*self._address, timeout=self._timeout_s)
            self._local.used = time.monotonic()
            with self._open_lock:
                self._open.add(conn)
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
            with self._open_lock:
                self._open.discard(conn)

    def close(self) -> None:
        with self._open_lock:
            for conn in self._open:
                conn.close()
            self._open.clear()


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
