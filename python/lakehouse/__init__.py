"""Lakehouse: a local-first, Rust-accelerated lakehouse for staffing agencies.

`from lakehouse import Lakehouse` is the entry point. Sub-packages that do not need
the native core (configuration, the demo-data generator) import without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Lakehouse", "IngestResult", "Config", "__version__"]

if TYPE_CHECKING:
    from lakehouse.config import Config
    from lakehouse.lakehouse import IngestResult, Lakehouse


def __getattr__(name: str) -> Any:
    # Lazy so that `lakehouse.config` / `lakehouse.demo_data` work before the native module is built.
    if name in ("Lakehouse", "IngestResult"):
        from lakehouse import lakehouse as facade

        return getattr(facade, name)
    if name == "Config":
        from lakehouse.config import Config

        return Config
    raise AttributeError(name)
