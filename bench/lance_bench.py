#!/usr/bin/env python3
"""Area `lance`: the Lance vector backend (lakehouse.vectors.lance_backend) against the
same operations done directly with pylance, same dataset, same process, same run.

    .venv/bin/python bench/lance_bench.py [--quick] [--json]     # standalone
    bench/run --only lance                                        # through the harness

Records (shape of bench/run's ``record()``):

* ``build``       metric ``seconds``: ``LanceBackend.build`` (write + IVF_PQ + BTREE on key)
* ``search``      metric ``p50_ms``,  peer ``pylance_direct``: top-10 by cosine, unfiltered
* ``append_100``  metric ``seconds``, peer ``pylance_direct``: ``write_dataset(mode="append")``
* ``fetch_by_id`` metric ``p50_us``,  peer ``pylance_direct``: one vector by key

Data: random unit vectors (100K x 768 full, 10K x 768 quick; the spec's anchors are for
100K x 768). Random vectors are the worst case for IVF_PQ recall (every point is nearly
equidistant from every other), so ``recall_at_10`` of the search record is a floor, not
what embeddings get. Ours and the peer alternate which goes first at every iteration;
every number is a median with p95 alongside.
"""

from __future__ import annotations

import functools
import gc
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa

import common
from common import REPO, no_gc, p50, p95, rnd

try:
    import lakehouse.vectors.lance_backend  # noqa: F401
except ImportError:  # not installed yet (make native): use the source tree
    sys.path.insert(0, str(REPO / "python"))

AREA = "lance"
PEER = "pylance_direct"
K = 10

log = common.Log("lance-bench", clock=False)
# bench/run's record for this area, plus load_avg_1m (other work on the 2 cores skews absolute numbers)
record = functools.partial(common.record, AREA, load_avg=True)


def interleaved(n: int, ours: Callable[[int], Any], peer: Callable[[int], Any], warmup: int) -> tuple[list[float], list[float]]:
    """Seconds per call of ``ours(i)`` and ``peer(i)``, alternating which goes first."""
    for i in range(warmup):
        ours(i)
        peer(i)
    a: list[float] = []
    b: list[float] = []
    with no_gc():
        for i in range(n):
            for side in ((0, 1) if i % 2 == 0 else (1, 0)):
                fn, out = (ours, a) if side == 0 else (peer, b)
                start = time.perf_counter()
                fn(i)
                out.append(time.perf_counter() - start)
    return a, b


def unit_vectors(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def arrow_table(keys: np.ndarray, vectors: np.ndarray, schema: pa.Schema) -> pa.Table:
    flat = pa.array(vectors.reshape(-1), type=pa.float32())
    return pa.Table.from_arrays([pa.array(keys, type=pa.uint64()),
                                 pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])], schema=schema)


def run(quick: bool, seed: int = 42, workdir: Path | None = None) -> list[dict[str, Any]]:
    import lance

    from lakehouse.vectors.lance_backend import LanceBackend

    n, dim = (10_000, 768) if quick else (100_000, 768)
    n_queries, n_fetch, n_appends, warmup = (60, 200, 15, 5) if quick else (200, 300, 51, 10)
    rng = np.random.default_rng(seed)
    # distinct 62-bit keys (like chunk_key's), shared out between the base and the appends
    need = n + 200 * n_appends  # base rows + 100 appended rows per side and repetition
    keys = np.unique(rng.integers(1, 1 << 62, size=need + need // 10, dtype=np.uint64))
    keys = rng.permutation(keys)[:need]
    base_keys, spare_keys = keys[:n], keys[n:]
    vectors = unit_vectors(rng, n, dim)
    queries = unit_vectors(rng, n_queries, dim)
    base = common.temp_dir("lance-bench-", workdir)
    results: list[dict[str, Any]] = []
    try:
        # ------------------------------------------------------------------ build
        log(f"build: {n:,} x {dim} random unit vectors")
        gc.collect()
        start = time.perf_counter()
        ours = LanceBackend.build(base / "ours", base_keys, vectors, {})
        build_s = time.perf_counter() - start
        p = ours.params
        results.append(record("build", "seconds", build_s, rows=n, dim=dim, indexed=ours.indexed,
                              num_partitions=p["num_partitions"], num_sub_vectors=p["num_sub_vectors"],
                              anchor="spec: IVF_PQ build ~16 s (100K x 768)"))
        log(f"  build {build_s:.1f}s ({'IVF_PQ' if ours.indexed else 'no ANN index'}, "
            f"{p['num_partitions']} partitions, {p['num_sub_vectors']} sub-vectors)")
        # the peer gets its own copy of the very same files (appends must not mix)
        shutil.copytree(ours.path, base / "peer")
        peer_ds = lance.dataset(str(base / "peer"))
        ds = ours.dataset  # search and fetch: both sides read the same dataset object

        # ------------------------------------------------------------------ search
        nearest = {"column": "vector", "k": K, "metric": "cosine"}
        if ours.indexed:
            nearest.update(minimum_nprobes=p["nprobes"], refine_factor=p["refine_factor"])
        else:
            nearest["use_index"] = False

        def peer_search(i: int) -> pa.Table:
            return ds.to_table(columns=["key", "_distance"], nearest={**nearest, "q": queries[i]},
                               disable_scoring_autoprojection=True)

        ours_s, peer_s = interleaved(n_queries, lambda i: ours.search(queries[i], K), peer_search, warmup)
        truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :K]
        recall = np.mean([len(set(ours.search(q, K).keys.tolist()) & set(base_keys[truth[i]].tolist())) / K
                          for i, q in enumerate(queries)])
        agree = all(np.array_equal(ours.search(queries[i], K).keys, peer_search(i).column("key").to_numpy())
                    for i in range(min(20, n_queries)))
        results.append(record(
            "search", "p50_ms", p50(ours_s) * 1e3, PEER, p50(peer_s) * 1e3, rows=n,
            ours_p95=rnd(p95(ours_s) * 1e3), peer_p95=rnd(p95(peer_s) * 1e3), iterations=n_queries, k=K,
            path=ours.search(queries[0], K).path, nprobes=p["nprobes"], refine_factor=p["refine_factor"],
            recall_at_10=rnd(float(recall)), agree=agree, data="random unit vectors (IVF_PQ worst case)",
            anchor="spec: 2.2-7.4 ms"))
        log(f"  search p50 ours {p50(ours_s) * 1e3:.2f} ms, direct {p50(peer_s) * 1e3:.2f} ms, "
            f"ratio {p50(ours_s) / p50(peer_s):.3f}, recall@10 {recall:.3f}")

        # ------------------------------------------------------------------ fetch by id
        picks = rng.choice(base_keys, n_fetch)

        def peer_fetch(i: int) -> np.ndarray:
            table = ds.to_table(columns=["vector"], filter=f"key = {int(picks[i])}")
            return table.column("vector").chunk(0).flatten().to_numpy().reshape(-1, dim)

        ours_s, peer_s = interleaved(n_fetch, lambda i: ours.fetch(picks[i:i + 1]), peer_fetch, warmup)
        agree = all(np.array_equal(ours.fetch(picks[i:i + 1]), peer_fetch(i)) for i in range(10))
        results.append(record(
            "fetch_by_id", "p50_us", p50(ours_s) * 1e6, PEER, p50(peer_s) * 1e6, rows=n,
            ours_p95=rnd(p95(ours_s) * 1e6), peer_p95=rnd(p95(peer_s) * 1e6), iterations=n_fetch,
            lookup="BTREE index on key", agree=agree, anchor="spec: ~311 us"))
        log(f"  fetch_by_id p50 ours {p50(ours_s) * 1e6:.0f} us, direct {p50(peer_s) * 1e6:.0f} us, "
            f"ratio {p50(ours_s) / p50(peer_s):.3f}")

        # ------------------------------------------------------------------ append 100 rows
        schema = ds.schema
        batches = [(spare_keys[i * 200:i * 200 + 100], spare_keys[i * 200 + 100:i * 200 + 200],
                    unit_vectors(rng, 100, dim)) for i in range(n_appends)]
        ours_s, peer_s = [], []
        state = {"peer": peer_ds}
        for i, (ours_keys, peer_keys, new) in enumerate(batches):
            for side in (("ours", "peer") if i % 2 == 0 else ("peer", "ours")):
                with no_gc():
                    start = time.perf_counter()
                    if side == "ours":
                        ours.append(ours_keys, new)
                        ours_s.append(time.perf_counter() - start)
                    else:
                        state["peer"] = lance.write_dataset(arrow_table(peer_keys, new, schema), str(base / "peer"),
                                                            mode="append")
                        peer_s.append(time.perf_counter() - start)
        found = ours.search(batches[-1][2][0], 1).keys[0] == batches[-1][0][0]
        results.append(record(
            "append_100", "seconds", p50(ours_s), PEER, p50(peer_s), rows=100, digits=5,
            ours_p95=rnd(p95(ours_s), 5), peer_p95=rnd(p95(peer_s), 5), iterations=n_appends,
            base_rows=n, versions=[ours.version, state["peer"].version], appended_row_found=bool(found),
            anchor="spec: 0.08 s"))
        log(f"  append_100 p50 ours {p50(ours_s) * 1e3:.1f} ms, direct {p50(peer_s) * 1e3:.1f} ms, "
            f"ratio {p50(ours_s) / p50(peer_s):.3f}; appended row found: {found}")
    finally:
        shutil.rmtree(base, ignore_errors=True)  # the directory mkdtemp made above, nothing else
    return results


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10K vectors instead of 100K")
    parser.add_argument("--json", action="store_true", help="print the records as one JSON list")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--workdir", type=Path, help="parent of the temporary dataset directory")
    args = parser.parse_args(argv)
    results = run(args.quick, seed=args.seed, workdir=args.workdir)
    if args.json:
        print(json.dumps(results, allow_nan=False))
    else:
        for r in results:
            print(f"{r['case']:<12} {r['metric']:<8} ours {r['ours']:>10}  {r['peer'] or '-':<15} "
                  f"{r['peer_value'] if r['peer_value'] is not None else '-':>10}  ratio {r['ratio']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
