#!/usr/bin/env python3
"""PostgreSQL -> dataset, 1M rows: our `ingest-db` path vs the fastest peer here.

    .venv/bin/python bench/db_ingest.py [--rows 1000000] [--repeats 3] [--dsn postgresql://postgres@127.0.0.1:5432/test]

The measurement lives in bench/ingest_bench.py (case `postgres_1m`, which bench/run's
`ingest` area reports); this script runs that case alone with sizes of your choice.
Creates (or reuses, when it already has --rows rows) the table `lh_bench_workers`
(`lh_bench_workers_<rows>` for other sizes), then times, in fresh subprocesses so
peak RSS is per run:
  ours : `sync_db` (ADBC COPY-binary stream -> one Delta commit -> catalog, journal)
  peers: psycopg `COPY ... TO STDOUT (FORMAT binary)` -> pyarrow -> Parquet, and
         ADBC `fetch_arrow_table` -> Parquet
Every side ends with the data on disk as Parquet, so each one pays for a write.
The last stdout line is one JSON record (medians of --repeats), shaped like bench/run's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest_bench import DEFAULT_DSN, bench_postgres  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rec = bench_postgres(args.dsn, args.rows, args.repeats)
    for side, s in rec["sides"].items():
        print(f"{side:24s} {s['seconds']:7.2f} s  {s['rows_per_s']:>10,} rows/s  peak RSS {s['peak_rss_mb']:7.0f} MiB",
              file=sys.stderr)
    print(json.dumps(rec))


if __name__ == "__main__":
    main()
