"""Vector indexes end to end with the real MiniLM model: build, planned search,
incremental refresh, versions (promote / rollback / restart), gateway and CLI."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pytest

from lakehouse import Lakehouse
from lakehouse.errors import InvalidInput, NotFound

PROFILES = [
    ("w1", "Welder", "Certified MIG and TIG welder, structural steel, pipe fitting, OSHA-10"),
    ("w2", "Forklift operator", "Forklift driver, warehouse loading docks, pallet jack, night shift"),
    ("w3", "Registered nurse", "ICU registered nurse, telemetry, patient care, BLS certified"),
    ("w4", "Electrician", "Journeyman electrician, conduit bending, panel installs, wiring"),
    ("w5", "Line cook", "Line cook, grill and saute station, kitchen prep, food safety"),
    ("w6", "Carpenter", "Framing carpenter, drywall, finish carpentry, blueprint reading"),
    ("w7", "Truck driver", "CDL class A truck driver, long haul, clean driving record"),
    ("w8", "Accountant", "Staff accountant, payroll, reconciliations, QuickBooks, Excel"),
]


def profiles_table(rows=PROFILES) -> pa.Table:
    return pa.table({
        "worker_id": [r[0] for r in rows],
        "role": [r[1] for r in rows],
        "bio": [r[2] for r in rows],
    })


@pytest.fixture
def indexed(lh: Lakehouse) -> Lakehouse:
    lh.ingest_table(profiles_table(), "workers")
    lh.vectors.create("workers", ["role", "bio"], "worker_id")
    return lh


def top_doc(lh: Lakehouse, query: str, **kwargs) -> str:
    return lh.vectors.search("workers", query, 3, **kwargs)["hits"][0]["doc_id"]


def test_search_ranks_the_semantically_matching_profile_first(indexed: Lakehouse):
    assert top_doc(indexed, "someone who can weld steel beams") == "w1"
    assert top_doc(indexed, "hospital nursing staff") == "w3"
    assert top_doc(indexed, "semi truck CDL") == "w7"


def test_filtered_search_stays_inside_the_filter_and_reports_the_shortfall(indexed: Lakehouse):
    result = indexed.vectors.search("workers", "welder", 5, doc_ids=["w2", "w5", "w9-unknown"])
    assert {h["doc_id"] for h in result["hits"]} == {"w2", "w5"}
    assert result["shortfall"] == 3
    assert result["path"] == "exact"


def test_an_empty_filter_returns_nothing_and_says_so(indexed: Lakehouse):
    result = indexed.vectors.search("workers", "welder", 4, doc_ids=[])
    assert result["hits"] == [] and result["shortfall"] == 4


def test_refresh_embeds_only_new_rows_and_clears_the_stale_flag(indexed: Lakehouse):
    new = [("w9", "Welder", "Underwater welder, commercial diving, hyperbaric welding"), ("w10", "Baker", "Pastry baker, bread, croissants")]
    indexed.ingest_table(profiles_table(new), "workers")
    assert indexed.dataset("workers")["embeddings_stale"] is True
    result = indexed.vectors.refresh("workers")
    assert (result["status"], result["embedded"], result["version"], result["rows"]) == ("refreshed", 2, 2, 10)
    assert indexed.dataset("workers")["embeddings_stale"] is False
    assert top_doc(indexed, "scuba diving welder") == "w9"
    again = indexed.vectors.refresh("workers")
    assert again["status"] == "unchanged" and again["embedded"] == 0


def test_rows_appended_before_a_refresh_are_searched_by_brute_force(indexed: Lakehouse):
    indexed.ingest_table(profiles_table([("w11", "Beekeeper", "Apiary beekeeper, honey harvesting, hive inspections")]), "workers")
    result = indexed.vectors.search("workers", "honey bees", 3)
    assert result["unindexed_searched"] == 1
    assert result["hits"][0]["doc_id"] == "w11"
    assert result["version"] == 1, "no refresh ran: the index itself is unchanged"


def test_edited_text_is_re_embedded_and_deleted_rows_leave_the_index(indexed: Lakehouse):
    indexed.update_rows("workers", "worker_id", "w8", {"bio": "Beekeeper tending hives and harvesting honey"})
    indexed.delete_rows("workers", "worker_id", "w5")
    result = indexed.vectors.refresh("workers")
    assert (result["embedded"], result["removed"]) == (1, 1)
    assert top_doc(indexed, "honey bees") == "w8"
    docs = {h["doc_id"] for h in indexed.vectors.search("workers", "line cook grill", 8)["hits"]}
    assert "w5" not in docs


def test_rollback_restores_the_previous_version_and_survives_a_restart(tmp_path: Path):
    with Lakehouse(tmp_path / "data", actor="tester") as lh:
        lh.ingest_table(profiles_table(), "workers")
        lh.vectors.create("workers", ["role", "bio"], "worker_id")
        lh.ingest_table(profiles_table([("w12", "Beekeeper", "Apiary beekeeper, honey harvesting")]), "workers")
        lh.vectors.refresh("workers")
        started = time.perf_counter()
        back = lh.vectors.rollback("workers")
        rollback_ms = (time.perf_counter() - started) * 1000
        assert (back["from"], back["to"]) == (2, 1)
        assert rollback_ms < 1000
        before = lh.vectors.search("workers", "honey bees", 3, include_unindexed=False)
    with Lakehouse(tmp_path / "data", actor="tester") as lh:
        assert lh.vectors.versions("workers")["active"] == 1
        after = lh.vectors.search("workers", "honey bees", 3, include_unindexed=False)
        assert [h["doc_id"] for h in after["hits"]] == [h["doc_id"] for h in before["hits"]]
        assert "w12" not in [h["doc_id"] for h in after["hits"]]


def test_promotion_is_atomic_under_concurrent_searches(indexed: Lakehouse):
    indexed.ingest_table(profiles_table([("w13", "Beekeeper", "Apiary beekeeper, honey harvesting, hive inspections")]), "workers")
    indexed.vectors.refresh("workers")  # v2 holds w13, v1 does not
    vectors = indexed.vectors
    query = vectors.embed_query("honey bees and hives")
    errors: list[BaseException] = []
    seen: dict[int, int] = {1: 0, 2: 0}
    stop = threading.Event()

    def searcher() -> None:
        while not stop.is_set():
            try:
                result = vectors.search("workers", query, 3, include_unindexed=False)
                top = result["hits"][0]["doc_id"]
                # A mixed result would pair one version's number with the other's contents.
                assert (top == "w13") == (result["version"] == 2), result
                seen[result["version"]] += 1
            except BaseException as e:  # noqa: BLE001 - collected and re-raised below
                errors.append(e)
                return

    threads = [threading.Thread(target=searcher) for _ in range(3)]
    for t in threads:
        t.start()
    for _ in range(20):
        vectors.rollback("workers")
        vectors.promote("workers", 2)
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert seen[1] and seen[2], seen


def test_embeddings_store_is_a_table_pyarrow_can_read(indexed: Lakehouse):
    files = list(indexed.vectors.embeddings_location("workers").glob("*.parquet"))
    assert files
    table = pads.dataset(files, format="parquet").to_table()
    assert set(table.column_names) >= {"doc_id", "chunk_id", "chunk_text", "vector", "model", "content_hash", "embedded_at"}
    assert table.num_rows == len(PROFILES)
    row = table.filter(pads.field("doc_id") == "w1").to_pylist()[0]
    assert row["chunk_id"] == "w1#0" and row["model"] == "all-MiniLM-L6-v2"
    assert abs(np.linalg.norm(np.array(row["vector"])) - 1.0) < 1e-4


def test_filtered_search_ranks_exactly_from_the_contiguous_rows_of_every_version(indexed: Lakehouse):
    store = pads.dataset(list(indexed.vectors.embeddings_location("workers").glob("*.parquet")), format="parquet").to_table()
    vectors = {r["doc_id"]: np.array(r["vector"], np.float32) for r in store.to_pylist()}
    query = indexed.vectors.embed_query("warehouse or kitchen work")
    allowed = ["w2", "w5", "w6", "w8", "w9-unknown"]
    expected = sorted((d for d in allowed if d in vectors), key=lambda d: -float(vectors[d] @ query))
    assert indexed.vectors.active("workers").backend._inner.rows_held == len(PROFILES), "the exact path must not ask usearch per key"
    assert indexed.vectors.active("workers").backend._inner.traversal in ("copy", "copying"), "gathered in the background"
    indexed.vectors.active("workers").backend._inner.wait_for_graph_copy()
    assert indexed.vectors.active("workers").backend._inner.traversal == "copy", "graph searches run on the core's copy"
    result = indexed.vectors.search("workers", query, 4, doc_ids=pa.array(allowed))
    assert result["path"] == "exact" and [h["doc_id"] for h in result["hits"]] == expected
    indexed.ingest_table(profiles_table([("w9", "Cook", "Prep cook, dish pit, kitchen cleaning")]), "workers")
    indexed.vectors.refresh("workers")  # a segment over the same graph: its rows are shared, the new one is in the segment
    assert indexed.vectors.active("workers").backend._inner.rows_held == len(PROFILES)
    indexed.vectors.active("workers").backend._inner.wait_for_graph_copy()
    assert indexed.vectors.active("workers").backend._inner.traversal == "copy"
    hits = indexed.vectors.search("workers", "kitchen cleaning", 2, doc_ids=pa.array(["w9", "w5", "w1"]))["hits"]
    assert [h["doc_id"] for h in hits] == ["w9", "w5"]


def test_long_texts_are_chunked_and_found_by_any_chunk(lh: Lakehouse):
    office = "Office administrator: scheduling, filing, phones, invoices, data entry, calendar management. "
    rows = [("d1", "Resume", office * 20 + "Also an expert in hyperbaric underwater welding and diving."),
            ("d2", "Resume", "pastry chef and baker")]
    lh.vectors.config.chunk_words, lh.vectors.config.chunk_overlap = 40, 8
    lh.ingest_table(profiles_table(rows), "docs")
    lh.vectors.create("docs", ["bio"], "worker_id")
    chunks = lh.vectors.active("docs").chunks_per_doc
    assert chunks.get("d1", 1) > 1
    result = lh.vectors.search("docs", "underwater welding", 2)
    assert result["hits"][0]["doc_id"] == "d1"
    assert len({h["doc_id"] for h in result["hits"]}) == len(result["hits"]), "one hit per document"


def test_bad_definitions_are_refused_before_any_work(indexed: Lakehouse):
    with pytest.raises(InvalidInput, match="no column"):
        indexed.vectors.create("workers", ["nope"], "worker_id", name="other")
    with pytest.raises(InvalidInput, match="already exists"):
        indexed.vectors.create("workers", ["bio"], "worker_id")
    with pytest.raises(NotFound):
        indexed.vectors.search("missing", "x")


@pytest.mark.parametrize("quantization", ["bf16", "f16", "i8"])
def test_a_quantized_graph_ranks_like_the_f32_one_and_reopens_as_itself(lh: Lakehouse, quantization: str):
    lh.ingest_table(profiles_table(), "workers")
    lh.vectors.create("workers", ["role", "bio"], "worker_id", name="exact")
    lh.vectors.create("workers", ["role", "bio"], "worker_id", name="small", hnsw={"quantization": quantization})
    for query in ("someone who can weld steel beams", "hospital nursing staff", "semi truck CDL"):
        exact, small = (lh.vectors.search(n, query, 3)["hits"] for n in ("exact", "small"))
        assert small[0]["doc_id"] == exact[0]["doc_id"]
        assert small[0]["score"] == pytest.approx(exact[0]["score"], abs=0.03)  # the storage's rounding
    assert lh.vectors.versions("small")["versions"][-1]["params"]["quantization"] == quantization
    # the graph opened from disk holds the quantized rows (its kernel is not the f32 one)
    assert not lh.vectors.active("small").backend._inner.simd.startswith("lakehouse-f32")
    assert lh.vectors.active("exact").backend._inner.simd.startswith("lakehouse-f32")
    # only f32 graphs are copied for our own traversal; the others keep usearch's kernels
    for name in ("exact", "small"):
        lh.vectors.active(name).backend._inner.wait_for_graph_copy()
    assert (lh.vectors.active("exact").backend._inner.traversal, lh.vectors.active("small").backend._inner.traversal) == ("copy", "usearch")
    for bad, why in (({"quantization": "f8"}, "unknown variant `f8`"), ({"quantisation": "bf16"}, "unknown HNSW setting")):
        with pytest.raises(InvalidInput, match=why):
            lh.vectors.create("workers", ["bio"], "worker_id", name="odd", hnsw=bad)
        assert not (lh.path / "_vectors" / "odd").exists(), "refused before anything is written"


def test_a_lance_backed_index_answers_with_the_same_shape(lh: Lakehouse):
    lh.ingest_table(profiles_table(), "workers")
    built = lh.vectors.create("workers", ["role", "bio"], "worker_id", backend="lance")
    assert built["version"] == 1
    result = lh.vectors.search("workers", "someone who can weld steel beams", 3)
    assert result["hits"][0]["doc_id"] == "w1"
    assert set(result) >= {"index", "version", "path", "candidates", "shortfall", "hits", "latency_ms"}
    filtered = lh.vectors.search("workers", "welder", 5, doc_ids=["w2", "w5"])
    assert {h["doc_id"] for h in filtered["hits"]} == {"w2", "w5"} and filtered["shortfall"] == 3
    lh.ingest_table(profiles_table([("w9", "Welder", "Underwater welder, commercial diving")]), "workers")
    refreshed = lh.vectors.refresh("workers")
    assert refreshed["version"] == 2
    assert lh.vectors.search("workers", "scuba diving welder", 1)["hits"][0]["doc_id"] == "w9"


def test_searches_keep_the_old_version_while_a_refresh_builds(indexed: Lakehouse):
    indexed.ingest_table(profiles_table([("w14", "Beekeeper", "Apiary beekeeper, honey harvesting")]), "workers")
    embedding, release = threading.Event(), threading.Event()

    def progress(done: int, total: int) -> None:
        embedding.set()
        assert release.wait(60)

    job = indexed.vectors.jobs.submit("refresh", "workers", lambda _: indexed.vectors.refresh("workers", progress=progress))
    assert embedding.wait(60), job.to_dict()
    during = indexed.vectors.search("workers", "honey bees", 3)
    assert during["version"] == 1, "the old version keeps serving"
    assert during["unindexed_searched"] == 1 and during["hits"][0]["doc_id"] == "w14"
    release.set()
    assert job.finished.wait(120) and job.status == "succeeded", job.to_dict()
    after = indexed.vectors.search("workers", "honey bees", 3)
    assert (after["version"], after["unindexed_searched"], after["hits"][0]["doc_id"]) == (2, 0, "w14")


def test_a_small_refresh_writes_a_segment_and_a_large_one_folds_it_into_a_new_graph(tmp_path: Path):
    with Lakehouse(tmp_path / "data", actor="tester") as lh:
        lh.ingest_table(profiles_table(), "workers")
        lh.vectors.create("workers", ["role", "bio"], "worker_id")
        index_dir = lh.vectors.root / "workers"
        lh.ingest_table(profiles_table([("w20", "Beekeeper", "Apiary beekeeper, honey harvesting, hive inspections")]), "workers")
        lh.update_rows("workers", "worker_id", "w8", {"bio": "Glassblower shaping molten glass into vases"})
        lh.delete_rows("workers", "worker_id", "w5")
        lh.vectors.refresh("workers")
        v2 = index_dir / "v2"
        assert (v2 / "segment.bin").is_file() and not (v2 / "index.usearch").exists(), "a small refresh re-saved the whole graph"
        assert (index_dir / "v1" / "index.usearch").is_file()
        assert top_doc(lh, "honey bees") == "w20"
        assert top_doc(lh, "molten glass art") == "w8", "the re-embedded profile must be scored by its new text"
        every = {h["doc_id"] for h in lh.vectors.search("workers", "line cook grill", 20)["hits"]}
        assert "w5" not in every and len(every) == 8
        filtered = lh.vectors.search("workers", "honey", 3, doc_ids=["w20", "w5", "w1"])
        assert [h["doc_id"] for h in filtered["hits"]][0] == "w20" and filtered["shortfall"] == 1
        segment_answer = lh.vectors.search("workers", "beekeeping", 8)["hits"]

    with Lakehouse(tmp_path / "data", actor="tester") as lh:  # a restart reads graph + segment back
        assert lh.vectors.search("workers", "beekeeping", 8)["hits"] == segment_answer
        lh.vectors.config.segment_max_rows = 2
        lh.ingest_table(profiles_table([("w21", "Roofer", "Shingle roofer"), ("w22", "Painter", "House painter"),
                                        ("w23", "Plumber", "Licensed plumber, pipe repair")]), "workers")
        lh.vectors.refresh("workers")
        v3 = lh.vectors.root / "workers" / "v3"
        assert (v3 / "index.usearch").is_file() and not (v3 / "segment.bin").exists(), "past the budget the segment is folded"
        assert top_doc(lh, "fix a leaking pipe") == "w23"
        assert top_doc(lh, "honey bees") == "w20"
        assert "w5" not in {h["doc_id"] for h in lh.vectors.search("workers", "line cook grill", 20)["hits"]}
        assert len(lh.vectors.search("workers", "anyone", 50)["hits"]) == 11
