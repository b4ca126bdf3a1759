"""Concurrent requests through the gateway's facade lock (issue 5).

Reads share the facade, writes have it alone, a waiting write is not starved, the
write side is re-entrant, and a SQL query's "rescue bucket used" flag stays paired
with its query. Concurrency is proven with events and barriers (a read that waits for
another read to arrive can only finish if both run at once), never with timings; the
short waits below only bound how long a test looks for something that must not happen.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from lakehouse.config import ApiKey, Config
from lakehouse.gateway import create_app
from lakehouse.gateway.state import FacadeGuard, ReadWriteLock
from lakehouse.lakehouse import Lakehouse

ADMIN = {"X-API-Key": "admin-key"}
READER = {"X-API-Key": "reader-key"}
#: how long a test waits for something that must happen (a generous bound, not a measurement)
SOON = 20.0
#: how long a test watches for something that must NOT happen while it holds the lock
BRIEFLY = 0.3


# ---------------------------------------------------------------------- fixtures & helpers
@pytest.fixture
def config(tmp_path: Path) -> Config:
    config = Config.load(tmp_path / "data", env={})
    config.gateway.api_keys = [ApiKey("admin-key", "admin", "alice"), ApiKey("reader-key", "reader", "rita")]
    return config


@pytest.fixture
def lakehouse(config: Config):
    with Lakehouse(config=config) as lake:
        lake.ingest_table(pa.table({"id": [1, 2, 3], "city": ["Toledo", "Akron", "Dayton"]}), "people")
        yield lake


@pytest.fixture
def client(lakehouse: Lakehouse, config: Config) -> TestClient:
    return TestClient(create_app(lakehouse, config))


def guard_of(client: TestClient) -> FacadeGuard:
    return client.app.state.gateway.guard


class InThread:
    """Run `call` in a thread; `.result()` joins it and returns (or raises) its outcome."""

    def __init__(self, call: Callable[[], Any]):
        self._outcome: tuple[bool, Any] | None = None

        def run() -> None:
            try:
                self._outcome = (True, call())
            except BaseException as exc:  # handed to the test thread
                self._outcome = (False, exc)

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def done(self) -> bool:
        return not self._thread.is_alive()

    def result(self, timeout: float = SOON) -> Any:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the call did not finish"
        ok, value = self._outcome
        if not ok:
            raise value
        return value


def meet_in_pairs(lake: Any, method: str, monkeypatch, barrier: threading.Barrier | None = None) -> threading.Barrier:
    """Make `lake.<method>` wait until two callers (of it, or of other methods sharing
    `barrier`) are inside at the same time. Calls that are serialised never meet: the
    barrier breaks and the calls fail."""
    barrier = barrier or threading.Barrier(2, timeout=SOON / 2)
    original = getattr(lake, method)

    def meeting(*args: Any, **kwargs: Any) -> Any:
        barrier.wait()
        return original(*args, **kwargs)

    monkeypatch.setattr(lake, method, meeting)
    return barrier


def gate(lake: Any, method: str, monkeypatch) -> tuple[threading.Event, threading.Event]:
    """Instrument `lake.<method>`: `entered` is set when a call arrives; the call then
    waits for `proceed` (already set unless the test clears it)."""
    entered, proceed = threading.Event(), threading.Event()
    proceed.set()
    original = getattr(lake, method)

    def gated(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        assert proceed.wait(SOON), "the test never let the call proceed"
        return original(*args, **kwargs)

    monkeypatch.setattr(lake, method, gated)
    return entered, proceed


# ---------------------------------------------------------------------- reads run side by side
READ_ENDPOINTS = [
    ("post", "/query/sql", {"json": {"sql": "SELECT count(*) AS n FROM people"}}, "sql"),
    ("get", "/catalog/datasets", {}, "datasets"),
    ("get", "/catalog/datasets/people", {}, "dataset"),
    ("get", "/catalog/datasets/people/history", {}, "history"),
    ("get", "/journal", {}, "journal"),
    ("get", "/storage/errors", {}, "storage_errors"),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "facade_call"), READ_ENDPOINTS, ids=[e[1] for e in READ_ENDPOINTS])
def test_two_slow_reads_of_the_same_endpoint_are_inside_the_facade_at_the_same_time(
    client, lakehouse, monkeypatch, method, path, kwargs, facade_call
):
    meet_in_pairs(lakehouse, facade_call, monkeypatch)
    calls = [InThread(lambda: getattr(client, method)(path, headers=READER, **kwargs)) for _ in range(2)]
    responses = [c.result() for c in calls]
    assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]


def test_a_sql_query_and_a_catalog_read_overlap(client, lakehouse, monkeypatch):
    barrier = meet_in_pairs(lakehouse, "sql", monkeypatch)
    meet_in_pairs(lakehouse, "datasets", monkeypatch, barrier)
    sql = InThread(lambda: client.post("/query/sql", json={"sql": "SELECT * FROM people"}, headers=READER))
    listing = InThread(lambda: client.get("/catalog/datasets", headers=READER))
    assert sql.result().status_code == 200 and listing.result().status_code == 200


def test_health_answers_ok_while_a_slow_read_holds_the_facade(client):
    with guard_of(client).read():
        body = InThread(lambda: client.get("/health").json()).result()
    assert body["status"] == "ok" and body["datasets"] == 1


def test_health_is_busy_while_a_write_holds_the_facade(client, monkeypatch):
    monkeypatch.setattr("lakehouse.gateway.routes.HEALTH_LOCK_TIMEOUT_S", 0.05)
    with guard_of(client).use():
        body = InThread(lambda: client.get("/health").json()).result()
    assert body["status"] == "busy" and body["datasets"] is None


# ---------------------------------------------------------------------- writes are exclusive
def test_a_write_in_progress_keeps_reads_out_until_it_is_done(client, lakehouse, monkeypatch):
    entered, _ = gate(lakehouse, "datasets", monkeypatch)
    with guard_of(client).use():
        read = InThread(lambda: client.get("/catalog/datasets", headers=READER))
        assert not entered.wait(BRIEFLY), "a read reached the facade while a write held it"
    assert entered.wait(SOON)
    assert read.result().status_code == 200


def test_a_read_in_progress_keeps_a_write_endpoint_out_until_it_is_done(client, lakehouse, monkeypatch):
    reading, let_read_finish = gate(lakehouse, "datasets", monkeypatch)
    let_read_finish.clear()
    writing, _ = gate(lakehouse, "tombstone", monkeypatch)
    read = InThread(lambda: client.get("/catalog/datasets", headers=READER))
    assert reading.wait(SOON)
    write = InThread(lambda: client.post("/catalog/datasets/people/tombstone", headers=ADMIN))
    assert not writing.wait(BRIEFLY), "a write reached the facade while a read was in it"
    let_read_finish.set()
    assert writing.wait(SOON)
    assert read.result().status_code == 200
    assert write.result().status_code == 200
    assert client.get("/catalog/datasets", headers=READER).json() == []


@pytest.mark.parametrize("path", ["/catalog/datasets/people/tombstone", "/catalog/dedupe", "/catalog/compact"])
def test_write_endpoints_wait_for_a_reader_to_leave(client, path):
    guard = guard_of(client)
    with guard.read():
        write = InThread(lambda: client.post(path, headers=ADMIN))
        # the writer is queued behind us (and, write-preferring, holds back new readers)
        assert _eventually(lambda: guard.rwlock.waiting_writers == 1)
        assert not write.done()
    assert write.result().status_code == 200


def test_try_use_gives_up_while_a_reader_is_in_and_succeeds_once_it_left():
    guard = FacadeGuard(object())  # type: ignore[arg-type]
    with guard.read():
        assert InThread(lambda: _try_use(guard, 0.05)).result() is None
        assert InThread(lambda: _try_read(guard, 0.05)).result() is not None  # readers share
    assert InThread(lambda: _try_use(guard, 0.05)).result() is not None


# ---------------------------------------------------------------------- write preference
def test_a_waiting_writer_holds_back_new_readers_and_goes_first():
    lock, order = ReadWriteLock(), []
    lock.acquire_read()  # reader 1 is in
    writer = InThread(lambda: (lock.acquire_write(), order.append("writer"), lock.release_write()))
    assert _eventually(lambda: lock.waiting_writers == 1)
    late = InThread(lambda: (lock.acquire_read(), order.append("late reader"), lock.release_read()))
    assert not _eventually(lambda: late.done() or lock.active_readers > 1, BRIEFLY), "a new reader got past a waiting writer"
    assert InThread(lambda: lock.acquire_read(timeout=0.05)).result() is False
    assert lock.acquire_read(timeout=0), "a thread already reading must get in again even while a writer waits"
    lock.release_read()
    lock.release_read()  # reader 1 leaves: the writer goes, then the late reader
    writer.result()
    late.result()
    assert order == ["writer", "late reader"]


def test_a_stream_of_overlapping_readers_does_not_starve_a_writer():
    """Reader i hands over to reader i+1 and leaves only once i+1 is in, so without write
    preference the lock is never free of readers until the stream ends."""
    lock, log, links = ReadWriteLock(), [], 60
    arrived = [threading.Event() for _ in range(links + 1)]
    writer_started = threading.Event()
    threads: list[InThread] = []

    def reader(i: int) -> None:
        assert lock.acquire_read(timeout=SOON)
        log.append(f"r{i}")
        arrived[i].set()
        if i == 3:  # the writer starts waiting while r3 is in
            writer_started.set()
            assert _eventually(lambda: lock.waiting_writers == 1)
        if i + 1 < links:
            threads.append(InThread(lambda: reader(i + 1)))
            arrived[i + 1].wait(0.2)  # a writer preference stops the stream here
        lock.release_read()

    def writer() -> None:
        assert writer_started.wait(SOON)
        assert lock.acquire_write(timeout=SOON)
        log.append("w")
        lock.release_write()

    w = InThread(writer)
    threads.append(InThread(lambda: reader(0)))
    w.result()
    assert _eventually(lambda: len(log) == links + 1, SOON)
    for t in list(threads):
        t.result()
    assert log.index("w") == 4, f"the writer waited behind a stream of readers: {log}"


# ---------------------------------------------------------------------- re-entrancy and upgrades
def test_the_write_side_is_reentrant_and_may_read_while_others_stay_out():
    guard = FacadeGuard(object())  # type: ignore[arg-type]
    with guard.use():
        with guard.use():
            with guard.read():
                with guard.try_use(0) as again:
                    assert again is not None
                assert InThread(lambda: _try_read(guard, 0.05)).result() is None
            assert InThread(lambda: _try_read(guard, 0.05)).result() is None
        assert InThread(lambda: _try_read(guard, 0.05)).result() is None, "the inner release let readers in early"
    assert InThread(lambda: _try_read(guard, 0.05)).result() is not None
    assert InThread(lambda: _try_use(guard, 0.05)).result() is not None


def test_the_old_lock_attribute_is_the_write_side_and_reentrant():
    """`daemon/maintenance.py` hands `guard._lock` to the vector layer as its facade lock."""
    guard = FacadeGuard(object())  # type: ignore[arg-type]
    with guard._lock:
        with guard.use():
            assert InThread(lambda: _try_read(guard, 0.05)).result() is None
    assert guard._lock.acquire(blocking=False)
    guard._lock.release()


def test_a_reader_asking_for_the_write_side_is_refused_at_once_instead_of_deadlocking():
    guard = FacadeGuard(object())  # type: ignore[arg-type]
    with guard.read():
        with pytest.raises(RuntimeError, match="upgrade"):
            with guard.use():
                pass
    with guard.use():  # nothing leaked: the lock is free again
        pass


def test_releasing_a_side_the_thread_does_not_hold_is_an_error():
    lock = ReadWriteLock()
    with pytest.raises(RuntimeError):
        lock.release_read()
    lock.acquire_write()
    with pytest.raises(RuntimeError):
        InThread(lock.release_write).result()
    lock.release_write()


# ---------------------------------------------------------------------- the rescue flag stays with its query
class InterleavingEngine:
    """Wraps the real query engine: after the query on `first_table` has run, it waits
    (briefly) for a query on another table to run too, which is exactly the interleaving
    that would hand the first caller the second query's rescue flag. If the query and
    its flag are taken together, the second query cannot run there and the wait ends."""

    def __init__(self, real: Any, first_table: str):
        self.real, self.first_table = real, first_table
        self.first_ran, self.second_ran = threading.Event(), threading.Event()

    def sql(self, query: str) -> Any:
        result = self.real.sql(query)
        if self.first_table in query:
            self.first_ran.set()
            self.second_ran.wait(1.0)
        else:
            self.second_ran.set()
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


@pytest.fixture
def rescued_config(config: Config, tmp_path: Path) -> Config:
    """`fresh` is read from the primary bucket, `rescued` only from the rescue copy."""
    config.storage.rescue_dir = str(tmp_path / "rescue")
    with Lakehouse(config=config) as lake:
        lake.ingest_table(pa.table({"id": [1, 2]}), "fresh")
        lake.ingest_table(pa.table({"id": [1, 2, 3]}), "rescued")
    shutil.rmtree(config.data_path / "tables" / "rescued")
    return config


def test_concurrent_queries_each_report_their_own_rescue_flag(rescued_config: Config):
    with Lakehouse(config=rescued_config) as lake:
        assert lake.sql("SELECT count(*) AS n FROM rescued")["n"][0].as_py() == 3 and lake.rescue_used is True
        assert lake.sql("SELECT count(*) AS n FROM fresh")["n"][0].as_py() == 2 and lake.rescue_used is False
        engine = InterleavingEngine(lake._query, "fresh")
        lake._query = engine

        def query(table: str) -> bool:
            if table == "rescued":
                assert engine.first_ran.wait(SOON)
            lake.sql(f"SELECT count(*) AS n FROM {table}")
            return lake.rescue_used

        fresh, rescued = InThread(lambda: query("fresh")), InThread(lambda: query("rescued"))
        assert (fresh.result(), rescued.result()) == (False, True)


def test_concurrent_sql_requests_each_get_their_own_rescue_header(rescued_config: Config):
    with Lakehouse(config=rescued_config) as lake:
        client = TestClient(create_app(lake, rescued_config))
        engine = InterleavingEngine(lake._query, "fresh")
        lake._query = engine

        def header(table: str) -> str:
            if table == "rescued":
                assert engine.first_ran.wait(SOON)
            response = client.post("/query/sql", json={"sql": f"SELECT count(*) AS n FROM {table}"}, headers=READER)
            assert response.status_code == 200, response.text
            return response.headers["X-Lakehouse-Rescue-Used"]

        fresh, rescued = InThread(lambda: header("fresh")), InThread(lambda: header("rescued"))
        assert (fresh.result(), rescued.result()) == ("false", "true")


# ---------------------------------------------------------------------- hybrid search and the vector layer
@pytest.fixture
def hybrid_client(config: Config):
    from test_hybrid import workers_table

    with Lakehouse(config=config) as lake:
        lake.ingest_table(workers_table(), "workers")
        lake.vectors.create("workers", ["role", "certifications", "profile"], "worker_id")
        # a welder in Toledo appended after the build: searches score it from the dataset, under the read side
        lake.ingest_table(workers_table([(7, "Fay Gold", "Welder", "Toledo", "OH", 0.8, "OSHA-10", "MIG welder, steel")]), "workers")
        assert lake.dataset("workers")["embeddings_stale"]
        yield lake, TestClient(create_app(lake, config))


def test_two_hybrid_searches_over_a_stale_index_run_side_by_side(hybrid_client, monkeypatch):
    lake, client = hybrid_client
    client.get("/vectors/indexes", headers=READER)  # wires the gateway's lock into the vector layer
    meet_in_pairs(lake.vectors, "embed_query", monkeypatch)
    body = {"query": "structural steel welder", "role": "Welder", "city": "Toledo", "state": "OH", "k": 5}
    calls = [InThread(lambda: client.post("/vectors/hybrid", json=body, headers=READER)) for _ in range(2)]
    responses = [c.result(SOON * 3) for c in calls]
    assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
    for response in responses:
        result = response.json()
        assert result["sql_matches"] == 5 and result["unindexed_searched"] == 1
        assert "7" in {s["worker_id"] for s in result["sources"]}


def test_vector_searches_take_the_read_side_for_their_facade_reads(hybrid_client, monkeypatch):
    lake, client = hybrid_client
    guard = guard_of(client)
    assert client.get("/vectors/indexes", headers=READER).status_code == 200
    assert lake.vectors.facade_lock is guard.write_lock and lake.vectors.facade_read_lock is guard.read_lock
    with guard.read():  # another reader is in: a search still reads the unindexed rows
        found = InThread(lambda: client.post("/vectors/search", json={"index": "workers", "query": "MIG welder", "k": 3}, headers=READER))
        response = found.result(SOON * 3)
    assert response.status_code == 200, response.text
    assert response.json()["unindexed_searched"] == 1


def test_playbook_reads_share_the_facade_and_a_seed_waits_for_them(hybrid_client, monkeypatch):
    lake, client = hybrid_client
    seed = {"role": "Welder", "city": "Toledo", "state": "OH", "workers": [{"worker_id": "1", "name": "Ana Ruiz"}]}
    assert client.post("/vectors/playbook_memory/seed", json=seed, headers=ADMIN).status_code == 201
    meet_in_pairs(lake.playbooks, "stats", monkeypatch)
    stats = [InThread(lambda: client.get("/vectors/playbook_memory/stats", headers=READER)) for _ in range(2)]
    assert [s.result().json()["playbooks"] for s in stats] == [1, 1]
    guard = guard_of(client)
    with guard.read():
        patterns = InThread(lambda: client.get("/vectors/playbook_memory/patterns", params={"query": "welder"}, headers=READER))
        assert patterns.result(SOON * 3).json()["playbooks"] == 1
        seeding = InThread(lambda: client.post("/vectors/playbook_memory/seed", json={**seed, "city": "Akron"}, headers=ADMIN))
        assert _eventually(lambda: guard.rwlock.waiting_writers == 1)
        assert not seeding.done()
    assert seeding.result(SOON * 3).status_code == 201


# ---------------------------------------------------------------------- helpers
def _try_use(guard: FacadeGuard, timeout: float) -> Any:
    with guard.try_use(timeout) as lake:
        return lake


def _try_read(guard: FacadeGuard, timeout: float) -> Any:
    with guard.try_read(timeout) as lake:
        return lake


def _eventually(condition: Callable[[], bool], within: float = SOON) -> bool:
    """True as soon as `condition()` holds, False if it never did within `within` seconds."""
    deadline = threading.Event()
    timer = threading.Timer(within, deadline.set)
    timer.start()
    try:
        while not deadline.is_set():
            if condition():
                return True
            deadline.wait(0.005)
        return condition()
    finally:
        timer.cancel()


def test_searches_beyond_search_threads_wait_their_turn_while_other_endpoints_answer(config: Config, monkeypatch):
    from test_hybrid import workers_table

    config.gateway.search_threads = 1
    # one event loop for every request, as uvicorn has (a TestClient outside `with` gives each
    # request its own loop, and a waiter on another loop is never woken)
    with Lakehouse(config=config) as lake, TestClient(create_app(lake, config)) as client:
        lake.ingest_table(workers_table(), "workers")
        lake.vectors.create("workers", ["role", "certifications", "profile"], "worker_id")
        entered, proceed = threading.Event(), threading.Event()
        calls: list[str] = []
        original = lake.vectors.embed_query

        def held(text: str) -> Any:
            calls.append(text)
            entered.set()
            assert proceed.wait(SOON), "the test never let the search proceed"
            return original(text)

        monkeypatch.setattr(lake.vectors, "embed_query", held)
        body = {"query": "structural steel welder", "role": "Welder", "city": "Toledo", "state": "OH", "k": 5}
        first = InThread(lambda: client.post("/vectors/hybrid", json=body, headers=READER))
        assert entered.wait(SOON)
        second = InThread(lambda: client.post("/vectors/hybrid", json={**body, "query": "pipe welder"}, headers=READER))
        sql = client.post("/query/sql", json={"sql": "SELECT count(*) AS n FROM workers"}, headers=READER)
        assert sql.status_code == 200, "a search holding every search thread does not hold other endpoints back"
        threading.Event().wait(BRIEFLY)
        assert calls == ["structural steel welder"] and not second.done(), "the second search waits for the one slot"
        proceed.set()
        assert [first.result(SOON * 3).status_code, second.result(SOON * 3).status_code] == [200, 200]
        assert calls == ["structural steel welder", "pipe welder"]
