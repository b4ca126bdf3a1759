"""Parsers: a source file in, Arrow out. Writing and registering is the facade's job
(`Lakehouse.ingest_file`).

- `read_file(path)` -> `pa.Table` (small files; the facade's contract);
- `open_file(path)` -> `pa.RecordBatchReader` (large files: CSV and Parquet stream with
  bounded memory; JSON and PDF are parsed whole and handed over as one reader).

Every refusal is an `InvalidInput` naming the file and the reason; the limits come
from `[ingest]` in the configuration (`IngestConfig`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from lakehouse.config import IngestConfig
from lakehouse.errors import InvalidInput
from lakehouse.ingest.csv import iter_csv_batches, read_csv
from lakehouse.ingest.json import read_json
from lakehouse.ingest.parquet import iter_parquet_batches, read_parquet
from lakehouse.ingest.pdf import read_pdf

__all__ = ["READERS", "STREAMS", "iter_csv_batches", "open_file", "read_file"]

Reader = Callable[[Path, IngestConfig | None], pa.Table]

READERS: dict[str, Reader] = {
    ".csv": read_csv, ".tsv": read_csv, ".txt": read_csv,
    ".parquet": read_parquet, ".pq": read_parquet,
    ".json": read_json, ".jsonl": read_json, ".ndjson": read_json,
    ".pdf": read_pdf,
}
#: formats that stream batch by batch; the rest are parsed whole
STREAMS: dict[str, Callable[[Path, IngestConfig | None], pa.RecordBatchReader]] = {
    ".csv": iter_csv_batches, ".tsv": iter_csv_batches, ".txt": iter_csv_batches,
    ".parquet": iter_parquet_batches, ".pq": iter_parquet_batches,
}


def read_file(path: str | Path, limits: IngestConfig | None = None, *, pdf_pages: bool = False) -> pa.Table:
    """Parse `path` by its extension into one table. `pdf_pages`: one row per PDF page
    instead of one per document."""
    path = _checked(path)
    if pdf_pages and path.suffix.lower() == ".pdf":
        return read_pdf(path, limits, per_page=True)
    return _reader(path)(path, limits)


def open_file(path: str | Path, limits: IngestConfig | None = None) -> pa.RecordBatchReader:
    """Parse `path` as a stream of record batches (bounded memory for CSV and Parquet)."""
    path = _checked(path)
    stream = STREAMS.get(path.suffix.lower())
    if stream is not None:
        return stream(path, limits)
    table = _reader(path)(path, limits)
    return pa.RecordBatchReader.from_batches(table.schema, table.to_batches())


def _checked(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"cannot ingest {path.name!r}: not a regular file")
    return path


def _reader(path: Path) -> Reader:
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        accepted = ", ".join(sorted(READERS))
        raise InvalidInput(f"cannot ingest {path.name!r}: unsupported file type {path.suffix or '(none)'!r}; accepted: {accepted}")
    return reader
