"""The Lance vector backend (python/lakehouse/vectors/lance_backend.py) against exact numpy
search, on real Lance datasets on disk.

The data is embedding-like: unit vectors drawn around 60 cluster centres (what sentence
embeddings look like), not uniform random vectors, on which no IVF/PQ index can be
meaningfully evaluated (every point is nearly equidistant from every other). Sizes are
kept small for the 2-core machine; ``exact_threshold`` is lowered so that the IVF_PQ
path really runs on 3,000 rows.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("lance")

from lakehouse.vectors.backend import SearchResult, chunk_key  # noqa: E402
from lakehouse.vectors.lance_backend import LanceBackend, choose_params, lance_overrides  # noqa: E402

N, DIM, K = 3_000, 384, 10
PARAMS = {"exact_threshold": 1_000, "exact_filter_threshold": 200}


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def clustered(n: int, dim: int, seed: int, centres: int = 60) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, dim), dtype=np.float32)
    return unit(c[rng.integers(0, centres, n)] + rng.standard_normal((n, dim), dtype=np.float32))


def keys_for(prefix: str, n: int) -> np.ndarray:
    return np.array([chunk_key(f"{prefix}-{i}#0") for i in range(n)], dtype=np.uint64)


def exact_top(vectors: np.ndarray, keys: np.ndarray, q: np.ndarray, k: int, mask: np.ndarray | None = None):
    scores = vectors @ q
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    order = np.argsort(-scores, kind="stable")[: min(k, int(np.isfinite(scores).sum()))]
    return keys[order], scores[order]


def queries(vectors: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Queries near stored vectors (a paraphrase of a stored profile), not copies of them."""
    rng = np.random.default_rng(seed)
    picks = vectors[rng.choice(len(vectors), n, replace=False)]
    return unit(picks + 0.5 * rng.standard_normal(picks.shape, dtype=np.float32) / np.sqrt(picks.shape[1]))


def recall(got: np.ndarray, truth: np.ndarray) -> float:
    return len(set(got.tolist()) & set(truth.tolist())) / max(len(truth), 1)


def file_states(root: Path) -> dict[str, tuple[int, int, str]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def corpus():
    return keys_for("worker", N), clustered(N, DIM, seed=7)


@pytest.fixture(scope="module")
def built(tmp_path_factory, corpus):
    keys, vectors = corpus
    path = tmp_path_factory.mktemp("lance") / "v1"
    return LanceBackend.build(path, keys, vectors, PARAMS)


@pytest.fixture
def copy_of_built(built, tmp_path) -> Path:
    """A private copy of the built version, for tests that write to it."""
    target = tmp_path / "v1-copy"
    shutil.copytree(built.path, target)
    return target


def test_build_then_search_finds_each_stored_vector_as_its_own_nearest_neighbour(built, corpus):
    keys, vectors = corpus
    assert built.name == "lance" and len(built) == N and built.indexed
    for i in np.random.default_rng(1).choice(N, 25, replace=False):
        result = built.search(vectors[i], K)
        assert isinstance(result, SearchResult)
        assert result.path == "lance_ivf_pq"
        assert result.keys.dtype == np.uint64 and result.scores.dtype == np.float32
        assert result.keys[0] == keys[i]
        assert result.scores[0] == pytest.approx(1.0, abs=1e-4)
        assert len(result.keys) == K and result.shortfall == 0 and result.candidates is None
        assert np.all(np.diff(result.scores) <= 1e-6)  # best first


def test_search_recall_at_10_is_at_least_0_9_against_exact_numpy_search(built, corpus):
    keys, vectors = corpus
    index_of = {int(k): i for i, k in enumerate(keys)}
    recalls = []
    for q in queries(vectors, 40, seed=2):
        result = built.search(q, K)
        truth, _ = exact_top(vectors, keys, q, K)
        recalls.append(recall(result.keys, truth))
        # refine re-ranks with the stored vectors: scores are the true cosine similarities
        stored = vectors[[index_of[int(k)] for k in result.keys]]
        np.testing.assert_allclose(result.scores, stored @ q, atol=1e-5)
    assert np.mean(recalls) >= 0.9, f"recall@10 {np.mean(recalls):.3f}"


def test_index_below_the_size_threshold_is_searched_exactly_and_says_so(tmp_path):
    keys, vectors = keys_for("small", 500), clustered(500, 64, seed=3)
    backend = LanceBackend.build(tmp_path / "small", keys, vectors, {})
    assert not backend.indexed
    for q in queries(vectors, 10, seed=4):
        result = backend.search(q, K)
        truth, truth_scores = exact_top(vectors, keys, q, K)
        assert result.path == "exact" and "exact_threshold" in result.details["reason"]
        assert result.keys.tolist() == truth.tolist()
        np.testing.assert_allclose(result.scores, truth_scores, atol=1e-5)


# exact scan of the allowed set; IVF_PQ with a prefilter "key IN (...)"; with "key NOT IN
# (the few others)" when that list is shorter; with no filter when every key is allowed
@pytest.mark.parametrize("size", [20, 150, 1_500, 2_990, N])
def test_allowed_set_filter_never_returns_a_key_outside_the_set_and_returns_k_when_k_exist(built, corpus, size):
    keys, vectors = corpus
    rng = np.random.default_rng(size)
    recalls = []
    for q in queries(vectors, 10, seed=size):
        allowed = rng.choice(keys, size, replace=False)
        result = built.search(q, K, allowed=allowed)
        assert set(result.keys.tolist()) <= set(allowed.tolist())
        assert len(result.keys) == K and result.shortfall == 0 and result.candidates == size
        assert result.details["prefilter"] is True
        assert result.details["filter"] == ("none" if size == N else "not_in" if size > N / 2 else "in")
        assert result.path == ("exact" if size <= PARAMS["exact_filter_threshold"] else "lance_ivf_pq_filtered")
        truth, _ = exact_top(vectors, keys, q, K, mask=np.isin(keys, allowed))
        recalls.append(recall(result.keys, truth))
    if size <= PARAMS["exact_filter_threshold"]:
        assert min(recalls) == 1.0
    else:
        assert np.mean(recalls) >= 0.9, f"filtered recall@10 {np.mean(recalls):.3f}"


def test_allowed_set_with_fewer_than_k_keys_in_the_index_reports_the_shortfall(built, corpus):
    keys, vectors = corpus
    unknown = keys_for("not-indexed", 4)
    allowed = np.concatenate([keys[[5, 50, 500]], unknown])
    result = built.search(vectors[0], K, allowed=allowed)
    assert sorted(result.keys.tolist()) == sorted(keys[[5, 50, 500]].tolist())
    assert result.shortfall == K - 3 and result.candidates == 3
    nothing = built.search(vectors[0], K, allowed=unknown)
    assert len(nothing.keys) == 0 and nothing.shortfall == K and nothing.candidates == 0
    everything = built.search(vectors[0], N + 5)
    assert len(everything.keys) == N and everything.shortfall == 5


def test_append_of_100_rows_rewrites_no_existing_file_and_the_new_rows_are_found(copy_of_built, corpus):
    backend = LanceBackend.open(copy_of_built)
    before_files = file_states(copy_of_built / "data")
    before_version = backend.version
    new_keys, new_vectors = keys_for("appended", 100), clustered(100, DIM, seed=11, centres=5)

    backend.append(new_keys, new_vectors)

    after_files = file_states(copy_of_built / "data")
    for name, state in before_files.items():
        assert after_files.get(name) == state, f"data file {name} was rewritten or removed"
    assert len(after_files) > len(before_files)  # a new fragment
    assert backend.version > before_version and len(backend) == N + 100
    for i in range(0, 100, 7):  # found by the unfiltered ANN search (flat scan of the new fragment) ...
        result = backend.search(new_vectors[i], K)
        assert result.path == "lance_ivf_pq" and result.keys[0] == new_keys[i]
    # ... by a filtered search, and by fetch; and by a reader opening the directory afresh
    result = backend.search(new_vectors[3], K, allowed=np.concatenate([new_keys, corpus[0][:300]]))
    assert result.keys[0] == new_keys[3] and result.path == "lance_ivf_pq_filtered"
    np.testing.assert_array_equal(backend.fetch(new_keys[[9, 2]]), new_vectors[[9, 2]])
    reopened = LanceBackend.open(copy_of_built)
    assert len(reopened) == N + 100 and reopened.version == backend.version
    assert reopened.search(new_vectors[42], 1).keys[0] == new_keys[42]


def test_append_refuses_keys_that_are_already_indexed(copy_of_built, corpus):
    keys, vectors = corpus
    backend = LanceBackend.open(copy_of_built)
    version = backend.version
    with pytest.raises(ValueError, match="already in the index"):
        backend.append(keys[:2], vectors[:2])
    with pytest.raises(ValueError, match="not unique"):
        backend.append(keys_for("dup", 1).repeat(2), vectors[:2])
    assert backend.version == version and len(backend) == N


def test_optimize_folds_appended_rows_into_the_index_without_rewriting_data(copy_of_built):
    backend = LanceBackend.open(copy_of_built)
    new_keys, new_vectors = keys_for("later", 300), clustered(300, DIM, seed=12)
    backend.append(new_keys, new_vectors)
    data_before = file_states(copy_of_built / "data")
    backend.optimize()
    assert file_states(copy_of_built / "data") == data_before
    assert backend.index_rows() == {"vector_idx": N + 300, "key_idx": N + 300}
    assert backend.search(new_vectors[5], K).keys[0] == new_keys[5]


def test_fetch_by_key_returns_the_stored_vectors_through_the_key_index(built, corpus):
    keys, vectors = corpus
    picks = [17, 2_999, 0, 17, 1_234]  # any order, repeats allowed
    fetched = built.fetch(keys[picks])
    assert fetched.dtype == np.float32 and fetched.shape == (len(picks), DIM)
    np.testing.assert_array_equal(fetched, vectors[picks])
    one = built.fetch(keys[[8]])
    np.testing.assert_array_equal(one, vectors[[8]])
    one *= 2  # the caller owns what it gets (not a read-only view of Lance's buffer)
    assert built.fetch(np.empty(0, np.uint64)).shape == (0, DIM)
    with pytest.raises(KeyError):
        built.fetch(np.concatenate([keys[:2], keys_for("missing", 1)]))
    plan = built.dataset.scanner(columns=["key", "vector"], filter=f"key = {int(keys[17])}").explain_plan()
    assert "key_idx" in plan  # answered by the BTREE index, not a scan


def test_open_after_build_gives_identical_results(built, corpus):
    keys, vectors = corpus
    reopened = LanceBackend.open(built.path)
    assert len(reopened) == len(built) and reopened.params == built.params and reopened.indexed
    rng = np.random.default_rng(5)
    allowed = rng.choice(keys, 800, replace=False)
    for q in queries(vectors, 8, seed=6):
        for a in (None, allowed, allowed[:50]):
            one, two = built.search(q, K, allowed=a), reopened.search(q, K, allowed=a)
            assert one.keys.tolist() == two.keys.tolist() and one.path == two.path
            np.testing.assert_array_equal(one.scores, two.scores)
    np.testing.assert_array_equal(reopened.fetch(keys[:20]), built.fetch(keys[:20]))


def test_build_refuses_to_overwrite_an_existing_version(built, corpus):
    keys, vectors = corpus
    with pytest.raises(FileExistsError):
        LanceBackend.build(built.path, keys[:10], vectors[:10], {})


def test_parameters_are_chosen_from_the_data_size():
    big = choose_params(100_000, 768)
    assert big["indexed"] and big["num_partitions"] == 316 and 768 % big["num_sub_vectors"] == 0
    assert big["num_sub_vectors"] == 96 and big["nprobes"] == 16
    assert choose_params(20_000, 384)["num_sub_vectors"] == 48  # 8-d sub-vectors at 384-d
    assert choose_params(20_000, 384)["num_partitions"] == 141
    assert choose_params(20_000, 384, {"sample_rate": 256})["num_partitions"] == 78  # Lance trains one per 256 rows
    assert not choose_params(9_999, 384)["indexed"]
    assert 100 % choose_params(50_000, 100)["num_sub_vectors"] == 0
    with pytest.raises(ValueError):
        choose_params(50_000, 384, {"num_sub_vectors": 7})
    with pytest.raises(ValueError):
        choose_params(50_000, 384, {"metric": "L2"})


def test_params_in_the_index_managers_shape_are_understood(tmp_path, corpus):
    keys, vectors = corpus
    manager_params = {"hnsw": {"connectivity": 16}, "planner": {"exact_max_candidates": 20_000}, "threads": 2,
                      "mmap": True, "dim": DIM, "lance": {"exact_threshold": 100_000, "refine_factor": 5}}
    assert lance_overrides(manager_params) == {"exact_threshold": 100_000, "refine_factor": 5}
    backend = LanceBackend.build(tmp_path / "v", keys[:500], vectors[:500], manager_params)
    assert not backend.indexed and backend.params["refine_factor"] == 5
    reopened = LanceBackend.open(tmp_path / "v", {**manager_params, "lance": {"refine_factor": 30, "nprobes": 4}})
    assert reopened.params["refine_factor"] == 30 and reopened.params["nprobes"] == 4
    assert reopened.params["exact_threshold"] == 100_000  # build-time settings stay as built
    with pytest.raises(ValueError):
        LanceBackend.build(tmp_path / "w", keys[:10], vectors[:10], {"lance": {"nprobs": 3}})
    with pytest.raises(ValueError):
        LanceBackend.build(tmp_path / "x", keys[:10], vectors[:10], {"dim": DIM + 1})
    empty = LanceBackend.build(tmp_path / "empty", np.empty(0, np.uint64), np.empty(0, np.float32), {"dim": DIM})
    assert len(empty) == 0 and empty.dim == DIM and empty.search(vectors[0], K).shortfall == K
