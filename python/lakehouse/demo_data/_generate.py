"""Orchestration: small tables once, then worker-driven tables block by block."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from lakehouse.demo_data._activity import make_call_log, make_placements, make_staffers
from lakehouse.demo_data._assignments import current_assignments
from lakehouse.demo_data._clients import ClientFacts, OrderFacts, make_clients, make_job_orders
from lakehouse.demo_data._common import Block, Clock, blocks, check_n_workers, check_seed
from lakehouse.demo_data._schema import TABLES, conform
from lakehouse.demo_data._workers import render_workers, worker_core

BLOCK_TABLES = ("workers", "placements", "call_log")


@dataclass(frozen=True)
class Run:
    """Everything shared by all blocks of one generation run."""

    seed: int
    n_workers: int
    clock: Clock
    clients: ClientFacts
    orders: OrderFacts
    staffers: tuple[pa.Array, np.ndarray]

    @classmethod
    def prepare(cls, n_workers: int, seed: int, as_of: dt.date | None) -> Run:
        check_n_workers(n_workers)
        check_seed(seed)
        clock = Clock.at(as_of)
        clients = make_clients(seed, n_workers, clock)
        orders = make_job_orders(seed, clients, clock)
        return cls(seed, n_workers, clock, clients, orders, make_staffers(seed, n_workers))

    def small_tables(self) -> dict[str, pa.Table]:
        return {"clients": conform(self.clients.table, "clients"),
                "job_orders": conform(self.orders.table, "job_orders")}

    def iter_blocks(
        self, tables: Collection[str] = BLOCK_TABLES
    ) -> Iterator[tuple[Block, dict[str, pa.Table]]]:
        """Yield each block's slice of the requested worker-driven tables."""
        for block in blocks(self.n_workers):
            core = worker_core(self.seed, block)
            current = current_assignments(self.seed, core, self.orders, self.clock)
            out = {}
            if "workers" in tables:
                ends = current.end_by_worker(block.rows)
                out["workers"] = conform(render_workers(self.seed, core, ends, self.clock), "workers")
            if "placements" in tables:
                placements = make_placements(self.seed, core, self.orders, current, self.clock)
                out["placements"] = conform(placements, "placements")
            if "call_log" in tables:
                calls = make_call_log(self.seed, core, self.staffers, self.clock)
                out["call_log"] = conform(calls, "call_log")
            yield block, out

    def collect(self, tables: Collection[str]) -> dict[str, pa.Table]:
        unknown = set(tables) - set(TABLES)
        if unknown:
            raise ValueError(f"unknown tables {sorted(unknown)}; choose from {list(TABLES)}")
        result = {name: table for name, table in self.small_tables().items() if name in tables}
        wanted = [name for name in BLOCK_TABLES if name in tables]
        if wanted:
            parts: dict[str, list[pa.Table]] = {name: [] for name in wanted}
            for _, produced in self.iter_blocks(wanted):
                for name, table in produced.items():
                    parts[name].append(table)
            result.update({name: pa.concat_tables(chunks) for name, chunks in parts.items()})
        return {name: result[name] for name in TABLES if name in result}
