"""HTTP client of a running gateway, with the facade's method names.

DESIGN decision 6: while the gateway owns a data directory, the CLI talks to it over
HTTP. `GatewayClient` offers the subset of `Lakehouse` the gateway serves, with the
same names, arguments and return types, and raises the same exception classes (the
gateway's `{"error": <class name>}` is mapped back), so CLI code is written once.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import orjson
import pyarrow as pa

from lakehouse import errors
from lakehouse.config import Config
from lakehouse.gateway.serialize import RESCUE_HEADER, table_from_ipc
from lakehouse.lakehouse import IngestResult, Mode

#: Ingests and compactions can take minutes; only connecting is expected to be quick.
DEFAULT_TIMEOUT = httpx.Timeout(600.0, connect=5.0)
#: how long an idle connection is reused: below every server's keep-alive (ours, and
#: uvicorn's default of 5 s), so the client never sends on a connection the server is
#: closing at that moment (that race surfaced as "Connection reset by peer")
CLIENT_KEEP_ALIVE_S = 4.0


class GatewayError(Exception):
    """The gateway refused a request for a reason that is not a lakehouse error
    (bad API key, upload too large, ...) or could not be reached."""


class GatewayClient:
    def __init__(self, base_url: str, api_key: str, *, timeout: httpx.Timeout = DEFAULT_TIMEOUT, transport: httpx.BaseTransport | None = None):
        self.base_url = base_url.rstrip("/")
        # trust_env=False: the gateway runs on this machine, so proxy and CA-bundle
        # environment variables must not reroute (or break) loopback calls.
        self._http = httpx.Client(
            base_url=self.base_url, headers={"X-API-Key": api_key}, timeout=timeout, transport=transport, trust_env=False,
            limits=httpx.Limits(keepalive_expiry=CLIENT_KEEP_ALIVE_S),
        )
        self._rescue_used = False

    @classmethod
    def from_config(cls, config: Config) -> GatewayClient:
        key = config.client_api_key()
        if not key:
            raise GatewayError(
                f"no API key for the gateway: configure [[gateway.api_keys]] in lakehouse.toml "
                f"or make {config.api_key_file} readable"
            )
        return cls(running_gateway_url(config), key)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ facade methods
    def ingest_file(self, path: str | os.PathLike, name: str | None = None, *, mode: Mode = "append") -> IngestResult:
        path = Path(path)
        if not path.is_file():
            raise errors.InvalidInput(f"no such file: {path}")
        form = {"mode": mode, **({"name": name} if name else {})}
        with open(path, "rb") as fh:
            body = self._request("POST", "/ingest/file", data=form, files={"file": (path.name, fh)}).json()
        return IngestResult(**body)

    def sql(self, query: str) -> pa.Table:
        response = self._request("POST", "/query/sql", json={"sql": query, "format": "arrow"})
        self._rescue_used = response.headers.get(RESCUE_HEADER) == "true"
        return table_from_ipc(response.content)

    @property
    def rescue_used(self) -> bool:
        return self._rescue_used

    def datasets(self, include_tombstoned: bool = False) -> list[dict[str, Any]]:
        return self._json("GET", "/catalog/datasets", params={"include_tombstoned": include_tombstoned})

    def dataset(self, name: str) -> dict[str, Any]:
        return self._json("GET", f"/catalog/datasets/{_segment(name)}")

    def tombstone(self, name: str) -> dict[str, Any]:
        return self._json("POST", f"/catalog/datasets/{_segment(name)}/tombstone")

    def restore(self, name: str) -> dict[str, Any]:
        return self._json("POST", f"/catalog/datasets/{_segment(name)}/restore")

    def dedupe(self) -> dict[str, Any]:
        return self._json("POST", "/catalog/dedupe")

    def history(self, name: str) -> list[dict[str, Any]]:
        return self._json("GET", f"/catalog/datasets/{_segment(name)}/history")

    def compact(self, name: str | None = None, *, target_file_mb: int = 256) -> list[dict[str, Any]]:
        return self._json("POST", "/catalog/compact", json={"dataset": name, "target_file_mb": target_file_mb})

    def journal(self, dataset: str | None = None, actor: str | None = None, since: str | None = None,
                until: str | None = None, operation: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        params = {"dataset": dataset, "actor": actor, "since": since, "until": until, "operation": operation, "limit": limit}
        return self._json("GET", "/journal", params={k: v for k, v in params.items() if v is not None})

    def storage_errors(self, limit: int | None = None) -> list[dict[str, Any]]:
        return self._json("GET", "/storage/errors", params={"limit": limit} if limit else None)

    def bucket_health(self) -> list[dict[str, Any]]:
        return self._json("GET", "/storage/bucket-health")

    # ------------------------------------------------------------------ on-ramps run by the gateway
    def ingest_db(self, request: dict[str, Any]) -> dict[str, Any]:
        """Ask the gateway to run a database sync (it owns the data directory)."""
        return self._json("POST", "/ingest/db", json={k: v for k, v in request.items() if v is not None})

    def schedules(self) -> list[dict[str, Any]]:
        return self._json("GET", "/schedules")

    def add_schedule(self, values: dict[str, Any]) -> dict[str, Any]:
        return self._json("POST", "/schedules", json=values)

    def remove_schedule(self, job_id: str) -> dict[str, Any]:
        return self._json("DELETE", f"/schedules/{quote(job_id, safe='')}")

    def schedule_runs(self, job_id: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        params = {k: v for k, v in {"job_id": job_id, "limit": limit}.items() if v is not None}
        return self._json("GET", "/schedules/runs", params=params)

    # ------------------------------------------------------------------ transport
    # ------------------------------------------------------------ vectors
    def vectors_create(self, request: dict[str, Any]) -> dict[str, Any]:
        return self._json("POST", "/vectors/index", json={k: v for k, v in request.items() if v is not None})

    def vectors_list(self) -> list[dict[str, Any]]:
        return self._json("GET", "/vectors/indexes")["indexes"]

    def vectors_search(self, request: dict[str, Any]) -> dict[str, Any]:
        return self._json("POST", "/vectors/search", json={k: v for k, v in request.items() if v is not None})

    def vectors_refresh(self, dataset: str) -> list[dict[str, Any]]:
        return self._json("POST", f"/vectors/refresh/{_segment(dataset)}")["jobs"]

    def vectors_job(self, job_id: str) -> dict[str, Any]:
        return self._json("GET", f"/vectors/jobs/{_segment(job_id)}")

    def vectors_versions(self, name: str) -> dict[str, Any]:
        return self._json("GET", f"/vectors/indexes/{_segment(name)}/versions")

    def vectors_promote(self, name: str, version: int) -> dict[str, Any]:
        return self._json("POST", f"/vectors/indexes/{_segment(name)}/promote", json={"version": version})

    def vectors_rollback(self, name: str) -> dict[str, Any]:
        return self._json("POST", f"/vectors/indexes/{_segment(name)}/rollback")

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._request(method, path, **kwargs).json()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise GatewayError(f"cannot reach the gateway at {self.base_url}: {exc}") from exc
        if response.is_error:
            raise error_from_response(response)
        return response


class KeepAliveJSON:
    """JSON over keep-alive HTTP/1.1 connections to one of our services, one connection per
    thread, on the standard library's http.client: the transport of the recruiter API's
    searches (every `/match` and `/search`) and of the recruiter bench's load. httpx costs
    ~0.3-1.4 ms of CPU more per call (its request and response models, a pool lock) and
    writes the headers and the body separately, so the server parses each request in two
    reads.

    Only for idempotent calls: a request that meets a connection the server closed is sent
    once more on a new one. A connection idle past `CLIENT_KEEP_ALIVE_S` is replaced before
    use, as the httpx client does, so that retry is rare."""

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
        """The decoded answer of a POST; an error answer raised as the facade's exception."""
        status, reason, content = self.exchange(path, orjson.dumps(body))
        if status >= 400:
            raise error_from_body(status, reason, content)
        return orjson.loads(content)

    def exchange(self, path: str, data: bytes) -> tuple[int, str, bytes]:
        """POST `data` (JSON) to `path`: (status, reason, body). GatewayError when the
        service cannot be reached."""
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
            return response.status, response.reason, content
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


def running_gateway_url(config: Config) -> str:
    """The URL the running gateway announced in its data directory, else the configured one."""
    try:
        return config.gateway_url_file.read_text().strip() or config.gateway.url
    except FileNotFoundError:
        return config.gateway.url


def gateway_serves(base_url: str, data_path: Path, timeout_s: float = 2.0) -> bool:
    """Whether a gateway answers at `base_url` and serves `data_path` (not some other
    directory: an announced URL may be stale after a crash)."""
    try:
        response = httpx.get(f"{base_url.rstrip('/')}/health", timeout=timeout_s, trust_env=False)
    except httpx.TransportError:
        return False
    return response.status_code == 200 and response.json().get("data_dir") == str(data_path)


def error_from_response(response: httpx.Response) -> Exception:
    """The exception the facade would have raised, rebuilt from a gateway error body."""
    return error_from_body(response.status_code, response.reason_phrase, response.content)


def error_from_body(status: int, reason: str, content: bytes) -> Exception:
    """`error_from_response` for any HTTP client: the status line and the raw body."""
    try:
        body = json.loads(content)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    message = body.get("message") or content.decode("utf-8", "replace") or reason
    details = {k: v for k, v in body.items() if k not in ("error", "message")}
    cls = getattr(errors, str(body.get("error")), None)
    if isinstance(cls, type) and issubclass(cls, errors.LakehouseError):
        return cls(message, details) if details else cls(message)
    return GatewayError(f"gateway answered {status} {body.get('error', reason)}: {message}")


def _segment(name: str) -> str:
    return quote(name, safe="")
