"""The Python facade: one object per data directory.

`Lakehouse` orchestrates the Rust core (`lakehouse._core`): it decides the order of
steps of an ingest (dedupe -> conflict check -> write -> register -> journal ->
refresh SQL) and converts results to plain Python values. The steps themselves
(Delta writes, fingerprints, manifests, SQL) live in the crates.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Literal

import pyarrow as pa

from lakehouse import _core
from lakehouse.config import Config
from lakehouse.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from lakehouse.intelligence.playbooks import PlaybookMemory
    from lakehouse.vectors.manager import VectorIndexes

Mode = Literal["append", "replace"]

#: rows sampled from a new dataset for PII tagging (the core inspects up to 1000)
PII_SAMPLE_ROWS = 1000


@dataclass
class IngestResult:
    """What an ingest did. `status` is one of created | appended | replaced | noop."""

    dataset: str
    status: str
    version: int
    rows_written: int
    total_rows: int
    fingerprint: str
    files: list[str] = field(default_factory=list)
    source_hash: str | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_actor() -> str:
    try:
        return os.environ.get("LAKEHOUSE_ACTOR") or getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "unknown"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class Lakehouse:
    """A data directory: tables, catalog, journal and SQL, owned by this process.

    Opening takes the directory's single-writer lock (DESIGN decision 6); a second
    process gets `DataDirLocked`. Use as a context manager or call `close()`.
    """

    def __init__(self, data_dir: str | os.PathLike | None = None, *, config: Config | None = None, actor: str | None = None):
        self.config = config or Config.load(data_dir)
        if data_dir is not None:
            self.config.data_dir = str(data_dir)
        self.path = self.config.data_path
        self.path.mkdir(parents=True, exist_ok=True)
        self.actor = actor or default_actor()
        self._lock = _core.DataDirLock(str(self.path))
        rescue = self.config.storage.rescue_dir
        self._storage = _core.Storage(str(self.path), rescue, self.config.storage.row_group_rows)
        self._catalog = _core.Catalog(str(self.path))
        self._journal = _core.Journal(str(self.path))
        q = self.config.query
        self._query = _core.QueryEngine(
            self._storage, q.hot_cache_max_table_bytes, q.hot_cache_budget_bytes, q.hot_cache_min_hits, q.target_partitions
        )
        self._append_log = _core.AppendLog(str(self.path))
        #: the calling thread's last query's "read from the rescue bucket" flag (see `sql`)
        self._last_query = threading.local()
        self._vectors: VectorIndexes | None = None
        self._playbooks: PlaybookMemory | None = None
        self._recover()

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        if self._lock is None:
            return
        try:
            self.flush()
        finally:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> Lakehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _recover(self) -> None:
        """Bring every in-memory view back in line with what is on disk."""
        replayed = self._append_log.replay(self._storage)
        for name in self._catalog.names(False):
            info = self._storage.table_info(name)
            if info is not None:
                self._catalog.update_stats(name, info["num_rows"], info["version"], info["size_bytes"])
        for item in replayed:
            self._journal.append(self._event("insert", item["dataset"], rows=item["rows"], version=item["version"], via="append_log_replay"))
        self._query.sync(self._catalog.names(False))

    # ------------------------------------------------------------------ ingest
    def ingest_file(
        self,
        path: str | os.PathLike,
        name: str | None = None,
        *,
        mode: Mode = "append",
        actor: str | None = None,
        source_system: str = "file",
        ingest_job: str | None = None,
    ) -> IngestResult:
        """Ingest a CSV or Parquet file. Identical bytes seen before are a no-op."""
        from lakehouse.ingest import open_file  # parsers live in the ingest package

        path = Path(path)
        if not path.is_file():
            raise InvalidInput(f"no such file: {path}")
        name = name or dataset_name_from_path(path)
        source_hash = sha256_file(path)
        seen = self._catalog.seen_hash(source_hash)
        if seen is not None and mode == "append":
            return self._noop(name, source_hash, seen, actor)
        # A stream: a file larger than memory lands as one commit with flat memory.
        reader = open_file(path, self.config.ingest)
        return self.ingest_table(
            reader, name, mode=mode, actor=actor, source_system=source_system,
            ingest_job=ingest_job or f"file:{path.name}", source_hash=source_hash, _checked_hash=True,
        )

    def ingest_table(
        self,
        table: pa.Table | pa.RecordBatchReader,
        name: str,
        *,
        mode: Mode = "append",
        actor: str | None = None,
        source_system: str = "arrow",
        ingest_job: str | None = None,
        source_hash: str | None = None,
        _checked_hash: bool = False,
    ) -> IngestResult:
        """Create, append to, or replace dataset `name` with Arrow data.

        A `pyarrow.Table` is hashed first, so ingesting identical data twice is a no-op.
        A `pyarrow.RecordBatchReader` is streamed straight into one commit with flat
        memory (a CSV or a database table larger than RAM); it is deduplicated only
        when the caller passes the `source_hash` of what it read.
        """
        validate_dataset_name(name)
        if mode not in ("append", "replace"):
            raise InvalidInput(f"mode must be 'append' or 'replace', not {mode!r}")
        actor = actor or self.actor
        if source_hash is None and isinstance(table, pa.Table):
            source_hash = _core.table_hash(table)
        if source_hash is not None and not _checked_hash and mode == "append":
            seen = self._catalog.seen_hash(source_hash)
            if seen is not None:
                return self._noop(name, source_hash, seen, actor)
        schema = _core.storage_schema(table.schema)
        existing = self._catalog.check(name, schema) if mode == "append" else self._catalog.get_live(name)
        write_mode = "overwrite" if mode == "replace" else "append"
        commit = {"lakehouse.actor": actor, "lakehouse.source_hash": source_hash or "", "lakehouse.dataset": name}
        written = self._storage.write(name, table, write_mode, commit)
        lineage = {"source_system": source_system, "ingest_job": ingest_job or "api", "source_hash": source_hash, "actor": actor}
        manifest = self._catalog.register(
            name, schema, written["num_rows"], written["version"], written["size_bytes"], lineage, mode == "replace"
        )
        if source_hash is not None:
            self._catalog.record_hash(source_hash, name, written["version"])
        self._query.refresh(name)
        if not existing or mode == "replace":  # a new schema: tag its columns
            manifest = self._tag_sensitive_columns(name)
        status = "replaced" if mode == "replace" and existing else ("appended" if existing else "created")
        operation = {"created": "create", "appended": "insert", "replaced": "replace"}[status]
        self._journal.append(self._event(
            operation, name, actor=actor, rows=written["rows_written"], files=written["files"],
            version=written["version"], source_hash=source_hash,
        ))
        if existing and manifest.get("has_vector_index"):
            self._catalog.mark_embeddings_stale(name, True)
        return IngestResult(
            dataset=name, status=status, version=written["version"], rows_written=written["rows_written"],
            total_rows=written["num_rows"], fingerprint=manifest["fingerprint"], files=written["files"], source_hash=source_hash,
        )

    def _tag_sensitive_columns(self, name: str) -> dict[str, Any]:
        """PII / PHI / Financial tags from the column names and a sample of the stored rows."""
        sample = self.sql(f"SELECT * FROM {quote_ident(name)} LIMIT {PII_SAMPLE_ROWS}")
        report = _core.pii_scan(sample)
        return self._catalog.set_tags(name, report["sensitivity"], report["column_labels"])

    def _noop(self, name: str, source_hash: str, seen: dict[str, Any], actor: str | None) -> IngestResult:
        manifest = self._catalog.get(seen["dataset"])
        self._journal.append(self._event("noop", seen["dataset"], actor=actor, source_hash=source_hash, requested_name=name))
        return IngestResult(
            dataset=seen["dataset"], status="noop", version=manifest["version"], rows_written=0,
            total_rows=manifest["row_count"], fingerprint=manifest["fingerprint"], source_hash=source_hash,
            reason=f"identical bytes already ingested into {seen['dataset']!r} at version {seen['version']}",
        )

    # ------------------------------------------------------------------ small durable writes
    def append_rows(self, name: str, rows: Iterable[dict[str, Any]], *, actor: str | None = None) -> int:
        """Durably log rows for an existing dataset; returns the log sequence number.

        The call returns only after the rows are fsync'd; they become visible to SQL
        once flushed (automatically every `storage.append_flush_rows` rows, on
        `flush()`, on close, and on the next start after a crash).
        """
        self._catalog.get_live(name) or _raise_not_found(name)
        lines = [json.dumps(r, default=str) for r in rows]
        seq = self._append_log.append(self._storage, name, lines)
        if self._append_log.pending_rows(name) >= self.config.storage.append_flush_rows:
            self.flush(name, actor=actor)
        return seq

    def flush(self, name: str | None = None, *, actor: str | None = None) -> list[dict[str, Any]]:
        """Commit buffered append-log rows as one Delta commit per dataset."""
        flushed = self._append_log.flush(self._storage, name)
        for item in flushed:
            self._after_commit(item["dataset"])
            self._journal.append(self._event("insert", item["dataset"], actor=actor, rows=item["rows"], version=item["version"], via="append_log"))
        return flushed

    # ------------------------------------------------------------------ row changes
    def update_rows(self, name: str, key_column: str, key: Any, changes: dict[str, Any], *, actor: str | None = None) -> int:
        """Update the row(s) whose `key_column` equals `key`; journals old and new values."""
        self._catalog.get_live(name) or _raise_not_found(name)
        before = self._rows_for_key(name, key_column, key)
        result = self._storage.update(name, f"{quote_ident(key_column)} = {sql_literal(key)}",
                                      {c: sql_literal(v) for c, v in changes.items()})
        self._after_row_change(name, "update", key_column, key, before, changes, result, actor)
        return result["rows"]

    def delete_rows(self, name: str, key_column: str, key: Any, *, actor: str | None = None) -> int:
        self._catalog.get_live(name) or _raise_not_found(name)
        before = self._rows_for_key(name, key_column, key)
        result = self._storage.delete(name, f"{quote_ident(key_column)} = {sql_literal(key)}")
        self._after_row_change(name, "delete", key_column, key, before, None, result, actor)
        return result["rows"]

    def _rows_for_key(self, name: str, key_column: str, key: Any) -> list[dict[str, Any]]:
        sql = f"SELECT * FROM {quote_ident(name)} WHERE {quote_ident(key_column)} = {sql_literal(key)}"
        return self.sql(sql).to_pylist()

    def _after_row_change(self, name, operation, key_column, key, before, changes, result, actor) -> None:
        self._after_commit(name)
        old = [{c: row.get(c) for c in (changes or row)} for row in before]
        self._journal.append(self._event(
            operation, name, actor=actor, key={key_column: key}, old=old, new=changes, rows=result["rows"], version=result["version"]
        ))

    # ------------------------------------------------------------------ SQL
    def sql(self, query: str) -> pa.Table:
        """Run a read-only SQL query over every live dataset.

        Safe from many threads at once, and queries run concurrently: the core returns
        each query's "read from the rescue bucket" flag with its result, and
        `rescue_used` answers for the calling thread's last query."""
        return self._paired_with_rescue_flag(self._query.sql, query)

    def sql_as_of(self, query: str, dataset: str, *, version: int | None = None, timestamp: datetime | str | None = None) -> pa.Table:
        """Run `query` with `dataset` read as of a table version or a point in time."""
        if (version is None) == (timestamp is None):
            raise InvalidInput("give exactly one of version= or timestamp=")
        ts = timestamp.isoformat() if isinstance(timestamp, datetime) else timestamp
        return self._paired_with_rescue_flag(self._query.sql_as_of, query, dataset, version, ts)

    def sql_appended_since(self, query: str, dataset: str, version: int) -> pa.Table | None:
        """Run `query` over only the rows appended to `dataset` since `version`, or return
        None when a later commit did more than append (update, delete, overwrite,
        compaction), so the caller knows to read everything."""
        answer = self._query.sql_appended_since(query, dataset, version)
        if answer is None:
            return None
        table, rescued = answer
        self._last_query.rescue_used = rescued
        return table

    def lookup(self, dataset: str, key_column: str, keys: list[Any], columns: list[str] | None = None, *,
               equal: dict[str, list[str]] | None = None) -> pa.Table:
        """The rows of `dataset` whose `key_column`, compared as text, is one of `keys`,
        grouped in the order of `keys` (a key the dataset lacks is absent), with only
        `columns` (all by default). The same rows as `WHERE CAST(key AS VARCHAR) IN
        (...)`; a hot table answers from an in-memory key index instead of a scan.
        `equal` ({text column: values}) keeps only the rows whose value in each such
        column is one of its values (`AND column IN (...)`); a column that is not text is
        refused (InvalidInput), since its comparison would depend on casts."""
        tests = [(column, [str(v) for v in values]) for column, values in (equal or {}).items()]
        return self._paired_with_rescue_flag(self._query.lookup, dataset, key_column, [str(k) for k in keys], list(columns or []), tests)

    def _paired_with_rescue_flag(self, run, *args: Any) -> pa.Table:
        try:
            table, rescued = run(*args)
        except Exception:
            # A failed query has no result to carry its flag: report the engine's latest
            # (the gateway sends it with the error; exact unless queries overlapped).
            self._last_query.rescue_used = self._query.last_rescue_used()
            raise
        self._last_query.rescue_used = rescued
        return table

    @property
    def rescue_used(self) -> bool:
        """True when the calling thread's last query read at least one table from the
        rescue bucket (a thread that has not queried yet gets the engine's last query)."""
        used = getattr(self._last_query, "rescue_used", None)
        return self._query.last_rescue_used() if used is None else used

    # ------------------------------------------------------------------ catalog
    def datasets(self, include_tombstoned: bool = False) -> list[dict[str, Any]]:
        return self._catalog.list(include_tombstoned)

    def dataset(self, name: str) -> dict[str, Any]:
        return self._catalog.get(name)

    def tombstone(self, name: str, *, actor: str | None = None) -> dict[str, Any]:
        manifest = self._catalog.tombstone(name)
        self._journal.append(self._event("tombstone", name, actor=actor))
        self._query.sync(self._catalog.names(False))
        return manifest

    def restore(self, name: str, *, actor: str | None = None) -> dict[str, Any]:
        manifest = self._catalog.restore(name)
        self._journal.append(self._event("restore", name, actor=actor))
        self._query.sync(self._catalog.names(False))
        return manifest

    def dedupe(self, *, actor: str | None = None) -> dict[str, Any]:
        report = self._catalog.dedupe()
        if report["removed"]:
            self._journal.append(self._event("dedupe", None, actor=actor, removed=report["removed"]))
        return report

    def history(self, name: str) -> list[dict[str, Any]]:
        """Table versions, newest first (operation, timestamp, metrics)."""
        return self._storage.history(name)

    # ------------------------------------------------------------------ maintenance
    def compact(self, name: str | None = None, *, actor: str | None = None, target_file_mb: int = 256) -> list[dict[str, Any]]:
        """Merge small files (Delta OPTIMIZE). Answers are unchanged; old versions stay readable."""
        names = [name] if name else self._catalog.names(False)
        reports = []
        for dataset in names:
            report = self._storage.optimize(dataset, target_file_mb * 1024 * 1024)
            report["dataset"] = dataset
            if report["files_removed"]:
                self._after_commit(dataset, data_changed=False)
                self._journal.append(self._event("compact", dataset, actor=actor, **{k: report[k] for k in ("files_added", "files_removed", "version")}))
            reports.append(report)
        return reports

    # ------------------------------------------------------------------ journal & storage health
    def journal(self, dataset: str | None = None, actor: str | None = None, since: str | None = None,
                until: str | None = None, operation: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        return self._journal.query(dataset, actor, since, until, operation, limit)

    def storage_errors(self, limit: int | None = None) -> list[dict[str, Any]]:
        return self._storage.errors(limit)

    def bucket_health(self) -> list[dict[str, Any]]:
        return self._storage.health()

    def _after_commit(self, name: str, *, data_changed: bool = True) -> None:
        """A commit outside `ingest_table` landed: record the table's new statistics,
        make SQL see the new version, and (when rows changed) flag its embeddings stale."""
        info = self._storage.table_info(name)
        manifest = self._catalog.update_stats(name, info["num_rows"], info["version"], info["size_bytes"])
        self._query.refresh(name)
        if data_changed and manifest.get("has_vector_index"):
            self._catalog.mark_embeddings_stale(name, True)

    @property
    def vectors(self) -> VectorIndexes:
        """The vector indexes of this data directory (created on first use)."""
        if self._vectors is None:
            from lakehouse.vectors.manager import VectorIndexes

            self._vectors = VectorIndexes(self)
        return self._vectors

    @property
    def playbooks(self) -> PlaybookMemory:
        """Playbook memory (sealed fills, no-shows, the boost), created on first use."""
        if self._playbooks is None:
            from lakehouse.intelligence.playbooks import PlaybookMemory

            self._playbooks = PlaybookMemory(self)
        return self._playbooks

    def _event(self, operation: str, dataset: str | None, /, *, actor: str | None = None, **details: Any) -> dict[str, Any]:
        return {"operation": operation, "dataset": dataset, "actor": actor or self.actor, "details": details}


def dataset_name_from_path(path: Path) -> str:
    stem = path.name.split(".")[0]
    cleaned = "".join(ch if ch.isalnum() else "_" for ch in stem.lower()).strip("_")
    if not cleaned or cleaned[0].isdigit():
        cleaned = f"ds_{cleaned}"
    return cleaned


def validate_dataset_name(name: str) -> None:
    if not name or len(name) > 128 or not all(ch.isalnum() or ch == "_" for ch in name) or not name[0].isalpha():
        raise InvalidInput(
            f"invalid dataset name {name!r}: use letters, digits and '_', starting with a letter "
            "(names starting with '_' are reserved), at most 128 characters"
        )


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sql_literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _raise_not_found(name: str) -> None:
    raise NotFound(f"dataset {name!r} does not exist (or is tombstoned)")
