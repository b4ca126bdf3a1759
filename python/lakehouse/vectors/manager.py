"""Vector indexes over datasets: build, incremental refresh, planned search, versions.

Layout under ``<data_dir>/_vectors/<index>/``::

    definition.json     what is embedded: dataset, id column, text columns, model, backend
    registry.json       versions and the active pointer (Rust core, atomic replace)
    v<N>/               one built version: the backend's files + chunks.parquet
    trials.jsonl        autotune trials

and the embeddings store, a Delta table written through storaged (so it is mirrored to
the rescue bucket like every table) at ``<data_dir>/tables/_vectors/<index>/embeddings``:
(doc_id, chunk_id, chunk_text, vector, model, content_hash, embedded_at), readable by
DuckDB, Polars, pyarrow or Spark.

A search takes the active version once, so promotion (a pointer flip in the registry
plus one reference swap here) never gives a caller a mix of two versions.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lakehouse import _core
from lakehouse.errors import InvalidInput, NotFound
from lakehouse.vectors.backend import SearchResult, VectorBackend, chunk_keys, first_chunk_keys
from lakehouse.vectors.embedder import LocalEmbedder, TextEmbedder
from lakehouse.vectors.hnsw import HnswBackend
from lakehouse.vectors.jobs import JobRunner

if TYPE_CHECKING:
    from lakehouse.lakehouse import Lakehouse

VECTORS_DIR = "_vectors"
CHUNKS_FILE = "chunks.parquet"
#: candidate columns whose chunk keys a loaded version remembers (see `keys_for_docs`)
KEYED_COLUMNS_KEPT = 16
Progress = Callable[[int, int], None]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _backend_class(name: str) -> type:
    if name == "hnsw":
        return HnswBackend
    if name == "lance":
        from lakehouse.vectors.lance_backend import LanceBackend

        return LanceBackend
    raise InvalidInput(f"unknown vector backend {name!r}: use 'hnsw' or 'lance'")


@dataclass
class Chunks:
    """The chunks of a set of documents: an Arrow table (doc_id, chunk_no, text, key,
    content_hash) made by the core's `chunk_documents`. Columns become Python objects
    only where needed (the texts of the rows being embedded, say)."""

    table: pa.Table

    def __len__(self) -> int:
        return self.table.num_rows

    @property
    def key(self) -> np.ndarray:
        return self.table["key"].to_numpy().astype(np.uint64, copy=False)

    @property
    def doc_id(self) -> np.ndarray:
        return np.array(self.table["doc_id"].to_pylist(), dtype=object)

    @property
    def text(self) -> list[str]:
        return self.table["text"].to_pylist()

    def take(self, rows: np.ndarray) -> Chunks:
        return Chunks(self.table.take(pa.array(np.asarray(rows, dtype=np.int64))))

    def chunk_ids(self) -> list[str]:
        return [f"{d}#{n}" for d, n in zip(self.table["doc_id"].to_pylist(), self.table["chunk_no"].to_pylist())]


def changed_rows(current: Chunks, previous: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """(rows of `current` to embed, keys of `previous` to remove): a chunk is embedded
    again when its key is new or its content hash differs. Arrow hash joins throughout,
    and only the previous rows whose keys recur are joined (a refresh of an append reads
    a few rows against the whole previous list)."""
    cur_keys, prev_keys = current.table["key"], previous["key"]
    recurring = previous.select(["key", "content_hash"]).filter(pc.is_in(prev_keys, value_set=cur_keys))
    rows = pa.table({"key": cur_keys, "content_hash": current.table["content_hash"], "row": pa.array(np.arange(len(current)))})
    unchanged = rows.join(recurring, ["key", "content_hash"], join_type="left semi")["row"].to_numpy()
    removed = prev_keys.filter(pc.invert(pc.is_in(prev_keys, value_set=cur_keys))).to_numpy().astype(np.uint64)
    return np.setdiff1d(np.arange(len(current)), unchanged), removed


CHUNK_LIST_COLUMNS = ["key", "doc_id", "chunk_no", "content_hash"]


def _with_appended(previous: pa.Table, appended: Chunks) -> pa.Table:
    """A version's chunk list after an append: the previous list, less the chunks the
    appended rows re-embed under the same key, plus the appended chunks."""
    new = appended.table.select(CHUNK_LIST_COLUMNS)
    kept = previous.select(CHUNK_LIST_COLUMNS).filter(pc.invert(pc.is_in(previous["key"], value_set=new["key"])))
    return pa.concat_tables([kept.replace_schema_metadata(None), new.cast(kept.schema)])


def _as_list(doc_ids: list[str] | pa.Array | pa.ChunkedArray) -> list[str]:
    return doc_ids.to_pylist() if isinstance(doc_ids, (pa.Array, pa.ChunkedArray)) else doc_ids


@dataclass
class LoadedVersion:
    """An opened index version and the key -> document map searches need, kept as
    numpy / Arrow columns (no Python object per row: loading follows every refresh)."""

    version: int
    backend: VectorBackend
    keys_sorted: np.ndarray
    doc_of_key: pa.Array  # doc ids, aligned with keys_sorted
    chunks_per_doc: dict[str, int]  # only documents with more than one chunk
    indexed_docs: pa.Array  # every document id held (with repeats for multi-chunk documents)
    dataset_version: int
    #: keys of recently searched Arrow candidate columns, by identity (hybrid search reuses
    #: one filter's column across queries); the column is held, so its id stays its own
    _keys_of_column: OrderedDict[int, tuple[Any, np.ndarray]] = field(default_factory=OrderedDict, repr=False)
    _keys_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_chunks(cls, version: int, backend: VectorBackend, chunks: pa.Table) -> LoadedVersion:
        keys = chunks["key"].to_numpy().astype(np.uint64, copy=False)
        order = np.argsort(keys)
        doc_ids = chunks["doc_id"].combine_chunks()
        later = chunks.filter(pc.greater(chunks["chunk_no"], 0))  # empty unless long documents were split
        multi = {}
        if later.num_rows:
            most = later.group_by("doc_id").aggregate([("chunk_no", "max")])
            multi = dict(zip(most["doc_id"].to_pylist(), (n + 1 for n in most["chunk_no_max"].to_pylist())))
        dataset_version = int((chunks.schema.metadata or {}).get(b"dataset_version", b"-1"))  # -1: unknown
        return cls(version, backend, keys[order], doc_ids.take(pa.array(order)), multi, doc_ids, dataset_version)

    def keys_for_docs(self, doc_ids: list[str] | pa.Array | pa.ChunkedArray) -> np.ndarray:
        """Chunk keys of these documents. An Arrow array (a SQL result column) is keyed in
        the core with no Python object per id: hybrid search passes tens of thousands."""
        if not self.chunks_per_doc:  # one chunk per document: the common case, no loop over chunks
            if not isinstance(doc_ids, (pa.Array, pa.ChunkedArray)):
                return first_chunk_keys(pa.array(doc_ids, pa.string()))
            with self._keys_lock:
                hit = self._keys_of_column.get(id(doc_ids))
            if hit is not None and hit[0] is doc_ids:
                return hit[1]
            keys = first_chunk_keys(doc_ids)
            with self._keys_lock:
                self._keys_of_column[id(doc_ids)] = (doc_ids, keys)
                while len(self._keys_of_column) > KEYED_COLUMNS_KEPT:
                    self._keys_of_column.popitem(last=False)
            return keys
        return chunk_keys([f"{d}#{n}" for d in _as_list(doc_ids) for n in range(self.chunks_per_doc.get(d, 1))])

    def docs_for_keys(self, keys: np.ndarray) -> list[str]:
        pos = np.minimum(np.searchsorted(self.keys_sorted, keys), len(self.keys_sorted) - 1)
        return self.doc_of_key.take(pa.array(pos)).to_pylist()


class VectorIndexes:
    """All vector indexes of one data directory. Owned by the `Lakehouse` facade."""

    def __init__(self, lake: Lakehouse, embedder: TextEmbedder | None = None):
        self._lake = lake
        self.config = lake.config.vectors
        self.root = lake.path / VECTORS_DIR
        self.root.mkdir(parents=True, exist_ok=True)
        self._embedder = embedder
        self._embedder_lock = threading.Lock()
        self._active: dict[str, LoadedVersion | None] = {}
        self._registries: dict[str, Any] = {}
        #: guards `_registries` and `_active`: one registry object per index, and a lazy
        #: first load can never overwrite a version promoted meanwhile
        self._load_lock = threading.RLock()
        self._build_locks: dict[str, threading.Lock] = {}
        self._pending_cache: dict[tuple[str, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._definitions: dict[str, tuple[tuple[int, int], dict[str, Any]]] = {}
        #: taken around every call into the facade; the gateway swaps in its own lock so
        #: long embedding work runs outside it while reads and commits stay serialised
        self.facade_lock: Any = threading.RLock()
        #: taken instead of `facade_lock` around pure reads of the facade; the gateway sets
        #: its lock's shared side here so searches read side by side (None: `facade_lock`)
        self.facade_read_lock: Any = None
        self.jobs = JobRunner()

    # ------------------------------------------------------------------ pieces
    @property
    def embedder(self) -> TextEmbedder:
        with self._embedder_lock:
            if self._embedder is None:
                self._embedder = self._make_embedder()
            return self._embedder

    def _make_embedder(self) -> TextEmbedder:
        if self.config.embedder == "local":
            return LocalEmbedder(self.config.model_dir or None, self.config.model_id, self.root / "cache", self.config.embed_precision)
        if self.config.embedder == "ollama":
            from lakehouse.vectors.ollama import OllamaEmbedder

            return OllamaEmbedder.from_config(self._lake.config)
        raise InvalidInput(f"unknown embedder {self.config.embedder!r}: use 'local' or 'ollama'")

    def _dir(self, name: str) -> Path:
        return self.root / name

    def registry(self, name: str) -> Any:
        registry = self._registries.get(name)
        if registry is not None:
            return registry
        with self._load_lock:
            if name not in self._registries:
                self.definition(name)  # NotFound for an unknown index
                self._registries[name] = _core.IndexRegistry(str(self._dir(name)))
            return self._registries[name]

    def definition(self, name: str) -> dict[str, Any]:
        path = self._dir(name) / "definition.json"
        if not path.is_file():
            raise NotFound(f"no vector index named {name!r}; create one with POST /vectors/index")
        return json.loads(path.read_text())

    def _definition_for_search(self, name: str) -> dict[str, Any]:
        """`definition(name)` for the search path, which only reads it: parsed again only
        when the file changed (every search asks; most never see it change)."""
        path = self._dir(name) / "definition.json"
        try:
            stat = path.stat()
        except FileNotFoundError:
            return self.definition(name)  # raises NotFound with the hint
        stamp = (stat.st_mtime_ns, stat.st_size)
        cached = self._definitions.get(name)
        if cached is None or cached[0] != stamp:
            cached = (stamp, self.definition(name))
            self._definitions[name] = cached
        return cached[1]

    def names(self) -> list[str]:
        return sorted(p.parent.name for p in self.root.glob("*/definition.json"))

    def _params(self, definition: dict[str, Any]) -> dict[str, Any]:
        c = self.config
        hnsw = {
            "connectivity": c.hnsw_connectivity,
            "ef_construction": c.hnsw_ef_construction,
            "ef_search": c.hnsw_ef_search,
            "quantization": c.hnsw_quantization,
        }
        hnsw.update(definition.get("hnsw", {}))
        planner = {"exact_max_candidates": c.exact_max_candidates, "exact_max_fraction": c.exact_max_fraction}
        return {"hnsw": hnsw, "planner": planner, "threads": c.build_threads, "mmap": c.mmap, "dim": definition["dim"],
                "segment_max_rows": c.segment_max_rows}

    # ------------------------------------------------------------------ create / refresh
    def create(
        self,
        dataset: str,
        text_columns: list[str],
        id_column: str,
        *,
        name: str | None = None,
        backend: str | None = None,
        hnsw: dict[str, Any] | None = None,
        actor: str | None = None,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Define an index over `dataset` and build its first version."""
        name = self.validate_new(dataset, text_columns, id_column, name=name, backend=backend, hnsw=hnsw)
        definition = {
            "name": name,
            "dataset": dataset,
            "id_column": id_column,
            "text_columns": list(text_columns),
            "model_id": self.embedder.model_id,
            "dim": self.embedder.dim,
            "backend": backend or self.config.backend,
            "hnsw": hnsw or {},
            "chunk_words": self.config.chunk_words,
            "chunk_overlap": self.config.chunk_overlap,
            "created_at": _now(),
            "created_by": actor or self._lake.actor,
        }
        self._dir(name).mkdir(parents=True, exist_ok=True)
        tmp = self._dir(name) / "definition.json.tmp"
        tmp.write_text(json.dumps(definition, indent=2))
        tmp.replace(self._dir(name) / "definition.json")
        return self.refresh(name, actor=actor, progress=progress, full=True)

    def validate_new(self, dataset: str, text_columns: list[str], id_column: str, *, name: str | None = None,
                     backend: str | None = None, hnsw: dict[str, Any] | None = None) -> str:
        """Refuse a bad definition before any work starts; returns the index name."""
        from lakehouse.lakehouse import validate_dataset_name

        name = name or dataset
        validate_dataset_name(name)
        with self.facade_read_lock or self.facade_lock:
            manifest = self._lake.dataset(dataset)
        columns = {c["name"] for c in manifest["columns"]}
        if not text_columns:
            raise InvalidInput("give at least one text column to embed")
        missing = [c for c in [id_column, *text_columns] if c not in columns]
        if missing:
            raise InvalidInput(f"dataset {dataset!r} has no column(s) {missing}; it has {sorted(columns)}")
        if (self._dir(name) / "definition.json").is_file():
            raise InvalidInput(f"vector index {name!r} already exists; refresh it or pick another name")
        if _backend_class(backend or self.config.backend) is HnswBackend and hnsw:
            HnswBackend.read_settings(hnsw)
        return name

    def refresh(self, name: str, *, actor: str | None = None, progress: Progress | None = None, full: bool = False) -> dict[str, Any]:
        """Embed only what changed since the active version (new or edited documents,
        by doc id + content hash), build a new version beside it and promote it. Searches
        keep using the active version until the promotion."""
        lock = self._build_locks.setdefault(name, threading.Lock())
        with lock:
            return self._refresh_locked(name, actor or self._lake.actor, progress, full)

    def _refresh_locked(self, name: str, actor: str, progress: Progress | None, full: bool) -> dict[str, Any]:
        started = time.perf_counter()
        definition = self.definition(name)
        registry = self.registry(name)
        active = registry.active()
        previous = None if full or active is None else pq.read_table(self._dir(name) / active["location"] / CHUNKS_FILE)
        with self.facade_lock:
            dataset_version = int(self._lake.dataset(definition["dataset"])["version"])
            # A graph index reads only the rows appended since its version when the
            # dataset has only grown since; anything else (an edit, a delete, a compaction,
            # a Lance rebuild) needs every row.
            appended = None
            if previous is not None and definition["backend"] == "hnsw":
                appended = self._read_appended(definition, int((previous.schema.metadata or {}).get(b"dataset_version", b"-1")))
            current = appended if appended is not None else self._read_chunks(definition)
        if previous is None:
            todo_rows, removed, chunk_list = np.arange(len(current)), np.zeros(0, np.uint64), current.table
        elif appended is not None:
            (todo_rows, _), removed = changed_rows(appended, previous), np.zeros(0, np.uint64)
            chunk_list = _with_appended(previous, appended)
        else:
            (todo_rows, removed), chunk_list = changed_rows(current, previous), current.table
        todo = current.take(todo_rows)
        vectors = self._embed_with_progress(todo.text, progress)
        embed_seconds = time.perf_counter() - started
        if previous is not None and not len(todo) and not len(removed):
            with self.facade_lock:
                self._mark_embedded(definition["dataset"], dataset_version)
            return {"index": name, "status": "unchanged", "version": active["version"], "embedded": 0, "removed": 0,
                    "rows": chunk_list.num_rows, "seconds": round(time.perf_counter() - started, 3)}
        version = registry.next_version()
        location = f"v{version}"
        version_dir = self._dir(name) / location
        params = self._params(definition)
        if active is not None and definition["backend"] == "hnsw":
            params["hnsw"] = {**params["hnsw"], **active["params"]}  # keep autotuned / profile settings
        backend_cls = _backend_class(definition["backend"])
        build_started = time.perf_counter()
        if previous is None or definition["backend"] != "hnsw":
            if previous is not None:  # Lance appends without rewrite only for pure additions
                vectors, todo = self._all_vectors(current), current
            backend = backend_cls.build(version_dir, todo.key, vectors, params)
        else:
            backend = HnswBackend.extend(self._dir(name) / active["location"], version_dir, todo.key, vectors, params, removed)
        written = self._write_chunks(version_dir, chunk_list, dataset_version)
        with self.facade_lock:
            self._store_embeddings(name, definition, todo, vectors, replace=previous is None)
        build_seconds = time.perf_counter() - build_started
        registry.register({
            "version": version, "created_at": _now(), "backend": definition["backend"], "params": params["hnsw"],
            "rows": chunk_list.num_rows, "location": location,
            "metrics": {"embedded": len(todo), "removed": int(len(removed)), "embed_seconds": round(embed_seconds, 3),
                        "build_seconds": round(build_seconds, 3), "dataset_version": dataset_version},
        })
        reason = "full build" if previous is None else f"refresh: {len(todo)} embedded, {len(removed)} removed"
        self.promote(name, version, actor=actor, reason=reason, chunks=written)
        self._pending_cache.clear()
        with self.facade_lock:
            self._mark_embedded(definition["dataset"], dataset_version)
            self._lake._journal.append(self._lake._event(
                "vectors_refresh", definition["dataset"], actor=actor, index=name, version=version,
                embedded=len(todo), removed=int(len(removed)),
            ))
        return {
            "index": name, "status": "built" if previous is None else "refreshed", "version": version,
            "embedded": len(todo), "removed": int(len(removed)), "rows": chunk_list.num_rows,
            "cache_hits": int(getattr(self.embedder, "last_stats", {}).get("cache_hits", 0)),
            "seconds": round(time.perf_counter() - started, 3),
        }

    def _mark_embedded(self, dataset: str, embedded_version: int) -> None:
        """Clear the stale flag, unless rows landed while this refresh was embedding."""
        if int(self._lake.dataset(dataset)["version"]) == embedded_version:
            self._lake._catalog.record_embedded(dataset)

    def _embed_with_progress(self, texts: list[str], progress: Progress | None) -> np.ndarray:
        batch = max(1, self.config.refresh_batch)
        parts = []
        for start in range(0, len(texts), batch):
            parts.append(self.embedder.embed(texts[start:start + batch]))
            if progress:
                progress(min(start + batch, len(texts)), len(texts))
        if progress and not texts:
            progress(0, 0)
        return np.vstack(parts) if parts else np.zeros((0, self.embedder.dim), np.float32)

    def _all_vectors(self, chunks: Chunks) -> np.ndarray:
        return self.embedder.embed(chunks.text)  # every text is a cache hit by now

    def _chunk_sql(self, definition: dict[str, Any]) -> str:
        """(doc_id, text) of every row: the id as text, the text columns joined by spaces."""
        from lakehouse.lakehouse import quote_ident

        texts = ", ".join(f"COALESCE(CAST({quote_ident(c)} AS VARCHAR), '')" for c in definition["text_columns"])
        return (
            f"SELECT CAST({quote_ident(definition['id_column'])} AS VARCHAR) AS doc_id, concat_ws(' ', {texts}) AS text "
            f"FROM {quote_ident(definition['dataset'])}"
        )

    def _read_chunks(self, definition: dict[str, Any]) -> Chunks:
        return self._chunked(definition, self._lake.sql(self._chunk_sql(definition)))

    def _read_appended(self, definition: dict[str, Any], since: int) -> Chunks | None:
        """Chunks of the rows appended since dataset version `since`, or None when that
        is unknown (negative) or the dataset did more than grow since."""
        if since < 0:
            return None
        table = self._lake.sql_appended_since(self._chunk_sql(definition), definition["dataset"], since)
        return None if table is None else self._chunked(definition, table)

    def _chunked(self, definition: dict[str, Any], table: pa.Table) -> Chunks:
        doc_ids = table["doc_id"].combine_chunks()
        batch = _core.chunk_documents(doc_ids, table["text"].combine_chunks(), definition["chunk_words"], definition["chunk_overlap"])
        chunks = pa.Table.from_batches([batch])
        doc_id = pc.take(doc_ids.cast(pa.string()), chunks["doc_row"].combine_chunks())
        return Chunks(chunks.drop_columns(["doc_row"]).add_column(0, "doc_id", doc_id))

    def _write_chunks(self, version_dir: Path, chunk_list: pa.Table, dataset_version: int) -> pa.Table:
        """Write a version's chunk list; returns the table as written (what a read gives back)."""
        table = chunk_list.select(CHUNK_LIST_COLUMNS).replace_schema_metadata({"dataset_version": str(dataset_version)})
        version_dir.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, version_dir / CHUNKS_FILE)
        return table

    def embeddings_location(self, name: str) -> Path:
        """Where the embeddings store (a Delta table) of index `name` lives."""
        return self._lake.path / "tables" / VECTORS_DIR / name / "embeddings"

    def _store_embeddings(self, name: str, definition: dict[str, Any], chunks: Chunks, vectors: np.ndarray, replace: bool) -> None:
        if not len(chunks) and not replace:
            return
        dim = definition["dim"]
        flat = pa.array(np.ascontiguousarray(vectors, np.float32).reshape(-1), pa.float32())
        table = pa.table({
            "doc_id": chunks.table["doc_id"],
            "chunk_id": pa.array(chunks.chunk_ids(), pa.string()),
            "chunk_text": chunks.table["text"],
            "vector": pa.FixedSizeListArray.from_arrays(flat, dim),
            "model": pa.array([definition["model_id"]] * len(chunks), pa.string()),
            "content_hash": chunks.table["content_hash"],
            "embedded_at": pa.array([datetime.now(timezone.utc)] * len(chunks), pa.timestamp("us", tz="UTC")),
        })
        meta = {"lakehouse.actor": self._lake.actor, "lakehouse.dataset": definition["dataset"], "lakehouse.index": name}
        self._lake._storage.write(f"{VECTORS_DIR}/{name}/embeddings", table, "overwrite" if replace else "append", meta)

    def indexes_of(self, dataset: str) -> list[str]:
        return [n for n in self.names() if self.definition(n)["dataset"] == dataset]

    def refresh_in_background(self, dataset_or_index: str, *, actor: str | None = None) -> list[Any]:
        """Start one refresh job per index over the dataset (or for the named index)."""
        names = self.indexes_of(dataset_or_index) or ([dataset_or_index] if dataset_or_index in self.names() else [])
        if not names:
            raise NotFound(f"no vector index over {dataset_or_index!r}; create one with POST /vectors/index")
        return [self.jobs.submit("refresh", n, lambda progress, n=n: self.refresh(n, actor=actor, progress=progress)) for n in names]

    # ------------------------------------------------------------------ versions
    def promote(self, name: str, version: int, *, actor: str | None = None, reason: str = "manual",
                chunks: pa.Table | None = None) -> dict[str, Any]:
        """Flip the active pointer (durably, in the core), then swap the loaded version.
        `chunks`: the version's chunk list when the caller holds it (a refresh just wrote
        it), so it is not read back from disk."""
        registry = self.registry(name)
        loaded = self._load_version(name, version, chunks)
        with self._load_lock:
            promotion = registry.promote(version, actor or self._lake.actor, reason)
            self._active[name] = loaded
        return promotion

    def rollback(self, name: str, *, actor: str | None = None) -> dict[str, Any]:
        registry = self.registry(name)
        history = registry.history()
        current = registry.active()
        target = next((p["from"] for p in reversed(history) if current and p["to"] == current["version"]), None)
        if target is None:
            raise InvalidInput(f"index {name!r} has no earlier active version to roll back to")
        loaded = self._load_version(name, target)
        with self._load_lock:
            promotion = registry.rollback(actor or self._lake.actor)
            self._active[name] = loaded
        return promotion

    def versions(self, name: str) -> dict[str, Any]:
        registry = self.registry(name)
        active = registry.active()
        return {"index": name, "active": active["version"] if active else None, "versions": registry.versions(), "history": registry.history()}

    def _load_version(self, name: str, version: int, chunks: pa.Table | None = None) -> LoadedVersion:
        definition = self.definition(name)
        info = next((v for v in self.registry(name).versions() if v["version"] == version), None)
        if info is None:
            raise NotFound(f"index {name!r} has no version {version}")
        version_dir = self._dir(name) / info["location"]
        if chunks is None:
            chunks = pq.read_table(version_dir / CHUNKS_FILE)
        keys = chunks["key"].to_numpy()
        backend = _backend_class(info["backend"]).open(version_dir, self._params(definition) | {"hnsw": info["params"]}, keys)
        return LoadedVersion.from_chunks(version, backend, chunks)

    def active(self, name: str) -> LoadedVersion:
        loaded = self._active.get(name)
        if loaded is not None:
            return loaded
        with self._load_lock:  # first use: load once, and after any promotion in flight
            loaded = self._active.get(name)
            if loaded is None:
                info = self.registry(name).active()
                if info is None:
                    raise NotFound(f"index {name!r} has no active version yet (its first build has not finished)")
                loaded = self._load_version(name, info["version"])
                self._active[name] = loaded
            return loaded

    def warm(self, names: list[str] | None = None) -> list[str]:
        """Open the active versions of `names` (all by default) so the first search is fast."""
        warmed = []
        for name in names if names is not None else self.names():
            try:
                self.active(name)
                warmed.append(name)
            except NotFound:
                pass
        return warmed

    def list(self) -> list[dict[str, Any]]:
        out = []
        for name in self.names():
            definition = self.definition(name)
            active = self.registry(name).active()
            manifest = self._lake._catalog.get_live(definition["dataset"]) or {}
            out.append({
                **{k: definition[k] for k in ("name", "dataset", "id_column", "text_columns", "model_id", "dim", "backend")},
                "active_version": active["version"] if active else None,
                "rows": active["rows"] if active else 0,
                "params": active["params"] if active else None,
                "stale": bool(manifest.get("embeddings_stale")),
            })
        return out

    # ------------------------------------------------------------------ search
    def embed_query(self, text: str) -> np.ndarray:
        return self.embedder.embed([text])[0]

    def search(
        self,
        name: str,
        query: str | np.ndarray,
        k: int = 10,
        *,
        doc_ids: list[str] | pa.Array | pa.ChunkedArray | None = None,
        include_unindexed: bool = True,
    ) -> dict[str, Any]:
        """Top-k documents by cosine similarity, optionally restricted to `doc_ids` (a list
        or an Arrow string array).

        Rows appended to the dataset since the active version was built are scored by
        brute force and merged in (reported as `unindexed_searched`)."""
        if k < 1:
            raise InvalidInput("k must be at least 1")
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        loaded = self.active(name)
        vector = self.embed_query(query) if isinstance(query, str) else np.asarray(query, np.float32)
        timings["embed_ms"] = (time.perf_counter() - t0) * 1000
        t1 = time.perf_counter()
        allowed = None if doc_ids is None else loaded.keys_for_docs(doc_ids)
        chunk_k = k if not loaded.chunks_per_doc else k * 3
        result: SearchResult = loaded.backend.search(vector, chunk_k, allowed)
        timings["search_ms"] = (time.perf_counter() - t1) * 1000
        hits = list(zip(loaded.docs_for_keys(result.keys), result.scores.tolist()))
        unindexed = 0
        if include_unindexed:
            extra = self._unindexed(name, loaded, doc_ids)
            if extra is not None and len(extra[0]):
                unindexed = len(set(extra[0].tolist()))
                hits += list(zip(extra[0].tolist(), (extra[1] @ vector).tolist()))
        best: dict[str, float] = {}
        for doc, score in hits:
            if score > best.get(doc, -2.0):
                best[doc] = score
        ranked = sorted(best.items(), key=lambda item: -item[1])[:k]
        timings["total_ms"] = (time.perf_counter() - t0) * 1000
        eligible = result.candidates if result.candidates is not None else len(loaded.backend)
        return {
            "index": name,
            "version": loaded.version,
            "path": result.path,
            "candidates": eligible,
            "shortfall": max(0, k - len(ranked)),
            "unindexed_searched": unindexed,
            "hits": [{"doc_id": doc, "score": round(float(score), 6)} for doc, score in ranked],
            "latency_ms": {key: round(v, 3) for key, v in timings.items()},
        }

    def _unindexed(self, name: str, loaded: LoadedVersion, doc_ids: list[str] | pa.Array | pa.ChunkedArray | None):
        """(doc ids, vectors) of dataset rows the active version does not hold yet."""
        definition = self._definition_for_search(name)
        with self.facade_read_lock or self.facade_lock:
            manifest = self._lake._catalog.get_live(definition["dataset"]) or {}
        if not manifest.get("embeddings_stale"):
            return None
        cache_key = (name, int(manifest.get("version", 0)))
        if cache_key not in self._pending_cache:
            with self.facade_read_lock or self.facade_lock:
                current = self._read_appended(definition, loaded.dataset_version)
                if current is None:
                    current = self._read_chunks(definition)
            indexed = loaded.indexed_docs.cast(pa.string())
            rows = np.flatnonzero(~pc.is_in(current.table["doc_id"], value_set=indexed).to_numpy(zero_copy_only=False))
            pending = current.take(rows)
            vectors = self.embedder.embed(pending.text) if len(pending) else np.zeros((0, definition["dim"]), np.float32)
            self._pending_cache[cache_key] = (pending.doc_id, vectors, pending.key)
        docs, vectors, _ = self._pending_cache[cache_key]
        if doc_ids is not None and len(docs):
            mask = np.isin(docs, np.array(_as_list(doc_ids), dtype=object))
            return docs[mask], vectors[mask]
        return docs, vectors
