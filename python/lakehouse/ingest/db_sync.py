"""One sync of a database table/query into a dataset, with a sync log.

A sync is one facade commit (`Lakehouse.ingest_table` with the stream), so a
connection that drops mid-stream writes nothing, and the watermark only moves
after the commit: the next run re-reads from the last committed watermark.

The sync log, `<data_dir>/_sync/sync_log.jsonl`, has one JSON line per run
(start, end, status, rows, watermark, error) and is also where the last watermark
per (redacted DSN, table/query, dataset) is read from. It never holds a password.
"""

from __future__ import annotations

import itertools
import json
import os
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakehouse.errors import InvalidInput, error_message
from lakehouse.ingest.db import DEFAULT_BATCH_ROWS, DbSource, open_db_stream, redact_dsn, redact_text

if TYPE_CHECKING:
    from lakehouse.lakehouse import Lakehouse

SYNC_DIR = "_sync"
SYNC_LOG = "sync_log.jsonl"


def sync_log_path(data_path: Path) -> Path:
    return Path(data_path) / SYNC_DIR / SYNC_LOG


def sync_db(
    lakehouse: Lakehouse,
    dsn: str,
    *,
    table: str | None = None,
    query: str | None = None,
    name: str | None = None,
    watermark: str | None = None,
    batch_rows: int | None = None,
    mode: str | None = None,
    actor: str | None = None,
) -> dict[str, Any]:
    """Stream `table` (or `query`) from `dsn` into dataset `name` and log the run.

    Without a watermark a sync is a snapshot (mode `replace`); with one it appends
    only rows whose watermark is above the last synced value (mode `append`).
    """
    if query is not None and not name:
        raise InvalidInput("a query needs a dataset name")
    name = name or table.split(".")[-1]
    source = DbSource(dsn, table=table, query=query, watermark=watermark, batch_rows=batch_rows or DEFAULT_BATCH_ROWS)
    mode = mode or ("append" if watermark else "replace")
    log = sync_log_path(lakehouse.path)
    key = {"dsn": redact_dsn(dsn), "source": source.label, "dataset": name}
    if watermark:
        source.since = last_watermark(log, key, watermark)
    record = {**key, "dialect": source.dialect, "watermark_column": watermark, "since": encode_watermark(source.since),
              "mode": mode, "start": _now()}
    try:
        result = _ingest(lakehouse, source, name, mode, actor, key)
    except Exception as exc:
        error = redact_text(f"{type(exc).__name__}: {error_message(exc)}", dsn)
        append_jsonl(log, {**record, "end": _now(), "status": "error", "rows": 0, "watermark": record["since"], "error": error})
        # Re-raised as is: source failures are already redacted `SourceUnavailable`,
        # and nothing else (schema conflict, a bug) ever saw the DSN.
        raise
    append_jsonl(log, {**record, **result, "end": _now(), "error": None})
    return {**key, "mode": mode, **result}


def _ingest(lakehouse: Lakehouse, source: DbSource, name: str, mode: str, actor: str | None, key: dict) -> dict[str, Any]:
    stream = open_db_stream(source)
    try:
        reader = with_first_batch(stream.reader)
        if reader is None and mode == "append" and _exists(lakehouse, name):
            # Nothing newer than the watermark: no empty commit, the dataset stays as it is.
            manifest = lakehouse.dataset(name)
            ingested = {"dataset_status": "up_to_date", "version": manifest["version"], "total_rows": manifest["row_count"]}
        else:
            result = lakehouse.ingest_table(
                reader or stream.reader, name, mode=mode, actor=actor, source_system=source.dialect,
                ingest_job=f"db:{key['dsn']}:{source.table or 'query'}",
            )
            ingested = {"dataset_status": result.status, "version": result.version, "total_rows": result.total_rows}
    except Exception:
        if stream.error is not None:
            raise stream.error from None  # the source failed, whatever the facade wrapped it in
        raise
    finally:
        stream.close()
    watermark = stream.max_watermark if stream.max_watermark is not None else source.since
    return {"status": "ok", "rows": stream.rows, "watermark": encode_watermark(watermark), **ingested}


def with_first_batch(reader: pa.RecordBatchReader) -> pa.RecordBatchReader | None:
    """`reader` with its first batch already read (None when it has no rows): an
    empty incremental sync is known before anything is written."""
    first = next((b for b in reader if b.num_rows), None)
    if first is None:
        return None
    return pa.RecordBatchReader.from_batches(reader.schema, itertools.chain([first], reader))


def _exists(lakehouse: Lakehouse, name: str) -> bool:
    return any(d["name"] == name for d in lakehouse.datasets())


# ---------------------------------------------------------------------- watermarks
def encode_watermark(value: Any) -> dict[str, str] | None:
    """A watermark as typed JSON, so it comes back as the same Python type."""
    if value is None:
        return None
    for kind, cls in (("bool", bool), ("int", int), ("float", float), ("decimal", Decimal), ("datetime", datetime), ("date", date)):
        if isinstance(value, cls):
            return {"type": kind, "value": value.isoformat() if kind in ("datetime", "date") else str(value)}
    return {"type": "string", "value": str(value)}


def decode_watermark(encoded: dict[str, str] | None) -> Any:
    if not encoded:
        return None
    kind, text = encoded["type"], encoded["value"]
    parse = {"bool": lambda t: t == "True", "int": int, "float": float, "decimal": Decimal,
             "datetime": datetime.fromisoformat, "date": date.fromisoformat}.get(kind, str)
    return parse(text)


def last_watermark(log: Path, key: dict[str, str], column: str) -> Any:
    """The watermark of the last successful sync of `key` on `column` (None: sync everything)."""
    last = None
    for entry in read_jsonl(log):
        if entry.get("status") == "ok" and entry.get("watermark_column") == column and all(entry.get(k) == v for k, v in key.items()):
            last = entry.get("watermark")
    return decode_watermark(last)


# ---------------------------------------------------------------------- JSONL
def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one line and fsync it: a logged run survives a crash right after."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, default=str, ensure_ascii=False) + "\n"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every complete line of `path` (a torn last line after a crash is skipped)."""
    if not path.exists():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return entries


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()
