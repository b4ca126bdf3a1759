"""The one `Lakehouse` this gateway serves, and how endpoints reach it."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from fastapi import Request

from lakehouse.config import Config
from lakehouse.gateway.uploads import QUARANTINE_DIR, UPLOADS_DIR
from lakehouse.lakehouse import Lakehouse


class FacadeGuard:
    """Serializes every call into the facade.

    The core's objects are not (yet) documented as safe for concurrent use from
    many threads, so every call - reads included - takes one re-entrant lock. Sync
    endpoints run in FastAPI's threadpool, so waiting here never blocks the event
    loop. Reads stay under the lock for a second reason: `rescue_used` describes the
    *last* query, so a query and its flag must be read with no query in between.
    Once the core documents concurrent reads, the read endpoints can drop it.
    """

    def __init__(self, lakehouse: Lakehouse):
        self._lakehouse = lakehouse
        self._lock = threading.RLock()

    @contextmanager
    def use(self) -> Iterator[Lakehouse]:
        with self._lock:
            yield self._lakehouse

    @contextmanager
    def try_use(self, timeout_s: float) -> Iterator[Lakehouse | None]:
        """Like `use`, but yields None instead of waiting longer than `timeout_s`."""
        acquired = self._lock.acquire(timeout=timeout_s)
        try:
            yield self._lakehouse if acquired else None
        finally:
            if acquired:
                self._lock.release()


@dataclass
class GatewayState:
    guard: FacadeGuard
    config: Config
    data_path: Path
    started_at: float = field(default_factory=time.monotonic)

    @property
    def uploads_dir(self) -> Path:
        return self.data_path / UPLOADS_DIR

    @property
    def quarantine_dir(self) -> Path:
        return self.data_path / QUARANTINE_DIR


def gateway_state(request: Request) -> GatewayState:
    return request.app.state.gateway
