"""HTTP plumbing shared by the gateway (`lakehouse.gateway`) and the recruiter API (`mcp_server`).

Both speak the same dialect, so it is written once here: errors have one body shape,
`{"error": <kind>, "message": <why>, ...details}`, and one table of statuses
(`ErrorResponses.status_of`, on top of `lakehouse.errors.HTTP_STATUS`); an API key is sent
as `X-API-Key` or `Authorization: Bearer`; every request is logged as one line and an
unexpected exception never leaks its traceback to the client. What differs between the
two services (their logger, their key ring, where their lakehouse errors come from) is
passed in.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any, Callable, Generic, Mapping, Protocol, Sequence, TypeVar

import orjson
from fastapi import FastAPI, Request, Security
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lakehouse.client import GatewayError
from lakehouse.config import read_api_key_file
from lakehouse.errors import LakehouseError, error_body, http_status
from lakehouse.gateway.serialize import json_default, to_jsonable

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

#: sent with every 401 so clients know which scheme to retry with
BEARER_CHALLENGE = {"WWW-Authenticate": "Bearer"}

#: the body of a 502 for an internal error of the gateway, seen by a service behind it
GATEWAY_FAILED_BODY = {"error": "InternalError", "message": "the gateway failed; its log has the details"}


# ---------------------------------------------------------------------- responses
class SafeJSONResponse(JSONResponse):
    """Compact JSON that also accepts dates, decimals, bytes and NaN (made JSON-safe as
    `to_jsonable` does). orjson renders it in one pass (~8x faster than the standard
    library on an 11 KB search answer; odd values go through `json_default`, NaN becomes
    null). What orjson refuses (an int past 64 bits, a non-text key, a numpy float) gets
    the standard library's rules, and the whole `to_jsonable` walk only when those
    refuse too."""

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content, default=json_default, option=orjson.OPT_PASSTHROUGH_DATACLASS)
        except TypeError:
            pass
        try:
            text = _dumps(content)
        except (TypeError, ValueError):  # NaN / infinity, or an unusual dict key
            text = _dumps(to_jsonable(content))
        return text.encode("utf-8")


def _dumps(content: Any) -> str:
    return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=json_default)


# ---------------------------------------------------------------------- errors
class ApiError(Exception):
    """An error only the HTTP layer knows about (auth, roles, upload size, a malformed
    request), not one of the lakehouse: answered with `status` as
    `{"error": error, "message": message, **details}`."""

    def __init__(self, status: int, error: str, message: str, headers: Mapping[str, str] | None = None, **details: Any):
        super().__init__(message)
        self.status, self.error, self.message = status, error, message
        self.headers, self.details = dict(headers or {}), details


class ErrorResponses:
    """Exception -> HTTP status and body, for one service. The only place either service
    decides what status an error gets.

    `service` names the log an internal error's details go to (they never reach the
    client). `behind_gateway` is for a service whose lakehouse errors are the gateway's
    answers, rebuilt by `GatewayClient`: they are passed on with their status, except the
    gateway's own internal error, which is a bad gateway (502) for our caller."""

    #: every exception class this maps; `install_http_plumbing` registers a handler for each
    HANDLED = (ApiError, LakehouseError, GatewayError, RequestValidationError)

    def __init__(self, log: logging.Logger, *, service: str, behind_gateway: bool = False):
        self.log = log
        self.behind_gateway = behind_gateway
        self.internal_error_body = {"error": "InternalError", "message": f"internal error; the {service} log has the details"}

    def status_of(self, exc: BaseException) -> int:
        """The HTTP status `exc` is answered with (also what the recruiter API's audit records)."""
        if isinstance(exc, ApiError):
            return exc.status
        if isinstance(exc, RequestValidationError):
            return 422
        if isinstance(exc, GatewayError):
            return 502  # the gateway could not be reached or refused us
        status = http_status(exc)  # lakehouse errors by class (lakehouse.errors); 500 for anything else
        if status == 500 and self.behind_gateway and isinstance(exc, LakehouseError):
            return 502
        return status

    def response(self, exc: BaseException, headers: Mapping[str, str] | None = None, **extra: Any) -> SafeJSONResponse:
        """The response for `exc`, with `headers` added (an `ApiError` brings its own too) and
        `extra` fields in the body (not in an internal error's, which says nothing)."""
        status = self.status_of(exc)
        headers = dict(headers or {})
        if isinstance(exc, ApiError):
            body = {"error": exc.error, "message": exc.message, **exc.details}
            headers.update(exc.headers)
        elif isinstance(exc, RequestValidationError):
            problems = jsonable_encoder(exc.errors())
            summary = "; ".join(f"{'.'.join(map(str, p.get('loc', [])))}: {p.get('msg')}" for p in problems)
            body = {"error": "InvalidRequest", "message": summary, "problems": problems}
        elif isinstance(exc, GatewayError):
            body = {"error": "GatewayUnavailable", "message": str(exc)}
        elif isinstance(exc, LakehouseError) and http_status(exc) != 500:
            body = error_body(exc)
        else:  # unexpected (the core's `Internal` errors: I/O, bugs): the details go to the log only
            extra = {}
            if self.behind_gateway and isinstance(exc, LakehouseError):
                self.log.error("gateway internal error", exc_info=exc)
                body = GATEWAY_FAILED_BODY
            else:
                self.log.error("internal lakehouse error" if isinstance(exc, LakehouseError) else "internal error", exc_info=exc)
                body = self.internal_error_body
        return SafeJSONResponse({**body, **extra}, status_code=status, headers=headers or None)

    async def handle(self, _: Request, exc: Exception) -> SafeJSONResponse:
        """The FastAPI exception handler for every class in `HANDLED`."""
        return self.response(exc)


class RequestLogMiddleware:
    """Logs `METHOD path -> status (ms)` for every request, and turns an unexpected
    exception into a generic 500 (the traceback goes to the service's log, never to the
    client)."""

    def __init__(self, app: ASGIApp, errors: ErrorResponses):
        self.app = app
        self.errors = errors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        log = self.errors.log
        started = time.perf_counter()
        response: dict[str, Any] = {"status": 500, "started": False}

        async def send_and_note_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                response.update(status=message["status"], started=True)
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        except Exception:
            log.exception("unhandled error in %s %s", scope["method"], scope["path"])
            if response["started"]:
                raise
            await SafeJSONResponse(self.errors.internal_error_body, status_code=500)(scope, receive, send_and_note_status)
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            log.info("%s %s -> %d (%.1f ms)", scope["method"], scope["path"], response["status"], elapsed_ms)


def install_http_plumbing(app: FastAPI, errors: ErrorResponses, *, cors_origin_regex: str, expose_headers: Sequence[str] = ()) -> None:
    """Error handlers, CORS and the request log. Call it after the routers are added: the
    request log goes on last, so it is the outermost middleware and logs CORS preflights too."""
    for exc_class in errors.HANDLED:
        app.add_exception_handler(exc_class, errors.handle)
    app.add_middleware(
        CORSMiddleware,
        allow_origin_regex=cors_origin_regex,
        allow_methods=["*"],
        allow_headers=["*"],
        expose_headers=list(expose_headers),
    )
    app.add_middleware(RequestLogMiddleware, errors=errors)


# ---------------------------------------------------------------------- API keys
class HasKey(Protocol):
    @property
    def key(self) -> str: ...


K = TypeVar("K", bound=HasKey)


class KeyRing(Generic[K]):
    """The keys a service accepts (the gateway's `ApiKey`s, the recruiter API's `Caller`s)."""

    def __init__(self, keys: Sequence[K]):
        self._keys = list(keys)

    def find(self, presented: str) -> K | None:
        # Compare against every key in constant time so timing reveals nothing.
        found = None
        for candidate in self._keys:
            if secrets.compare_digest(candidate.key.encode(), presented.encode()):
                found = candidate
        return found


def api_key_auth(
    key_ring_of: Callable[[Request], KeyRing[K]], *, missing_message: str, key_description: str | None = None
) -> Callable[..., K]:
    """A FastAPI dependency answering who is calling: the key presented in `X-API-Key` or
    `Authorization: Bearer`, looked up in the service's key ring (401 without a valid one).
    `key_description` documents the key in the OpenAPI schema."""
    api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description=key_description)
    bearer_header = HTTPBearer(auto_error=False, description="The same API key as `Authorization: Bearer <key>`" if key_description else None)

    # async: a key check is a few comparisons, and a sync dependency would cost every
    # request a hand-off to the worker threads and back before its endpoint starts
    async def authenticated(
        request: Request,
        api_key: str | None = Security(api_key_header),
        bearer: HTTPAuthorizationCredentials | None = Security(bearer_header),
    ) -> Any:
        presented = api_key or (bearer.credentials if bearer else None)
        if not presented:
            raise ApiError(401, "Unauthorized", missing_message, BEARER_CHALLENGE)
        found = key_ring_of(request).find(presented)
        if found is None:
            raise ApiError(401, "Unauthorized", "invalid API key", BEARER_CHALLENGE)
        return found

    return authenticated


def ensure_key_file(path: Path, log: logging.Logger, *, setting: str, hint: str = "") -> str:
    """The key stored at `path`, generating it (mode 0600) first if there is none, so a
    service without configured keys (`setting`) is never open. Kept across restarts so
    clients configured with it keep working; `hint` tells the operator who reads it."""
    existing = read_api_key_file(path)
    if existing:
        log.info("no %s configured; using the generated key stored in %s", setting, path)
        return existing
    key = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    os.chmod(path, 0o600)  # O_CREAT's mode does not apply to a file that already existed
    log.warning("no %s configured; generated a key into %s (mode 0600)%s", setting, path, hint)
    return key


# ---------------------------------------------------------------------- serving
def configure_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format=LOG_FORMAT)


#: how long our servers keep an idle keep-alive connection open; well above how long
#: our clients reuse one (`lakehouse.client.CLIENT_KEEP_ALIVE_S`)
SERVER_KEEP_ALIVE_S = 30.0


def run_server(app: FastAPI, *, host: str, port: int) -> None:
    """Serve `app` with uvicorn until stopped."""
    import uvicorn  # only a serving process needs it

    freeze_startup_heap()

    # RequestLogMiddleware logs each request, so uvicorn's access log would only repeat it.
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False, timeout_keep_alive=SERVER_KEEP_ALIVE_S)


def freeze_startup_heap() -> None:
    """Exempt every object that exists once a server is built (modules, routes, models,
    the open data directory) from the cyclic garbage collector's full passes.

    Requests keep promoting short-lived objects into the oldest generation, so CPython runs
    a full pass every few thousand requests, and each one walked the whole startup heap with
    the GIL held: 40-56 ms of wall time under load in the gateway, every in-flight request
    stalled meanwhile (session 13, 20 clients on `/match`). Frozen objects are still freed by
    reference counting; only a cycle among them would never be collected, and they live as
    long as the server anyway.
    """
    gc.collect()
    gc.freeze()
