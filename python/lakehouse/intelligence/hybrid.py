"""Hybrid search: SQL filter -> candidate set -> semantic rank -> playbook boost -> top-k
with explanations. DESIGN.md §4 is the contract; every stage's latency is reported.

final_score = semantic similarity (cosine) + playbook boost (capped at 0.25 in the core).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, Callable, Generic, Hashable, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.errors import InvalidInput

if TYPE_CHECKING:
    from lakehouse.lakehouse import Lakehouse

log = logging.getLogger("lakehouse.hybrid")
V = TypeVar("V")

#: semantic candidates ranked before the boost is applied, as a multiple of k
RERANK_DEPTH = 4
#: playbook citations shown per worker (the strongest; the reason line gives the total)
MAX_CITATIONS = 5
DETAIL_COLUMNS = ("name", "role", "city", "state", "reliability", "availability", "certifications", "skills", "pay_rate", "archetype", "years_experience")
#: equality filters on a column with at most this many distinct values are rewritten from
#: `lower(col) = lower(v)` (which lowercases every row) to `col IN (<its spellings>)`
SPELLINGS_MAX_DISTINCT = 50_000
#: filters whose candidate ids are kept in memory (per data directory, least recently used out)
CANDIDATE_SETS_KEPT = 64
#: placement outcomes that do not hold the worker for the shift
FREE_OUTCOMES = ("no_show", "terminated", "cancelled", "canceled")


@dataclass
class HybridQuery:
    query: str
    k: int = 10
    role: str | None = None
    city: str | None = None
    state: str | None = None
    availability: str | None = None
    certifications: list[str] = field(default_factory=list)
    min_reliability: float | None = None
    max_pay_rate: float | None = None
    #: with `lat`/`lon` (or the target city's centre), only workers within this many miles
    radius_miles: float | None = None
    lat: float | None = None
    lon: float | None = None
    sql_filter: str | None = None
    exclude_worker_ids: list[str] = field(default_factory=list)
    #: worker columns returned with each source besides the ranking ones (contacts, say)
    columns: list[str] = field(default_factory=list)
    use_playbook_memory: bool = True
    playbook_memory_k: int = 200
    index: str = "workers"
    dataset: str = "workers"
    #: judge playbook ages and validity at this date (YYYY-MM-DD; default today)
    today: str | None = None
    #: (start, end), YYYY-MM-DD: leave out the workers that `bookings_dataset` books for a
    #: shift overlapping those days (see `_booked_ids`); they are listed in the answer
    booked_between: tuple[str, str] | None = None
    bookings_dataset: str = "placements"


def _haversine_miles_sql(lat: float, lon: float) -> str:
    """Great-circle distance from (lat, lon) to each row's (lat, lon), in miles."""
    return (
        f"(7917.5 * asin(sqrt(power(sin(radians(lat - {lat}) / 2), 2) + "
        f"cos(radians({lat})) * cos(radians(lat)) * power(sin(radians(lon - {lon}) / 2), 2))))"
    )


@dataclass(frozen=True)
class Equality:
    """One case-insensitive equality filter (`role = 'welder'`)."""

    column: str
    value: str
    #: the column's stored values equal to `value` ignoring case; None when unknown (too
    #: many distinct values to list, or non-ASCII text whose lowercasing may differ)
    spellings: list[str] | None
    #: distinct values in the column (0 when unknown): the likelier a test is to reject a row
    distinct: int

    def sql(self) -> str:
        from lakehouse.lakehouse import quote_ident, sql_literal

        ident = quote_ident(self.column)
        if self.spellings is None:
            return f"lower({ident}) = lower({sql_literal(self.value)})"
        if not self.spellings:
            return "FALSE"  # no stored value lowercases to this one
        if len(self.spellings) == 1:
            return f"{ident} = {sql_literal(self.spellings[0])}"
        return f"{ident} IN ({', '.join(sql_literal(v) for v in self.spellings)})"


def equalities(
    q: HybridQuery, columns: set[str], *, spellings: Callable[[str], dict[str, list[str]] | None] | None = None
) -> list[Equality]:
    """The role / city / state / availability filters of `q`, the column with the most
    distinct values first. `spellings(column)` (optional) gives the column's distinct
    values grouped by their `lower()` form, so a case-insensitive equality becomes a test
    against the stored spellings (same rows, no per-row lowercasing)."""
    found = []
    for column, value in (("role", q.role), ("city", q.city), ("state", q.state), ("availability", q.availability)):
        if value:
            if column not in columns:
                raise InvalidInput(f"dataset {q.dataset!r} has no column {column!r} to filter on")
            if column == "city" and q.radius_miles is not None:
                continue  # the radius replaces the exact city
            groups = spellings(column) if spellings is not None else None
            # ASCII lowercasing is the same in Python and in the engine; other text keeps lower() = lower()
            known = groups is not None and str(value).isascii()
            found.append(Equality(column, str(value), groups.get(str(value).lower(), []) if known else None,
                                  len(groups) if groups is not None else 0))
    return sorted(found, key=lambda e: -e.distinct)


def build_where(q: HybridQuery, equal: list[Equality], city_centre: tuple[float, float] | None) -> list[str]:
    """The SQL filter clauses of `q` (its `equalities` first), without its exclusions (see
    `_without`)."""
    from lakehouse.lakehouse import sql_literal

    # The engine evaluates AND left to right and tests later clauses only on the rows that
    # passed: the column with the most distinct values (the likeliest to reject) goes first.
    clauses = [e.sql() for e in equal]
    for cert in q.certifications:
        clauses.append(f"lower(certifications) LIKE {sql_literal('%' + cert.lower() + '%')}")
    if q.min_reliability is not None:
        clauses.append(f"reliability >= {float(q.min_reliability)}")
    if q.max_pay_rate is not None:
        clauses.append(f"pay_rate <= {float(q.max_pay_rate)}")
    if q.radius_miles is not None:
        centre = (q.lat, q.lon) if q.lat is not None and q.lon is not None else city_centre
        if centre is None:
            raise InvalidInput("a radius needs lat/lon or a city the dataset knows")
        clauses.append(f"{_haversine_miles_sql(*centre)} <= {float(q.radius_miles)}")
    if q.sql_filter:
        clauses.append(f"({q.sql_filter})")
    return clauses


def _keyable(q: HybridQuery, equal: list[Equality]) -> bool:
    """Whether `equal` is the whole filter and every spelling is known: then the rows come
    from the key index of the first column (rows by key, ADR-025) and the others are tested
    on those rows only. The recruiter's usual filter (role + city + state) reads ~1.5K rows
    that way instead of scanning 500K."""
    others = q.certifications or q.min_reliability is not None or q.max_pay_rate is not None or q.radius_miles is not None
    return bool(equal) and not others and not q.sql_filter and all(e.spellings is not None for e in equal)


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)


def _ids_by_key(lake: Lakehouse, dataset: str, equal: list[Equality]) -> pa.Array | None:
    """Worker ids (as text) of the rows passing every equality, read through the key index
    of the first one's column; None when a column is not text (then only the engine's
    casts define the comparison: the caller runs the SQL)."""
    first, rest = equal[0], equal[1:]
    if not first.spellings:
        return pa.array([], pa.string())
    try:  # the core tests the other columns on the key's rows in place
        table = lake.lookup(dataset, first.column, first.spellings, ["worker_id"], equal={e.column: e.spellings for e in rest})
    except InvalidInput:  # one of them is not text
        return None
    ids = table["worker_id"]
    if not (pa.types.is_integer(ids.type) or _is_text(ids.type)):
        return None
    return pc.cast(ids, pa.string()).combine_chunks()


def _canonical_int(value: str) -> bool:
    try:
        return str(int(value)) == value
    except ValueError:
        return False


def integer_id_column(columns: list[dict[str, Any]]) -> bool:
    """Whether a dataset's `worker_id` column (manifest columns) holds integers."""
    return any(c["name"] == "worker_id" and str(c.get("type", "")).lower().startswith(("int", "uint")) for c in columns)


def id_filter(ids: list[str], columns: list[dict[str, Any]]) -> str:
    """`worker_id IN (...)` for a dataset with these manifest columns (see `_id_in`)."""
    return _id_in([str(w) for w in ids], integer_id_column(columns))


def _id_in(ids: list[str], integer_ids: bool) -> str:
    """`worker_id IN (...)` for ids given as text: compared as numbers when the column
    is an integer and every id is an integer written canonically (then it is the same test
    as comparing `CAST(worker_id AS VARCHAR)`, without casting every row)."""
    from lakehouse.lakehouse import sql_literal

    if integer_ids and all(_canonical_int(w) for w in ids):
        return f"worker_id IN ({', '.join(ids)})"
    return f"CAST(worker_id AS VARCHAR) IN ({', '.join(sql_literal(w) for w in ids)})"


class _Stamped(Generic[V]):
    """One value per key, kept while its stamp holds (a dataset version, a day): a new
    stamp computes the value again on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[Hashable, tuple[Hashable, V]] = {}

    def get(self, key: Hashable, stamp: Hashable, compute: Callable[[], V]) -> V:
        with self._lock:
            hit = self._values.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        value = compute()  # outside the lock: two first uses may both compute
        with self._lock:
            self._values[key] = (stamp, value)
        return value


#: distinct values of a filter column grouped by their `lower()`, per dataset version
_SPELLINGS: _Stamped[dict[str, list[str]] | None] = _Stamped()


def _spellings(lake: Lakehouse, dataset: str, version: tuple[str, int], column: str) -> dict[str, list[str]] | None:
    """The distinct values of `column` grouped by their engine-side `lower()` (None past
    SPELLINGS_MAX_DISTINCT), read once per dataset `version` ((manifest id, table version):
    a re-created dataset has another id)."""
    from lakehouse.lakehouse import quote_ident

    def read() -> dict[str, list[str]] | None:
        ident = quote_ident(column)
        table = lake.sql(
            f"SELECT DISTINCT CAST({ident} AS VARCHAR) AS v, lower(CAST({ident} AS VARCHAR)) AS l "
            f"FROM {quote_ident(dataset)} WHERE {ident} IS NOT NULL LIMIT {SPELLINGS_MAX_DISTINCT + 1}"
        )
        if table.num_rows > SPELLINGS_MAX_DISTINCT:
            return None
        groups: dict[str, list[str]] = {}
        for v, low in zip(table["v"].to_pylist(), table["l"].to_pylist()):
            groups.setdefault(low, []).append(v)
        return groups

    return _SPELLINGS.get((str(lake.path), dataset, column), version, read)


class _CandidateSets:
    """The candidate ids of recent filters, per dataset version: recruiters refine the
    query text under one filter far more often than they change the filter, and the
    filter's answer cannot change until the dataset does (a new version is another key).
    Filters with raw `sql_filter` text are never kept: they may read other datasets."""

    def __init__(self, capacity: int = CANDIDATE_SETS_KEPT) -> None:
        self._lock = threading.Lock()
        self._sets: OrderedDict[tuple[str, str, tuple[str, int], str], pa.Array] = OrderedDict()
        self._capacity = capacity

    def get(self, key: tuple[str, str, tuple[str, int], str], read: Callable[[], pa.Array]) -> tuple[pa.Array, bool]:
        """(the ids, whether they came from memory)."""
        with self._lock:
            hit = self._sets.get(key)
            if hit is not None:
                self._sets.move_to_end(key)
                return hit, True
        ids = read()
        with self._lock:
            self._sets[key] = ids
            while len(self._sets) > self._capacity:
                self._sets.popitem(last=False)
        return ids, False


_CANDIDATES = _CandidateSets()


def hybrid_search(lake: Lakehouse, q: HybridQuery) -> dict[str, Any]:
    from lakehouse.lakehouse import quote_ident, sql_literal

    if not q.query.strip():
        raise InvalidInput("query text is empty")
    if q.k < 1:
        raise InvalidInput("k must be at least 1")
    window = _booking_window(q.booked_between) if q.booked_between else None
    timings: dict[str, float] = {}
    started = time.perf_counter()
    manifest = lake.dataset(q.dataset)
    columns = {c["name"] for c in manifest["columns"]}
    unknown = sorted(set(q.columns) - columns)
    if unknown:
        raise InvalidInput(f"dataset {q.dataset!r} has no column(s) {unknown} to return; it has {sorted(columns)}")
    version = (str(manifest.get("id")), int(manifest.get("version", 0)))
    table = quote_ident(q.dataset)

    # The query's embedding does not depend on the filter: it runs beside the SQL (both
    # release the GIL), so the stage that finishes first waits for the other, not both in turn.
    embedding = _EMBEDDER_POOL.submit(_timed, lake.vectors.embed_query, q.query)

    # 1. SQL filter -> candidate ids.
    t = time.perf_counter()
    centre = None
    if q.radius_miles is not None and q.lat is None and q.city:
        row = lake.sql(
            f"SELECT avg(lat) AS lat, avg(lon) AS lon FROM {table} WHERE lower(city) = lower({sql_literal(q.city)})"
            + (f" AND lower(state) = lower({sql_literal(q.state)})" if q.state else "")
        ).to_pylist()[0]
        centre = (row["lat"], row["lon"]) if row["lat"] is not None else None
    equal = equalities(q, columns, spellings=lambda column: _spellings(lake, q.dataset, version, column))
    where = build_where(q, equal, centre)
    # Kept as Arrow: the vector search and the boost key it in the core, with no Python
    # string per candidate (a broad filter keeps tens of thousands).
    select = f"SELECT CAST(worker_id AS VARCHAR) AS worker_id FROM {table}" + (f" WHERE {' AND '.join(where)}" if where else "")
    bookings = None
    if not where and not q.exclude_worker_ids and window is None:
        id_column, reused = None, False  # the whole index: no candidate list to build
        sql_matches = int(lake.sql(f"SELECT count(*) AS n FROM {table}")["n"][0].as_py())
    else:
        keyed = _keyable(q, equal)

        def read() -> pa.Array:  # one contiguous array, combined once, not per use
            ids = _ids_by_key(lake, q.dataset, equal) if keyed else None
            return ids if ids is not None else lake.sql(select)["worker_id"].combine_chunks()

        if q.sql_filter:
            id_column, reused = read(), False
        else:
            id_column, reused = _CANDIDATES.get((str(lake.path), q.dataset, version, select), read)
        id_column = _without(id_column, q.exclude_worker_ids)
    timings["sql_ms"] = (time.perf_counter() - t) * 1000
    if window is not None:
        t = time.perf_counter()
        id_column, bookings = _unbooked(lake, q.bookings_dataset, window, id_column)
        timings["bookings_ms"] = (time.perf_counter() - t) * 1000
    if id_column is not None:
        sql_matches = len(id_column)
    if sql_matches == 0:
        embedding.cancel()
        return {**_empty(q, timings, started), **({"bookings": bookings} if bookings else {})}

    # 2. Semantic rank within the candidates.
    t = time.perf_counter()
    vector, timings["embed_ms"] = embedding.result()
    timings["embed_wait_ms"] = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    depth = max(q.k * RERANK_DEPTH, 40)
    semantic = lake.vectors.search(q.index, vector, depth, doc_ids=id_column)
    scores = {h["doc_id"]: h["score"] for h in semantic["hits"]}
    timings["vector_ms"] = (time.perf_counter() - t) * 1000

    # 3. Playbook boost, keyed by worker id within the candidate pool.
    t = time.perf_counter()
    boosts: dict[str, float] = {}
    boost_line, diagnostics, explained = "playbook_boost: disabled", None, None
    if q.use_playbook_memory:
        memory = lake.playbooks
        result = memory.boost(vector, city=q.city, state=q.state, role=q.role, k=q.playbook_memory_k,
                              candidates=id_column, candidates_only=True, max_citations=MAX_CITATIONS, today=q.today)
        boosts, explained = result.by_worker(), result.explain
        boost_line, diagnostics = result.line, result.diagnostics
        log.debug(boost_line)  # the answer carries it too; at INFO it was a second log line per search
        missing = _could_enter_top_k(scores, boosts, q.k, full_depth=len(scores) >= depth)
        if missing:  # boosted workers outside the semantic top that could still rank: score them exactly
            for h in lake.vectors.search(q.index, vector, len(missing), doc_ids=missing)["hits"]:
                scores[h["doc_id"]] = h["score"]
    timings["boost_ms"] = (time.perf_counter() - t) * 1000

    # 4. Final ranking and the reasons a recruiter reads.
    t = time.perf_counter()
    ranked = sorted(scores, key=lambda w: -(scores[w] + boosts.get(w, 0.0)))[: q.k]
    details = _details(lake, q.dataset, ranked, [c for c in DETAIL_COLUMNS if c in columns] + list(q.columns))
    cited = {b["worker_id"]: b for b in explained([w for w in ranked if w in boosts])} if explained else {}
    sources = [_source(w, scores[w], cited.get(w), details.get(w, {}), q) for w in ranked]
    timings["explain_ms"] = (time.perf_counter() - t) * 1000
    timings["total_ms"] = (time.perf_counter() - started) * 1000
    return {
        "query": q.query,
        "k": q.k,
        "sql_matches": sql_matches,
        "sql_reused": reused,
        "sources": sources,
        "search_path": semantic["path"],
        "index_version": semantic["version"],
        "shortfall": max(0, q.k - len(sources)),
        "unindexed_searched": semantic["unindexed_searched"],
        "playbook_boost": boost_line,
        "playbook": diagnostics,
        **({"bookings": bookings} if bookings else {}),
        "latency_ms": {k: round(v, 3) for k, v in timings.items()},
    }


def _booked_ids(lake: Lakehouse, dataset: str, start: str, end: str) -> pa.Array:
    """Worker ids (as text) that `dataset` books for a shift overlapping [start, end]: a
    placement whose end date is not before `start` (or is open) and whose start date is
    not after `end`, unless its outcome frees the worker (`FREE_OUTCOMES`).

    Contracts are staffed ahead: a shift that starts today or later can only overlap a
    placement still open today, and those are few (most placements ended long ago). They
    are read once per dataset version and day, and each shift is tested against them in
    memory (1.9 ms of SQL per shift before, on 250K placements). A shift in the past runs
    the whole query."""
    manifest = lake.dataset(dataset)
    version = (str(manifest.get("id")), int(manifest.get("version", 0)))
    today = date.today().isoformat()
    if start < today:
        select = _bookings_sql(dataset, start, end)
        ids, _ = _CANDIDATES.get((str(lake.path), dataset, version, select), lambda: lake.sql(select)["worker_id"].combine_chunks())
        return ids
    columns = "CAST(worker_id AS VARCHAR) AS worker_id, CAST(start_date AS DATE) AS start_date, CAST(end_date AS DATE) AS end_date"
    open_now = _OPEN_BOOKINGS.get((str(lake.path), dataset), (version, today),
                                  lambda: lake.sql(_bookings_sql(dataset, today, None, columns)))
    if not open_now.num_rows:
        return pa.array([], pa.string())
    first, last = (pa.scalar(date.fromisoformat(day), pa.date32()) for day in (start, end))
    overlaps = pc.and_kleene(
        pc.or_kleene(pc.is_null(open_now["end_date"]), pc.greater_equal(open_now["end_date"], first)),
        pc.less_equal(open_now["start_date"], last))
    return pc.unique(open_now["worker_id"].filter(pc.fill_null(overlaps, False)))


def _bookings_sql(dataset: str, start: str, end: str | None, columns: str = "DISTINCT CAST(worker_id AS VARCHAR) AS worker_id") -> str:
    """Placements holding their worker on some day of [start, end] (`end` None: any day
    from `start` on). The end date goes first: most placements ended long ago, and the
    engine tests later clauses only on the rows that passed."""
    from lakehouse.lakehouse import quote_ident, sql_literal

    return (
        f"SELECT {columns} FROM {quote_ident(dataset)} "
        f"WHERE (end_date IS NULL OR end_date >= CAST({sql_literal(start)} AS DATE)) "
        + (f"AND start_date <= CAST({sql_literal(end)} AS DATE) " if end is not None else "")
        + f"AND lower(coalesce(outcome, '')) NOT IN ({', '.join(sql_literal(o) for o in FREE_OUTCOMES)})"
    )


#: per bookings dataset, its placements still open on a given day (worker id as text,
#: start and end as dates), for the latest dataset version and day asked
_OPEN_BOOKINGS: _Stamped[pa.Table] = _Stamped()


def _unbooked(lake: Lakehouse, dataset: str, window: tuple[str, str], ids: pa.Array) -> tuple[pa.Array, dict[str, Any]]:
    """`ids` less the workers `dataset` books for a shift overlapping `window`, and what
    was left out: the booked candidates themselves (booked workers the filter would not
    have found are no news to the recruiter), or why the bookings could not be read. A
    data directory without a bookings dataset, or with one that lacks the columns, is a
    normal state: nothing is left out and the answer says so."""
    from lakehouse.errors import LakehouseError

    try:
        booked = _booked_ids(lake, dataset, *window)
    except LakehouseError as exc:
        return ids, {"excluded": [], "note": f"{dataset} dataset not consulted: {exc}"}
    if not len(booked) or not len(ids):
        return ids, {"excluded": [], "note": None}
    held = pc.is_in(ids, value_set=booked.cast(ids.type))
    return ids.filter(pc.invert(held)), {"excluded": ids.filter(held).to_pylist(), "note": None}


def _booking_window(days: tuple[str, str] | list[str]) -> tuple[str, str]:
    """`booked_between` as two ISO days, first <= last (InvalidInput otherwise)."""
    if len(days) != 2:
        raise InvalidInput(f"booked_between is [first day, last day], not {list(days)!r}")
    parsed = []
    for value, what in zip(days, ("first", "last")):
        try:
            parsed.append(date.fromisoformat(str(value).strip()[:10]).isoformat())
        except ValueError as exc:
            raise InvalidInput(f"booked_between: the {what} day must be a date YYYY-MM-DD, not {value!r}") from exc
    if parsed[1] < parsed[0]:
        raise InvalidInput(f"booked_between ends ({parsed[1]}) before it starts ({parsed[0]})")
    return parsed[0], parsed[1]


def _without(ids: pa.Array, excluded: list[str]) -> pa.Array:
    """`ids` less the excluded workers. Exclusions (a client's blacklist, the workers booked
    for a shift) are applied to the filter's candidates rather than written into its SQL,
    so the same filter keeps one remembered answer whoever is excluded. Ids compare as the
    text `CAST(worker_id AS VARCHAR)` gives, as they always have."""
    if not excluded:
        return ids
    return ids.filter(pc.invert(pc.is_in(ids, value_set=pa.array([str(w) for w in excluded], ids.type))))


def _could_enter_top_k(scores: dict[str, float], boosts: dict[str, float], k: int, *, full_depth: bool) -> list[str]:
    """Boosted workers outside the semantic top that could still reach the final top `k`.
    Such a worker's similarity is at most the lowest one retrieved (the search returned
    the most similar candidates), so its final score is at most that plus its boost; when
    that cannot beat the k-th final score already in hand, scoring it cannot change the
    answer. A search that came back short of its depth retrieved every candidate there was:
    then nothing is missing but workers outside the index."""
    outside = [w for w in boosts if w not in scores]
    if not outside or len(scores) < k or not full_depth:
        return outside
    finals = sorted((s + boosts.get(w, 0.0) for w, s in scores.items()), reverse=True)
    kth, ceiling = finals[k - 1], min(scores.values())
    return [w for w in outside if ceiling + boosts[w] >= kth]


#: runs query embeddings beside the SQL filter (see `hybrid_search`)
_EMBEDDER_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="hybrid-embed")


def _timed(fn: Callable[[str], Any], arg: str) -> tuple[Any, float]:
    """(fn(arg), milliseconds it took)."""
    started = time.perf_counter()
    out = fn(arg)
    return out, (time.perf_counter() - started) * 1000


def _empty(q: HybridQuery, timings: dict[str, float], started: float) -> dict[str, Any]:
    timings["total_ms"] = (time.perf_counter() - started) * 1000
    return {
        "query": q.query, "k": q.k, "sql_matches": 0, "sources": [], "search_path": None, "index_version": None,
        "shortfall": q.k, "unindexed_searched": 0, "playbook_boost": "playbook_boost: skipped (no SQL matches)",
        "playbook": None, "latency_ms": {k: round(v, 3) for k, v in timings.items()},
    }


def _details(lake: Lakehouse, dataset: str, worker_ids: list[str], wanted: list[str]) -> dict[str, dict[str, Any]]:
    if not worker_ids:
        return {}
    wanted = [c for c in dict.fromkeys(wanted) if c != "worker_id"]
    rows = lake.lookup(dataset, "worker_id", worker_ids, ["worker_id", *wanted]).to_pylist()
    return {str(r.pop("worker_id")): r for r in rows}


def _source(worker_id: str, semantic: float, boost: dict[str, Any] | None, fields: dict[str, Any], q: HybridQuery) -> dict[str, Any]:
    value = boost["boost"] if boost else 0.0
    reasons = [f"semantic match {semantic:.2f} for \u201c{q.query}\u201d"]
    citations = []
    if boost:
        top = boost["citations"][0]
        reasons.append(
            f"+{value:.3f} playbook boost from {boost['citations_total']} past fill(s), strongest: "
            f"\u201c{top['operation']}\u201d on {top['date']}" + (" (same role and place)" if top["exact_match"] else "")
        )
        citations = boost["citations"]
        if boost["failures"]:
            reasons.append(f"{boost['failures']} no-show(s) recorded here: each halves this worker's boost")
    if fields.get("reliability") is not None:
        reasons.append(f"reliability {float(fields['reliability']):.2f}")
    matched = [v for v in (q.role, q.city, q.state) if v]
    if matched:
        reasons.append("matches filter: " + ", ".join(matched))
    return {
        "worker_id": worker_id,
        **fields,
        "semantic_score": round(semantic, 4),
        "boost": round(value, 4),
        "final_score": round(semantic + value, 4),
        "citations": citations,
        "reasons": reasons,
    }
