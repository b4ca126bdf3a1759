"""HTTP gateway: FastAPI over the `Lakehouse` facade.

`create_app(lakehouse, config)` builds the app (tests use it with TestClient);
`serve(config)` opens the data directory, takes its lock and runs uvicorn.
Exports are lazy so `lakehouse.gateway.serialize` stays importable without FastAPI.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "serve"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from lakehouse.gateway import app

        return getattr(app, name)
    raise AttributeError(name)
