"""One sync of a database table/query into a dataset, with a sync log.

A sync is one facade commit (`Lakehouse.ingest_table` with the stream), so a
connection that drops mid-stream writes nothing, and the watermark only moves
after the commit: the next run re-reads from the last committed watermark.

Modes: `replace` (a snapshot; the default without a watermark), `append` (only rows
at or above the last watermark that were not synced yet; the default with one) and
`upsert` (the default with a `key` column): like `append`, but a row whose key is
already in the dataset replaces it instead of being added beside it.

An upsert is ONE step made of two commits, in this order (see `_upsert`):
1. the whole increment is read first, into a staging Parquet file under
   `<data_dir>/_sync/staging/` (a dropped connection here writes nothing);
2. the schema is checked against the dataset (a conflict stops here, nothing written);
3. one delete commit removes the rows whose key comes in again (`key IN (...)`, only
   the keys the dataset really holds, found by one range query first; one commit per
   `DELETE_KEYS_PER_COMMIT` keys when more come in again);
4. one append commit adds the increment (duplicate keys inside one increment are
   reduced to the row with the highest watermark, the later one on a tie).
Between 3 and 4 a reader can see the replaced keys missing. If 4 fails, the
watermark does not move, so the next sync reads the same rows again and restores
them (deleting keys that are no longer there is a no-op). The core has no MERGE
(`lakehouse._core.Storage` offers write/update/delete only); with one, steps 3-4
would become a single commit and the window would close.

The sync log, `<data_dir>/_sync/sync_log.jsonl`, has one JSON line per run
(start, end, status, rows, watermark, error) and is also where the last watermark
per (redacted DSN, table/query, dataset) is read from, with the digests of the rows
synced at that watermark (`boundary`; see `lakehouse.ingest.db`). It never holds a
password: DSNs are stored redacted, and a password given apart from the DSN
(`password`, `password_env`) is only ever put into the DSN used to connect.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import tempfile
from collections import Counter
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lakehouse.errors import InvalidInput, error_message
from lakehouse.ingest.db import (
    DEFAULT_BATCH_ROWS,
    DbSource,
    DbStream,
    dsn_with_password,
    open_db_stream,
    redact_dsn,
    redact_text,
)

if TYPE_CHECKING:
    from lakehouse.lakehouse import Lakehouse

SYNC_DIR = "_sync"
SYNC_LOG = "sync_log.jsonl"
STAGING_DIR = "staging"
MODES = ("append", "replace", "upsert")
#: keys per `key IN (...)` delete predicate; more keys take more delete commits. The
#: core parses the predicate recursively: ~30,000 keys in one IN list crash the process
#: (SIGSEGV, measured here), and the cost is ~0.15 ms per key. 5,000 takes ~1 s.
DELETE_KEYS_PER_COMMIT = 5_000


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
    key: str | None = None,
    batch_rows: int | None = None,
    mode: str | None = None,
    password: str | None = None,
    password_env: str | None = None,
    actor: str | None = None,
) -> dict[str, Any]:
    """Stream `table` (or `query`) from `dsn` into dataset `name` and log the run.

    Without a watermark a sync is a snapshot (mode `replace`); with one it appends
    only the rows at or above the last synced watermark that it has not synced yet
    (mode `append`); with a `key` column too, those rows replace the dataset's rows
    with the same key (mode `upsert`). The password may come apart from the DSN:
    `password`, or `password_env`, the name of an environment variable of this
    process (`LAKEHOUSE_*`, `PGPASSWORD` or `MYSQL_PWD`; see `lakehouse.ingest.db`).
    """
    if query is not None and not name:
        raise InvalidInput("a query needs a dataset name")
    if table is None and query is None:
        raise InvalidInput("give exactly one of table or query")
    mode = check_mode(mode, watermark, key)
    name = name or table.split(".")[-1]
    # Connect with the password, show and store only the redacted DSN (`user:***@host`
    # whether the password was in the DSN or came apart: the same sync state either way).
    dsn = dsn_with_password(dsn, password, password_env)
    source = DbSource(dsn, table=table, query=query, watermark=watermark, batch_rows=batch_rows or DEFAULT_BATCH_ROWS)
    log = sync_log_path(lakehouse.path)
    state_key = {"dsn": redact_dsn(dsn), "source": source.label, "dataset": name}
    if watermark:
        source.since, boundary = last_sync_state(log, state_key, watermark)
        source.seen_at_since = boundary or {}
        source.strict = boundary is None and source.since is not None  # a state from before the digests were kept
    record = {**state_key, "dialect": source.dialect, "watermark_column": watermark, "key_column": key,
              "since": encode_watermark(source.since), "mode": mode, "start": _now()}
    try:
        result = _ingest(lakehouse, source, name, mode, key, actor, state_key)
    except Exception as exc:
        error = redact_text(f"{type(exc).__name__}: {error_message(exc)}", dsn)
        append_jsonl(log, {**record, "end": _now(), "status": "error", "rows": 0, "watermark": record["since"], "error": error})
        # Re-raised as is: source failures are already redacted `SourceUnavailable`,
        # and nothing else (schema conflict, a bug) ever saw the DSN.
        raise
    boundary = result.pop("boundary", None)
    append_jsonl(log, {**record, **result, "end": _now(), "error": None,
                       **({"boundary": dict(boundary)} if boundary is not None else {})})
    return {**state_key, "mode": mode, **result}


def check_mode(mode: str | None, watermark: str | None, key: str | None) -> str:
    """The sync's mode, defaulted: upsert with a key, append with a watermark, else replace."""
    if mode is not None and mode not in MODES:
        raise InvalidInput(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if key is not None and not watermark:
        raise InvalidInput("an upsert by key needs a watermark column (without one every sync is a snapshot: "
                           "leave out the key and the dataset is replaced)")
    if key is not None and mode not in (None, "upsert"):
        raise InvalidInput(f"a key means mode 'upsert' (rows with a known key replace it), not {mode!r}")
    if mode == "upsert" and key is None:
        raise InvalidInput("mode 'upsert' needs a key column")
    return mode or ("upsert" if key else "append" if watermark else "replace")


def check_key_column(schema: pa.Schema, key: str) -> None:
    if key not in schema.names:
        raise InvalidInput(f"key column {key!r} is not in the result (columns: {', '.join(schema.names)})")
    kind = schema.field(key).type
    if not (pa.types.is_integer(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise InvalidInput(f"key column {key!r} is {kind}: an upsert key must be an integer or text column")


def _ingest(lakehouse: Lakehouse, source: DbSource, name: str, mode: str, key: str | None, actor: str | None,
            state_key: dict) -> dict[str, Any]:
    stream = open_db_stream(source)
    job = f"db:{state_key['dsn']}:{source.table or 'query'}"
    try:
        if key is not None:
            check_key_column(stream.reader.schema, key)
        reader = with_first_batch(stream.reader)
        if reader is None and mode in ("append", "upsert") and _exists(lakehouse, name):
            # Nothing new since the watermark: no empty commit, the dataset stays as it is.
            manifest = lakehouse.dataset(name)
            ingested = {"dataset_status": "up_to_date", "version": manifest["version"], "total_rows": manifest["row_count"]}
        elif mode == "upsert" and _exists(lakehouse, name):
            ingested = _upsert(lakehouse, stream, reader, name, key, actor, job)
        else:
            # A new dataset (an upsert into nothing is an append) or a plain append/replace: streamed.
            result = lakehouse.ingest_table(
                reader or stream.reader, name, mode="append" if mode == "upsert" else mode, actor=actor,
                source_system=source.dialect, ingest_job=job,
            )
            ingested = {"dataset_status": result.status, "version": result.version, "total_rows": result.total_rows}
    except Exception:
        if stream.error is not None:
            raise stream.error from None  # the source failed, whatever the facade wrapped it in
        raise
    finally:
        stream.close()
    watermark, boundary = next_sync_state(source, stream)
    out = {"status": "ok", "rows": stream.rows, "watermark": encode_watermark(watermark), **ingested}
    if source.watermark:
        out["skipped_already_synced"] = stream.skipped
        out["boundary"] = boundary
    return out


def next_sync_state(source: DbSource, stream: DbStream) -> tuple[Any, Counter | None]:
    """(watermark, digests of the rows synced at it) once this sync committed."""
    if stream.max_watermark is None:
        # Nothing new. After a strict (`>`) read the rows at the old watermark are still
        # unknown, so the next read stays strict (None).
        return source.since, None if source.strict else Counter(source.seen_at_since)
    if source.since is not None and stream.max_watermark == source.since:
        # Only rows at the old watermark: those synced before plus the new ones.
        return source.since, Counter(source.seen_at_since) + stream.boundary
    return stream.max_watermark, stream.boundary


# ---------------------------------------------------------------------- upsert
def _upsert(lakehouse: Lakehouse, stream: DbStream, reader: pa.RecordBatchReader, name: str, key: str,
            actor: str | None, job: str) -> dict[str, Any]:
    """Replace the rows of `name` whose `key` comes in again, add the rest (the module
    docstring gives the steps and what a failure between them leaves)."""
    from lakehouse import _core

    source = stream.source
    staging_root = lakehouse.path / SYNC_DIR / STAGING_DIR
    staging_root.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="upsert-", dir=staging_root))  # ours: the only thing removed below
    try:
        staged = workdir / "increment.parquet"
        keys = _stage(reader, staged, key)  # 1. the whole increment, before anything is written
        schema = reader.schema
        # 2. The check `ingest_table` makes, made before the delete: a conflict writes nothing.
        lakehouse._catalog.check(name, _core.storage_schema(schema))
        increment = _latest_per_key(staged, schema, key, source.watermark, keys)
        replaced = _delete_keys(lakehouse, name, key, pc.unique(keys.drop_null()), actor, job)  # 3.
        result = lakehouse.ingest_table(  # 4.
            increment, name, mode="append", actor=actor, source_system=source.dialect, ingest_job=job,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    status = "upserted" if replaced else result.status
    return {"dataset_status": status, "version": result.version, "total_rows": result.total_rows,
            "rows_replaced": replaced, "rows_added": result.rows_written - replaced}


def _stage(reader: pa.RecordBatchReader, path: Path, key: str) -> pa.ChunkedArray:
    """Write every batch of `reader` to `path` (flat memory but for the key column,
    which is returned)."""
    keys = []
    with pq.ParquetWriter(path, reader.schema) as writer:
        for batch in reader:
            writer.write_batch(batch)
            keys.append(batch.column(key))
    return pa.chunked_array(keys, reader.schema.field(key).type)


def _latest_per_key(staged: Path, schema: pa.Schema, key: str, watermark: str, keys: pa.ChunkedArray) -> pa.RecordBatchReader:
    """The staged increment with one row per key: the one with the highest watermark
    (the later one read on a tie). Rows without a key are all kept (they match nothing).
    Streams the file when its keys are unique already, the usual case (a primary key)."""
    non_null = keys.drop_null()
    if len(pc.unique(non_null)) == len(non_null):
        return _reader_of(staged, schema)
    table = pq.read_table(staged).cast(schema)
    order = "__lh_order"  # a name no source column has: dropped before the write
    table = table.append_column(order, pa.array(range(table.num_rows), pa.int64()))
    ranked = table.take(pc.sort_indices(table, sort_keys=[(watermark, "ascending", "at_start"), (order, "ascending")]))
    ranked = ranked.set_column(ranked.schema.get_field_index(order), order, pa.array(range(ranked.num_rows), pa.int64()))
    last = ranked.filter(pc.is_valid(ranked.column(key))).group_by(key).aggregate([(order, "max")]).column(f"{order}_max")
    keep = pc.or_(pc.is_in(ranked.column(order), value_set=last), pc.is_null(ranked.column(key)))
    latest = ranked.filter(keep).drop_columns([order])
    # A reader, not a Table: the facade dedupes a Table by its hash, and this increment
    # must land even when identical bytes were ingested before (its keys were just deleted).
    return pa.RecordBatchReader.from_batches(latest.schema, latest.to_batches())


def _reader_of(path: Path, schema: pa.Schema) -> pa.RecordBatchReader:
    """The staged file as the stream's own schema (a Parquet round trip may name list
    items differently or drop field metadata: the dataset's fingerprint must not move)."""
    batches = pq.ParquetFile(path).iter_batches()
    return pa.RecordBatchReader.from_batches(schema, (batch.cast(schema) for batch in batches))


def _delete_keys(lakehouse: Lakehouse, name: str, key: str, keys: pa.Array, actor: str | None, job: str) -> int:
    """Delete the rows of `name` whose `key` is in `keys`; returns how many went.

    The facade's `delete_rows` takes one key per commit (and journals each row's old
    values), far too slow for an increment of thousands; this is the same core call
    (`Storage.delete` with a SQL predicate) with an IN list, followed by the facade's
    own bookkeeping (`_after_commit`, a journal event). Only keys the dataset holds go
    into the predicate: one range query over the key column finds them, so a typical
    increment (mostly new keys) deletes few or none and makes no delete commit."""
    from lakehouse.lakehouse import quote_ident

    if len(keys) == 0:
        return 0
    common = pa.int64() if pa.types.is_integer(keys.type) else pa.string()  # types checked by `check_key_column`
    keys = keys.cast(common)
    column = quote_ident(key)
    bounds = pc.min_max(keys)
    present = lakehouse.sql(
        f"SELECT {column} AS k FROM {quote_ident(name)} WHERE {column} >= {_literal(bounds['min'].as_py())} "
        f"AND {column} <= {_literal(bounds['max'].as_py())}"
    ).column("k").cast(common)
    matched = pc.unique(pc.filter(present, pc.is_in(present, value_set=keys)).combine_chunks())
    deleted = 0
    for start in range(0, len(matched), DELETE_KEYS_PER_COMMIT):
        chunk = matched.slice(start, DELETE_KEYS_PER_COMMIT).to_pylist()
        predicate = f"{column} IN ({', '.join(_literal(v) for v in chunk)})"
        change = lakehouse._storage.delete(name, predicate)
        lakehouse._after_commit(name)
        lakehouse._journal.append(lakehouse._event(
            "delete", name, actor=actor, key_column=key, keys=len(chunk), rows=change["rows"], version=change["version"],
            via="db_upsert", ingest_job=job,
        ))
        deleted += change["rows"]
    return deleted


def _literal(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InvalidInput(f"cannot use {value!r} as an upsert key")
    return str(value) if isinstance(value, int) else "'" + value.replace("'", "''") + "'"


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


def last_sync_state(log: Path, key: dict[str, str], column: str) -> tuple[Any, dict[str, int] | None]:
    """(watermark, digests of the rows synced at it) of the last successful sync of `key`
    on `column`; (None, {}) when there was none (sync everything). The digests are None
    for a sync logged before they were kept: the next read is then `> watermark`."""
    last = None
    for entry in read_jsonl(log):
        if entry.get("status") == "ok" and entry.get("watermark_column") == column and all(entry.get(k) == v for k, v in key.items()):
            last = entry
    if last is None:
        return None, {}
    return decode_watermark(last.get("watermark")), last.get("boundary")


def last_watermark(log: Path, key: dict[str, str], column: str) -> Any:
    """The watermark of the last successful sync of `key` on `column` (None: sync everything)."""
    return last_sync_state(log, key, column)[0]


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
