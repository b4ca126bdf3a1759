"""Streaming the tables to Parquet with bounded memory.

Only one block of BLOCK_ROWS workers (and its placements and calls) is in memory at
a time; each block is appended to the open part file as its own row group and a new
part starts every `chunk_rows` rows. The data is identical to `generate()`'s.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from lakehouse.demo_data._common import table_sizes
from lakehouse.demo_data._generate import BLOCK_TABLES, Run
from lakehouse.demo_data._schema import TABLES

Progress = Callable[[str, int, int], None]
PART_GLOB = "part-*.parquet"


class PartWriter:
    """Writes one table as out_dir/<table>/part-00000.parquet, part-00001.parquet, ..."""

    def __init__(self, directory: Path, schema: pa.Schema, chunk_rows: int) -> None:
        self.directory, self.schema, self.chunk_rows = directory, schema, chunk_rows
        self.paths: list[Path] = []
        self._writer: pq.ParquetWriter | None = None
        self._rows_in_part = 0
        directory.mkdir(parents=True, exist_ok=True)
        # Parts left by an earlier, larger run would silently join this dataset.
        for stale in directory.glob(PART_GLOB):
            stale.unlink()

    def write(self, table: pa.Table) -> None:
        while table.num_rows:
            if self._writer is None:
                self._open_part()
            room = self.chunk_rows - self._rows_in_part
            self._writer.write_table(table.slice(0, room))
            self._rows_in_part += min(room, table.num_rows)
            table = table.slice(room)
            if self._rows_in_part == self.chunk_rows:
                self.end_part()

    def end_part(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer, self._rows_in_part = None, 0

    def finish(self) -> list[Path]:
        """Close the last part; an empty table still gets one file, so its schema is on disk."""
        if not self.paths:
            self.write_empty()
        self.end_part()
        return self.paths

    def write_empty(self) -> None:
        self._open_part()
        self._writer.write_table(self.schema.empty_table())

    def _open_part(self) -> None:
        path = self.directory / f"part-{len(self.paths):05d}.parquet"
        self._writer = pq.ParquetWriter(path, self.schema, compression="zstd")
        self.paths.append(path)


def write_parquet(
    out_dir: str | Path,
    n_workers: int,
    seed: int = 42,
    chunk_rows: int = 500_000,
    progress: Progress | None = None,
    *,
    as_of: dt.date | None = None,
) -> dict[str, list[Path]]:
    """Generate all tables and write them under `out_dir`, one directory per table.

    Existing `part-*.parquet` files in those directories are replaced. `progress`, if
    given, is called as progress(table, rows_done, rows_total) when each table starts
    (rows_done 0) and after every block. Returns the part files written per table.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be positive, got {chunk_rows!r}")
    report = progress or (lambda table, done, total: None)
    run = Run.prepare(n_workers, seed, as_of)
    totals = table_sizes(n_workers)
    out = Path(out_dir)
    writers = {name: PartWriter(out / name, schema, chunk_rows) for name, schema in TABLES.items()}
    try:
        for name in TABLES:
            report(name, 0, totals[name])
        for name, table in run.small_tables().items():
            writers[name].write(table)
            report(name, table.num_rows, totals[name])
        done = dict.fromkeys(BLOCK_TABLES, 0)
        for _, produced in run.iter_blocks(BLOCK_TABLES):
            for name, table in produced.items():
                writers[name].write(table)
                done[name] += table.num_rows
                report(name, done[name], totals[name])
    finally:
        for writer in writers.values():
            writer.end_part()
    return {name: writer.finish() for name, writer in writers.items()}
