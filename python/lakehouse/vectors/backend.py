"""The contract every vector backend honours (usearch HNSW in the Rust core, Lance via
pylance). The index manager talks only to this, so a profile can switch backends
without the search API or the result shape changing.

Keys are unsigned 64-bit integers derived from the chunk id (see ``chunk_key``), so
they are stable across index versions and backends. Scores are cosine similarities
(higher is better) for every backend.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from lakehouse import _core


def chunk_keys(chunk_ids: list[str]) -> np.ndarray:
    """Stable 63-bit keys of chunk ids (the core derives them: first 8 bytes of the
    SHA-256, top bit cleared so every engine that stores signed 64-bit ids agrees)."""
    return np.frombuffer(_core.chunk_keys(list(chunk_ids)), dtype="<u8").astype(np.uint64)


def first_chunk_keys(doc_ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Keys of `<doc_id>#0` for an Arrow string array of document ids, computed in the
    core with no Python string per id (a null id gets key 0, which no chunk has)."""
    column = doc_ids.combine_chunks() if isinstance(doc_ids, pa.ChunkedArray) else doc_ids
    return np.frombuffer(_core.first_chunk_keys(column), dtype="<u8").astype(np.uint64)


def chunk_key(chunk_id: str) -> int:
    return int(chunk_keys([chunk_id])[0])


@dataclass
class SearchResult:
    keys: np.ndarray  # uint64, best first
    scores: np.ndarray  # float32 cosine similarity, same order
    #: which path the planner took: "exact", "hnsw", "hnsw_filtered", "lance_ivf_pq", ...
    path: str
    #: how many of the k requested could not be returned because fewer exist
    shortfall: int = 0
    #: how many vectors passed the filter (None when there was no filter)
    candidates: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


class VectorBackend(Protocol):
    """One built index version. Implementations live in ``hnsw.py`` and ``lance_backend.py``."""

    name: str

    @classmethod
    def build(cls, path: Path, keys: np.ndarray, vectors: np.ndarray, params: dict[str, Any]) -> "VectorBackend":
        """Build a new index version at ``path`` from unit-normalised float32 ``vectors``."""

    @classmethod
    def open(cls, path: Path, params: dict[str, Any] | None = None, keys: np.ndarray | None = None) -> "VectorBackend":
        """Open an index version written by ``build`` (memory-mapped where possible).
        ``keys``, the version's keys, lets a backend prepare its exact scans."""

    def __len__(self) -> int: ...

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> SearchResult:
        """Top-k by cosine; ``allowed`` (uint64 keys) restricts the result to that set.
        Must return min(k, |allowed ∩ index|) results and report the rest as shortfall."""

    def append(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors without rewriting the existing ones."""

    def fetch(self, keys: np.ndarray) -> np.ndarray:
        """Vectors for ``keys`` (float32, one row per key; KeyError for an unknown key)."""
