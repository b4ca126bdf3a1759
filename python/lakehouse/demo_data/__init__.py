"""Deterministic synthetic staffing data: workers, clients, job orders, placements, calls.

    from lakehouse.demo_data import generate, TABLES
    tables = generate(n_workers=10_000, seed=42)      # dict of pyarrow Tables
    write_parquet("demo", n_workers=1_000_000, seed=42, progress=print)

The same (n_workers, seed, as_of) always gives identical tables, whichever function
produced them and however `write_parquet` chunks its output (for a given numpy
version: numpy does not promise identical random streams across releases). Nothing here needs the
native `lakehouse._core` module. Cities come from a shipped table derived from
simplemaps US Cities (CC BY 4.0, https://simplemaps.com/data/us-cities); see
ATTRIBUTION.md.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from lakehouse.demo_data._common import BLOCK_ROWS, DEFAULT_AS_OF, table_sizes
from lakehouse.demo_data._generate import Run
from lakehouse.demo_data._parquet import Progress, write_parquet
from lakehouse.demo_data._schema import TABLES

__all__ = [
    "BLOCK_ROWS", "DEFAULT_AS_OF", "TABLES", "Progress", "generate", "generate_call_log",
    "generate_clients", "generate_job_orders", "generate_placements", "generate_workers",
    "table_sizes", "write_parquet",
]


def generate(
    n_workers: int = 10_000, seed: int = 42, *, as_of: dt.date | None = None
) -> dict[str, pa.Table]:
    """All five tables, keyed by name in TABLES order. Sizes: see `table_sizes`."""
    return Run.prepare(n_workers, seed, as_of).collect(TABLES)


def generate_workers(n_workers: int, seed: int = 42, *, as_of: dt.date | None = None) -> pa.Table:
    return _one("workers", n_workers, seed, as_of)


def generate_clients(n_workers: int, seed: int = 42, *, as_of: dt.date | None = None) -> pa.Table:
    return _one("clients", n_workers, seed, as_of)


def generate_job_orders(n_workers: int, seed: int = 42, *, as_of: dt.date | None = None) -> pa.Table:
    return _one("job_orders", n_workers, seed, as_of)


def generate_placements(n_workers: int, seed: int = 42, *, as_of: dt.date | None = None) -> pa.Table:
    return _one("placements", n_workers, seed, as_of)


def generate_call_log(n_workers: int, seed: int = 42, *, as_of: dt.date | None = None) -> pa.Table:
    return _one("call_log", n_workers, seed, as_of)


def _one(name: str, n_workers: int, seed: int, as_of: dt.date | None) -> pa.Table:
    return Run.prepare(n_workers, seed, as_of).collect([name])[name]
