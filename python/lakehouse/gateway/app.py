"""App factory and server entry point."""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
from contextlib import asynccontextmanager
from typing import AsyncIterator

from fastapi import FastAPI

from lakehouse import __version__
from lakehouse.config import Config
from lakehouse.daemon.agent import start_background
from lakehouse.gateway.api_errors import ERRORS
from lakehouse.gateway.auth import load_key_ring
from lakehouse.gateway.routes import ROUTERS
from lakehouse.gateway.routes_schedules import schedules_router
from lakehouse.gateway.routes_db import router as db_router
from lakehouse.gateway.routes_intelligence import router as intelligence_router
from lakehouse.gateway.routes_vector_admin import router as vector_admin_router
from lakehouse.gateway.routes_vectors import router as vectors_router
from lakehouse.gateway.serialize import RESCUE_HEADER
from lakehouse.gateway.state import FacadeGuard, GatewayState
from lakehouse.http import configure_logging, install_http_plumbing, run_server
from lakehouse.lakehouse import Lakehouse

log = logging.getLogger("lakehouse.gateway")

__all__ = ["create_app", "serve", "configure_logging", "exit_cleanly_on_sigterm"]

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
    # Busiest first: FastAPI matches a request against the included routers in order, and
    # each router passed costs every later request ~10 us of matching (~100 us for a hybrid
    # search behind ten routers, measured on a Zen 3). No two routers serve one method and path,
    # so the order decides nothing else.
    for router in (intelligence_router, vectors_router, *ROUTERS, vector_admin_router, db_router, schedules_router):
        app.include_router(router)
    install_http_plumbing(app, ERRORS, cors_origin_regex=config.gateway.cors_origin_regex, expose_headers=[RESCUE_HEADER])
    return app


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
            run_server(app, host=bind.host, port=bind.port)
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
