"""The HNSW backend: usearch inside the Rust core, planned by selectivity (exact scan
under the threshold, filtered traversal above it). Vectors and keys cross the boundary
as little-endian bytes.

A version directory holds either its own graph (`index.usearch`) or, after a small
refresh, `layers.json` naming the graph of an earlier version plus `segment.bin`: the
rows added since and the graph keys they supersede. The core searches both as one."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from lakehouse import _core
from lakehouse.errors import InvalidInput
from lakehouse.vectors.backend import SearchResult

INDEX_FILE = "index.usearch"
SEGMENT_FILE = "segment.bin"
LAYERS_FILE = "layers.json"


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

    @staticmethod
    def read_settings(hnsw: dict[str, Any]) -> dict[str, Any]:
        """`hnsw` as the core reads it (defaults filled in), or InvalidInput naming what is
        wrong: an unknown key or a value the core cannot read."""
        try:
            known = _core.HnswIndex.read_params(hnsw)
        except ValueError as exc:
            raise InvalidInput(f"bad HNSW settings {hnsw}: {exc}") from None
        unknown = sorted(set(hnsw) - set(known))
        if unknown:
            raise InvalidInput(f"unknown HNSW setting(s) {unknown}; use {sorted(known)}")
        return known

    @classmethod
    def build(cls, path: Path, keys: np.ndarray, vectors: np.ndarray, params: dict[str, Any]) -> HnswBackend:
        dim = vectors.shape[1] if vectors.ndim == 2 else int(params["dim"])
        inner = _core.HnswIndex.build(dim, _keys_bytes(keys), _vectors_bytes(vectors), params["hnsw"], build_threads(params.get("threads", 0)))
        path.mkdir(parents=True, exist_ok=True)
        inner.save(str(path / INDEX_FILE))
        return cls(inner, path, params.get("planner", {}))

    @classmethod
    def open(cls, path: Path, params: dict[str, Any] | None = None, keys: np.ndarray | None = None) -> HnswBackend:
        """Open a version; with its `keys`, a mapped graph copies their vectors into one
        matrix (shared by the versions over the same graph file) for fast exact scans."""
        params = params or {}
        graph, segment = _layers(path)
        inner = _core.HnswIndex.open(str(graph), bool(params.get("mmap", True)), params.get("hnsw", {}), segment and str(segment),
                                     None if keys is None else _keys_bytes(keys))
        return cls(inner, path, params.get("planner", {}))

    @classmethod
    def extend(
        cls, previous: Path, path: Path, keys: np.ndarray, vectors: np.ndarray, params: dict[str, Any], removed: np.ndarray | None = None
    ) -> HnswBackend:
        """A new version = the previous one minus `removed`, plus the new vectors (a
        re-embedded key replaces its old vector). Small changes become a segment over
        the previous graph (nothing large is rewritten); past `segment_max_rows` the
        segment is folded into a new graph. The previous version's files are untouched:
        they may still be serving searches."""
        removed = np.zeros(0, np.uint64) if removed is None else removed
        graph, segment = _layers(previous)
        budget = int(params.get("segment_max_rows", 0))
        path.mkdir(parents=True, exist_ok=True)
        if budget:
            current = _core.HnswIndex.open(str(graph), True, params["hnsw"], segment and str(segment))
            if current.segment_rows + len(keys) <= budget:
                current.write_segment(str(path / SEGMENT_FILE), _keys_bytes(keys), _vectors_bytes(vectors), _keys_bytes(removed))
                _write_layers(path, graph)
                return cls.open(path, params)
        inner = _core.HnswIndex.open(str(graph), False, params["hnsw"], segment and str(segment))
        threads = build_threads(params.get("threads", 0))
        inner.fold_segment(threads)
        if len(removed):
            inner.remove(_keys_bytes(removed))
        if len(keys):
            inner.add(_keys_bytes(keys), _vectors_bytes(vectors), threads)
        inner.save(str(path / INDEX_FILE))
        return cls(inner, path, params.get("planner", {}))

    def __len__(self) -> int:
        return len(self._inner)

    @property
    def dim(self) -> int:
        return self._inner.dim

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> SearchResult:
        allowed_bytes = None if allowed is None else _keys_bytes(allowed)
        keys, scores, path, candidates, shortfall = self._inner.search(_vectors_bytes(query), k, allowed_bytes, self.planner)
        return SearchResult(np.frombuffer(keys, "<u8"), np.frombuffer(scores, "<f4"), path, shortfall,
                            candidates if allowed is not None else None)

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


def _layers(version_dir: Path) -> tuple[Path, Path | None]:
    """(graph file, segment file or None) of a version directory."""
    layers = version_dir / LAYERS_FILE
    if not layers.is_file():
        return version_dir / INDEX_FILE, None
    graph = (version_dir / json.loads(layers.read_text())["graph"]).resolve()
    return graph, version_dir / SEGMENT_FILE


def _write_layers(version_dir: Path, graph: Path) -> None:
    """Name the graph relative to the version, so the data directory can move."""
    tmp = version_dir / (LAYERS_FILE + ".tmp")
    tmp.write_text(json.dumps({"graph": os.path.relpath(graph.resolve(), version_dir.resolve())}))
    tmp.replace(version_dir / LAYERS_FILE)
