"""App factory and server entry point."""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import uvicorn
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lakehouse import __version__
from lakehouse.config import Config
from lakehouse.daemon.agent import start_background
from lakehouse.gateway.api_errors import EXCEPTION_HANDLERS, INTERNAL_ERROR_BODY, SafeJSONResponse
from lakehouse.gateway.auth import load_key_ring
from lakehouse.gateway.routes import ROUTERS
from lakehouse.gateway.routes_schedules import schedules_router
from lakehouse.gateway.routes_db import router as db_router
from lakehouse.gateway.routes_intelligence import router as intelligence_router
from lakehouse.gateway.routes_vector_admin import router as vector_admin_router
from lakehouse.gateway.routes_vectors import router as vectors_router
from lakehouse.gateway.serialize import RESCUE_HEADER
from lakehouse.gateway.state import FacadeGuard, GatewayState
from lakehouse.lakehouse import Lakehouse

log = logging.getLogger("lakehouse.gateway")

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

DESCRIPTION = """\
HTTP gateway of a Lakehouse data directory: upload files, run read-only SQL, manage
the catalog, read the mutation journal and storage health.

Every route except `/health`, `/docs` and `/openapi.json` needs an API key, sent as
`X-API-Key: <key>` or `Authorization: Bearer <key>`. Keys are configured in
`lakehouse.toml` (`[[gateway.api_keys]]`); without any, the gateway generates one into
`<data_dir>/.api_key`. Errors are `{"error": <kind>, "message": <why>, ...details}`.
"""

TAGS = [
    {"name": "health", "description": "Liveness; no key needed."},
    {"name": "ingest", "description": "Upload files into datasets."},
    {"name": "query", "description": "Read-only SQL over every live dataset."},
    {"name": "catalog", "description": "Datasets, tombstones, history, dedupe, compaction."},
    {"name": "storage", "description": "Bucket failures and health."},
    {"name": "journal", "description": "Who changed what, when."},
    {"name": "vectors", "description": "Vector indexes: build, search, refresh, versions."},
    {"name": "intelligence", "description": "Hybrid search and playbook memory."},
]


def create_app(lakehouse: Lakehouse | None = None, config: Config | None = None) -> FastAPI:
    """Build the gateway over `lakehouse`. Without one, the app opens the data directory
    of `config` itself (taking its lock) and closes it on shutdown."""
    config = config or (lakehouse.config if lakehouse is not None else Config.load())
    owned = lakehouse is None
    lakehouse = lakehouse or Lakehouse(config=config)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # The agent (inbox watcher + schedules, `[daemon]` in lakehouse.toml) shares our facade lock.
        app.state.agent = start_background(lakehouse, config, app.state.gateway.guard)
        yield
        app.state.agent.stop()
        if owned:
            lakehouse.close()

    app = FastAPI(title="Lakehouse gateway", version=__version__, description=DESCRIPTION, openapi_tags=TAGS, lifespan=lifespan)
    app.state.gateway = GatewayState(guard=FacadeGuard(lakehouse), config=config, data_path=lakehouse.path)
    app.state.key_ring = load_key_ring(config)
    for exc_class, handler in EXCEPTION_HANDLERS.items():
        app.add_exception_handler(exc_class, handler)
    for router in ROUTERS:
        app.include_router(router)
    app.include_router(db_router)
    app.include_router(schedules_router)
    app.include_router(vectors_router)
    app.include_router(vector_admin_router)
    app.include_router(intelligence_router)
    app.add_middleware(
        CORSMiddleware,
        allow_origin_regex=config.gateway.cors_origin_regex,
        allow_methods=["*"],
        allow_headers=["*"],
        expose_headers=[RESCUE_HEADER],
    )
    app.add_middleware(RequestLogMiddleware)  # added last = outermost: logs CORS preflights too
    return app


class RequestLogMiddleware:
    """Logs `METHOD path -> status (ms)` for every request, and turns an unexpected
    exception into a generic 500 (the traceback goes to the log, never to the client)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
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
            await SafeJSONResponse(INTERNAL_ERROR_BODY, status_code=500)(scope, receive, send_and_note_status)
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            log.info("%s %s -> %d (%.1f ms)", scope["method"], scope["path"], response["status"], elapsed_ms)


def configure_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format=LOG_FORMAT)


def serve(config: Config | None = None, *, host: str | None = None, port: int | None = None) -> None:
    """Open the data directory (taking its lock: DESIGN decision 6) and serve until stopped."""
    config = config or Config.load()
    configure_logging()
    bind = dataclasses.replace(config.gateway, host=host or config.gateway.host, port=port or config.gateway.port)
    exit_cleanly_on_sigterm()
    with Lakehouse(config=config) as lakehouse:
        app = create_app(lakehouse, config)
        log.info("serving %s on %s (docs at /docs)", lakehouse.path, bind.url)
        # Clients find us here even when --host/--port differ from lakehouse.toml.
        config.gateway_url_file.write_text(bind.url + "\n")
        try:
            # Our middleware logs each request, so uvicorn's access log would only repeat it.
            uvicorn.run(app, host=bind.host, port=bind.port, log_config=None, access_log=False)
        finally:
            config.gateway_url_file.unlink(missing_ok=True)


def exit_cleanly_on_sigterm() -> None:
    """After a graceful shutdown uvicorn re-raises the signal it caught under the
    previous handler; with the default SIGTERM handler (systemd stop) that kills the
    process before `Lakehouse.close()` flushes the append log and releases the lock.
    A handler that raises SystemExit lets the `with` blocks above unwind instead."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_system_exit)


def _raise_system_exit(signum: int, _frame: object) -> None:
    raise SystemExit(0)  # a requested stop is a clean exit
