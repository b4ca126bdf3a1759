"""The HNSW backend: usearch inside the Rust core, planned by selectivity (exact scan
under the threshold, filtered traversal above it). Vectors and keys cross the boundary
as little-endian bytes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from lakehouse import _core
from lakehouse.vectors.backend import SearchResult

INDEX_FILE = "index.usearch"


def _keys_bytes(keys: np.ndarray) -> bytes:
    return np.ascontiguousarray(keys, dtype="<u8").tobytes()


def _vectors_bytes(vectors: np.ndarray) -> bytes:
    return np.ascontiguousarray(vectors, dtype="<f4").tobytes()


def build_threads(configured: int) -> int:
    return configured or os.cpu_count() or 1


class HnswBackend:
    name = "hnsw"

    def __init__(self, inner: Any, path: Path, planner: dict[str, Any]):
        self._inner = inner
        self.path = path
        self.planner = planner

    @classmethod
    def build(cls, path: Path, keys: np.ndarray, vectors: np.ndarray, params: dict[str, Any]) -> HnswBackend:
        dim = vectors.shape[1] if vectors.ndim == 2 else int(params["dim"])
        inner = _core.HnswIndex.build(dim, _keys_bytes(keys), _vectors_bytes(vectors), params["hnsw"], build_threads(params.get("threads", 0)))
        path.mkdir(parents=True, exist_ok=True)
        inner.save(str(path / INDEX_FILE))
        return cls(inner, path, params.get("planner", {}))

    @classmethod
    def open(cls, path: Path, params: dict[str, Any] | None = None) -> HnswBackend:
        params = params or {}
        inner = _core.HnswIndex.open(str(path / INDEX_FILE), bool(params.get("mmap", True)), params.get("hnsw", {}))
        return cls(inner, path, params.get("planner", {}))

    @classmethod
    def extend(
        cls, previous: Path, path: Path, keys: np.ndarray, vectors: np.ndarray, params: dict[str, Any], removed: np.ndarray | None = None
    ) -> HnswBackend:
        """A new version = the previous graph loaded into memory, minus `removed`, plus
        the new vectors (a re-embedded key replaces its old vector). The previous
        version's file is untouched: it may still be serving searches."""
        inner = _core.HnswIndex.open(str(previous / INDEX_FILE), False, params["hnsw"])
        if removed is not None and len(removed):
            inner.remove(_keys_bytes(removed))
        if len(keys):
            inner.add(_keys_bytes(keys), _vectors_bytes(vectors), build_threads(params.get("threads", 0)))
        path.mkdir(parents=True, exist_ok=True)
        inner.save(str(path / INDEX_FILE))
        return cls(inner, path, params.get("planner", {}))

    def __len__(self) -> int:
        return len(self._inner)

    @property
    def dim(self) -> int:
        return self._inner.dim

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> SearchResult:
        allowed_bytes = None if allowed is None else _keys_bytes(allowed)
        out = self._inner.search(_vectors_bytes(query), k, allowed_bytes, self.planner)
        keys = np.array([hit[0] for hit in out["hits"]], dtype=np.uint64)
        scores = np.array([hit[1] for hit in out["hits"]], dtype=np.float32)
        return SearchResult(keys, scores, out["path"], out["shortfall"], out["candidates"] if allowed is not None else None)

    def append(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        self._inner.add(_keys_bytes(keys), _vectors_bytes(vectors), build_threads(0))

    def fetch(self, keys: np.ndarray) -> np.ndarray:
        rows = []
        for key in np.asarray(keys, dtype=np.uint64):
            raw = self._inner.vector(int(key))
            if raw is None:
                raise KeyError(int(key))
            rows.append(np.frombuffer(raw, dtype="<f4"))
        return np.vstack(rows) if rows else np.zeros((0, self.dim), np.float32)
