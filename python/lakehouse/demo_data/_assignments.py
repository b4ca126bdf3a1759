"""Matching workers to job orders, and the assignment each on-assignment worker holds now.

The current assignment is computed once per block from its own stream and shared:
the worker's `available_from` is the day after it ends, and it is the worker's
`ongoing` placement. That keeps the two tables consistent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lakehouse.demo_data import _roles
from lakehouse.demo_data._clients import CANCELLED, OrderFacts
from lakehouse.demo_data._common import Clock, Stream, stream
from lakehouse.demo_data._geo import load_cities
from lakehouse.demo_data._workers import ON_ASSIGNMENT, WorkerCore

MAX_START_DELAY_DAYS = 14  # workers join an order within two weeks of its start


@dataclass(frozen=True)
class Assignments:
    worker: np.ndarray  # row index within the block
    order: np.ndarray  # row index into job orders
    start: np.ndarray  # date32 values
    end: np.ndarray

    def end_by_worker(self, rows: int) -> np.ndarray:
        """Per block row: the assignment's last day, or -1 for workers without one."""
        ends = np.full(rows, -1, dtype=np.int64)
        ends[self.worker] = self.end
        return ends


def current_assignments(seed: int, core: WorkerCore, orders: OrderFacts, clock: Clock) -> Assignments:
    """One running, non-cancelled order per on-assignment worker (capped at rows // 2)."""
    rng = stream(seed, Stream.ASSIGNMENTS, core.block.index)
    workers = np.flatnonzero(core.availability == ON_ASSIGNMENT)[: core.block.placement_rows]
    running = (orders.start_day <= clock.day) & (orders.end_day > clock.day)
    running &= orders.status != CANCELLED
    picked = match_orders(rng, core, orders, workers, np.flatnonzero(running))
    workers, picked = workers[picked >= 0], picked[picked >= 0]  # none running: no assignment
    start = orders.start_day[picked] + start_delay(rng, clock.day - orders.start_day[picked])
    return Assignments(workers, picked, start, orders.end_day[picked])


def start_delay(rng: np.random.Generator, room_days: np.ndarray) -> np.ndarray:
    """Days after the order start a worker began: 0..min(14, room)."""
    room = np.minimum(room_days, MAX_START_DELAY_DAYS)
    return (rng.random(room.size) * (room + 1)).astype(np.int64)


def match_orders(
    rng: np.random.Generator, core: WorkerCore, orders: OrderFacts, workers: np.ndarray, pool: np.ndarray
) -> np.ndarray:
    """An order from `pool` per worker: same state and trade, else same trade, else any.

    Returns order row indices, -1 where the pool is empty.
    """
    state = load_cities().state_index
    n_roles = len(_roles.ROLES)
    order_state_role = state[orders.city] * n_roles + orders.role
    worker_state_role = state[core.city[workers]] * n_roles + core.role[workers]
    levels = (
        (order_state_role, worker_state_role),
        (orders.role, core.role[workers]),
        (np.zeros_like(orders.role), np.zeros_like(workers)),
    )
    chosen = np.full(workers.size, -1, dtype=np.int64)
    for order_key, worker_key in levels:
        todo = np.flatnonzero(chosen < 0)
        if todo.size == 0 or pool.size == 0:
            break
        chosen[todo] = uniform_from_group(rng, pool, order_key[pool], worker_key[todo])
    return chosen


def uniform_from_group(
    rng: np.random.Generator, items: np.ndarray, item_keys: np.ndarray, wanted: np.ndarray
) -> np.ndarray:
    """For each wanted key, a uniformly random item with that key (-1 if none)."""
    by_key = np.argsort(item_keys, kind="stable")
    sorted_keys = item_keys[by_key]
    low = np.searchsorted(sorted_keys, wanted, "left")
    count = np.searchsorted(sorted_keys, wanted, "right") - low
    offset = (rng.random(wanted.size) * count).astype(np.int64)
    return np.where(count > 0, items[by_key[np.minimum(low + offset, len(items) - 1)]], -1)
