#!/usr/bin/env python3
"""Ingest benchmarks of the `ingest` area beyond `csv_1m` (which bench/run measures itself).

    .venv/bin/python bench/ingest_bench.py                 # full sizes, one JSON object on stdout
    .venv/bin/python bench/ingest_bench.py --quick         # the sizes of `bench/run --quick`
    .venv/bin/python bench/ingest_bench.py --only inbox_10k,inbox_burst_100

bench/run calls `run_ingest_cases(...)` from its `ingest` area; the records have the
shape of bench/run's (`area`, `case`, `metric`, `ours`, `peer`, `peer_value`, `ratio`,
`rows`, extras, `peak_rss_mib`), `ratio = ours / peer_value`. Cases:

- `csv_1m_pyarrow` (seconds): `lh.ingest_file(csv)` into a fresh data directory vs
  `pyarrow.csv.read_csv` + `pyarrow.parquet.write_table` of the same CSV (the cached
  workers CSV bench/run's `csv_1m` uses); interleaved, median of `reps`.
- `postgres_1m` (seconds): `sync_db` of a PostgreSQL table (ADBC COPY-binary stream ->
  one Delta commit -> catalog, journal) vs the fastest of two peers that also end with
  Parquet on disk: psycopg `COPY ... TO STDOUT (FORMAT binary)` -> pyarrow -> Parquet,
  and ADBC `fetch_arrow_table` -> Parquet. Each side runs in a fresh subprocess (so
  `peak_rss_mb` is per side), sides interleaved; rows/s and peak RSS are recorded.
  Table `lh_bench_workers` (1M rows) / `lh_bench_workers_<rows>` is created once and
  reused. (This is what bench/db_ingest.py did; that script now calls this module.)
- `inbox_10k` (p50_ms): a 10,000-row CSV is written into the inbox of a running agent
  (`start_background`, the product's inbox watcher with its default settle time);
  the clock starts when the writer closes the file and stops when `SELECT count(*)`
  through the facade sees its rows. Median (p95 alongside) of 10 drops (5 in quick).
- `inbox_burst_100` (seconds): 100 CSV files written into the inbox one after the
  other as fast as possible (1,000 rows each; 100 in quick), all for one dataset;
  from the first write until every row is queryable.

A case that fails is logged on stderr and comes back as a record with `ours: null`
and an `error` field, so the other cases (and bench/run's other areas) still report.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import common
from common import REPO, no_gc, open_lakehouse, own_peak_rss_mib, p95, record, rnd

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
CASES = ("csv_1m_pyarrow", "postgres_1m", "inbox_10k", "inbox_burst_100")

common.use_source_tree_if_not_installed()


# ---------------------------------------------------------------------- sizes
def sizes_for(quick: bool) -> dict[str, int]:
    if quick:
        return {"csv_rows": 100_000, "csv_reps": 2, "pg_rows": 100_000, "pg_repeats": 1,
                "inbox_rows": 10_000, "inbox_drops": 5, "burst_files": 100, "burst_rows": 100}
    return {"csv_rows": 1_000_000, "csv_reps": 3, "pg_rows": 1_000_000, "pg_repeats": 3,
            "inbox_rows": 10_000, "inbox_drops": 10, "burst_files": 100, "burst_rows": 1_000}


# ---------------------------------------------------------------------- records (bench/run's shape)
log = common.Log("ingest-bench")


# ---------------------------------------------------------------------- csv_1m_pyarrow
def bench_csv_pyarrow(csv: Path, rows: int, reps: int, workdir: Path) -> dict[str, Any]:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    ours: list[float] = []
    peer: list[float] = []
    for rep in range(reps):
        for side in (("ours", "peer") if rep % 2 == 0 else ("peer", "ours")):
            target = workdir / f"csv-pyarrow-{side}-{rep}"
            target.mkdir(parents=True)
            with no_gc():
                if side == "ours":
                    lh = open_lakehouse(target)
                    try:
                        started = time.perf_counter()
                        result = lh.ingest_file(csv, "workers_csv")
                        seconds = time.perf_counter() - started
                    finally:
                        lh.close()
                    if result.total_rows != rows:
                        raise RuntimeError(f"ingest_file wrote {result.total_rows} rows, expected {rows}")
                    ours.append(seconds)
                else:
                    started = time.perf_counter()
                    table = pacsv.read_csv(csv)
                    pq.write_table(table, target / "workers.parquet")
                    seconds = time.perf_counter() - started
                    if table.num_rows != rows:
                        raise RuntimeError(f"pyarrow read {table.num_rows} rows, expected {rows}")
                    del table
                    peer.append(seconds)
            log(f"  csv_1m_pyarrow rep {rep} {side}: {seconds:.2f}s")
            shutil.rmtree(target)
    rec = record("ingest", "csv_1m_pyarrow", "seconds", statistics.median(ours), "pyarrow", statistics.median(peer),
                 rows=rows, ours_max=rnd(max(ours)), peer_max=rnd(max(peer)), iterations=reps,
                 csv_mb=rnd(csv.stat().st_size / 1e6, 1))
    log(f"  ingest/csv_1m_pyarrow: ours {rec['ours']} s, pyarrow {rec['peer_value']} s, ratio {rec['ratio']}")
    return rec


# ---------------------------------------------------------------------- postgres_1m
PG_COLUMNS = ["worker_id", "name", "role", "city", "state", "hourly_rate", "reliability", "placements", "available",
              "available_from", "updated_at", "skills"]
PG_COPY_TYPES = ["int8", "text", "text", "text", "bpchar", "numeric", "float8", "int4", "bool", "date", "timestamptz", "jsonb"]


def pg_table_name(rows: int) -> str:
    return "lh_bench_workers" if rows == 1_000_000 else f"lh_bench_workers_{int(rows)}"


def ensure_pg_table(dsn: str, rows: int) -> str:
    """The bench table with exactly `rows` rows, created once and reused."""
    import psycopg

    table = pg_table_name(rows)
    with psycopg.connect(dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]
        if exists and conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == rows:
            return table
        log(f"postgres: creating {table} with {rows:,} rows")
        conn.execute(f"""
            DROP TABLE IF EXISTS {table};
            CREATE TABLE {table} (
              worker_id bigint PRIMARY KEY, name text, role text, city text, state char(2), hourly_rate numeric(8,2),
              reliability double precision, placements integer, available boolean, available_from date,
              updated_at timestamptz, skills jsonb)""")
        conn.execute(f"""
            INSERT INTO {table}
            SELECT g, 'Worker ' || g, (ARRAY['Welder', 'Electrician', 'Forklift Operator', 'Carpenter'])[1 + g % 4],
              (ARRAY['Toledo', 'Chicago', 'Dayton', 'Akron', 'Gary'])[1 + g % 5], (ARRAY['OH', 'IL', 'OH', 'OH', 'IN'])[1 + g % 5],
              15 + (g % 3000) / 100.0, (g % 1000) / 1000.0, g % 40, g % 3 <> 0, date '2026-01-01' + g % 90,
              timestamptz '2025-01-01 00:00+00' + g * interval '1 second',
              jsonb_build_object('skills', jsonb_build_array('weld', 'mig'), 'years', g % 30)
            FROM generate_series(1, {int(rows)}) g""")
        conn.execute(f"ANALYZE {table}")
    return table


def pg_ours(dsn: str, table: str, out: Path) -> int:
    from lakehouse.ingest.db_sync import sync_db

    lh = open_lakehouse(out / "data")
    try:
        return sync_db(lh, dsn, table=table, name="workers")["rows"]
    finally:
        lh.close()


def pg_psycopg_copy(dsn: str, table: str, out: Path) -> int:
    """COPY binary, rows decoded by psycopg's C loaders, columns built by pyarrow."""
    import psycopg
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer, rows, batch = None, 0, []

    def flush(writer):
        columns = list(zip(*batch))
        columns[-1] = [json.dumps(v) for v in columns[-1]]
        arrow = pa.table({n: pa.array(c) for n, c in zip(PG_COLUMNS, columns)})
        writer = writer or pq.ParquetWriter(out / "peer.parquet", arrow.schema)
        writer.write_table(arrow)
        return writer

    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY {table} TO STDOUT (FORMAT binary)") as copy:
            copy.set_types(PG_COPY_TYPES)
            for row in copy.rows():
                batch.append(row)
                if len(batch) == 100_000:
                    writer, rows, batch = flush(writer), rows + len(batch), []
            if batch:
                writer, rows = flush(writer), rows + len(batch)
    writer.close()
    return rows


def pg_adbc_table(dsn: str, table: str, out: Path) -> int:
    """ADBC's whole result as one Arrow table (not streamed), then Parquet."""
    import adbc_driver_postgresql.dbapi as adbc_pg
    import pyarrow as pa
    import pyarrow.parquet as pq

    with adbc_pg.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT * FROM {table}")
        arrow = cur.fetch_arrow_table()
    # Extension types (opaque numeric, json) have no Parquet mapping: write their storage.
    plain = pa.table({n: (c.combine_chunks().storage if isinstance(c.type, pa.BaseExtensionType) else c)
                      for n, c in zip(arrow.column_names, arrow.columns)})
    pq.write_table(plain, out / "peer.parquet")
    return plain.num_rows


PG_SIDES: dict[str, Callable[[str, str, Path], int]] = {
    "ours": pg_ours, "psycopg_copy_binary": pg_psycopg_copy, "adbc_fetch_arrow_table": pg_adbc_table,
}


def pg_child(side: str, dsn: str, table: str) -> None:
    """One side in this (fresh) process; prints one JSON line."""
    import adbc_driver_postgresql.dbapi  # noqa: F401  (import time is not ingest time)
    import psycopg  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    import lakehouse.ingest.db_sync  # noqa: F401

    with tempfile.TemporaryDirectory(prefix="lh_bench_") as tmp:
        started = time.perf_counter()
        rows = PG_SIDES[side](dsn, table, Path(tmp))
        seconds = time.perf_counter() - started
    print(json.dumps({"side": side, "seconds": seconds, "rows": rows, "peak_rss_mb": own_peak_rss_mib()}))


def pg_measure(side: str, dsn: str, table: str) -> dict[str, Any]:
    env = common.with_pythonpath(os.environ, REPO / "python")
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--pg-child", side, "--dsn", dsn, "--table", table],
                          capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"postgres side {side} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_postgres(dsn: str, rows: int, repeats: int) -> dict[str, Any]:
    table = ensure_pg_table(dsn, rows)
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in PG_SIDES}
    for rep in range(repeats):  # interleaved, so drift hits every side alike
        order = list(PG_SIDES) if rep % 2 == 0 else list(reversed(PG_SIDES))
        for side in order:
            result = pg_measure(side, dsn, table)
            if result["rows"] != rows:
                raise RuntimeError(f"{side} read {result['rows']} rows, expected {rows}")
            runs[side].append(result)
            log(f"  postgres rep {rep} {side}: {result['seconds']:.2f}s, peak RSS {result['peak_rss_mb']:.0f} MiB")
    summary = {side: {"seconds": rnd(statistics.median(r["seconds"] for r in rs)),
                      "rows_per_s": round(rows / statistics.median(r["seconds"] for r in rs)),
                      "peak_rss_mb": rnd(statistics.median(r["peak_rss_mb"] for r in rs), 1)} for side, rs in runs.items()}
    peer = min((s for s in PG_SIDES if s != "ours"), key=lambda s: summary[s]["seconds"])
    rec = record("ingest", "postgres_1m", "seconds", summary["ours"]["seconds"], peer, summary[peer]["seconds"], rows=rows,
                 iterations=repeats, ours_rows_per_s=summary["ours"]["rows_per_s"], peer_rows_per_s=summary[peer]["rows_per_s"],
                 ours_peak_rss_mb=summary["ours"]["peak_rss_mb"], peer_peak_rss_mb=summary[peer]["peak_rss_mb"], sides=summary)
    log(f"  ingest/postgres_1m: ours {rec['ours']} s, {peer} {rec['peer_value']} s, ratio {rec['ratio']}")
    return rec


# ---------------------------------------------------------------------- inbox
def inbox_csv(rows: int, first_id: int) -> bytes:
    """A workers CSV whose bytes differ for every `first_id` (identical bytes would be a noop)."""
    cities = ("Toledo,OH", "Chicago,IL", "Dayton,OH", "Akron,OH", "Gary,IN")
    roles = ("Welder", "Electrician", "Forklift Operator", "Carpenter")
    lines = ["worker_id,name,role,city,state,hourly_rate,available_from"]
    lines += [f"{i},Worker {i},{roles[i % 4]},{cities[i % 5]},{15 + i % 3000 / 100:.2f},2026-01-{1 + i % 28:02d}"
              for i in range(first_id, first_id + rows)]
    return ("\n".join(lines) + "\n").encode()


class RunningAgent:
    """A data directory with the product's agent watching its inbox (schedules off)."""

    def __init__(self, data_dir: Path):
        from lakehouse.config import Config
        from lakehouse.daemon.agent import start_background
        from lakehouse.gateway.state import FacadeGuard
        from lakehouse.lakehouse import Lakehouse

        self.config = Config.load(data_dir, env={})
        self.config.data_dir = str(data_dir)
        self.lakehouse = Lakehouse(data_dir, config=self.config, actor="bench")
        self.guard = FacadeGuard(self.lakehouse)
        self.inbox = self.config.inbox_path
        self.agent = start_background(self.lakehouse, self.config, self.guard, watch_inbox=True, run_schedules=False)

    def rows(self, dataset: str) -> int:
        with self.guard.use() as lh:
            if dataset not in {d["name"] for d in lh.datasets()}:
                return 0
            return lh.sql(f'SELECT count(*) AS n FROM "{dataset}"').column("n")[0].as_py()

    def wait_rows(self, dataset: str, expected: int, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.rows(dataset) < expected:
            if time.monotonic() > deadline:
                failed = [o.to_dict() for o in self.agent.inbox.recent if o.status == "failed"]
                raise RuntimeError(f"{dataset}: fewer than {expected} rows after {timeout_s}s; failed drops: {failed[:3]}")
            time.sleep(0.01)

    def close(self) -> None:
        self.agent.stop()
        self.lakehouse.close()


def drop(path: Path, data: bytes) -> None:
    """Write a file into the inbox like a copy does: create, write, close."""
    with open(path, "wb") as fh:
        fh.write(data)


def bench_inbox_10k(rows: int, drops: int, workdir: Path) -> dict[str, Any]:
    agent = RunningAgent(workdir / "inbox_10k")
    samples: list[float] = []
    try:
        files = [inbox_csv(rows, 1 + i * rows) for i in range(drops)]
        for i, data in enumerate(files):
            drop(agent.inbox / f"inbox_workers.{i:03d}.csv", data)
            started = time.perf_counter()
            agent.wait_rows("inbox_workers", rows * (i + 1))
            samples.append((time.perf_counter() - started) * 1000)
            log(f"  inbox_10k drop {i}: {samples[-1]:.0f} ms")
        settle = agent.config.daemon.inbox_settle_seconds
    finally:
        agent.close()
    rec = record("ingest", "inbox_10k", "p50_ms", statistics.median(samples), rows=rows, ours_p95=rnd(p95(samples)),
                 ours_max=rnd(max(samples)), iterations=drops, settle_s=settle, csv_kb=rnd(len(files[0]) / 1024, 1))
    log(f"  ingest/inbox_10k: p50 {rec['ours']} ms, p95 {rec['ours_p95']} ms (settle time {settle} s)")
    return rec


def bench_inbox_burst(files: int, rows: int, workdir: Path) -> dict[str, Any]:
    agent = RunningAgent(workdir / "inbox_burst")
    try:
        payloads = [inbox_csv(rows, 1 + i * rows) for i in range(files)]
        started = time.perf_counter()
        for i, data in enumerate(payloads):
            drop(agent.inbox / f"burst.{i:03d}.csv", data)
        written = time.perf_counter() - started
        agent.wait_rows("burst", files * rows, timeout_s=600)
        seconds = time.perf_counter() - started
        outcomes = list(agent.agent.inbox.recent)
        failed = sum(1 for o in outcomes if o.status == "failed")
        per_file = [o.seconds * 1000 for o in outcomes]
    finally:
        agent.close()
    if failed:
        raise RuntimeError(f"{failed} of the burst's files failed")
    rec = record("ingest", "inbox_burst_100", "seconds", seconds, rows=files * rows, files=files, rows_per_file=rows,
                 drop_s=rnd(written), ingest_ms_per_file_p50=rnd(statistics.median(per_file)) if per_file else None)
    log(f"  ingest/inbox_burst_100: {files} files x {rows} rows queryable in {rec['ours']} s")
    return rec


# ---------------------------------------------------------------------- entry points
def run_ingest_cases(*, quick: bool, seed: int = 42, workdir: Path, csv: Path | None = None, dsn: str = DEFAULT_DSN,
                     cases: tuple[str, ...] = CASES) -> list[dict[str, Any]]:
    """Every case of `cases` as bench/run records (called from bench/run's ingest area).
    `csv`: the workers CSV of the right size (bench/run's `workers_csv`); made if None."""
    sizes = sizes_for(quick)
    out = []
    for case in cases:
        log(f"-- ingest/{case}")
        try:
            if case == "csv_1m_pyarrow":
                path = csv or _workers_csv(sizes["csv_rows"], seed)
                out.append(bench_csv_pyarrow(path, sizes["csv_rows"], sizes["csv_reps"], workdir))
            elif case == "postgres_1m":
                out.append(bench_postgres(dsn, sizes["pg_rows"], sizes["pg_repeats"]))
            elif case == "inbox_10k":
                out.append(bench_inbox_10k(sizes["inbox_rows"], sizes["inbox_drops"], workdir))
            elif case == "inbox_burst_100":
                out.append(bench_inbox_burst(sizes["burst_files"], sizes["burst_rows"], workdir))
            else:
                raise ValueError(f"unknown case {case!r}; known: {', '.join(CASES)}")
        except Exception as exc:  # one broken case must not hide the others' numbers
            log(f"ingest/{case} FAILED:\n{traceback.format_exc()}")
            metric = {"postgres_1m": "seconds", "inbox_10k": "p50_ms"}.get(case, "seconds")
            out.append(record("ingest", case, metric, None, error=f"{type(exc).__name__}: {exc}"[:500]))
    return out


def _workers_csv(rows: int, seed: int) -> Path:
    run = common.load_bench_run()  # its cached workers CSV, the one bench/run's csv_1m uses
    run.CACHE_DIR.mkdir(exist_ok=True)
    return run.workers_csv(rows, seed)


def main(argv: list[str]) -> int:
    parser = common.bench_parser(__doc__, CASES, "bench/run --quick sizes", what="case")
    parser.add_argument("--dsn", default=DEFAULT_DSN, help="PostgreSQL for postgres_1m")
    parser.add_argument("--pg-child", help=argparse.SUPPRESS)
    parser.add_argument("--table", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.pg_child:
        pg_child(args.pg_child, args.dsn, args.table)
        return 0
    cases = common.parse_only(parser, args.only, CASES, what="case")

    def measure() -> list[dict[str, Any]]:
        workdir = common.temp_dir("lakehouse-ingest-bench-", args.workdir)
        try:
            return run_ingest_cases(quick=args.quick, seed=args.seed, workdir=workdir, dsn=args.dsn, cases=cases)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)  # made above by mkdtemp

    return common.run_standalone(measure, quick=args.quick, out=args.out, log=log)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
