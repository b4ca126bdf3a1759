from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from lakehouse.config import IngestConfig
from lakehouse.errors import InvalidInput
from lakehouse.ingest.common import check_column_count, check_file_size

_BATCH_ROWS = 64 * 1024


def iter_parquet_batches(path: Path, limits: IngestConfig | None = None) -> pa.RecordBatchReader:
    """Stream row groups as record batches (memory bounded by one batch)."""
    limits = limits or IngestConfig()
    check_file_size(path, limits)
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as exc:
        raise InvalidInput(f"{path.name} is not a readable Parquet file: {exc}") from exc
    check_column_count(path.name, len(parquet.schema_arrow), limits)
    return pa.RecordBatchReader.from_batches(parquet.schema_arrow, _batches(path, parquet))


def _batches(path: Path, parquet: pq.ParquetFile):
    try:
        yield from parquet.iter_batches(batch_size=_BATCH_ROWS)
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as exc:
        raise InvalidInput(f"{path.name} is not a readable Parquet file: {exc}") from exc


def read_parquet(path: Path, limits: IngestConfig | None = None) -> pa.Table:
    return iter_parquet_batches(path, limits).read_all()
