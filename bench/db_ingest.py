#!/usr/bin/env python3
"""PostgreSQL -> dataset, 1M rows: our `ingest-db` path vs the fastest peer here.

    .venv/bin/python bench/db_ingest.py [--rows 1000000] [--repeats 3] [--dsn postgresql://postgres@127.0.0.1:5432/test]

Creates (or reuses, when it already has --rows rows) the table `lh_bench_workers`,
then times, in fresh subprocesses so peak RSS is per run:
  ours : `sync_db` (ADBC COPY-binary stream -> one Delta commit -> catalog, journal)
  peers: psycopg `COPY ... TO STDOUT (FORMAT binary)` -> pyarrow -> Parquet, and
         ADBC `fetch_arrow_table` -> Parquet
Every side ends with the data on disk as Parquet, so each one pays for a write.
The last stdout line is one JSON record (medians of --repeats), shaped like bench/run's.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TABLE = "lh_bench_workers"
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"

CREATE = f"""
DROP TABLE IF EXISTS {TABLE};
CREATE TABLE {TABLE} (
  worker_id bigint PRIMARY KEY, name text, role text, city text, state char(2), hourly_rate numeric(8,2),
  reliability double precision, placements integer, available boolean, available_from date,
  updated_at timestamptz, skills jsonb)
"""
FILL = f"""
INSERT INTO {TABLE}
SELECT g, 'Worker ' || g, (ARRAY['Welder', 'Electrician', 'Forklift Operator', 'Carpenter'])[1 + g % 4],
  (ARRAY['Toledo', 'Chicago', 'Dayton', 'Akron', 'Gary'])[1 + g % 5], (ARRAY['OH', 'IL', 'OH', 'OH', 'IN'])[1 + g % 5],
  15 + (g % 3000) / 100.0, (g % 1000) / 1000.0, g % 40, g % 3 <> 0, date '2026-01-01' + g % 90,
  timestamptz '2025-01-01 00:00+00' + g * interval '1 second',
  jsonb_build_object('skills', jsonb_build_array('weld', 'mig'), 'years', g % 30)
FROM generate_series(1, {{rows}}) g
"""


def ensure_table(dsn: str, rows: int) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (TABLE,)).fetchone()[0]
        if exists and conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0] == rows:
            return
        conn.execute(CREATE)
        conn.execute(FILL.format(rows=int(rows)))
        conn.execute(f"ANALYZE {TABLE}")


# ---------------------------------------------------------------------- the sides (run in a subprocess)
def run_ours(dsn: str, out: Path) -> int:
    from lakehouse import Lakehouse
    from lakehouse.ingest.db_sync import sync_db

    with Lakehouse(out / "data", actor="bench") as lh:
        return sync_db(lh, dsn, table=TABLE, name="workers")["rows"]


def run_psycopg_copy(dsn: str, out: Path) -> int:
    """COPY binary, rows decoded by psycopg's C loaders, columns built by pyarrow."""
    import psycopg
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = ["int8", "text", "text", "text", "bpchar", "numeric", "float8", "int4", "bool", "date", "timestamptz", "jsonb"]
    writer, rows = None, 0
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY {TABLE} TO STDOUT (FORMAT binary)") as copy:
            copy.set_types(types)
            batch = []
            for row in copy.rows():
                batch.append(row)
                if len(batch) == 100_000:
                    writer = _write_rows(writer, batch, out, pa, pq)
                    rows += len(batch)
                    batch = []
            if batch:
                writer = _write_rows(writer, batch, out, pa, pq)
                rows += len(batch)
    writer.close()
    return rows


def _write_rows(writer, batch, out, pa, pq):
    names = ["worker_id", "name", "role", "city", "state", "hourly_rate", "reliability", "placements", "available",
             "available_from", "updated_at", "skills"]
    columns = list(zip(*batch))
    columns[-1] = [json.dumps(v) for v in columns[-1]]
    table = pa.table({n: pa.array(c) for n, c in zip(names, columns)})
    if writer is None:
        writer = pq.ParquetWriter(out / "peer.parquet", table.schema)
    writer.write_table(table)
    return writer


def run_adbc_table(dsn: str, out: Path) -> int:
    """ADBC's whole result as one Arrow table (not streamed), then Parquet."""
    import adbc_driver_postgresql.dbapi as adbc_pg
    import pyarrow as pa
    import pyarrow.parquet as pq

    with adbc_pg.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT * FROM {TABLE}")
        table = cur.fetch_arrow_table()
    # Extension types (opaque numeric, json) have no Parquet mapping: write their storage.
    plain = pa.table({n: (c.combine_chunks().storage if isinstance(c.type, pa.BaseExtensionType) else c)
                      for n, c in zip(table.column_names, table.columns)})
    pq.write_table(plain, out / "peer.parquet")
    return plain.num_rows


SIDES = {"ours": run_ours, "psycopg_copy_binary": run_psycopg_copy, "adbc_fetch_arrow_table": run_adbc_table}


def child(side: str, dsn: str) -> None:
    sys.path.insert(0, str(REPO / "python"))
    _import_everything()  # import time is not ingest time
    with tempfile.TemporaryDirectory(prefix="lh_bench_") as tmp:
        started = time.perf_counter()
        rows = SIDES[side](dsn, Path(tmp))
        seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"side": side, "seconds": seconds, "rows": rows, "peak_rss_mb": peak_mb}))


def _import_everything() -> None:
    import adbc_driver_postgresql.dbapi  # noqa: F401
    import psycopg  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    import lakehouse.ingest.db_sync  # noqa: F401


def measure(side: str, dsn: str) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", side, "--dsn", dsn], check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.dsn)
        return
    ensure_table(args.dsn, args.rows)
    runs: dict[str, list[dict]] = {side: [] for side in SIDES}
    for _ in range(args.repeats):  # interleaved, so drift hits every side alike
        for side in SIDES:
            result = measure(side, args.dsn)
            assert result["rows"] == args.rows, result
            runs[side].append(result)
    summary = {side: {"seconds": statistics.median(r["seconds"] for r in rs),
                      "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in rs)} for side, rs in runs.items()}
    for side, s in summary.items():
        print(f"{side:24s} {s['seconds']:7.2f} s  {args.rows / s['seconds']:>10,.0f} rows/s  peak RSS {s['peak_rss_mb']:7.0f} MB",
              file=sys.stderr)
    peer = min((s for s in SIDES if s != "ours"), key=lambda s: summary[s]["seconds"])
    ours, theirs = summary["ours"]["seconds"], summary[peer]["seconds"]
    print(json.dumps({
        "area": "ingest", "case": "postgres_1m", "metric": "seconds", "ours": round(ours, 3), "peer": peer,
        "peer_value": round(theirs, 3), "ratio": round(ours / theirs, 3), "rows": args.rows,
        "ours_peak_rss_mb": round(summary["ours"]["peak_rss_mb"]), "peer_peak_rss_mb": round(summary[peer]["peak_rss_mb"]),
        "sides": summary,
    }))


if __name__ == "__main__":
    main()
