"""Autotune: propose HNSW configurations, measure them against a stored evaluation set,
journal every trial, and promote a configuration only when it passes the recall gate
and is Pareto-better than the active version.

Files under ``<data_dir>/_vectors/<index>/``::

    eval.npz        the evaluation set: `queries` (float32, Q x dim), `truth` (uint64,
                    Q x k: exact top-k keys by brute force over every vector of the
                    measured version), `kth_score` (float32, Q: the k-th exact score,
                    so ties with the k-th neighbour count as hits) and `meta` (JSON)
    trials.jsonl    one JSON object per trial, fsync'd before the next trial starts
    .autotune-*/    scratch for trial graphs while a run lasts (removed at its end)

**Evaluation set.** ~200 queries: vectors of the index itself, sampled without
replacement, plus Gaussian noise of norm ~0.25, re-normalised (or the embeddings of
real query texts given to `run(texts=...)` / `eval_set(texts=...)`). The vectors are
read back from the active version (`backend.fetch`; f32 storage is lossless) or, for
f16/i8 indexes, from the embeddings store's Parquet files (`tables/_vectors/<index>/
embeddings`) matched by (key, content hash), so files of superseded Delta commits
cannot leak in. When the vector set changed the ground truth is recomputed (queries kept, so
runs stay comparable); when the index grew by `autotune_growth_trigger` or more the
queries are re-sampled too, so they represent the new rows.

**Trials.** Proposals vary connectivity M, ef_construction and ef_search around the
active configuration: first the same graph at other search beams (no build needed),
then neighbouring graphs (one grid step in M and ef_construction, each at the current
beam and one step below), then random points two steps away. Configurations already
tried against the same evaluation data are skipped. A graph is built once per run in a
scratch directory with `HnswBackend.build` and opened exactly the way the active
version is (same mmap setting), so both pay the same costs. Latency is the wall time
of the serving call (`backend.search`, unfiltered, k=10) per query: one warm-up pass
each, then `rounds` rounds in which every query is answered by both back to back (the
order alternating); a query's latency is the median of its rounds and p50 / p95 are
taken over the queries, so background load hits both sides alike.

**Promotion rule** (`pareto_decision`). Let r, p50, p95 be the trial's recall@10 and
latencies, r0, p50₀, p95₀ the active configuration's, measured in the same duel.
A trial is promoted iff r ≥ gate (default 0.9, `[vectors] autotune_recall_gate`) and
one of:

1. *faster at no recall cost*: r ≥ r0 − 0.002 and p50 ≤ 0.95·p50₀ and p95 ≤ 1.10·p95₀;
2. *more recall at no latency cost*: r ≥ r0 + 0.005 and p50 ≤ 1.05·p50₀;
3. *the active configuration misses the gate* (r0 < gate) and the trial meets it.

The tolerances absorb measurement noise (0.002 = 4 misses in 2,000 answers); recall is
never traded for speed beyond them, whatever the gate. Trials run in order and a
promoted trial becomes the baseline of the following ones (so one run may promote
more than once; each promotion is one registry version and one `rollback` step).
A promotion registers ``v<N>`` (the trial's graph file hard-linked, or the active
graph when only ef_search changed, plus the active version's chunks.parquet) and
flips the active pointer through `VectorIndexes.promote`, under the same per-index
lock refreshes take; if a refresh promoted something else meanwhile the trial is not
promoted (it was measured on other data).

**Due.** An index is due for a run when it was never tuned and holds at least
`min_rows_untuned` vectors, or when its active version holds at least
`autotune_growth_trigger` (default 20 %) more rows than at its last run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

import numpy as np
import pyarrow.parquet as pq

from lakehouse.errors import InvalidInput, NotFound
from lakehouse.vectors.backend import chunk_keys
from lakehouse.vectors.hnsw import INDEX_FILE, LAYERS_FILE, SEGMENT_FILE, HnswBackend
from lakehouse.vectors.jsonl import append_jsonl, file_lock, fsync_dir, read_jsonl

if TYPE_CHECKING:
    from lakehouse.vectors.manager import VectorIndexes

log = logging.getLogger("lakehouse.autotune")

EVAL_FILE = "eval.npz"
TRIALS_FILE = "trials.jsonl"
CHUNKS_FILE = "chunks.parquet"
SCRATCH_PREFIX = ".autotune-"

#: the search space (proposals move along these grids)
M_GRID = (4, 6, 8, 12, 16, 24, 32, 48, 64, 96)
EFC_GRID = (32, 48, 64, 96, 128, 192, 256, 384, 512, 768)
EFS_GRID = (10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
HNSW_KEYS = ("connectivity", "ef_construction", "ef_search", "quantization")

Progress = Callable[[int, int], None]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


# ---------------------------------------------------------------------- pure pieces
def pareto_decision(
    trial: dict[str, float],
    baseline: dict[str, float],
    gate: float,
    *,
    recall_tolerance: float = 0.002,
    recall_gain: float = 0.005,
    speedup: float = 0.05,
    latency_tolerance: float = 0.05,
    p95_tolerance: float = 0.10,
) -> tuple[bool, str]:
    """Whether `trial` should replace `baseline` (both: recall, p50_us, p95_us), and why.
    The rule is documented in this module's docstring."""
    r, r0 = trial["recall"], baseline["recall"]
    p50, p50_0, p95, p95_0 = trial["p50_us"], baseline["p50_us"], trial["p95_us"], baseline["p95_us"]
    versus = f"recall {r:.4f} vs {r0:.4f}, p50 {p50:.1f} vs {p50_0:.1f} µs, p95 {p95:.1f} vs {p95_0:.1f} µs"
    if r < gate:
        return False, f"below the recall gate {gate:g}: {versus}"
    if r0 < gate:
        return True, f"meets the recall gate {gate:g}, which the active configuration misses: {versus}"
    if r >= r0 - recall_tolerance and p50 <= (1 - speedup) * p50_0 and p95 <= (1 + p95_tolerance) * p95_0:
        return True, f"faster at no recall cost: {versus}"
    if r >= r0 + recall_gain and p50 <= (1 + latency_tolerance) * p50_0:
        return True, f"more recall at no latency cost: {versus}"
    return False, f"not Pareto-better than the active configuration: {versus}"


def _nearest(grid: tuple[int, ...], value: int) -> int:
    return min(range(len(grid)), key=lambda i: (abs(grid[i] - value), grid[i]))


def _around(grid: tuple[int, ...], value: int, steps: int) -> list[int]:
    i = _nearest(grid, value)
    return [grid[j] for j in range(max(0, i - steps), min(len(grid), i + steps + 1))]


def config_key(config: dict[str, Any]) -> tuple[int, int, int, str]:
    return (int(config["connectivity"]), int(config["ef_construction"]), int(config["ef_search"]), str(config.get("quantization", "f32")))


def graph_key(config: dict[str, Any]) -> tuple[int, int, str]:
    """What the graph file depends on (ef_search is only a search-time setting)."""
    return (int(config["connectivity"]), int(config["ef_construction"]), str(config.get("quantization", "f32")))


def propose_configs(current: dict[str, Any], budget: int, *, tried: Iterable[tuple] = (), seed: int = 0) -> list[dict[str, Any]]:
    """Up to `budget` configurations around `current`, cheapest and likeliest first."""
    current = {k: current[k] for k in HNSW_KEYS if k in current}
    m, efc, efs = int(current["connectivity"]), int(current["ef_construction"]), int(current["ef_search"])
    skip = {config_key(current), *map(tuple, tried)}
    out: list[dict[str, Any]] = []

    def add(config: dict[str, Any]) -> None:
        key = config_key(config)
        if key not in skip:
            skip.add(key)
            out.append(config)

    rng = random.Random(seed)
    ie = _nearest(EFS_GRID, efs)
    beams = [EFS_GRID[j] for j in (ie - 1, ie - 2, ie + 1, ie - 3) if 0 <= j < len(EFS_GRID)]
    if EFS_GRID[ie] != efs:
        beams.insert(0, EFS_GRID[ie])
    for beam in beams:  # 1. the same graph at other search beams: no build
        add({**current, "ef_search": beam})
    graphs = [(mm, cc) for mm in _around(M_GRID, m, 1) for cc in _around(EFC_GRID, efc, 1) if (mm, cc) != (m, efc)]
    rng.shuffle(graphs)
    lower = EFS_GRID[max(0, ie - 1)]
    for mm, cc in graphs:  # 2. neighbouring graphs at the current beam and one step below
        for beam in (efs, lower):
            add({**current, "connectivity": mm, "ef_construction": cc, "ef_search": beam})
    farther = [
        {**current, "connectivity": mm, "ef_construction": cc, "ef_search": ee}
        for mm in _around(M_GRID, m, 2) for cc in _around(EFC_GRID, efc, 2) for ee in _around(EFS_GRID, efs, 2)
    ]
    rng.shuffle(farther)
    for config in farther:  # 3. random points two steps away
        if len(out) >= budget:
            break
        add(config)
    return out[:budget]


def exact_top_k(queries: np.ndarray, vectors: np.ndarray, k: int, block: int = 32768) -> tuple[np.ndarray, np.ndarray]:
    """Rows and scores of the exact top-k by inner product (= cosine for unit vectors),
    best first; memory bounded by `block` vectors at a time."""
    q = len(queries)
    best_rows = np.zeros((q, 0), np.int64)
    best_scores = np.zeros((q, 0), np.float32)
    for start in range(0, len(vectors), block):
        scores = queries @ vectors[start:start + block].T
        kk = min(k, scores.shape[1])
        part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        rows = np.concatenate([best_rows, part + start], axis=1)
        vals = np.concatenate([best_scores, np.take_along_axis(scores, part, axis=1)], axis=1)
        keep = np.argsort(-vals, axis=1, kind="stable")[:, :k]
        best_rows, best_scores = np.take_along_axis(rows, keep, axis=1), np.take_along_axis(vals, keep, axis=1)
    return best_rows, best_scores


# ---------------------------------------------------------------------- data classes
@dataclass
class Snapshot:
    """The active version of an index: its vectors, sorted by key."""

    name: str
    version: int
    info: dict[str, Any]
    directory: Path
    keys: np.ndarray  # uint64, sorted
    vectors: np.ndarray  # float32, aligned with keys
    digest: str
    config: dict[str, Any]

    @property
    def rows(self) -> int:
        return len(self.keys)

    def rows_of(self, keys: np.ndarray) -> np.ndarray:
        pos = np.minimum(np.searchsorted(self.keys, keys), max(len(self.keys) - 1, 0))
        return np.where(self.keys[pos] == keys, pos, -1) if len(self.keys) else np.full(len(keys), -1)


@dataclass
class EvalSet:
    queries: np.ndarray
    truth: np.ndarray
    kth_score: np.ndarray
    meta: dict[str, Any]

    @property
    def k(self) -> int:
        return int(self.meta["k"])


@dataclass
class Contender:
    """One configuration opened for measurement."""

    config: dict[str, Any]
    backend: HnswBackend
    graph_dir: Path
    build_s: float
    recall: float | None = None


# ---------------------------------------------------------------------- the tuner
class Autotuner:
    """Runs autotune trials for the indexes of one data directory."""

    def __init__(
        self,
        indexes: VectorIndexes,
        *,
        queries: int = 200,
        k: int = 10,
        noise: float = 0.25,
        rounds: int = 5,
        min_rows_untuned: int = 1000,
        recall_tolerance: float = 0.002,
        recall_gain: float = 0.005,
        speedup: float = 0.05,
        latency_tolerance: float = 0.05,
        p95_tolerance: float = 0.10,
    ):
        self.indexes = indexes
        self.queries = queries
        self.k = k
        self.noise = noise
        self.rounds = max(1, rounds)
        self.min_rows_untuned = min_rows_untuned
        self.rule = dict(recall_tolerance=recall_tolerance, recall_gain=recall_gain, speedup=speedup,
                         latency_tolerance=latency_tolerance, p95_tolerance=p95_tolerance)

    # ------------------------------------------------------------ paths and config
    def _dir(self, name: str) -> Path:
        return self.indexes.root / name

    def trials_path(self, name: str) -> Path:
        return self._dir(name) / TRIALS_FILE

    def eval_path(self, name: str) -> Path:
        return self._dir(name) / EVAL_FILE

    @property
    def gate(self) -> float:
        return float(self.indexes.config.autotune_recall_gate)

    @property
    def growth_trigger(self) -> float:
        return float(self.indexes.config.autotune_growth_trigger)

    def _actor(self, actor: str | None) -> str:
        return actor or getattr(self.indexes._lake, "actor", None) or "autotune"

    def _hnsw_definition(self, name: str) -> dict[str, Any]:
        definition = self.indexes.definition(name)  # NotFound for an unknown index
        if definition.get("backend", "hnsw") != "hnsw":
            raise InvalidInput(f"autotune tunes HNSW indexes; index {name!r} uses the {definition['backend']!r} backend")
        return definition

    def _config_of(self, definition: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
        merged = {**self.indexes._params(definition)["hnsw"], **(info.get("params") or {})}
        return {k: merged[k] for k in HNSW_KEYS if k in merged}

    def _params(self, definition: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
        return {**self.indexes._params(definition), "hnsw": dict(config)}

    # ------------------------------------------------------------ the active version's vectors
    def snapshot(self, name: str) -> Snapshot:
        definition = self._hnsw_definition(name)
        loaded = self.indexes.active(name)
        info = next(v for v in self.indexes.registry(name).versions() if v["version"] == loaded.version)
        directory = self._dir(name) / info["location"]
        chunks = pq.read_table(directory / CHUNKS_FILE, columns=["key", "content_hash"])
        keys = chunks["key"].to_numpy().astype(np.uint64)
        hashes = chunks["content_hash"].to_pylist()
        order = np.argsort(keys, kind="stable")
        keys, hashes = keys[order], [hashes[i] for i in order]
        digest = hashlib.sha256(keys.tobytes() + "\n".join(h or "" for h in hashes).encode()).hexdigest()[:32]
        config = self._config_of(definition, info)
        vectors = None
        if config.get("quantization", "f32") == "f32":
            try:
                vectors = loaded.backend.fetch(keys)
            except KeyError:
                vectors = None
        if vectors is None:
            vectors = self._vectors_from_store(name, definition["dim"], keys, hashes)
        if vectors is None:  # the store lacks some: the index's own (possibly quantized) copies
            vectors = loaded.backend.fetch(keys)
        vectors = np.ascontiguousarray(vectors, np.float32)
        return Snapshot(name, loaded.version, info, directory, keys, vectors, digest, config)

    def _vectors_from_store(self, name: str, dim: int, keys: np.ndarray, hashes: list[str]) -> np.ndarray | None:
        """Full-precision vectors from the embeddings store's Parquet files, matched by
        (key, content hash), so files of superseded commits cannot leak in."""
        position = {int(k): i for i, k in enumerate(keys.tolist())}
        out = np.zeros((len(keys), dim), np.float32)
        found = np.zeros(len(keys), bool)
        for path in self._store_files(name):
            try:
                table = pq.read_table(path, columns=["chunk_id", "content_hash", "vector"])
            except Exception:  # noqa: BLE001 - not an embeddings file: skip it
                continue
            flat = table["vector"].combine_chunks().flatten().to_numpy(zero_copy_only=False)
            if len(table) == 0 or flat.size != len(table) * dim:
                continue
            flat = flat.reshape(len(table), dim)
            file_keys = chunk_keys(table["chunk_id"].to_pylist()).tolist()
            for row, (key, content_hash) in enumerate(zip(file_keys, table["content_hash"].to_pylist())):
                i = position.get(key)
                if i is not None and not found[i] and hashes[i] == content_hash:
                    out[i] = flat[row]
                    found[i] = True
        return out if found.all() else None

    def _store_files(self, name: str) -> list[Path]:
        """Parquet files of the index's embeddings store (a Delta table in the primary
        bucket, `<data>/tables/_vectors/<index>/embeddings`; older layouts kept it
        beside the index)."""
        relative = Path(self.indexes.root.name) / name / "embeddings"
        roots = [self.indexes._lake.path / "tables" / relative, self._dir(name) / "embeddings"]
        return [p for root in roots if root.is_dir() for p in sorted(root.rglob("*.parquet"))]

    # ------------------------------------------------------------ the evaluation set
    def eval_set(self, name: str, *, texts: list[str] | None = None, regenerate: bool = False) -> EvalSet:
        """The stored evaluation set, (re)built first when missing or out of date."""
        return self._eval_for(self.snapshot(name), texts=texts, regenerate=regenerate)

    def _load_eval(self, path: Path) -> EvalSet | None:
        try:
            with np.load(path, allow_pickle=False) as data:
                return EvalSet(data["queries"], data["truth"], data["kth_score"], json.loads(str(data["meta"])))
        except (OSError, KeyError, ValueError):
            return None

    def _eval_for(self, snap: Snapshot, *, texts: list[str] | None = None, regenerate: bool = False) -> EvalSet:
        path = self.eval_path(snap.name)
        current = self._load_eval(path)
        k = min(self.k, snap.rows)
        if k < 1:
            raise InvalidInput(f"index {snap.name!r} holds no vectors to tune on")
        dim = snap.vectors.shape[1]
        resample = None
        if texts:
            resample = "query texts given"
        elif regenerate:
            resample = "regeneration asked"
        elif current is None:
            resample = "no evaluation set yet"
        elif current.queries.shape[1] != dim:
            resample = "dimension changed"
        elif current.meta.get("source") == "sampled" and snap.rows >= current.meta["rows"] * (1 + self.growth_trigger):
            resample = f"index grew from {current.meta['rows']} to {snap.rows} rows"
        if resample is None and current is not None and current.meta["digest"] == snap.digest and current.k == k:
            return current
        if resample is not None:
            queries, source, seed = self._new_queries(snap, texts)
        else:
            queries, source, seed = current.queries, current.meta["source"], current.meta.get("seed")
        rows, scores = exact_top_k(queries, snap.vectors, k)
        meta = {
            "index": snap.name, "k": k, "queries": len(queries), "rows": snap.rows, "digest": snap.digest,
            "version": snap.version, "source": source, "seed": seed, "noise": self.noise if source == "sampled" else None,
            "created_at": _now() if resample is not None else current.meta["created_at"],
            "truth_at": _now(), "why": resample or "vectors changed: ground truth recomputed",
        }
        ev = EvalSet(np.ascontiguousarray(queries, np.float32), snap.keys[rows], scores[:, -1].astype(np.float32), meta)
        tmp = path.with_name(f".{EVAL_FILE}.{uuid.uuid4().hex[:8]}.tmp")
        with open(tmp, "wb") as fh:
            np.savez(fh, queries=ev.queries, truth=ev.truth, kth_score=ev.kth_score, meta=np.array(json.dumps(meta)))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return ev

    def _new_queries(self, snap: Snapshot, texts: list[str] | None) -> tuple[np.ndarray, str, int | None]:
        if texts:
            return np.asarray(self.indexes.embedder.embed(list(texts)), np.float32), "texts", None
        seed = int(snap.digest[:8], 16)
        rng = np.random.default_rng(seed)
        count = min(self.queries, snap.rows)
        picked = rng.choice(snap.rows, size=count, replace=False)
        dim = snap.vectors.shape[1]
        queries = snap.vectors[picked] + rng.standard_normal((count, dim)).astype(np.float32) * (self.noise / np.sqrt(dim))
        queries /= np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
        return queries.astype(np.float32), "sampled", seed

    # ------------------------------------------------------------ measuring
    def _pass(self, backend: HnswBackend, ev: EvalSet) -> tuple[np.ndarray, list[np.ndarray]]:
        latencies = np.empty(len(ev.queries), np.float64)
        answers = []
        clock = time.perf_counter_ns
        for i, query in enumerate(ev.queries):
            started = clock()
            result = backend.search(query, ev.k)
            latencies[i] = (clock() - started) / 1000.0
            answers.append(result.keys)
        return latencies, answers

    def _recall(self, answers: list[np.ndarray], ev: EvalSet, snap: Snapshot) -> float:
        correct = 0
        for i, keys in enumerate(answers):
            keys = np.asarray(keys[: ev.k], np.uint64)
            hit = np.isin(keys, ev.truth[i])
            if not hit.all():  # a tie with the k-th exact neighbour is as good as it
                rows = snap.rows_of(keys[~hit])
                scores = np.where(rows >= 0, snap.vectors[np.maximum(rows, 0)] @ ev.queries[i], -2.0)
                correct += int((scores >= ev.kth_score[i] - 1e-5).sum())
            correct += int(hit.sum())
        return correct / (len(answers) * ev.k)

    def _duel(self, trial: Contender, base: Contender, ev: EvalSet, snap: Snapshot) -> tuple[dict[str, float], dict[str, float]]:
        """Recall of both, and their latencies measured pairwise: per query, both answer
        back to back (order alternating), `rounds` times; a query's latency is the
        median of its rounds, and p50 / p95 are taken over the queries. Background
        load therefore hits both sides alike."""
        _, answers = self._pass(trial.backend, ev)  # also the warm-up
        trial.recall = self._recall(answers, ev, snap)
        _, base_answers = self._pass(base.backend, ev)
        if base.recall is None:
            base.recall = self._recall(base_answers, ev, snap)
        k, clock = ev.k, time.perf_counter_ns
        timed = {"trial": np.empty((self.rounds, len(ev.queries))), "base": np.empty((self.rounds, len(ev.queries)))}
        sides = {"trial": trial.backend, "base": base.backend}
        for r in range(self.rounds):
            for i, query in enumerate(ev.queries):
                order = ("trial", "base") if (i + r) % 2 else ("base", "trial")
                for who in order:
                    started = clock()
                    sides[who].search(query, k)
                    timed[who][r, i] = (clock() - started) / 1000.0

        def stats(who: str, recall: float) -> dict[str, float]:
            per_query = np.median(timed[who], axis=0)
            return {"recall": round(recall, 4), "p50_us": round(float(np.percentile(per_query, 50)), 1),
                    "p95_us": round(float(np.percentile(per_query, 95)), 1)}

        return stats("trial", trial.recall), stats("base", base.recall)

    # ------------------------------------------------------------ run
    def run(
        self,
        name: str,
        *,
        budget: int = 8,
        actor: str | None = None,
        gate: float | None = None,
        configs: list[dict[str, Any]] | None = None,
        texts: list[str] | None = None,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Run up to `budget` trials (or exactly `configs`, partial HNSW settings merged
        onto the active configuration) and promote the Pareto winners that pass the gate."""
        if budget < 1 and not configs:
            raise InvalidInput("budget must be at least 1 trial")
        gate = self.gate if gate is None else float(gate)
        actor = self._actor(actor)
        run_lock = file_lock(self._dir(name) / ".autotune-run")
        definition = self._hnsw_definition(name)
        if not run_lock.acquire(blocking=False):
            raise InvalidInput(f"autotune of {name!r} is already running")
        try:
            return self._run_locked(name, definition, budget, actor, gate, configs, texts, progress)
        finally:
            run_lock.release()

    def _run_locked(self, name, definition, budget, actor, gate, configs, texts, progress) -> dict[str, Any]:
        started = time.perf_counter()
        run_id = f"{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:6]}"
        snap = self.snapshot(name)
        ev = self._eval_for(snap, texts=texts)
        previous = read_jsonl(self.trials_path(name))
        if configs:
            for config in configs:
                unknown = set(config) - set(HNSW_KEYS)
                if unknown:
                    raise InvalidInput(f"unknown HNSW setting(s) {sorted(unknown)}; use {list(HNSW_KEYS)}")
            proposals = [{**snap.config, **{k: v for k, v in c.items() if v is not None}} for c in configs]
        else:
            tried = {config_key(t["config"]) for t in previous if t.get("eval", {}).get("digest") == ev.meta["digest"] and "config" in t}
            seed = len({t.get("run_id") for t in previous})
            proposals = propose_configs(snap.config, budget, tried=tried, seed=seed)
        total = len(proposals)
        if progress:
            progress(0, total)
        scratch = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=self._dir(name)))
        trials: list[dict[str, Any]] = []
        promoted: list[int] = []
        try:
            base = Contender(snap.config, HnswBackend.open(snap.directory, self._params(definition, snap.config)), snap.directory, 0.0)
            base_version = snap.version
            graphs: dict[tuple, tuple[Path, float]] = {graph_key(snap.config): (snap.directory, 0.0)}
            for number, config in enumerate(proposals, 1):
                record: dict[str, Any] = {
                    "run_id": run_id, "trial": number, "at": _now(), "index": name, "actor": actor,
                    "config": config, "baseline_version": base_version, "baseline_config": base.config,
                    "rows": snap.rows, "gate": gate,
                    "eval": {"queries": len(ev.queries), "k": ev.k, "digest": ev.meta["digest"], "source": ev.meta["source"]},
                }
                try:
                    key = graph_key(config)
                    if key not in graphs:
                        graph_dir = scratch / f"m{key[0]}-efc{key[1]}-{key[2]}"
                        build_started = time.perf_counter()
                        HnswBackend.build(graph_dir, snap.keys, snap.vectors, self._params(definition, config))
                        graphs[key] = (graph_dir, time.perf_counter() - build_started)
                        record["graph"] = "built"
                    else:
                        record["graph"] = "reused"
                    graph_dir, build_s = graphs[key]
                    trial = Contender(config, HnswBackend.open(graph_dir, self._params(definition, config)), graph_dir, build_s)
                    mine, theirs = self._duel(trial, base, ev, snap)
                    ok, reason = pareto_decision(mine, theirs, gate, **self.rule)
                    record.update(mine)
                    record.update(build_s=round(build_s, 3), baseline=theirs)
                    version = None
                    if ok:
                        version, why_not = self._promote(name, definition, base_version, trial, mine, actor, run_id, number, reason, ev)
                        if version is None:
                            ok, reason = False, why_not
                        else:
                            promoted.append(version)
                            base_version = version
                            version_dir = self._dir(name) / f"v{version}"
                            graphs[key] = (version_dir, build_s)
                            base = Contender(config, HnswBackend.open(version_dir, self._params(definition, config)), version_dir, build_s, trial.recall)
                    record.update(promoted=ok, version=version, reason=reason)
                except Exception as exc:  # noqa: BLE001 - journaled; the next trial still runs
                    log.exception("autotune trial %s of %s failed", number, name)
                    record.update(recall=None, p50_us=None, p95_us=None, build_s=None, promoted=False, version=None,
                                  reason=f"trial failed: {type(exc).__name__}: {exc}")
                append_jsonl(self.trials_path(name), record)
                trials.append(record)
                if progress:
                    progress(number, total)
        finally:
            self._discard_scratch(name, scratch)
        active = self.indexes.registry(name).active()
        return {
            "index": name, "run_id": run_id, "gate": gate, "trials": trials, "promoted": promoted,
            "active": {"version": active["version"], "config": active["params"]} if active else None,
            "eval": ev.meta, "seconds": round(time.perf_counter() - started, 3),
        }

    def _discard_scratch(self, name: str, scratch: Path) -> None:
        # only ever the directory this run made with mkdtemp inside the index directory
        if scratch.parent == self._dir(name) and scratch.name.startswith(SCRATCH_PREFIX) and scratch.is_dir():
            shutil.rmtree(scratch, ignore_errors=True)

    # ------------------------------------------------------------ promotion
    def _promote(
        self, name: str, definition: dict[str, Any], base_version: int, trial: Contender, stats: dict[str, float],
        actor: str, run_id: str, number: int, why: str, ev: EvalSet,
    ) -> tuple[int | None, str]:
        lock = self.indexes._build_locks.setdefault(name, threading.Lock())
        with lock:  # the lock refreshes take: version numbers and the pointer stay ours
            registry = self.indexes.registry(name)
            active = registry.active()
            if active is None or active["version"] != base_version:
                now = active["version"] if active else None
                return None, f"not promoted: the index changed during the run (v{now} is active, trials measured v{base_version})"
            version = registry.next_version()
            location = f"v{version}"
            self._materialize(name, active, trial.graph_dir, location)
            registry.register({
                "version": version, "created_at": _now(), "backend": "hnsw", "params": dict(trial.config),
                "rows": active["rows"], "location": location,
                "metrics": {
                    **{k: v for k, v in (active.get("metrics") or {}).items() if k == "dataset_version"},
                    "derived_from": active["version"], "build_seconds": round(trial.build_s, 3),
                    "autotune": {"run_id": run_id, "trial": number, **stats, "eval_digest": ev.meta["digest"]},
                },
            })
            reason = f"autotune {run_id} trial {number}: {why}"
            self.indexes.promote(name, version, actor=actor, reason=reason)
        return version, why

    def _materialize(self, name: str, active: dict[str, Any], graph_dir: Path, location: str) -> None:
        """`v<N>`: the trial's graph (hard-linked; never rewritten in place, so sharing is
        safe) and every other file of the active version (chunks.parquet). A trial that
        only changed ef_search reuses the active graph, layers included (graph + segment
        of a refreshed version); a rebuilt graph holds every vector, so no layers."""
        index_dir = self._dir(name)
        active_dir = index_dir / active["location"]
        target = index_dir / location
        target.mkdir(parents=True, exist_ok=True)
        graph_files = (INDEX_FILE,) if (graph_dir / INDEX_FILE).is_file() else (LAYERS_FILE, SEGMENT_FILE)
        files = {f: graph_dir / f for f in graph_files}
        for path in active_dir.iterdir():
            if path.is_file() and path.name not in (INDEX_FILE, LAYERS_FILE, SEGMENT_FILE) and not path.name.endswith(".tmp"):
                files[path.name] = path
        for file_name, source in files.items():
            staged = target / f".{file_name}.{uuid.uuid4().hex[:8]}.tmp"
            try:
                os.link(source, staged)
            except OSError:
                shutil.copy2(source, staged)
            os.replace(staged, target / file_name)
        fsync_dir(target)

    # ------------------------------------------------------------ rollback, status, due
    def rollback(self, name: str, *, actor: str | None = None) -> dict[str, Any]:
        """Re-activate the version that was active before the current one."""
        self._hnsw_definition(name)
        return self.indexes.rollback(name, actor=self._actor(actor))

    def trials(self, name: str, limit: int | None = None) -> list[dict[str, Any]]:
        self.indexes.definition(name)
        rows = read_jsonl(self.trials_path(name))
        return rows[-limit:] if limit else rows

    def due(self, name: str) -> tuple[bool, str]:
        """Whether a run is due for `name`, and why (or why not)."""
        definition = self.indexes.definition(name)
        if definition.get("backend", "hnsw") != "hnsw":
            return False, f"backend {definition['backend']!r} is not tuned"
        active = self.indexes.registry(name).active()
        if active is None:
            return False, "no active version yet"
        trials = [t for t in read_jsonl(self.trials_path(name)) if "rows" in t]
        rows = int(active["rows"])
        if not trials:
            if rows >= self.min_rows_untuned:
                return True, f"never tuned ({rows} rows)"
            return False, f"never tuned, but only {rows} rows (< {self.min_rows_untuned})"
        before = int(trials[-1]["rows"])
        growth = (rows - before) / max(before, 1)
        if growth >= self.growth_trigger:
            return True, f"grew {growth:.0%} since the last run ({before} -> {rows} rows; trigger {self.growth_trigger:.0%})"
        return False, f"grew {growth:.0%} since the last run ({before} -> {rows} rows; trigger {self.growth_trigger:.0%})"

    def status(self, name: str, *, limit: int = 10) -> dict[str, Any]:
        definition = self.indexes.definition(name)
        active = self.indexes.registry(name).active()
        trials = read_jsonl(self.trials_path(name))
        due, why = self.due(name)
        last_run = None
        if trials:
            run_id = trials[-1].get("run_id")
            run = [t for t in trials if t.get("run_id") == run_id]
            last_run = {"run_id": run_id, "at": run[0].get("at"), "trials": len(run),
                        "promoted": [t["version"] for t in run if t.get("promoted")], "rows": run[-1].get("rows")}
        meta = None
        ev = self._load_eval(self.eval_path(name))
        if ev is not None:
            meta = ev.meta
        return {
            "index": name, "backend": definition.get("backend", "hnsw"),
            "active": None if active is None else {
                "version": active["version"], "config": self._config_of(definition, active), "rows": active["rows"],
                "autotuned": "autotune" in (active.get("metrics") or {}),
                "metrics": (active.get("metrics") or {}).get("autotune"),
            },
            "gate": self.gate, "growth_trigger": self.growth_trigger,
            "due": due, "due_reason": why,
            "last_run": last_run, "trials_total": len(trials), "trials": trials[-limit:] if limit else trials,
            "eval": meta,
        }

    def apply_config(self, name: str, config: dict[str, Any], *, actor: str | None = None, reason: str = "manual") -> dict[str, Any]:
        """Make `config` (partial HNSW settings over the active ones) the active
        configuration: a new version (the active graph reused when only ef_search
        changes, else rebuilt from the active vectors), promoted at once. No gate: the
        caller asked for it (profiles use this). Returns {changed, version, config}."""
        definition = self._hnsw_definition(name)
        unknown = set(config) - set(HNSW_KEYS)
        if unknown:
            raise InvalidInput(f"unknown HNSW setting(s) {sorted(unknown)}; use {list(HNSW_KEYS)}")
        lock = self.indexes._build_locks.setdefault(name, threading.Lock())
        with lock:
            registry = self.indexes.registry(name)
            active = registry.active()
            if active is None:
                raise NotFound(f"index {name!r} has no active version yet")
            current = self._config_of(definition, active)
            wanted = {**current, **{k: v for k, v in config.items() if v is not None}}
            if config_key(wanted) == config_key(current):
                return {"index": name, "changed": False, "version": active["version"], "config": current}
            scratch = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=self._dir(name)))
            try:
                active_dir = self._dir(name) / active["location"]
                build_s = 0.0
                if graph_key(wanted) == graph_key(current):
                    graph_dir = active_dir
                else:
                    snap = self.snapshot(name)
                    graph_dir = scratch / "graph"
                    t0 = time.perf_counter()
                    HnswBackend.build(graph_dir, snap.keys, snap.vectors, self._params(definition, wanted))
                    build_s = time.perf_counter() - t0
                version = registry.next_version()
                location = f"v{version}"
                self._materialize(name, active, graph_dir, location)
                registry.register({
                    "version": version, "created_at": _now(), "backend": "hnsw", "params": wanted,
                    "rows": active["rows"], "location": location,
                    "metrics": {**{k: v for k, v in (active.get("metrics") or {}).items() if k == "dataset_version"},
                                "derived_from": active["version"], "build_seconds": round(build_s, 3)},
                })
                self.indexes.promote(name, version, actor=self._actor(actor), reason=reason)
            finally:
                self._discard_scratch(name, scratch)
        return {"index": name, "changed": True, "version": version, "config": wanted, "from": current, "build_s": round(build_s, 3)}


# ---------------------------------------------------------------------- the agent's hooks
def autotune_due_indexes(indexes: VectorIndexes, tuner: Autotuner | None = None) -> list[str]:
    """Names of the indexes a periodic agent should tune now (see `Autotuner.due`)."""
    tuner = tuner or Autotuner(indexes)
    due = []
    for name in indexes.names():
        try:
            if tuner.due(name)[0]:
                due.append(name)
        except Exception:  # noqa: BLE001 - one broken index must not stop the others
            log.exception("autotune: could not check %s", name)
    return due


def run_due(indexes: VectorIndexes, *, budget: int = 8, actor: str = "autotune-agent", tuner: Autotuner | None = None) -> list[dict[str, Any]]:
    """Tune every due index once; failures are logged and reported, never raised."""
    tuner = tuner or Autotuner(indexes)
    results = []
    for name in autotune_due_indexes(indexes, tuner):
        try:
            result = tuner.run(name, budget=budget, actor=actor)
            results.append({"index": name, "run_id": result["run_id"], "trials": len(result["trials"]), "promoted": result["promoted"]})
        except Exception as exc:  # noqa: BLE001
            log.exception("autotune of %s failed", name)
            results.append({"index": name, "error": f"{type(exc).__name__}: {exc}"})
    return results


class AutotuneLoop:
    """A background thread calling `run_due` every `interval_s` seconds (the agent's
    autotune task). `stop()` ends it after the run in hand."""

    def __init__(self, indexes: VectorIndexes, *, interval_s: float = 3600.0, budget: int = 8, actor: str = "autotune-agent",
                 tuner: Autotuner | None = None):
        self.indexes = indexes
        self.tuner = tuner or Autotuner(indexes)
        self.interval_s = interval_s
        self.budget = budget
        self.actor = actor
        self.last_results: list[dict[str, Any]] = []
        self.runs = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> AutotuneLoop:
        self._thread = threading.Thread(target=self._loop, name="lakehouse-autotune", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.last_results = run_due(self.indexes, budget=self.budget, actor=self.actor, tuner=self.tuner)
                self.runs += 1
            except Exception:  # noqa: BLE001
                log.exception("autotune loop iteration failed")
            self._stop.wait(self.interval_s)

    def stop(self, timeout_s: float | None = None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
