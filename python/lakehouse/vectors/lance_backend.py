"""Lance vector backend (DESIGN.md decision 4): one Lance dataset per index version.

The native Lance engine comes from the ``pylance`` wheel and stays behind this module
(the "firewall": its Arrow never meets the core's); data crosses as pyarrow arrays, i.e.
through the Arrow C data interface, and vectors leave as float32 numpy.

Layout of a dataset at ``path``::

    key     uint64 (not null)                 -- ``chunk_key(chunk_id)``; BTREE index "key_idx"
    vector  fixed_size_list<float32>[dim]     -- unit-normalised; IVF_PQ index "vector_idx" (cosine)

Parameters are chosen from the data size (``choose_params``); every one can be
overridden through ``build(..., params)``. Below ``exact_threshold`` rows no ANN index
is trained and every search is an exact (flat) scan, which ``SearchResult.path`` says.

Search plans (``SearchResult.path``):

* ``lance_ivf_pq`` -- IVF_PQ over the indexed fragments (``nprobes`` partitions, more when
  a prefilter leaves too few rows), exact re-rank of ``k * refine_factor`` candidates, and
  Lance's flat search over fragments appended since the index was built.
* ``lance_ivf_pq_filtered`` -- the same with ``prefilter=True`` and a filter on ``key``
  (answered by the BTREE index), so the top-k is computed over the allowed rows only.
* ``exact`` -- flat cosine scan (Lance ``use_index=False``): the dataset has no ANN index
  (too small) or the allowed set is small enough that scanning it is both exact and cheap.

Every plan returns ``min(k, eligible)`` rows; the rest is reported as ``shortfall``. Should
an ANN plan ever come back short, the search is redone exactly (``details["fallback"]``).
Scores are cosine similarities: Lance's cosine ``_distance`` is ``1 - cos``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from lakehouse.vectors.backend import SearchResult

KEY = "key"
VECTOR = "vector"
VECTOR_INDEX = "vector_idx"
KEY_INDEX = "key_idx"
META_KEY = b"lakehouse.vector_index"
FORMAT_VERSION = 1

#: Defaults; ``None`` means "derived from the data size" (see ``choose_params``).
DEFAULT_PARAMS: dict[str, Any] = {
    "metric": "cosine",
    # no ANN index below this many rows: an exact scan of < 10K vectors costs a few ms
    "exact_threshold": 10_000,
    # filtered searches whose allowed set (within the index) is this small scan it exactly
    "exact_filter_threshold": 2_000,
    "num_partitions": None,  # ~ sqrt(n), at most n / sample_rate (what Lance can train)
    "num_sub_vectors": None,  # dim / 8 (8-dimensional sub-vectors; a divisor of dim)
    "nprobes": None,  # ~ 5 % of the partitions, at least 8
    "refine_factor": 10,  # exact re-rank of k * 10 PQ candidates: recall and true scores
    # k-means iterations and training rows per centroid, for IVF and PQ alike. Lance's
    # defaults (50, 256) train ~6x longer for the same recall after refine (30K x 768
    # clustered, 2 busy cores: build 50 s -> 8 s; recall@10 at refine 10: 0.998 both)
    "max_iters": 10,
    "sample_rate": 64,
}


def _sub_vectors(dim: int, width: int) -> int:
    """Number of PQ sub-vectors: a divisor of ``dim`` whose sub-vector width is closest to
    ``width`` (exactly dim / width when that divides)."""
    divisors = [m for m in range(1, dim + 1) if dim % m == 0]
    return min(divisors, key=lambda m: (abs(dim / m - width), m))


def choose_params(n: int, dim: int, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Index parameters for ``n`` vectors of dimension ``dim``, with ``overrides`` applied.

    * ``num_partitions`` ~ sqrt(n): partitions of ~sqrt(n) rows balance the centroid scan
      against the partition scan. Capped at n / sample_rate: Lance trains at most one
      partition per ``sample_rate`` rows (and warns).
    * ``num_sub_vectors`` = dim / 8 (48 bytes per 384-d vector, 96 per 768-d): the PQ
      distance must be good enough to put the true neighbours among the ``k *
      refine_factor`` candidates that are re-ranked exactly; 16-dimensional sub-vectors
      halve the codes but lose a third of the recall on hard (uniform) data.
    * ``nprobes`` ~ 5 % of the partitions (at least 8): on clustered (embedding-like) data
      the neighbours sit in a handful of partitions; Lance probes further by itself when a
      prefilter leaves fewer than k rows.
    """
    unknown = set(overrides or {}) - set(DEFAULT_PARAMS)
    if unknown:
        raise ValueError(f"unknown Lance index parameter(s): {', '.join(sorted(unknown))}")
    p = {**DEFAULT_PARAMS, **{k: v for k, v in (overrides or {}).items() if v is not None}}
    if p["metric"] != "cosine":
        raise ValueError("the Lance backend stores cosine indexes only (scores are cosine similarities)")
    p["indexed"] = n >= int(p["exact_threshold"]) and n >= 256  # PQ trains 256 centroids
    if p["num_partitions"] is None:
        p["num_partitions"] = max(1, min(round(math.sqrt(n)), n // int(p["sample_rate"])))
    if p["num_sub_vectors"] is None:
        p["num_sub_vectors"] = _sub_vectors(dim, 8) if dim else 1
    if dim and dim % int(p["num_sub_vectors"]):
        raise ValueError(f"num_sub_vectors={p['num_sub_vectors']} does not divide the dimension {dim}")
    if p["nprobes"] is None:
        p["nprobes"] = min(int(p["num_partitions"]), max(8, math.ceil(0.05 * int(p["num_partitions"]))))
    return p


#: Query-time settings that ``open(path, params)`` may change on an existing version.
SEARCH_PARAMS = ("nprobes", "refine_factor", "exact_filter_threshold")


def lance_overrides(params: dict[str, Any] | None) -> dict[str, Any]:
    """The Lance settings in a build/open ``params`` dict. Two shapes are accepted: flat
    (``{"refine_factor": 20}``) and the index manager's, where each backend reads its own
    section (``{"lance": {...}, "hnsw": {...}, "planner": {...}, "dim": 384, ...}``).
    Top-level keys that are not Lance settings belong to other backends and are ignored;
    keys inside ``"lance"`` are checked by ``choose_params``."""
    params = params or {}
    flat = {k: v for k, v in params.items() if k in DEFAULT_PARAMS}
    section = params.get("lance") or {}
    if not isinstance(section, dict):
        raise ValueError('params["lance"] must be a dict')
    return {**flat, **section}


def _as_keys(keys: Any) -> np.ndarray:
    arr = np.asarray(keys)
    if arr.ndim != 1:
        raise ValueError(f"keys must be one-dimensional, got shape {arr.shape}")
    if arr.size and arr.dtype.kind not in "ui":
        raise ValueError(f"keys must be integers, got {arr.dtype}")
    if arr.dtype.kind == "i" and arr.size and arr.min() < 0:
        raise ValueError("keys must be non-negative")
    return arr.astype(np.uint64, copy=False)


def _as_vectors(vectors: Any, n: int, dim: int | None) -> np.ndarray:
    arr = np.ascontiguousarray(vectors, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"vectors must be two-dimensional (n, dim), got shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"{n} keys but {arr.shape[0]} vectors")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"vectors have dimension {arr.shape[1]}, the index has {dim}")
    if arr.size and not np.isfinite(arr).all():
        raise ValueError("vectors contain NaN or infinite values")
    return arr


def _key_list(keys: np.ndarray) -> str:
    return ",".join(map(str, keys.tolist()))


def _key_filter(keys: np.ndarray) -> str:
    """SQL predicate selecting ``keys`` (answered by the BTREE index on ``key``)."""
    if len(keys) == 1:
        return f"{KEY} = {int(keys[0])}"
    return f"{KEY} IN ({_key_list(keys)})"


def _vectors_of(table: pa.Table, dim: int) -> np.ndarray:
    column = table.column(VECTOR)
    values = column.combine_chunks().flatten() if column.num_chunks != 1 else column.chunk(0).flatten()
    return values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(-1, dim)


class LanceBackend:
    """One index version stored as a Lance dataset at ``path`` (see the module docstring)."""

    name = "lance"

    def __init__(self, path: Path, dataset: Any, params: dict[str, Any]):
        self.path = Path(path)
        self._ds = dataset
        self.params = params
        self.dim = int(params["dim"])
        self._count = dataset.count_rows()
        self._arrow_schema = dataset.schema
        # every key of the index, sorted, loaded on first need; keys appended since are kept
        # apart (a set) and merged lazily, so an append costs O(batch), not O(n)
        self._sorted_keys: np.ndarray | None = None
        self._appended_keys: set[int] = set()
        self._indexed = VECTOR_INDEX in self.index_rows()

    # ------------------------------------------------------------------ lifecycle

    @staticmethod
    def _schema(dim: int, params: dict[str, Any]) -> pa.Schema:
        meta = {"format": FORMAT_VERSION, "backend": "lance", **params}
        return pa.schema(
            [pa.field(KEY, pa.uint64(), nullable=False), pa.field(VECTOR, pa.list_(pa.float32(), dim), nullable=False)],
            metadata={META_KEY: json.dumps(meta, sort_keys=True).encode()},
        )

    @staticmethod
    def _table(keys: np.ndarray, vectors: np.ndarray, schema: pa.Schema) -> pa.Table:
        dim = vectors.shape[1]
        flat = pa.array(vectors.reshape(-1), type=pa.float32())  # zero-copy from numpy
        return pa.Table.from_arrays(
            [pa.array(keys, type=pa.uint64()), pa.FixedSizeListArray.from_arrays(flat, dim)], schema=schema
        )

    @classmethod
    def build(cls, path: Path, keys: np.ndarray, vectors: np.ndarray, params: dict[str, Any] | None = None) -> "LanceBackend":
        import lance

        path = Path(path)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise FileExistsError(f"{path} exists and is not empty: an index version is never overwritten")
        keys = _as_keys(keys)
        if len(np.unique(keys)) != len(keys):
            raise ValueError("keys are not unique")
        arr = np.asarray(vectors)
        if arr.ndim != 2 and arr.size == 0 and (params or {}).get("dim"):  # an empty version
            arr = np.empty((0, int(params["dim"])), dtype=np.float32)
        dim = int(arr.shape[1]) if arr.ndim == 2 else 0
        if dim < 1:
            raise ValueError(f"vectors must be two-dimensional (n, dim) with dim >= 1, got shape {arr.shape}")
        if (params or {}).get("dim") not in (None, dim):
            raise ValueError(f"vectors have dimension {dim}, params say {params['dim']}")
        vectors = _as_vectors(arr, len(keys), dim)
        n = len(keys)
        p = choose_params(n, dim, lance_overrides(params))
        p["dim"] = dim
        p["built_rows"] = n
        dataset = lance.write_dataset(cls._table(keys, vectors, cls._schema(dim, p)), str(path), mode="create")
        if p["indexed"]:
            dataset.create_index(
                VECTOR, "IVF_PQ", name=VECTOR_INDEX, metric="cosine",
                num_partitions=int(p["num_partitions"]), num_sub_vectors=int(p["num_sub_vectors"]),
                max_iters=int(p["max_iters"]), sample_rate=int(p["sample_rate"]),
            )
        if n:
            dataset.create_scalar_index(KEY, "BTREE", name=KEY_INDEX)
        backend = cls(path, lance.dataset(str(path)), p)
        backend._sorted_keys = np.sort(keys)
        return backend

    @classmethod
    def open(cls, path: Path, params: dict[str, Any] | None = None, keys: np.ndarray | None = None) -> "LanceBackend":
        """Open a version written by ``build``. ``params`` (optional, same shapes as for
        ``build``) may change the query-time settings ``SEARCH_PARAMS``; the index itself
        keeps the parameters it was built with. ``keys`` is not needed: Lance fetches
        rows through its own scalar index."""
        import lance

        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"no Lance index version at {path}")
        dataset = lance.dataset(str(path))
        raw = (dataset.schema.metadata or {}).get(META_KEY)
        if raw is None:
            raise ValueError(f"{path} is a Lance dataset but not a lakehouse vector index")
        stored = json.loads(raw)
        stored.pop("format", None)
        stored.pop("backend", None)
        overrides = lance_overrides(params)
        unknown = set(overrides) - set(DEFAULT_PARAMS)
        if unknown:
            raise ValueError(f"unknown Lance index parameter(s): {', '.join(sorted(unknown))}")
        stored.update({k: v for k, v in overrides.items() if k in SEARCH_PARAMS and v is not None})
        return cls(path, dataset, stored)

    def index_rows(self) -> dict[str, int]:
        """Index name -> rows it covers (appended rows are not covered until ``optimize``)."""
        if hasattr(self._ds, "describe_indices"):
            return {ix.name: int(ix.num_rows_indexed) for ix in self._ds.describe_indices()}
        return {ix["name"]: -1 for ix in self._ds.list_indices()}  # older pylance: no counts

    # ------------------------------------------------------------------ introspection

    def __len__(self) -> int:
        return self._count

    @property
    def version(self) -> int:
        """The Lance dataset version (increases with every append)."""
        return int(self._ds.version)

    @property
    def dataset(self) -> Any:
        """The underlying ``lance.LanceDataset`` (for diagnostics and benchmarks)."""
        return self._ds

    @property
    def indexed(self) -> bool:
        return self._indexed

    def _keys(self) -> np.ndarray:
        """Every key of the index, sorted."""
        if self._sorted_keys is None:
            column = self._ds.to_table(columns=[KEY]).column(KEY)
            self._sorted_keys = np.sort(column.to_numpy())
            self._appended_keys = set()
        elif self._appended_keys:
            stored = self._sorted_keys
            new = np.sort(np.fromiter(self._appended_keys, dtype=np.uint64, count=len(self._appended_keys)))
            self._sorted_keys = np.insert(stored, np.searchsorted(stored, new), new)
            self._appended_keys = set()
        return self._sorted_keys

    @staticmethod
    def _in_sorted(stored: np.ndarray, keys: np.ndarray) -> np.ndarray:
        if not len(stored):
            return np.zeros(len(keys), dtype=bool)
        pos = np.searchsorted(stored, keys)
        pos[pos == len(stored)] = 0
        return stored[pos] == keys

    def _present(self, keys: np.ndarray, merge: bool = True) -> np.ndarray:
        """Boolean mask: which of ``keys`` are in the index."""
        if merge or self._sorted_keys is None:
            return self._in_sorted(self._keys(), keys)
        mask = self._in_sorted(self._sorted_keys, keys)
        if self._appended_keys:
            mask |= np.fromiter((k in self._appended_keys for k in keys.tolist()), dtype=bool, count=len(keys))
        return mask

    # ------------------------------------------------------------------ search

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None, *,
               nprobes: int | None = None, refine_factor: int | None = None) -> SearchResult:
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(-1)
        if q.shape[0] != self.dim:
            raise ValueError(f"query has dimension {q.shape[0]}, the index has {self.dim}")
        norm = float(np.linalg.norm(q))
        if not math.isfinite(norm) or norm == 0.0:
            raise ValueError("query must be a finite, non-zero vector")
        k = int(k)
        if k < 0:
            raise ValueError("k must be >= 0")
        nprobes = int(nprobes or self.params["nprobes"])
        refine_factor = int(refine_factor or self.params["refine_factor"])
        details: dict[str, Any] = {"version": self.version}

        if allowed is None:
            eligible_n, flt, candidates = self._count, None, None
        else:
            wanted = np.unique(_as_keys(np.asarray(allowed).reshape(-1)))
            eligible = wanted[self._present(wanted)]
            eligible_n = candidates = len(eligible)
            details["prefilter"] = True
            flt = self._allowed_filter(eligible) if eligible_n else None
            details["filter"] = "none" if flt is None else "not_in" if " NOT IN " in flt else "in"
        want = min(k, eligible_n)
        if want == 0:
            path = "exact" if not self._indexed else ("lance_ivf_pq" if allowed is None else "lance_ivf_pq_filtered")
            return SearchResult(np.empty(0, np.uint64), np.empty(0, np.float32), path, shortfall=k,
                                candidates=candidates, details=details)

        if not self._indexed:
            path, use_index = "exact", False
            details["reason"] = f"below exact_threshold ({self.params['exact_threshold']} rows): no ANN index"
        elif allowed is not None and eligible_n <= int(self.params["exact_filter_threshold"]):
            path, use_index = "exact", False
            details["reason"] = f"allowed set of {eligible_n} <= exact_filter_threshold ({self.params['exact_filter_threshold']})"
        else:
            path, use_index = ("lance_ivf_pq" if allowed is None else "lance_ivf_pq_filtered"), True
            details.update(nprobes=nprobes, refine_factor=refine_factor)

        keys, scores = self._query(q, want, flt, use_index, nprobes, refine_factor)
        if len(keys) < want and use_index:  # never expected (Lance probes further); never hidden
            details["fallback"] = f"exact (ANN returned {len(keys)} of {want})"
            keys, scores = self._query(q, want, flt, False, nprobes, refine_factor)
        return SearchResult(keys, scores, path, shortfall=k - len(keys), candidates=candidates, details=details)

    def _allowed_filter(self, eligible: np.ndarray) -> str | None:
        """Predicate for "key in ``eligible``" (sorted keys, all present). The cost of a
        Lance filter grows with the length of its key list, so a set covering most of the
        index is written as ``key NOT IN (the rest)``; ``None`` when every row is allowed."""
        rest_n = self._count - len(eligible)
        if rest_n >= len(eligible):
            return _key_filter(eligible)
        if rest_n == 0:
            return None
        stored = self._keys()
        keep = np.ones(len(stored), dtype=bool)
        keep[np.searchsorted(stored, eligible)] = False
        return f"{KEY} NOT IN ({_key_list(stored[keep])})"

    def _query(self, q: np.ndarray, k: int, flt: str | None, use_index: bool, nprobes: int,
               refine_factor: int) -> tuple[np.ndarray, np.ndarray]:
        nearest: dict[str, Any] = {"column": VECTOR, "q": q, "k": k, "metric": "cosine", "use_index": use_index}
        if use_index:
            # minimum only: when a prefilter leaves fewer than k rows in the probed
            # partitions Lance keeps probing instead of returning short
            nearest["minimum_nprobes"] = nprobes
            nearest["refine_factor"] = refine_factor
        table = self._ds.to_table(
            columns=[KEY, "_distance"], nearest=nearest, filter=flt, prefilter=True if flt is not None else None,
            disable_scoring_autoprojection=True,
        )
        keys = np.array(table.column(KEY).to_numpy(), dtype=np.uint64)  # a writable copy, k rows
        scores = np.clip(1.0 - table.column("_distance").to_numpy(zero_copy_only=False), -1.0, 1.0).astype(np.float32)
        return keys, scores

    # ------------------------------------------------------------------ writes

    def append(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Append rows as a new fragment (``mode="append"``): no existing file is rewritten.

        The new rows are searchable at once: Lance searches fragments the IVF_PQ index does
        not cover yet with a flat scan, and filters on ``key`` scan them too. ``optimize()``
        folds them into the indexes later. Keys already in the index are refused."""
        import lance

        keys = _as_keys(keys)
        vectors = _as_vectors(vectors, len(keys), self.dim)
        if not len(keys):
            return
        ordered = np.sort(keys)
        if len(ordered) > 1 and (ordered[1:] == ordered[:-1]).any():
            raise ValueError("keys are not unique")
        present = self._present(keys, merge=False)
        if present.any():
            raise ValueError(f"{int(present.sum())} key(s) already in the index, e.g. {int(keys[present][0])}: "
                             "append adds new vectors only (build a new version to replace vectors)")
        table = self._table(keys, vectors, self._arrow_schema)
        self._ds = lance.write_dataset(table, str(self.path), mode="append")
        self._count += len(keys)
        self._appended_keys.update(keys.tolist())

    def optimize(self) -> None:
        """Fold appended fragments into the existing indexes (new index files; the data
        files are left as they are); create the key index if the version started empty.
        A version built below ``exact_threshold`` keeps searching exactly: the index
        manager builds a new version (with parameters for its size) when it grows."""
        if not self._count:
            return
        if KEY_INDEX not in self.index_rows():
            self._ds.create_scalar_index(KEY, "BTREE", name=KEY_INDEX)
        self._ds.optimize.optimize_indices()
        self._indexed = VECTOR_INDEX in self.index_rows()

    # ------------------------------------------------------------------ reads

    def fetch(self, keys: np.ndarray) -> np.ndarray:
        """Stored vectors for ``keys`` (looked up through the BTREE index on ``key``), one
        row per key in the order given; ``KeyError`` names the first unknown key."""
        keys = _as_keys(np.asarray(keys).reshape(-1))
        if not len(keys):
            return np.empty((0, self.dim), dtype=np.float32)
        unique = keys if len(keys) == 1 else np.unique(keys)
        if len(unique) == 1:  # the common point lookup: keys are unique, so no key column is needed
            table = self._ds.to_table(columns=[VECTOR], filter=_key_filter(unique))
            if table.num_rows == 0:
                raise KeyError(int(unique[0]))
            found = _vectors_of(table, self.dim)
            return found.copy() if len(keys) == 1 else found[np.zeros(len(keys), dtype=np.intp)]  # writable
        table = self._ds.to_table(columns=[KEY, VECTOR], filter=_key_filter(unique))
        got = table.column(KEY).to_numpy()
        vectors = _vectors_of(table, self.dim)
        order = np.argsort(got, kind="stable")
        got_sorted = got[order]
        pos = np.searchsorted(got_sorted, keys)
        pos_clipped = np.minimum(pos, max(len(got_sorted) - 1, 0))
        found = (pos < len(got_sorted)) & (got_sorted[pos_clipped] == keys) if len(got_sorted) else np.zeros(len(keys), bool)
        if not found.all():
            raise KeyError(int(keys[~found][0]))
        return vectors[order[pos_clipped]]

    def info(self) -> dict[str, Any]:
        return {"backend": self.name, "path": str(self.path), "rows": self._count, "version": self.version,
                "indexed": self._indexed, **self.params}

    def __repr__(self) -> str:
        return f"LanceBackend({str(self.path)!r}, rows={self._count}, version={self.version}, indexed={self._indexed})"
