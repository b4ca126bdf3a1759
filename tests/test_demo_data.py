"""Behaviour of the synthetic staffing-data generator (lakehouse.demo_data).

Only the pure-Python package is imported: these tests run before the native core
is built (PYTHONPATH=python).
"""

from __future__ import annotations

import csv
import importlib
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from conftest import SHARED_DATA
from hypothesis import given, settings
from hypothesis import strategies as st

demo_data = importlib.import_module("lakehouse.demo_data")
from lakehouse.demo_data import _geo, _roles, build_cities  # noqa: E402

N = 3_000
SEED = 11
SHARED_CITIES = SHARED_DATA / "geo/simplemaps_uscities_mcedillo20.csv"


@pytest.fixture(scope="module")
def tables() -> dict[str, pa.Table]:
    return demo_data.generate(n_workers=N, seed=SEED)


@pytest.fixture(scope="module")
def cities() -> pa.Table:
    return _geo.read_cities_table()


def column(table: pa.Table, name: str) -> list:
    return table.column(name).to_pylist()


# --- determinism -----------------------------------------------------------------------

def test_same_seed_gives_identical_tables(tables):
    again = demo_data.generate(n_workers=N, seed=SEED)
    assert list(again) == list(tables)
    for name, table in tables.items():
        assert again[name].equals(table), name


def test_different_seed_gives_different_tables(tables):
    other = demo_data.generate(n_workers=N, seed=SEED + 1)
    for name, table in tables.items():
        assert not other[name].equals(table), name


def test_as_of_moves_dates_but_defaults_to_a_fixed_day(tables):
    assert demo_data.generate(N, SEED, as_of=demo_data.DEFAULT_AS_OF)["workers"].equals(tables["workers"])
    later = demo_data.generate(N, SEED, as_of=demo_data.DEFAULT_AS_OF.replace(year=2026))
    assert not later["workers"].column("updated_at").equals(tables["workers"].column("updated_at"))


def test_per_table_functions_match_generate(tables):
    single = {
        "workers": demo_data.generate_workers, "clients": demo_data.generate_clients,
        "job_orders": demo_data.generate_job_orders, "placements": demo_data.generate_placements,
        "call_log": demo_data.generate_call_log,
    }
    for name, function in single.items():
        assert function(N, SEED).equals(tables[name]), name


# --- shape -----------------------------------------------------------------------------

def test_tables_follow_published_schemas(tables):
    assert list(tables) == list(demo_data.TABLES)
    for name, table in tables.items():
        assert table.schema.equals(demo_data.TABLES[name]), name


@pytest.mark.parametrize("n_workers", [1, 999, 1_000, 45_000, demo_data.BLOCK_ROWS + 3])
def test_row_counts_scale_with_n_workers(n_workers):
    produced = {name: table.num_rows for name, table in demo_data.generate(n_workers, seed=3).items()}
    clients = max(20, round(n_workers / 2000))
    assert produced == demo_data.table_sizes(n_workers)
    assert produced["workers"] == produced["call_log"] == n_workers
    assert produced["clients"] == clients
    assert produced["job_orders"] == clients * 15
    assert abs(produced["placements"] - n_workers / 2) <= 2


def test_ids_are_unique_and_sequential(tables):
    for name, id_column in [("workers", "worker_id"), ("clients", "client_id"), ("job_orders", "order_id"),
                            ("placements", "placement_id"), ("call_log", "call_id")]:
        ids = tables[name].column(id_column).to_numpy()
        assert np.array_equal(ids, np.arange(1, len(ids) + 1)), name


@pytest.mark.parametrize("bad", [dict(n_workers=0), dict(n_workers=-5), dict(seed=-1), dict(n_workers=2.5)])
def test_invalid_sizes_and_seeds_are_rejected(bad):
    arguments = dict(n_workers=100, seed=1) | bad
    with pytest.raises(ValueError):
        demo_data.generate(**arguments)


# --- geography -------------------------------------------------------------------------

def test_workers_live_in_shipped_cities_near_the_centre(tables, cities):
    centre = {(c, s): (lat, lng) for c, s, lat, lng in zip(
        column(cities, "city"), column(cities, "state_id"), column(cities, "lat"), column(cities, "lng"))}
    workers = tables["workers"]
    for city, state, lat, lon in zip(column(workers, "city"), column(workers, "state"),
                                     column(workers, "lat"), column(workers, "lon")):
        assert (city, state) in centre
        city_lat, city_lng = centre[(city, state)]
        assert abs(lat - city_lat) < 0.5 and abs(lon - city_lng) < 0.5


def test_zip_codes_are_the_city_zip(tables, cities):
    zips = dict(zip(zip(column(cities, "city"), column(cities, "state_id")), column(cities, "zip")))
    workers = tables["workers"]
    for city, state, zip_code in zip(column(workers, "city"), column(workers, "state"), column(workers, "zip")):
        assert re.fullmatch(r"\d{5}", zip_code) and zip_code == zips[(city, state)]


def test_big_cities_get_more_workers(tables, cities):
    top10 = set(zip(column(cities, "city")[:10], column(cities, "state_id")[:10]))
    workers = tables["workers"]
    in_top10 = sum((c, s) in top10 for c, s in zip(column(workers, "city"), column(workers, "state")))
    uniform_share = 10 / cities.num_rows
    assert in_top10 / workers.num_rows > 10 * uniform_share  # ~26% in practice, 1% if uniform


def test_shipped_city_table_is_small_unique_and_complete(cities):
    assert cities.num_rows == 1000
    assert cities.column_names == list(build_cities.OUTPUT_COLUMNS)
    keys = list(zip(column(cities, "city"), column(cities, "state_id")))
    assert len(set(keys)) == len(keys)
    assert all(re.fullmatch(r"\d{5}", z) for z in column(cities, "zip"))
    population = column(cities, "population")
    assert population == sorted(population, reverse=True)


def test_build_cities_keeps_top_cities_and_first_zip(tmp_path):
    source = tmp_path / "uscities.csv"
    header = "city,city_ascii,state_id,state_name,lat,lng,population,timezone,zips,id"
    rows = ["Smallville,Smallville,KS,Kansas,39.1,-98.2,500,America/Chicago,67001 67002,1",
            "Big City,Big City,IL,Illinois,41.8,-87.6,900000,America/Chicago,06001 60602,2",
            "Mid Town,Mid Town,OH,Ohio,41.6,-83.5,40000,America/New_York,43601,3"]
    source.write_bytes(("\ufeff" + "\r\n".join([header, *rows]) + "\r\n").encode("utf-8"))
    out = tmp_path / "cities.csv"
    build_cities.main([str(source), "--out", str(out), "--top", "2"])
    with out.open(encoding="utf-8", newline="") as handle:
        written = list(csv.DictReader(handle))
    assert [row["city"] for row in written] == ["Big City", "Mid Town"]
    assert written[0]["zip"] == "06001"  # first zip, leading zero kept
    assert list(written[0]) == list(build_cities.OUTPUT_COLUMNS)


@pytest.mark.skipif(not SHARED_CITIES.exists(), reason="simplemaps source not available")
def test_shipped_city_table_is_reproducible_from_source(tmp_path):
    out = tmp_path / "us_cities.csv"
    build_cities.main([str(SHARED_CITIES), "--out", str(out)])
    assert out.read_bytes() == (Path(_geo.__file__).parent / _geo.CITIES_FILE).read_bytes()


# --- worker attributes -----------------------------------------------------------------

def test_reliability_is_within_unit_interval(tables):
    reliability = tables["workers"].column("reliability")
    assert pc.min(reliability).as_py() >= 0.0 and pc.max(reliability).as_py() <= 1.0


def test_emails_and_phones_are_well_formed(tables):
    workers = tables["workers"]
    emails = column(workers, "email")
    assert all(re.fullmatch(r"[a-z]+[._]?[a-z]+\d+@example\.(com|net|org)", e) for e in emails)
    assert len(set(emails)) == len(emails)
    assert all(re.fullmatch(r"\([2-9]\d{2}\) 555-01\d{2}", p) for p in column(workers, "phone"))


def test_duplicate_names_occur_but_none_dominates(tables):
    counts = Counter(column(tables["workers"], "name"))
    assert max(counts.values()) > 1
    assert max(counts.values()) < 0.01 * N
    assert all(len(name.split()) >= 2 for name in counts)


def test_roles_skills_and_certifications_fit_the_trade(tables):
    by_name = {role.name: role for role in _roles.ROLES}
    workers = tables["workers"]
    assert set(column(workers, "role")) <= set(by_name)
    for role, skills, certifications, years in zip(column(workers, "role"), column(workers, "skills"),
                                                   column(workers, "certifications"),
                                                   column(workers, "years_experience")):
        listed = skills.split(", ")
        assert 2 <= len(listed) <= 6 and set(listed) <= set(by_name[role].skills)
        allowed = {name for name, _ in by_name[role].certifications}
        held = set(certifications.split(", ")) - {""}
        assert held <= allowed
        assert all(years >= _roles.MIN_YEARS_FOR_CERTIFICATION.get(name, 0) for name in held)
    assert "" in column(workers, "certifications")  # some workers hold none


def test_common_trades_outnumber_rare_ones(tables):
    roles = Counter(column(tables["workers"], "role"))
    assert roles["Warehouse Associate"] > roles["Welder"] > roles["Mason"]


def test_pay_rises_with_trade_and_experience(tables):
    workers = tables["workers"]
    pay = workers.column("pay_rate").to_numpy()
    years = workers.column("years_experience").to_numpy()
    roles = np.array(column(workers, "role"))
    assert pay.min() > 10 and pay.max() < 100
    assert pay[roles == "Pipefitter"].mean() > pay[roles == "Warehouse Associate"].mean()
    assert pay[years >= 10].mean() > pay[years <= 1].mean()


def test_profiles_are_built_from_the_worker_fields(tables):
    workers = tables["workers"]
    for profile, city, state, years in zip(column(workers, "profile"), column(workers, "city"),
                                           column(workers, "state"), column(workers, "years_experience")):
        assert f"{city}, {state}" in profile
        assert 1 <= profile.count(". ") + 1 <= 4 and profile.endswith(".")
        assert "  " not in profile and "{" not in profile
        if str(years) + " year" in profile:
            assert years >= 1
    assert len(set(column(workers, "profile"))) > 0.9 * N


def test_availability_values_and_archetypes_are_known(tables):
    workers = tables["workers"]
    assert set(column(workers, "availability")) == {"available", "on_assignment", "unavailable"}
    assert set(column(workers, "archetype")) == {"leader", "steady", "specialist", "flexible", "newcomer"}


# --- relationships ---------------------------------------------------------------------

def test_placements_reference_existing_workers_orders_and_clients(tables):
    placements, orders = tables["placements"], tables["job_orders"]
    worker_ids = set(column(tables["workers"], "worker_id"))
    order_client = dict(zip(column(orders, "order_id"), column(orders, "client_id")))
    for worker_id, order_id, client_id in zip(column(placements, "worker_id"), column(placements, "order_id"),
                                              column(placements, "client_id")):
        assert worker_id in worker_ids
        assert order_client[order_id] == client_id


def test_placements_fall_within_their_orders(tables):
    orders = tables["job_orders"]
    start_of = dict(zip(column(orders, "order_id"), column(orders, "start_date")))
    status_of = dict(zip(column(orders, "order_id"), column(orders, "status")))
    placements = tables["placements"]
    for order_id, start, end, outcome in zip(column(placements, "order_id"), column(placements, "start_date"),
                                             column(placements, "end_date"), column(placements, "outcome")):
        assert start_of[order_id] <= start <= end
        assert status_of[order_id] != "cancelled"
        if outcome == "ongoing":
            assert start <= demo_data.DEFAULT_AS_OF < end


def test_placed_workers_mostly_match_the_order_trade(tables):
    role_of_worker = dict(zip(column(tables["workers"], "worker_id"), column(tables["workers"], "role")))
    role_of_order = dict(zip(column(tables["job_orders"], "order_id"), column(tables["job_orders"], "role")))
    placements = tables["placements"]
    matches = [role_of_worker[w] == role_of_order[o]
               for w, o in zip(column(placements, "worker_id"), column(placements, "order_id"))]
    assert sum(matches) / len(matches) > 0.8


def test_on_assignment_workers_hold_one_ongoing_placement(tables):
    workers, placements = tables["workers"], tables["placements"]
    ongoing = [(w, end) for w, end, outcome in zip(column(placements, "worker_id"), column(placements, "end_date"),
                                                   column(placements, "outcome")) if outcome == "ongoing"]
    ongoing_end = dict(ongoing)
    assert len(ongoing_end) == len(ongoing)  # at most one per worker
    for worker_id, availability, available_from in zip(column(workers, "worker_id"), column(workers, "availability"),
                                                       column(workers, "available_from")):
        if worker_id in ongoing_end:
            assert availability == "on_assignment"
            assert (available_from - ongoing_end[worker_id]).days == 1


def test_ratings_are_half_stars_and_missing_for_no_shows(tables):
    placements = tables["placements"]
    for outcome, rating in zip(column(placements, "outcome"), column(placements, "rating")):
        if outcome in ("no_show", "ongoing"):
            assert rating is None
        elif rating is not None:
            assert 1.0 <= rating <= 5.0 and rating * 2 == int(rating * 2)
    assert placements.column("rating").null_count > 0


def test_call_log_references_workers_and_happens_before_as_of(tables):
    calls = tables["call_log"]
    assert set(column(calls, "worker_id")) <= set(column(tables["workers"], "worker_id"))
    assert set(column(calls, "channel")) == {"call", "sms"}
    assert {(c, o) for c, o in zip(column(calls, "channel"), column(calls, "outcome"))}.isdisjoint({("sms", "voicemail")})
    latest = pc.max(calls.column("at")).as_py()
    assert latest.date() < demo_data.DEFAULT_AS_OF
    assert all(note for note in column(calls, "note"))


def test_job_orders_belong_to_clients_and_are_created_before_they_start(tables):
    orders = tables["job_orders"]
    assert set(column(orders, "client_id")) <= set(column(tables["clients"], "client_id"))
    for created, start, end in zip(column(orders, "created_at"), column(orders, "start_date"),
                                   column(orders, "end_date")):
        assert created.date() <= start < end
        assert created.date() < demo_data.DEFAULT_AS_OF


# --- parquet streaming -----------------------------------------------------------------

def test_write_parquet_chunks_reassemble_to_generate(tmp_path):
    n, seed = 2_500, 5
    events: list[tuple[str, int, int]] = []
    paths = demo_data.write_parquet(tmp_path, n, seed, chunk_rows=1_000,
                                    progress=lambda table, done, total: events.append((table, done, total)))
    expected = demo_data.generate(n, seed)
    assert set(paths) == set(demo_data.TABLES)
    assert len(paths["workers"]) == 3 and len(paths["placements"]) == 2
    for name, files in paths.items():
        assert all(path.parent == tmp_path / name for path in files)
        written = pa.concat_tables([pq.read_table(path) for path in files])
        assert written.equals(expected[name]), name
    sizes = demo_data.table_sizes(n)
    for name in demo_data.TABLES:
        progress = [(done, total) for table, done, total in events if table == name]
        assert progress[0] == (0, sizes[name]) and progress[-1] == (sizes[name], sizes[name])
        assert [done for done, _ in progress] == sorted(done for done, _ in progress)


def test_write_parquet_replaces_parts_of_an_earlier_run(tmp_path):
    demo_data.write_parquet(tmp_path, 3_000, 1, chunk_rows=500)
    paths = demo_data.write_parquet(tmp_path, 1_000, 1, chunk_rows=500)
    on_disk = sorted((tmp_path / "workers").glob("part-*.parquet"))
    assert on_disk == sorted(paths["workers"]) and len(on_disk) == 2


def test_write_parquet_keeps_empty_tables_readable(tmp_path):
    paths = demo_data.write_parquet(tmp_path, 1, 1)  # one worker: no placements
    table = pq.read_table(paths["placements"][0])
    assert table.num_rows == 0 and table.schema.equals(demo_data.TABLES["placements"])


# --- properties ------------------------------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(n_workers=st.integers(min_value=1, max_value=400), seed=st.integers(min_value=0, max_value=2**63 - 1))
def test_any_small_run_is_deterministic_and_referentially_sound(n_workers, seed):
    first = demo_data.generate(n_workers, seed)
    second = demo_data.generate(n_workers, seed)
    assert all(first[name].equals(second[name]) for name in demo_data.TABLES)
    worker_ids = set(column(first["workers"], "worker_id"))
    order_ids = set(column(first["job_orders"], "order_id"))
    client_ids = set(column(first["clients"], "client_id"))
    assert worker_ids == set(range(1, n_workers + 1))
    assert set(column(first["placements"], "worker_id")) <= worker_ids
    assert set(column(first["placements"], "order_id")) <= order_ids
    assert set(column(first["placements"], "client_id")) <= client_ids
    assert set(column(first["job_orders"], "client_id")) <= client_ids
    assert set(column(first["call_log"], "worker_id")) <= worker_ids
    assert {name: table.num_rows for name, table in first.items()} == demo_data.table_sizes(n_workers)
