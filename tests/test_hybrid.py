"""Hybrid search and playbook memory through the facade, with the real model."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from lakehouse import Lakehouse
from hypothesis import given, settings
from hypothesis import strategies as st

from lakehouse.errors import InvalidInput
from lakehouse.intelligence.hybrid import FREE_OUTCOMES, HybridQuery, _booked_ids, _bookings_sql, _could_enter_top_k, hybrid_search

TODAY = date.today()

WORKERS = [
    # id, name, role, city, state, reliability, certifications, profile
    (1, "Ana Ruiz", "Welder", "Toledo", "OH", 0.91, "OSHA-10, AWS D1.1", "MIG and TIG welder, structural steel"),
    (2, "Bo Chen", "Welder", "Toledo", "OH", 0.88, "OSHA-10", "MIG and TIG welder, structural steel"),
    (3, "Cy Diaz", "Welder", "Toledo", "OH", 0.75, "", "pipe welder, stick welding"),
    (4, "Di Evans", "Welder", "Akron", "OH", 0.95, "OSHA-30", "MIG and TIG welder, structural steel"),
    (5, "Ed Fox", "Electrician", "Toledo", "OH", 0.90, "OSHA-10", "commercial electrician, conduit"),
    (6, "Ana Ruiz", "Welder", "Toledo", "OH", 0.60, "", "flux core welder, farm equipment repair"),
]


def workers_table(rows=WORKERS) -> pa.Table:
    cols = list(zip(*rows))
    return pa.table({
        "worker_id": pa.array(cols[0], pa.int64()), "name": list(cols[1]), "role": list(cols[2]), "city": list(cols[3]),
        "state": list(cols[4]), "reliability": list(cols[5]), "certifications": list(cols[6]), "profile": list(cols[7]),
        "archetype": ["leader" if i % 2 else "steady" for i in cols[0]],
    })


@pytest.fixture
def lake(tmp_path: Path):
    with Lakehouse(tmp_path / "data", actor="sarah") as lh:
        lh.ingest_table(workers_table(), "workers")
        lh.vectors.create("workers", ["role", "certifications", "profile"], "worker_id")
        yield lh


def search(lake: Lakehouse, **kwargs):
    args = {"query": "structural steel welder", "role": "Welder", "city": "Toledo", "state": "OH", "k": 5} | kwargs
    return hybrid_search(lake, HybridQuery(**args))


def ranking(result) -> list[str]:
    return [s["worker_id"] for s in result["sources"]]


def test_sql_filter_then_semantic_rank_with_reasons_and_stage_latencies(lake: Lakehouse):
    result = search(lake)
    assert result["sql_matches"] == 4  # welders in Toledo (ids 1, 2, 3, 6)
    assert set(ranking(result)) == {"1", "2", "3", "6"}
    top = result["sources"][0]
    assert top["worker_id"] in {"1", "2"} and top["boost"] == 0 and top["name"]
    assert any("semantic match" in r for r in top["reasons"])
    assert set(result["latency_ms"]) >= {"sql_ms", "embed_ms", "vector_ms", "boost_ms", "total_ms"}
    assert result["playbook_boost"].startswith("playbook_boost: boosts=0 sources=0")


def test_zero_sql_matches_is_an_empty_answer_not_an_error(lake: Lakehouse):
    result = search(lake, city="Nashville", state="TN")
    assert result["sources"] == [] and result["sql_matches"] == 0


def test_a_past_placement_lifts_the_worker_and_the_shortlist_says_why(lake: Lakehouse):
    baseline = search(lake)["sources"]
    cy = next(s for s in baseline if s["worker_id"] == "3")
    assert baseline[0]["worker_id"] != "3"
    seeded = lake.playbooks.seed({"role": "Welder", "city": "Toledo", "state": "OH", "date": TODAY.isoformat(),
                                  "workers": [{"worker_id": "3", "name": "Cy Diaz"}]})
    assert seeded["op"] == "ADD"
    result = search(lake)
    top = result["sources"][0]
    assert top["worker_id"] == "3", ranking(result)
    assert top["boost"] == pytest.approx(0.25)  # similarity 1.0 * 0.5 * e^0 / 1 worker, capped at 0.25
    assert top["final_score"] == pytest.approx(cy["semantic_score"] + 0.25, abs=1e-3)
    assert any("Welder x1 in Toledo, OH" in r for r in top["reasons"])
    assert top["citations"][0]["exact_match"] is True
    assert "boosts=1 sources=1 parsed=1 matched=1" in result["playbook_boost"]


def test_two_workers_with_one_name_are_not_conflated(lake: Lakehouse):
    lake.playbooks.seed({"role": "Welder", "city": "Toledo", "state": "OH", "workers": [{"worker_id": "6", "name": "Ana Ruiz"}]})
    sources = {s["worker_id"]: s for s in search(lake)["sources"]}
    assert sources["6"]["boost"] > 0 and sources["1"]["boost"] == 0


def test_a_no_show_halves_the_boost_on_the_next_query(lake: Lakehouse):
    lake.playbooks.seed({"role": "Welder", "city": "Toledo", "state": "OH", "date": (TODAY - timedelta(days=30)).isoformat(),
                         "workers": [{"worker_id": "3", "name": "Cy Diaz"}]})
    before = next(s for s in search(lake)["sources"] if s["worker_id"] == "3")["boost"]
    assert lake.playbooks.mark_failed("Toledo", "OH", "3", "Cy Diaz") == 1
    after = next(s for s in search(lake)["sources"] if s["worker_id"] == "3")
    assert after["boost"] == pytest.approx(before / 2, rel=1e-3)
    assert any("no-show" in r for r in after["reasons"])


def test_an_expired_playbook_or_a_changed_schema_stops_the_boost(lake: Lakehouse):
    lake.playbooks.seed({"role": "Welder", "city": "Toledo", "state": "OH", "valid_until": (TODAY - timedelta(days=1)).isoformat(),
                         "date": (TODAY - timedelta(days=5)).isoformat(), "workers": [{"worker_id": "3", "name": "Cy Diaz"}]})
    result = search(lake)
    assert all(s["boost"] == 0 for s in result["sources"])
    assert result["playbook"]["skipped_expired"] == 1
    lake.playbooks.seed({"role": "Welder", "city": "Toledo", "state": "OH", "workers": [{"worker_id": "2", "name": "Bo Chen"}]})
    assert next(s for s in search(lake)["sources"] if s["worker_id"] == "2")["boost"] > 0
    lake.ingest_table(workers_table().append_column("zip", pa.array(["43604"] * len(WORKERS))), "workers", mode="replace")
    result = search(lake)
    assert all(s["boost"] == 0 for s in result["sources"])
    assert result["playbook"]["skipped_schema_changed"] == 1


def test_the_same_fill_twice_is_a_noop_and_more_workers_update_it(lake: Lakehouse):
    fill = {"role": "Welder", "city": "Toledo", "state": "OH", "operation": "Riverfront Steel welders", "date": "2026-11-01",
            "workers": [{"worker_id": "1", "name": "Ana Ruiz"}]}
    assert lake.playbooks.seed(fill)["op"] == "ADD"
    assert lake.playbooks.seed(fill)["op"] == "NOOP"
    more = fill | {"workers": [{"worker_id": "2", "name": "Bo Chen"}]}
    assert lake.playbooks.seed(more)["op"] == "UPDATE"
    assert len(lake.playbooks) == 1
    assert len(lake.playbooks.entries()[0]["workers"]) == 2


def test_memory_reloads_with_identical_answers_after_a_restart(tmp_path: Path):
    with Lakehouse(tmp_path / "data", actor="sarah") as lh:
        lh.ingest_table(workers_table(), "workers")
        lh.vectors.create("workers", ["role", "certifications", "profile"], "worker_id")
        lh.playbooks.seed({"role": "Welder", "city": "Toledo", "state": "OH", "workers": [{"worker_id": "3", "name": "Cy Diaz"}]})
        lh.playbooks.mark_failed("Toledo", "OH", "3", "Cy Diaz")
        before = search(lh)
    with Lakehouse(tmp_path / "data", actor="sarah") as lh:
        after = search(lh)
    assert [(s["worker_id"], s["boost"], s["final_score"]) for s in after["sources"]] == \
        [(s["worker_id"], s["boost"], s["final_score"]) for s in before["sources"]]


def test_patterns_and_stats_summarise_past_fills(lake: Lakehouse):
    lake.playbooks.seed({"role": "Welder", "city": "Toledo", "state": "OH", "operation": "Welders for Riverfront Steel",
                         "workers": [{"worker_id": "1", "name": "Ana Ruiz"}, {"worker_id": "2", "name": "Bo Chen"}]})
    patterns = lake.playbooks.patterns("welders in Toledo", city="Toledo", state="OH")
    assert patterns["playbooks"] == 1 and patterns["workers"] == 2
    assert patterns["certifications"][0] == {"value": "OSHA-10", "count": 2, "share": 1.0}
    assert "100% OSHA-10" in patterns["summary"]
    stats = lake.playbooks.stats()
    assert (stats["playbooks"], stats["endorsements"], stats["new_today"]) == (1, 2, 1)


def test_a_radius_around_a_city_replaces_the_exact_city_filter(tmp_path: Path):
    places = {"Toledo": (41.65, -83.54), "Detroit": (42.33, -83.05), "Akron": (41.08, -81.52)}  # Detroit ~53 mi, Akron ~115 mi
    rows = [(i, f"W{i}", "Welder", city, "OH" if city != "Detroit" else "MI") for i, city in enumerate(["Toledo", "Detroit", "Akron"] * 2, 1)]
    table = pa.table({
        "worker_id": pa.array([r[0] for r in rows], pa.int64()), "name": [r[1] for r in rows], "role": [r[2] for r in rows],
        "city": [r[3] for r in rows], "state": [r[4] for r in rows],
        "lat": [places[r[3]][0] for r in rows], "lon": [places[r[3]][1] for r in rows], "profile": ["MIG welder"] * len(rows),
    })
    with Lakehouse(tmp_path / "data") as lh:
        lh.ingest_table(table, "workers")
        lh.vectors.create("workers", ["profile"], "worker_id")
        result = hybrid_search(lh, HybridQuery(query="welder", role="Welder", city="Toledo", radius_miles=60, k=10))
        assert sorted(s["city"] for s in result["sources"]) == ["Detroit", "Detroit", "Toledo", "Toledo"]
        assert result["sql_matches"] == 4


@settings(max_examples=300, deadline=None)
@given(
    similarity=st.lists(st.floats(-1.0, 1.0, allow_nan=False), min_size=1, max_size=60),
    boosted=st.dictionaries(st.integers(0, 59), st.floats(0.0, 0.25, allow_nan=False), max_size=40),
    k=st.integers(1, 12),
    depth=st.integers(1, 40),
)
def test_skipping_boosted_workers_that_cannot_rank_never_changes_the_top_k(similarity, boosted, k, depth):
    """The final top-k with only the boosted workers that could still rank scored equals
    the top-k with every boosted worker scored (final = similarity + boost)."""
    workers = {f"w{i}": s for i, s in enumerate(similarity)}
    boosts = {f"w{i}": b for i, b in boosted.items() if f"w{i}" in workers}
    retrieved = dict(sorted(workers.items(), key=lambda item: -item[1])[:depth])  # what the semantic search returns

    def top(scores):
        final = {w: s + boosts.get(w, 0.0) for w, s in scores.items()}
        return sorted(final.values(), reverse=True)[:k]

    everyone = {**retrieved, **{w: workers[w] for w in boosts}}
    pruned = {**retrieved, **{w: workers[w] for w in _could_enter_top_k(dict(retrieved), boosts, k, full_depth=len(retrieved) >= depth)}}
    assert top(pruned) == top(everyone)



def test_a_repeated_filter_reuses_its_candidates_until_the_dataset_changes(lake: Lakehouse):
    first = search(lake, query="structural steel welder")
    again = search(lake, query="pipe welder with stick experience")
    assert (first["sql_reused"], again["sql_reused"]) == (False, True)
    assert again["sql_matches"] == first["sql_matches"] == 4
    lake.ingest_table(workers_table([(7, "Flo Gray", "Welder", "Toledo", "OH", 0.99, "OSHA-10", "TIG welder, aluminium")]), "workers")
    after = search(lake, query="pipe welder with stick experience")
    assert not after["sql_reused"] and after["sql_matches"] == 5, "a new version of the dataset is filtered again"
    raw = search(lake, sql_filter="reliability > 0.5")
    assert not raw["sql_reused"] and not search(lake, sql_filter="reliability > 0.5")["sql_reused"], \
        "raw SQL may read other datasets: never reused"


def test_excluded_workers_stay_out_even_when_the_filter_is_remembered(lake: Lakehouse):
    everyone = search(lake, query="structural steel welder")
    without = search(lake, query="pipe welder with stick experience", exclude_worker_ids=["3", "6"])
    assert without["sql_reused"], "the exclusions do not change which filter answer is remembered"
    assert without["sql_matches"] == everyone["sql_matches"] - 2
    assert set(ranking(without)) == {"1", "2"}
    assert set(ranking(search(lake, query="pipe welder with stick experience"))) == {"1", "2", "3", "6"}, \
        "an exclusion of one search does not leak into the next"
    assert search(lake, exclude_worker_ids=["1", "2", "3", "6"])["sql_matches"] == 0


def test_workers_booked_for_an_overlapping_shift_are_left_out_and_named(lake: Lakehouse):
    shift = [(TODAY + timedelta(days=10)).isoformat(), (TODAY + timedelta(days=12)).isoformat()]
    absent = search(lake, booked_between=shift)
    assert absent["sql_matches"] == 4 and "placements dataset not consulted" in absent["bookings"]["note"]
    day = lambda n: TODAY + timedelta(days=n)  # noqa: E731
    lake.ingest_table(pa.table({
        "worker_id": pa.array([1, 2, 3, 4, 6], pa.int64()),
        "start_date": pa.array([day(5), day(12), day(0), day(0), day(13)], pa.date32()),
        "end_date": pa.array([day(10), None, day(20), day(20), day(30)], pa.date32()),
        "outcome": ["ongoing", "scheduled", "no_show", "ongoing", "ongoing"],
    }), "placements")
    result = search(lake, booked_between=shift)
    # 1 ends on the first day, 2 starts on the last (open end): both overlap; 3 no-showed;
    # 4 is booked but not a Toledo welder; 6 starts the day after the shift
    assert sorted(result["bookings"]["excluded"]) == ["1", "2"] and result["bookings"]["note"] is None
    assert set(ranking(result)) == {"3", "6"} and result["sql_matches"] == 2
    assert "bookings_ms" in result["latency_ms"]
    later = search(lake, booked_between=[day(40).isoformat(), day(41).isoformat()])
    assert set(ranking(later)) == {"1", "3", "6"} and later["bookings"]["excluded"] == ["2"]
    with pytest.raises(InvalidInput, match="ends .* before it starts"):
        search(lake, booked_between=[shift[1], shift[0]])
    with pytest.raises(InvalidInput, match="YYYY-MM-DD"):
        search(lake, booked_between=["next monday", shift[1]])


@pytest.fixture(scope="module")
def bookings_lake(tmp_path_factory):
    """300 placements from 90 days ago to 90 days ahead, some open-ended, every outcome."""
    import random

    rng = random.Random(3)
    starts = [TODAY + timedelta(days=rng.randint(-90, 90)) for _ in range(300)]
    ends = [None if rng.random() < 0.1 else s + timedelta(days=rng.randint(0, 30)) for s in starts]
    outcomes = [rng.choice(["ongoing", "completed", "", None, *FREE_OUTCOMES, "No_Show"]) for _ in starts]
    with Lakehouse(tmp_path_factory.mktemp("bookings") / "data") as lh:
        lh.ingest_table(pa.table({"worker_id": pa.array([rng.randint(1, 120) for _ in starts], pa.int64()),
                                  "start_date": pa.array(starts, pa.date32()), "end_date": pa.array(ends, pa.date32()),
                                  "outcome": pa.array(outcomes, pa.string())}), "placements")
        rows = lh.sql("SELECT CAST(worker_id AS VARCHAR) AS w, start_date, end_date, outcome FROM placements").to_pylist()
        yield lh, rows


@settings(max_examples=60, deadline=None)
@given(first=st.integers(-100, 100), length=st.integers(0, 40))
def test_the_workers_booked_for_a_shift_are_those_of_an_overlapping_placement_that_holds_them(bookings_lake, first, length):
    lake, rows = bookings_lake
    start, end = TODAY + timedelta(days=first), TODAY + timedelta(days=first + length)
    expected = {r["w"] for r in rows if r["start_date"] <= end and (r["end_date"] is None or r["end_date"] >= start)
                and (r["outcome"] or "").lower() not in FREE_OUTCOMES}
    # a shift from today on is tested in memory against the placements open today; an earlier one runs the SQL
    found = _booked_ids(lake, "placements", start.isoformat(), end.isoformat()).to_pylist()
    assert sorted(found) == sorted(expected) and len(found) == len(set(found))
    by_sql = lake.sql(_bookings_sql("placements", start.isoformat(), end.isoformat()))["worker_id"].to_pylist()
    assert sorted(by_sql) == sorted(expected)


def test_asked_for_columns_come_back_with_each_source_and_unknown_ones_are_named(lake: Lakehouse):
    plain = search(lake)["sources"][0]
    assert "profile" not in plain
    sources = search(lake, columns=["profile"])["sources"]
    profiles = {str(w[0]): w[7] for w in WORKERS}
    assert all(s["profile"] == profiles[s["worker_id"]] for s in sources)
    with pytest.raises(InvalidInput, match="no column.*'phone'"):
        search(lake, columns=["phone"])


@pytest.fixture(scope="module")
def filter_lake(tmp_path_factory):
    rows = WORKERS + [(7, "Flo Gray", "welder", "TOLEDO", "Oh", 0.5, "", "pipe welder"),
                      (8, "Gus Hale", "Welder", "Toledo", None, 0.7, "", "TIG welder")]
    with Lakehouse(tmp_path_factory.mktemp("filters") / "data", actor="sarah") as lh:
        lh.ingest_table(workers_table(rows), "workers")
        yield lh


@settings(max_examples=60, deadline=None)
@given(role=st.sampled_from([None, "Welder", "welder", "WELDER", "Electrician", "Plumber"]),
       city=st.sampled_from([None, "Toledo", "toledo", "Akron", "Nashville"]),
       state=st.sampled_from([None, "OH", "oh", "TN"]))
def test_the_key_index_finds_exactly_the_rows_the_sql_filter_finds(filter_lake: Lakehouse, role, city, state):
    from lakehouse.intelligence.hybrid import _ids_by_key, _keyable, _spellings, build_where, equalities

    q = HybridQuery(query="welder", role=role, city=city, state=state)
    manifest = filter_lake.dataset("workers")
    version = (str(manifest["id"]), int(manifest["version"]))
    equal = equalities(q, {c["name"] for c in manifest["columns"]},
                       spellings=lambda column: _spellings(filter_lake, "workers", version, column))
    if not _keyable(q, equal):
        assert not any((role, city, state))
        return
    where = " AND ".join(build_where(q, equal, None))
    by_sql = filter_lake.sql(f"SELECT CAST(worker_id AS VARCHAR) AS worker_id FROM workers WHERE {where}")["worker_id"].to_pylist()
    assert sorted(_ids_by_key(filter_lake, "workers", equal).to_pylist()) == sorted(by_sql)
