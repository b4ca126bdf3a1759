#!/usr/bin/env python3
"""Recruiter-path speed benchmarks (issue 5): areas `hybrid`, `memory`, `concurrency`.

    .venv/bin/python bench/recruiter_bench.py --quick         # 50K workers (bench/run --quick sizes)
    .venv/bin/python bench/recruiter_bench.py --out bench/results/recruiter.json   # 500K workers

bench/run calls `run(quick, workdir=..., seed=...)`; the records have bench/run's shape
(`area`, `case`, `metric`, `ours`, `peer`, `peer_value`, `ratio`, `rows`, extras,
`peak_rss_mib`). There is no peer: `target` and `target_met` say how each number
compares with the issue's target. Standalone, one JSON object goes to stdout, progress
to stderr.

Records
- `hybrid` / `p50`, `p95` (ms): `lakehouse.intelligence.hybrid.hybrid_search` in process
  on 500,000 workers (quick: 50,000), wall time of the whole call INCLUDING the query
  embedding: every timed query has a text never seen before, so the embedding cache
  cannot hide the model (MiniLM on the CPU, plus the cache's fsync'd insert). Filters
  rotate over what recruiters type: role + city + state, role + state, role only.
  Playbook memory is on and holds the 100,000 seeded playbooks below. Extras: the p50
  with a cached query text (the same queries again), p50 / p95 per filter kind, stage
  medians (`latency_ms` of the answer), planner paths, candidate counts, and how many
  queries met a filter already seen in the run (`filter_reused`: their candidate ids come
  from hybrid search's per-filter memory, as a recruiter refining the text under one
  filter gets them) with the p50 / p95 of the others (`*_new_filter`). Targets:
  p50 <= 15 ms, p95 <= 40 ms.
- `memory` / `memory_query` (ms): p50 of the recruiter API's `POST /memory/query`
  (`mcp_server.app.create_app` behind a Starlette TestClient, as a recruiter-role key),
  talking over loopback HTTP to the gateway (`lakehouse.gateway.create_app` served by
  uvicorn in a thread of this process, as tests/test_recruiter_api.py wires it). One
  distinct (role, city, state) per call, so each call embeds its query once. Extras: the
  p50 when the same calls are repeated (warm), and per-source latency medians. Target <= 50 ms.
- `memory` / `boost_100k_entries` (ms_added): what the playbook boost adds to one hybrid
  query when memory holds 100,000 playbooks instead of none. The same queries (cached
  query texts, so the model does not add noise) alternate between the two memories;
  ours = p50(total, 100K) - p50(total, empty). Extras per filter kind and the `boost_ms`
  stage alone. Target <= 2 ms.
- `concurrency` / `match_20_clients` (p95_ms): the gateway (`python -m lakehouse.cli serve`)
  and the recruiter API (`python -m mcp_server`) run as two uvicorn subprocesses on free
  loopback ports, the way systemd runs them; 20 client threads (one keep-alive
  connection each, on the standard library's http.client: `lakehouse.client.KeepAliveJSON`) send
  `POST /match` back to back (closed loop, no think time) for contracts drawn from the
  workers' own (role, city, state) mix. Reported: p95, p50, errors (non-200 or
  exception; must be 0), throughput, the gateway's stage medians, and the CPU each
  process spent per request (the gateway, the recruiter API, and this load generator).
  Target p95 <= 100 ms with no errors. Extras `paced`: the same 20 clients as recruiters
  who pause before each request (exponential think time, mean 1 s), p50 / p95 / errors;
  `steady`: the same closed loop again for 30 s (quick: 5 s) after everything else, when
  filters and query texts seen before come from memory (the 20 x 20 measured burst is
  almost all new contracts: new filters, new query texts to embed).

Data, and how 500K profiles get embeddings without 30 minutes of model time
- Workers, clients, job orders and placements come from `lakehouse.demo_data.generate`
  (the `lakehouse demo-data` generator) and are ingested with `Lakehouse.ingest_table`.
  The vector index is the recruiter API's: text columns role, skills, certifications,
  profile; id worker_id.
- The real model embeds ~300 texts/s on 2 cores, so embedding 500K profiles would take
  ~30 minutes. Instead the embedding cache is pre-filled: the index manager embeds
  exactly the chunks `VectorIndexes._read_chunks` produces (`concat_ws(' ', text
  columns)` per worker, chunked like a build), so the bench computes those texts with
  that same method, gives each one the vector normalise(E(role + " " + skills) +
  N(0, 0.015^2) per dimension), where E is the real all-MiniLM-L6-v2 embedding of the
  few thousand distinct role + skills strings, and inserts them with
  `lakehouse._core.EmbeddingCache(<data>/_vectors/cache, model, 384).insert(...)` while no
  embedder has the cache open. `lake.vectors.create(...)` then finds every text in the
  cache (checked beforehand with `EmbeddingCache.lookup`, and after through the build's
  `cache_hits`) and only builds the HNSW index and the embeddings table. Query texts are
  embedded by the real model at search time. Workers with the same role and skills thus
  sit close together with some spread, as real profiles do; the vectors are not those the
  model would give the full profile text, which changes the ranking, not the work done.
- Playbook memory: 100,000 sealed fills seeded through `lakehouse._core.PlaybookMemory.seed`
  (the core behind `lake.playbooks.seed`), spread evenly over the ~330 largest cities of
  the data (a few hundred per city, as the geo prefilter meets them), roles drawn from
  each city's workers, 1-4 endorsed workers from that role and city, dates over the last
  180 days, the workers' schema fingerprint. Their embeddings are the real model's for
  "<role> in <city>, <state>" plus a little noise.
- All this is prepared once and cached under bench/.cache/recruiter/ (git-ignored;
  `LAKEHOUSE_BENCH_RECRUITER_CACHE` overrides), keyed by size, seed and a hash of the
  generator sources and of this preparation. Every run copies the prepared directory
  into a temporary one first, so what a run writes (query embeddings, recruiter state)
  never reaches the cache and the next run's queries are new again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import hashlib
import json
import os
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import common
from common import BENCH_DIR, REPO, no_gc, open_lakehouse, p50, p95, peak_rss_mib, round_all

for path in (REPO / "python", REPO):  # lakehouse (when not installed) and the top-level mcp_server package
    if str(path) not in sys.path:
        sys.path.append(str(path))

AREAS = ("hybrid", "memory", "concurrency")
TEXT_COLUMNS = ["role", "skills", "certifications", "profile"]
NOISE_SIGMA = 0.015  # per dimension; |noise| ~ 0.29 before normalising
PLAYBOOKS_PER_CITY = 300
PREP_VERSION = "1"  # bump when the preparation below changes: the cache key includes it
CACHE_ROOT = Path(os.environ.get("LAKEHOUSE_BENCH_RECRUITER_CACHE") or BENCH_DIR / ".cache" / "recruiter")
TARGETS = {"p50": 15.0, "p95": 40.0, "memory_query": 50.0, "boost_100k_entries": 2.0, "match_20_clients": 100.0}
GATEWAY_KEY = "bench-gateway-key"
API_KEYS = "bench-admin:admin:olga,bench-recruiter:recruiter:sarah"
RECRUITER = {"X-API-Key": "bench-recruiter"}
DATASETS = ("workers", "clients", "job_orders", "placements")
THINK_S = 1.0  # paced concurrency: mean pause of each recruiter before a /match


@dataclass(frozen=True)
class Sizes:
    workers: int
    playbooks: int
    hybrid_queries: int  # distinct, timed once each (embedding included)
    cached_queries: int  # re-run with a cached query text
    boost_queries: int  # per memory, x boost_reps
    boost_reps: int
    memory_calls: int
    clients: int
    requests_per_client: int  # closed loop: back to back
    paced_requests_per_client: int  # with a think time before each
    steady_s: float  # closed loop again, for this long, after the others (extra `steady`)


FULL = Sizes(workers=500_000, playbooks=100_000, hybrid_queries=300, cached_queries=150, boost_queries=60, boost_reps=5,
             memory_calls=60, clients=20, requests_per_client=20, paced_requests_per_client=10, steady_s=30)
QUICK = Sizes(workers=50_000, playbooks=100_000, hybrid_queries=90, cached_queries=45, boost_queries=30, boost_reps=3,
              memory_calls=24, clients=20, requests_per_client=6, paced_requests_per_client=4, steady_s=5)


# ---------------------------------------------------------------------- records (bench/run's shape)
log = common.Log("recruiter-bench")


def record(area: str, case: str, metric: str, ours: float | None, rows: int | None = None, **extra: Any) -> dict[str, Any]:
    """bench/run's record without a peer: `target` and `target_met` say how `ours`
    compares with the issue's target instead; the extras' floats are rounded."""
    target = TARGETS.get(case)
    checked = {} if target is None else {"target": target, "target_met": None if ours is None else bool(ours <= target)}
    return common.record(area, case, metric, ours, rows=rows, **checked, **round_all(extra))


def _failed(area: str, cases: list[tuple[str, str]], exc: BaseException) -> list[dict[str, Any]]:
    return common.failed_records(area, cases, exc, log, record)


# ---------------------------------------------------------------------- the prepared data directory
def _prep_key(n_workers: int, seed: int, playbooks: int) -> str:
    h = hashlib.sha256()
    h.update(f"{PREP_VERSION}|{TEXT_COLUMNS}|{NOISE_SIGMA}|{PLAYBOOKS_PER_CITY}".encode())
    for source in sorted((REPO / "python" / "lakehouse" / "demo_data").glob("*.py")):
        h.update(source.name.encode() + source.read_bytes())
    return f"w{n_workers}-s{seed}-p{playbooks}-{h.hexdigest()[:10]}"


def _model_embedder():
    """The real model, without the on-disk cache (that cache is the one being filled)."""
    from lakehouse.config import VectorConfig
    from lakehouse.vectors.embedder import LocalEmbedder

    return LocalEmbedder(None, VectorConfig().model_id, None)


def _embed_distinct(embedder: Any, texts: list[str], what: str) -> np.ndarray:
    started = time.perf_counter()
    parts = []
    for i in range(0, len(texts), 256):
        parts.append(embedder.embed(texts[i:i + 256]))
        if (i // 256) % 8 == 7:
            log(f"  embedded {i + 256:,}/{len(texts):,} {what}")
    vectors = np.vstack(parts) if parts else np.zeros((0, embedder.dim), np.float32)
    log(f"  {len(texts):,} distinct {what} embedded by the model in {time.perf_counter() - started:.1f}s")
    return vectors


def _normalised(vectors: np.ndarray) -> np.ndarray:
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def prepare(n_workers: int, seed: int, playbooks: int) -> Path:
    """The cached prepared directory (`data/` with datasets + built index, `playbooks/`
    with the seeded memory, `meta.json`); built on first use."""
    key = _prep_key(n_workers, seed, playbooks)
    final = CACHE_ROOT / key
    if (final / "READY").is_file():
        log(f"prepared data: {final} (cached)")
        return final
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{key}.building-", dir=CACHE_ROOT))
    log(f"preparing {n_workers:,} workers + {playbooks:,} playbooks in {building}")
    try:
        meta = _build(building, n_workers, seed, playbooks)
        (building / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
        (building / "READY").write_text(dt.datetime.now(dt.timezone.utc).isoformat() + "\n")
        building.rename(final)
    except BaseException:
        _remove_own_tmp(building, CACHE_ROOT)
        raise
    log(f"prepared data: {final}")
    return final


def _remove_own_tmp(path: Path, parent: Path) -> None:
    """rmtree only a directory this module created with mkdtemp directly inside `parent`."""
    path, parent = path.resolve(), parent.resolve()
    if path.parent != parent or not (path.name.startswith(".w") or path.name.startswith("lakehouse-recruiter-bench-")):
        raise RuntimeError(f"refusing to remove {path}: not a temporary directory of this bench")
    shutil.rmtree(path, ignore_errors=True)


def _build(root: Path, n_workers: int, seed: int, n_playbooks: int) -> dict[str, Any]:
    from lakehouse import _core
    from lakehouse.demo_data import generate

    data = root / "data"
    meta: dict[str, Any] = {"workers": n_workers, "seed": seed, "text_columns": TEXT_COLUMNS, "noise_sigma": NOISE_SIGMA}
    t = time.perf_counter()
    tables = generate(n_workers, seed)
    log(f"  generated demo data in {time.perf_counter() - t:.1f}s: " + ", ".join(f"{n} {tables[n].num_rows:,}" for n in DATASETS))
    t = time.perf_counter()
    with open_lakehouse(data, actor="bench-prep") as lake:
        for name in DATASETS:
            lake.ingest_table(tables[name], name)
        log(f"  ingested in {time.perf_counter() - t:.1f}s")
        definition = {"dataset": "workers", "id_column": "worker_id", "text_columns": TEXT_COLUMNS,
                      "chunk_words": lake.config.vectors.chunk_words, "chunk_overlap": lake.config.vectors.chunk_overlap}
        chunks = lake.vectors._read_chunks(definition)  # the texts the index build will embed
        facts = lake.sql("SELECT CAST(worker_id AS VARCHAR) AS doc_id, name, role, city, state, skills FROM workers")
        model_id, dim = lake.config.vectors.model_id, None
        fingerprint = lake._catalog.get_live("workers")["fingerprint"]
    del tables
    gc.collect()
    meta["chunks"] = len(chunks)

    # 1. one real embedding per distinct role + skills string, then noise per chunk
    base_text = {d: f"{r} {s or ''}".strip() for d, r, s in zip(facts["doc_id"].to_pylist(), facts["role"].to_pylist(),
                                                                  facts["skills"].to_pylist())}
    distinct = sorted(set(base_text.values()))
    embedder = _model_embedder()
    dim = embedder.dim
    t = time.perf_counter()
    base = _embed_distinct(embedder, distinct, "role + skills texts")
    meta["distinct_role_skills"] = len(distinct)
    meta["model_texts_per_s"] = len(distinct) / (time.perf_counter() - t)
    index_of = {text: i for i, text in enumerate(distinct)}
    rows = np.array([index_of[base_text[d]] for d in chunks.doc_id], dtype=np.int64)
    rng = np.random.default_rng(seed)
    cache = _core.EmbeddingCache(str(data / "_vectors" / "cache"), model_id, dim)
    t = time.perf_counter()
    step = 50_000
    for start in range(0, len(chunks), step):
        part = rows[start:start + step]
        vectors = _normalised(base[part] + rng.normal(0.0, NOISE_SIGMA, (len(part), dim)))
        cache.insert(chunks.text[start:start + step], np.ascontiguousarray(vectors, "<f4").tobytes())
    _, hits = cache.lookup(chunks.text)
    if not all(hits):
        raise RuntimeError(f"embedding cache pre-fill missed {len(hits) - sum(hits)} texts")
    del cache
    log(f"  embedding cache pre-filled with {len(chunks):,} vectors in {time.perf_counter() - t:.1f}s")

    # 2. the index: every text is a cache hit, only the HNSW graph and the embeddings table are built
    cache_files = lambda: {p.name: p.stat().st_size for p in (data / "_vectors" / "cache").iterdir()}  # noqa: E731
    before = cache_files()
    t = time.perf_counter()
    with open_lakehouse(data, actor="bench-prep") as lake:
        built = lake.vectors.create("workers", TEXT_COLUMNS, "worker_id")
    meta["index_build_s"] = time.perf_counter() - t
    if cache_files() != before:  # a model call would have appended its vectors to the cache
        raise RuntimeError(f"the index build embedded texts with the model: {built}")
    log(f"  index built in {meta['index_build_s']:.1f}s, every text from the cache: {built}")

    # 3. playbook memory
    t = time.perf_counter()
    meta["playbooks"] = _seed_playbooks(root / "playbooks", facts, embedder, fingerprint, n_playbooks, seed)
    meta["playbook_seed_s"] = time.perf_counter() - t
    meta["prepared_at"] = dt.datetime.now(dt.timezone.utc).isoformat()
    return meta


def _seed_playbooks(directory: Path, facts: Any, embedder: Any, fingerprint: str, n: int, seed: int) -> dict[str, Any]:
    """`n` sealed fills spread evenly over the largest cities (PLAYBOOKS_PER_CITY each),
    seeded through the core's PlaybookMemory (the same call `lake.playbooks.seed` makes)."""
    from lakehouse import _core

    rng = random.Random(seed)
    nrng = np.random.default_rng(seed + 1)
    by_place: dict[tuple[str, str], dict[str, list[tuple[str, str]]]] = defaultdict(lambda: defaultdict(list))
    for wid, name, role, city, state in zip(*(facts[c].to_pylist() for c in ("doc_id", "name", "role", "city", "state"))):
        by_place[(city, state)][role].append((wid, name))
    n_cities = max(1, min(len(by_place), round(n / PLAYBOOKS_PER_CITY)))
    cities = sorted(by_place, key=lambda p: (-sum(len(v) for v in by_place[p].values()), p))[:n_cities]
    pairs = sorted({(role, city, state) for city, state in cities for role in by_place[(city, state)]})
    op_vectors = _embed_distinct(embedder, [f"{r} in {c}, {s}" for r, c, s in pairs], "playbook operation texts")
    vector_of = {pair: op_vectors[i] for i, pair in enumerate(pairs)}
    staffers = ["Sarah", "Kim", "Luis", "Ana", "Raj", "Mei", "Tom", "Olga", "Dev", "Nia", "Sam", "Ivy",
                "Ben", "Zoe", "Max", "Lea", "Omar", "Kai", "Eva", "Jon"]
    today = dt.date.today()
    memory = _core.PlaybookMemory(str(directory), embedder.dim)
    seen: set[tuple[str, str]] = set()
    ops: Counter = Counter()
    started = time.perf_counter()
    while len(seen) < n:
        city, state = cities[len(seen) % n_cities]
        roles = by_place[(city, state)]
        names = sorted(roles)
        role = rng.choices(names, weights=[len(roles[r]) for r in names])[0]
        pool = roles[role]
        workers = rng.sample(pool, min(len(pool), rng.randint(1, 4)))
        date = (today - dt.timedelta(days=rng.randint(0, 180))).isoformat()
        operation = f"{role} x{len(workers)} in {city}, {state}"
        if (operation, date) in seen:
            continue
        seen.add((operation, date))
        entry = {
            "operation": operation, "role": role, "city": city, "state": state, "date": date,
            "staffer": rng.choice(staffers), "workers": [{"worker_id": w, "name": nm} for w, nm in workers],
            "valid_from": None, "valid_until": None, "schema_fingerprint": fingerprint,
            "attributes": {"source": "recruiter_bench"},
        }
        vector = _normalised((vector_of[(role, city, state)] + nrng.normal(0.0, 0.01, embedder.dim))[None, :])[0]
        op, _ = memory.seed(entry, vector.astype("<f4").tobytes())
        ops[op] += 1
        if len(seen) % 20_000 == 0:
            log(f"  seeded {len(seen):,}/{n:,} playbooks ({time.perf_counter() - started:.0f}s)")
    if len(memory) != n:
        raise RuntimeError(f"playbook memory holds {len(memory)} entries, expected {n}: {dict(ops)}")
    log(f"  {n:,} playbooks over {n_cities} cities seeded in {time.perf_counter() - started:.1f}s")
    return {"entries": n, "cities": n_cities, "per_city": round(n / n_cities, 1), "ops": dict(ops)}


# ---------------------------------------------------------------------- a run's own copy
class RunDir:
    """A temporary copy of the prepared directory: data (datasets, index, embedding cache)
    with the 100K playbooks as its playbook memory, an empty memory beside it, and room
    for the recruiter API's state. Removed at the end of the run."""

    def __init__(self, prepared: Path, workdir: Path | None):
        self.base = workdir or Path(tempfile.gettempdir())
        self.root = common.temp_dir("lakehouse-recruiter-bench-", self.base)
        t = time.perf_counter()
        self.data = self.root / "data"
        shutil.copytree(prepared / "data", self.data)
        shutil.copytree(prepared / "playbooks", self.data / "_playbooks")  # lake.playbooks opens this
        self.empty_playbooks = self.root / "empty-playbooks"
        log(f"copied the prepared data to {self.root} in {time.perf_counter() - t:.1f}s")

    def remove(self) -> None:
        _remove_own_tmp(self.root, self.base)


def _memory_at(lake: Any, directory: Path) -> Any:
    """A `PlaybookMemory` over another directory (the product's class; only its core differs)."""
    from lakehouse import _core
    from lakehouse.intelligence.playbooks import PlaybookMemory

    memory = PlaybookMemory.__new__(PlaybookMemory)
    memory._lake, memory._lock = lake, threading.Lock()
    memory._core = _core.PlaybookMemory(str(directory), lake.vectors.embedder.dim)
    return memory


# ---------------------------------------------------------------------- query mixes
KINDS = ("role_city_state", "role_state", "role")
LEADS = ("reliable", "experienced", "dependable", "skilled", "certified", "senior", "hard-working", "punctual",
         "top-rated", "available", "flexible", "safety-minded")
TAILS = ("for the night shift", "starting Monday", "for a two-week job", "with own tools", "for a weekend shift",
         "near downtown", "for a warehouse client", "who can start tomorrow", "", "with good references",
         "for a long-term contract", "on short notice")


@dataclass
class Sample:
    rows: list[tuple[str, str, str]]  # (role, city, state), one per sampled worker
    skills: dict[str, list[str]]  # role -> skill words seen


def sample_workers(lake: Any, n_workers: int) -> Sample:
    step = max(1, n_workers // 5000)
    table = lake.sql(f"SELECT role, city, state, skills FROM workers WHERE worker_id % {step} = 0").to_pylist()
    skills: dict[str, set[str]] = defaultdict(set)
    for r in table:
        skills[r["role"]].update(s.strip() for s in (r["skills"] or "").split(",") if s.strip())
    return Sample([(r["role"], r["city"], r["state"]) for r in table], {k: sorted(v) for k, v in skills.items()})


def hybrid_queries(sample: Sample, n: int, rng: random.Random) -> list[dict[str, Any]]:
    """`n` distinct query texts, filters rotating over KINDS, places drawn like the workers."""
    out, texts = [], set()
    while len(out) < n:
        kind = KINDS[len(out) % len(KINDS)]
        role, city, state = rng.choice(sample.rows)
        skill = rng.choice(sample.skills[role]).lower()
        text = f"{rng.choice(LEADS)} {role.lower()} with {skill} experience {rng.choice(TAILS)}".strip()
        if text in texts:
            continue
        texts.add(text)
        filters = {"role": role, "city": city, "state": state} if kind == "role_city_state" else (
            {"role": role, "state": state} if kind == "role_state" else {"role": role})
        out.append({"kind": kind, "query": text, **filters})
    return out


def _stage_medians(answers: list[dict[str, Any]]) -> dict[str, float]:
    stages: dict[str, list[float]] = defaultdict(list)
    for a in answers:
        for k, v in (a.get("latency_ms") or {}).items():
            if isinstance(v, (int, float)):
                stages[k].append(float(v))
    return {k: p50(v) for k, v in sorted(stages.items())}


# ---------------------------------------------------------------------- area: hybrid
def _workers_rows(lake: Any) -> int:
    return int(lake.sql("SELECT count(*) AS n FROM workers")["n"][0].as_py())


def bench_hybrid(lake: Any, sizes: Sizes, sample: Sample, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    from lakehouse.intelligence.hybrid import HybridQuery, hybrid_search

    rng = random.Random(seed + 5)
    warm = hybrid_queries(sample, 6, random.Random(seed + 99))
    for q in warm:  # opens the index version, loads the model and the caches
        hybrid_search(lake, HybridQuery(query="warm-up " + q["query"], **{k: v for k, v in q.items() if k in ("role", "city", "state")}))
    queries = hybrid_queries(sample, sizes.hybrid_queries, rng)
    times: dict[str, list[float]] = defaultdict(list)
    answers: dict[str, list[dict[str, Any]]] = defaultdict(list)
    embedded = 0
    for q in queries:
        hq = HybridQuery(query=q["query"], k=10, use_playbook_memory=True, **{k: v for k, v in q.items() if k in ("role", "city", "state")})
        t = time.perf_counter()
        answer = hybrid_search(lake, hq)
        times[q["kind"]].append((time.perf_counter() - t) * 1000)
        embedded += int(lake.vectors.embedder.last_stats.get("embedded", 0))
        answers[q["kind"]].append(answer)
    if embedded != len(queries):
        raise RuntimeError(f"{embedded} of {len(queries)} query texts were embedded by the model: the cache hid the rest")
    cached: list[float] = []
    for q in queries[: sizes.cached_queries]:
        hq = HybridQuery(query=q["query"], k=10, use_playbook_memory=True, **{k: v for k, v in q.items() if k in ("role", "city", "state")})
        t = time.perf_counter()
        hybrid_search(lake, hq)
        cached.append((time.perf_counter() - t) * 1000)
    every = [v for kind in KINDS for v in times[kind]]
    all_answers = [a for kind in KINDS for a in answers[kind]]
    per_kind = {kind: {"p50_ms": p50(times[kind]), "p95_ms": p95(times[kind]), "n": len(times[kind]),
                       "sql_matches_p50": p50([a["sql_matches"] for a in answers[kind]]),
                       "paths": dict(Counter(a["search_path"] for a in answers[kind])),
                       # filters seen earlier in the run answer from the candidate-id memory
                       "filter_reused": sum(bool(a.get("sql_reused")) for a in answers[kind]),
                       "p50_ms_new_filter": p50([t for t, a in zip(times[kind], answers[kind]) if not a.get("sql_reused")] or [0.0]),
                       "stages_p50_ms": _stage_medians(answers[kind])} for kind in KINDS}
    shared = {
        "queries": len(every), "distinct_query_texts": True, "playbook_entries": len(lake.playbooks),
        "cached_query_p50_ms": p50(cached), "cached_query_p95_ms": p95(cached), "cached_queries": len(cached),
        "filter_reused": sum(bool(a.get("sql_reused")) for a in all_answers),
        "p50_ms_new_filter": p50([t for kind in KINDS for t, a in zip(times[kind], answers[kind]) if not a.get("sql_reused")] or [0.0]),
        "p95_ms_new_filter": p95([t for kind in KINDS for t, a in zip(times[kind], answers[kind]) if not a.get("sql_reused")] or [0.0]),
        "by_filter": per_kind, "stages_p50_ms": _stage_medians(all_answers), "k": 10,
    }
    rows = _workers_rows(lake)
    return [
        record("hybrid", "p50", "ms", p50(every), rows=rows, ours_p95=p95(every), **shared),
        record("hybrid", "p95", "ms", p95(every), rows=rows, ours_p50=p50(every)),
    ], queries


# ---------------------------------------------------------------------- area: memory (boost)
def bench_boost(lake: Any, run_dir: RunDir, sizes: Sizes, queries: list[dict[str, Any]]) -> dict[str, Any]:
    from lakehouse.intelligence.hybrid import HybridQuery, hybrid_search

    full = lake.playbooks
    empty = _memory_at(lake, run_dir.empty_playbooks)
    if len(empty):
        raise RuntimeError("the empty playbook memory is not empty")
    chosen = queries[: sizes.boost_queries]  # texts cached below: only the boost differs between the two sides
    totals: dict[str, dict[str, list[float]]] = {m: defaultdict(list) for m in ("full", "empty")}
    stage: dict[str, dict[str, list[float]]] = {m: defaultdict(list) for m in ("full", "empty")}
    diffs: dict[str, list[float]] = defaultdict(list)
    lines: Counter = Counter()
    for q in chosen:  # untimed: caches the query texts (and opens the index when the hybrid area did not run)
        hybrid_search(lake, HybridQuery(query=q["query"], k=10, **{k: v for k, v in q.items() if k in ("role", "city", "state")}))
    try:
        for rep in range(sizes.boost_reps):
            for i, q in enumerate(chosen):
                hq = HybridQuery(query=q["query"], k=10, use_playbook_memory=True,
                                 **{k: v for k, v in q.items() if k in ("role", "city", "state")})
                order = ("full", "empty") if (i + rep) % 2 == 0 else ("empty", "full")
                got = {}
                for name in order:
                    lake._playbooks = full if name == "full" else empty
                    t = time.perf_counter()
                    answer = hybrid_search(lake, hq)
                    got[name] = (time.perf_counter() - t) * 1000
                    totals[name][q["kind"]].append(got[name])
                    stage[name][q["kind"]].append(answer["latency_ms"]["boost_ms"])
                    if name == "full" and rep == 0:
                        lines[q["kind"] + (" boosted" if " boosts=0 " not in answer["playbook_boost"] else " no boost")] += 1
                diffs[q["kind"]].append(got["full"] - got["empty"])
    finally:
        lake._playbooks = full
    flat = lambda d: [v for kind in KINDS for v in d.get(kind, [])]  # noqa: E731
    added = p50(flat(totals["full"])) - p50(flat(totals["empty"]))
    by_kind = {kind: {
        "ms_added": p50(totals["full"][kind]) - p50(totals["empty"][kind]),
        "paired_diff_p50_ms": p50(diffs[kind]),
        "boost_stage_p50_ms": {"full": p50(stage["full"][kind]), "empty": p50(stage["empty"][kind])},
        "total_p50_ms": {"full": p50(totals["full"][kind]), "empty": p50(totals["empty"][kind])},
    } for kind in KINDS if totals["full"].get(kind)}
    return record(
        "memory", "boost_100k_entries", "ms_added", added, rows=len(full),
        paired_diff_p50_ms=p50(flat(diffs)), boost_stage_p50_ms={"full": p50(flat(stage["full"])), "empty": p50(flat(stage["empty"]))},
        total_p50_ms={"full": p50(flat(totals["full"])), "empty": p50(flat(totals["empty"]))},
        by_filter=by_kind, queries=len(chosen), reps=sizes.boost_reps, answers=dict(lines),
    )


# ---------------------------------------------------------------------- area: memory (/memory/query)
class ServerThread:
    """An ASGI app served by a real uvicorn on a free loopback port, in a thread of this process."""

    def __init__(self, app: Any):
        import uvicorn

        # IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY only on sockets that name
        # their protocol, and without it each response waits ~40 ms for a delayed ACK
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the in-process gateway did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()


def places(sample: Sample, n: int, rng: random.Random) -> list[tuple[str, str, str]]:
    """`n` distinct (role, city, state), drawn as the workers are distributed."""
    seen: dict[tuple[str, str, str], None] = {}
    distinct = len(set(sample.rows))
    while len(seen) < min(n, distinct):
        seen.setdefault(rng.choice(sample.rows))
    return list(seen)


def bench_memory_query(lake: Any, run_dir: RunDir, sizes: Sizes, sample: Sample, seed: int) -> dict[str, Any]:
    from fastapi.testclient import TestClient

    from lakehouse.config import ApiKey
    from lakehouse.gateway import create_app as create_gateway
    from mcp_server.app import create_app

    lake.config.gateway.api_keys = [ApiKey(GATEWAY_KEY, "admin", "recruiter-api")]
    calls = places(sample, sizes.memory_calls + 3, random.Random(seed + 7))
    warm, calls = calls[:3], calls[3:]
    with ServerThread(create_gateway(lake, lake.config)) as gateway:
        app = create_app(gateway.url, GATEWAY_KEY, run_dir.root / "recruiter-inproc", api_keys=API_KEYS)
        with TestClient(app) as client:
            def call(role: str, city: str, state: str) -> tuple[float, dict[str, Any]]:
                t = time.perf_counter()
                r = client.post("/memory/query", headers=RECRUITER, json={"role": role, "city": city, "state": state, "k": 10})
                elapsed = (time.perf_counter() - t) * 1000
                if r.status_code != 200:
                    raise RuntimeError(f"/memory/query -> {r.status_code}: {r.text[:300]}")
                return elapsed, r.json()

            for place in warm:
                call(*place)
            cold = [call(*place) for place in calls]  # each place's query text embedded once, here
            again = [call(*place) for place in calls]
    first = [t for t, _ in cold]
    sources = _stage_medians([a for _, a in cold])
    boosted = sum(1 for _, a in cold if a["playbook_workers"])
    return record(
        "memory", "memory_query", "ms", p50(first), rows=len(lake.playbooks), ours_p95=p95(first),
        warm_p50_ms=p50([t for t, _ in again]), warm_p95_ms=p95([t for t, _ in again]), calls=len(first),
        source_latency_p50_ms=sources, calls_with_playbook_workers=boosted,
        wiring="recruiter API in a TestClient -> loopback HTTP -> gateway (uvicorn thread), one process; recruiter-role key",
    )


# ---------------------------------------------------------------------- area: concurrency
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, what: str, headers: dict[str, str], timeout_s: float = 180) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before answering")
        try:
            if httpx.get(url, headers=headers, timeout=2, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not answer {url} within {timeout_s:.0f}s")


@contextlib.contextmanager
def servers(run_dir: RunDir):
    """The gateway and the recruiter API as two uvicorn subprocesses (as systemd runs them)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "MCP_"))}
    gport, mport = _free_port(), _free_port()
    gateway_env = {
        **env, "LAKEHOUSE_API_KEYS": f"{GATEWAY_KEY}:admin:recruiter-api",
        # the agent's background work (inbox, schedules, autotune, compaction) would only add noise
        "LAKEHOUSE_DAEMON_WATCH_INBOX": "false", "LAKEHOUSE_DAEMON_RUN_SCHEDULES": "false",
        "LAKEHOUSE_DAEMON_AUTOTUNE": "false", "LAKEHOUSE_DAEMON_PLAYBOOK_COMPACTION": "false",
    }
    gateway_url, mcp_url = f"http://127.0.0.1:{gport}", f"http://127.0.0.1:{mport}"
    mcp_env = {
        **common.with_pythonpath(env, REPO, REPO / "python"),
        "MCP_GATEWAY_URL": gateway_url, "MCP_API_KEY": GATEWAY_KEY, "MCP_DATA_DIR": str(run_dir.root / "recruiter-http"),
        "MCP_API_KEYS": API_KEYS, "MCP_HOST": "127.0.0.1", "MCP_PORT": str(mport),
    }
    procs: list[subprocess.Popen] = []
    logs = [open(run_dir.root / "gateway.log", "wb"), open(run_dir.root / "mcp_server.log", "wb")]
    try:
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "lakehouse.cli", "--data-dir", str(run_dir.data), "serve", "--host", "127.0.0.1", "--port", str(gport)],
            cwd=run_dir.root, env=gateway_env, stdout=logs[0], stderr=subprocess.STDOUT))
        _wait_http(f"{gateway_url}/health", procs[0], "the gateway", {"X-API-Key": GATEWAY_KEY})
        procs.append(subprocess.Popen([sys.executable, "-m", "mcp_server"], cwd=run_dir.root, env=mcp_env,
                                      stdout=logs[1], stderr=subprocess.STDOUT))
        _wait_http(f"{mcp_url}/health", procs[1], "the recruiter API", RECRUITER)
        yield mcp_url, procs
    finally:
        for proc in reversed(procs):  # only the processes started here, by their handles
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
        for fh in logs:
            fh.close()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _contracts(sample: Sample, n: int, rng: random.Random) -> list[dict[str, Any]]:
    today = dt.date.today()
    out = []
    for _ in range(n):
        role, city, state = rng.choice(sample.rows)
        start = today + dt.timedelta(days=rng.randint(1, 30))
        out.append({"role": role, "city": city, "state": state, "count": rng.randint(1, 4), "start_date": start.isoformat(),
                    "end_date": (start + dt.timedelta(days=rng.randint(0, 14))).isoformat()})
    return out


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def bench_concurrency(run_dir: RunDir, sizes: Sizes, sample: Sample, seed: int) -> dict[str, Any]:
    from lakehouse.client import KeepAliveJSON

    rng = random.Random(seed + 11)
    n = sizes.clients
    with servers(run_dir) as (mcp_url, procs):
        # One keep-alive connection per recruiter, on the standard library's http.client (the
        # recruiter API's own transport to the gateway): the load generator shares the 2
        # cores with both services, and httpx spent ~0.7 ms of CPU per /match where this
        # spends ~0.4 ms (session 10).
        clients = [KeepAliveJSON(mcp_url, RECRUITER["X-API-Key"], timeout_s=120) for _ in range(n)]
        try:
            def one(client: KeepAliveJSON, body: dict[str, Any]) -> tuple[float, int | str, dict[str, Any] | None]:
                """(ms, status, the answer's stage timings): only the timings are kept, so
                the thousands of answers do not pile up in this process (see `no_gc` below)."""
                t = time.perf_counter()
                try:
                    status, _, raw = client.exchange("/match", json.dumps(body).encode())
                    stages = {"latency_ms": json.loads(raw).get("latency_ms")} if status == 200 else None
                except Exception as exc:  # noqa: BLE001 - counted as an error
                    status, stages = type(exc).__name__, None
                return (time.perf_counter() - t) * 1000, status, stages

            for body in _contracts(sample, 5, rng):  # loads the index, the model and the caches in the gateway
                _, status, _ = one(clients[0], body)
                if status != 200:
                    raise RuntimeError(f"warm-up /match -> {status}; see {run_dir.root / 'mcp_server.log'}")

            def burst(per_client: int, think_s: float = 0.0, *, until_s: float | None = None
                      ) -> tuple[list[tuple[float, int | str, dict[str, Any] | None]], float]:
                """`per_client` requests from each client, or (`until_s`) as many as they
                send back to back in that many seconds."""
                plans = [_contracts(sample, per_client, rng) for _ in range(n)]
                pauses = [[rng.expovariate(1 / think_s) if think_s else 0.0 for _ in range(per_client)] for _ in range(n)]
                results: list[list[tuple[float, int | str, dict[str, Any] | None]]] = [[] for _ in range(n)]
                barrier = threading.Barrier(n + 1)

                def worker(i: int) -> None:
                    barrier.wait()
                    if until_s is not None:
                        own, deadline = random.Random(seed * 1000 + i), time.monotonic() + until_s
                        while time.monotonic() < deadline:
                            results[i].append(one(clients[i], _contracts(sample, 1, own)[0]))
                        return
                    for body, pause in zip(plans[i], pauses[i]):
                        time.sleep(pause)
                        results[i].append(one(clients[i], body))

                threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n)]
                for th in threads:
                    th.start()
                barrier.wait()
                t = time.perf_counter()
                for th in threads:
                    th.join()
                return [r for rs in results for r in rs], time.perf_counter() - t

            burst(1)  # warm every connection and both servers' thread pools (not counted)
            # The 20 clients are threads of this process: a collection here stops all of them
            # at once, and with every answer kept it grew to 0.4 s per full pass (session 13),
            # counted as /match latency though no server was involved. The timed loops create
            # no reference cycles (each answer is freed when its timings are taken), so the
            # generator runs them without its collector.
            with no_gc():
                cpu_before = [_cpu_seconds(proc.pid) for proc in procs] + [_own_cpu_seconds()]
                results, wall = burst(sizes.requests_per_client)
                cpu_after = [_cpu_seconds(proc.pid) for proc in procs] + [_own_cpu_seconds()]
                cpu_ms = [(after - before) * 1000 / len(results) for before, after in zip(cpu_before, cpu_after)]
                # the same 20 clients as recruiters: a think time (exponential, mean THINK_S) before each request
                paced, paced_wall = burst(sizes.paced_requests_per_client, THINK_S)
                # and back to back for a while longer: filters, query texts and placements seen
                # before come from memory, as they do for recruiters working the same contracts
                steady_cpu_before = [_cpu_seconds(proc.pid) for proc in procs]
                steady, steady_wall = burst(0, until_s=sizes.steady_s)
                steady_cpu_ms = [(_cpu_seconds(proc.pid) - before) * 1000 / max(1, len(steady))
                                 for proc, before in zip(procs, steady_cpu_before)]
        finally:
            for c in clients:
                c.close()
    latencies = [r[0] for r in results]
    errors = [r[1] for r in results if r[1] != 200]
    answers = [r[2] for r in results if r[2]]
    paced_latencies = [r[0] for r in paced]
    paced_errors = [r[1] for r in paced if r[1] != 200]
    steady_latencies = [r[0] for r in steady]
    return record(
        "concurrency", "match_20_clients", "p95_ms", p95(latencies), rows=len(results),
        p50_ms=p50(latencies), max_ms=max(latencies), errors=len(errors), error_kinds=dict(Counter(map(str, errors))),
        throughput_rps=len(results) / wall, clients=n, requests_per_client=sizes.requests_per_client,
        closed_loop=True, server_latency_p50_ms=_stage_medians(answers),
        cpu_ms_per_request={"gateway": round(cpu_ms[0], 2), "recruiter_api": round(cpu_ms[1], 2),
                            "load_generator": round(cpu_ms[2], 2)},
        paced={"think_s_mean": THINK_S, "requests": len(paced), "p50_ms": p50(paced_latencies), "p95_ms": p95(paced_latencies),
               "max_ms": max(paced_latencies), "errors": len(paced_errors), "throughput_rps": len(paced) / paced_wall,
               "server_latency_p50_ms": _stage_medians([r[2] for r in paced if r[2]])},
        steady={"seconds": sizes.steady_s, "requests": len(steady), "p50_ms": p50(steady_latencies),
                "p95_ms": p95(steady_latencies), "max_ms": max(steady_latencies),
                "errors": sum(1 for r in steady if r[1] != 200), "throughput_rps": len(steady) / steady_wall,
                "cpu_ms_per_request": {"gateway": round(steady_cpu_ms[0], 2), "recruiter_api": round(steady_cpu_ms[1], 2)}},
        wiring="20 threads x keep-alive http.client -> recruiter API (uvicorn subprocess) -> gateway (uvicorn subprocess)",
    )


# ---------------------------------------------------------------------- run
HYBRID_CASES = [("p50", "ms"), ("p95", "ms")]


def run(quick: bool, *, workdir: Path | None = None, seed: int = 42, areas: tuple[str, ...] = AREAS,
        sizes: Sizes | None = None) -> list[dict[str, Any]]:
    """Every case of `areas` as bench/run records. A failing area comes back as records
    with `ours: null` and an `error` field, so the others still report."""
    sizes = sizes or (QUICK if quick else FULL)
    started = time.perf_counter()
    out: list[dict[str, Any]] = []
    load_start = os.getloadavg()[0]
    log(f"{'quick' if quick else 'full'} run of {', '.join(areas)}: {sizes.workers:,} workers, {sizes.playbooks:,} playbooks; "
        f"load average {load_start:.2f}")
    try:
        prepared = prepare(sizes.workers, seed, sizes.playbooks)
    except Exception as exc:
        cases = ([("hybrid", c, m) for c, m in HYBRID_CASES] if "hybrid" in areas else []) + (
            [("memory", "memory_query", "ms"), ("memory", "boost_100k_entries", "ms_added")] if "memory" in areas else []) + (
            [("concurrency", "match_20_clients", "p95_ms")] if "concurrency" in areas else [])
        for area in dict.fromkeys(a for a, _, _ in cases):
            out += _failed(area, [(c, m) for a, c, m in cases if a == area], exc)
        return out
    prep_meta = json.loads((prepared / "meta.json").read_text())
    run_dir = RunDir(prepared, workdir)
    try:
        lake = open_lakehouse(run_dir.data)
        try:
            sample = sample_workers(lake, sizes.workers)
            queries: list[dict[str, Any]] = []
            if "hybrid" in areas:
                log(f"== hybrid: {sizes.hybrid_queries} distinct queries (+ {sizes.cached_queries} cached)")
                try:
                    records, queries = bench_hybrid(lake, sizes, sample, seed)
                    out += records
                    log(f"   p50 {records[0]['ours']} ms, p95 {records[1]['ours']} ms, cached p50 {records[0]['cached_query_p50_ms']} ms")
                except Exception as exc:
                    out += _failed("hybrid", HYBRID_CASES, exc)
            if "memory" in areas:
                log(f"== memory: boost with {len(lake.playbooks):,} playbooks vs none")
                try:
                    if not queries:
                        queries = hybrid_queries(sample, sizes.boost_queries, random.Random(seed + 5))
                    out.append(bench_boost(lake, run_dir, sizes, queries))
                    log(f"   +{out[-1]['ours']} ms per query")
                except Exception as exc:
                    out += _failed("memory", [("boost_100k_entries", "ms_added")], exc)
                log(f"== memory: /memory/query x {sizes.memory_calls}")
                try:
                    out.append(bench_memory_query(lake, run_dir, sizes, sample, seed))
                    log(f"   p50 {out[-1]['ours']} ms (warm {out[-1]['warm_p50_ms']} ms)")
                except Exception as exc:
                    out += _failed("memory", [("memory_query", "ms")], exc)
        finally:
            lake.close()  # the gateway subprocess takes the data directory's lock next
        if "concurrency" in areas:
            log(f"== concurrency: {sizes.clients} clients x {sizes.requests_per_client} /match")
            try:
                rec = bench_concurrency(run_dir, sizes, sample, seed)
                rec["target_met"] = bool(rec["target_met"] and rec["errors"] == 0)
                out.append(rec)
                log(f"   p95 {rec['ours']} ms, p50 {rec['p50_ms']} ms, {rec['errors']} errors, {rec['throughput_rps']} req/s")
            except Exception as exc:
                out += _failed("concurrency", [("match_20_clients", "p95_ms")], exc)
    finally:
        run_dir.remove()
    load_end = os.getloadavg()[0]
    for r in out:
        r.setdefault("workers", sizes.workers)
        r["load_avg_1m"] = {"start": round(load_start, 2), "end": round(load_end, 2)}
        r["prepared"] = {k: prep_meta.get(k) for k in ("distinct_role_skills", "index_build_s", "playbooks")}
    log(f"recruiter bench done in {time.perf_counter() - started:.1f}s (peak RSS {peak_rss_mib()} MiB)")
    return out


def main(argv: list[str]) -> int:
    parser = common.bench_parser(__doc__, AREAS, "bench/run --quick sizes (50K workers)")
    parser.add_argument("--workers", type=int, help="override the number of workers (development)")
    args = parser.parse_args(argv)
    areas = common.parse_only(parser, args.only, AREAS)
    sizes = QUICK if args.quick else FULL
    if args.workers:
        sizes = Sizes(**{**sizes.__dict__, "workers": args.workers})
    return common.run_standalone(lambda: run(args.quick, workdir=args.workdir, seed=args.seed, areas=areas, sizes=sizes),
                                 quick=args.quick, out=args.out, log=log)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
