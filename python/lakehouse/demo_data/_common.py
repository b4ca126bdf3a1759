"""Seeds, blocks, sizes and dates shared by all tables.

Determinism rests on two rules:
* every random decision comes from a stream seeded by (seed, stream id, block index),
  never from a generator shared across tables or blocks;
* worker-driven tables (workers, placements, call_log) are produced in fixed-size
  blocks of BLOCK_ROWS workers. Block k is the same whether it is generated alone,
  in memory, or streamed to Parquet in chunks of any size.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

# Part of the output's identity: changing it changes every table for N > BLOCK_ROWS.
BLOCK_ROWS = 100_000

# A fixed reference "today" keeps output independent of the wall clock.
DEFAULT_AS_OF = dt.date(2025, 6, 2)

US_PER_DAY = 86_400 * 1_000_000
US_PER_HOUR = 3_600 * 1_000_000
EPOCH = dt.date(1970, 1, 1)


class Stream(IntEnum):
    WORKER_CORE = 1
    WORKER_DETAILS = 2
    CLIENTS = 3
    JOB_ORDERS = 4
    PLACEMENTS = 5
    CALL_LOG = 6
    STAFFERS = 7
    ASSIGNMENTS = 8


def stream(seed: int, kind: Stream, index: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, int(kind), index])


@dataclass(frozen=True)
class Block:
    index: int
    start: int  # offset of the first worker (worker_id = start + 1)
    rows: int

    @property
    def placement_offset(self) -> int:
        # Every block but the last is full, so ids can be computed without earlier blocks.
        return self.index * (BLOCK_ROWS // 2)

    @property
    def placement_rows(self) -> int:
        return self.rows // 2


def categorical_rows(rng: np.random.Generator, probabilities: np.ndarray) -> np.ndarray:
    """One categorical draw per row of a (rows x categories) probability matrix."""
    cumulative = np.cumsum(probabilities, axis=1)
    draw = rng.random(len(probabilities))[:, None] * cumulative[:, -1:]
    return np.minimum((draw >= cumulative).sum(axis=1), probabilities.shape[1] - 1)


def blocks(n_workers: int) -> list[Block]:
    return [
        Block(index, start, min(BLOCK_ROWS, n_workers - start))
        for index, start in enumerate(range(0, n_workers, BLOCK_ROWS))
    ]


def n_clients(n_workers: int) -> int:
    return max(20, round(n_workers / 2000))


def table_sizes(n_workers: int) -> dict[str, int]:
    """Row count of every table for `n_workers` (what `generate` will produce)."""
    check_n_workers(n_workers)
    clients = n_clients(n_workers)
    return {
        "workers": n_workers,
        "clients": clients,
        "job_orders": clients * 15,
        "placements": sum(block.placement_rows for block in blocks(n_workers)),
        "call_log": n_workers,
    }


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_n_workers(n_workers: int) -> None:
    if not _is_int(n_workers) or n_workers < 1:
        raise ValueError(f"n_workers must be a positive integer, got {n_workers!r}")


def check_seed(seed: int) -> None:
    # numpy seed sequences only take non-negative integers.
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")


def day_number(day: dt.date) -> int:
    """Days since 1970-01-01, the representation of Arrow's date32."""
    return (day - EPOCH).days


@dataclass(frozen=True)
class Clock:
    """The reference date in the units the generators compute with."""

    day: int  # date32 value of as_of
    us: int  # midnight UTC of as_of, in microseconds since the epoch

    @classmethod
    def at(cls, as_of: dt.date | None) -> Clock:
        if isinstance(as_of, dt.datetime):
            as_of = as_of.date()
        day = day_number(as_of or DEFAULT_AS_OF)
        return cls(day=day, us=day * US_PER_DAY)
