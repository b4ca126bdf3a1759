"""Any Arrow table we accept comes back equal (after the documented storage mapping)."""

from __future__ import annotations

import datetime as dt
import itertools

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakehouse import Lakehouse, _core

_counter = itertools.count()

SCALARS = {
    "int64": (pa.int64(), st.integers(-(2**63), 2**63 - 1)),
    "int32": (pa.int32(), st.integers(-(2**31), 2**31 - 1)),
    "uint8": (pa.uint8(), st.integers(0, 255)),
    "float64": (pa.float64(), st.floats(allow_nan=False, width=64)),
    "bool": (pa.bool_(), st.booleans()),
    "string": (pa.string(), st.text(max_size=20)),
    "large_string": (pa.large_string(), st.text(max_size=20)),
    "date": (pa.date32(), st.dates(dt.date(1900, 1, 1), dt.date(2200, 1, 1))),
    "ts_utc": (pa.timestamp("us", tz="UTC"), st.datetimes(dt.datetime(1970, 1, 1), dt.datetime(2200, 1, 1), timezones=st.just(dt.timezone.utc))),
    "ts_chicago": (pa.timestamp("ms", tz="America/Chicago"), st.datetimes(dt.datetime(1971, 1, 1), dt.datetime(2200, 1, 1), timezones=st.just(dt.timezone.utc))),
    "ts_naive": (pa.timestamp("us"), st.datetimes(dt.datetime(1970, 1, 1), dt.datetime(2200, 1, 1))),
    "binary": (pa.binary(), st.binary(max_size=16)),
    "decimal": (pa.decimal128(12, 2), st.decimals(min_value=-10**9, max_value=10**9, places=2, allow_nan=False, allow_infinity=False)),
}


@st.composite
def column(draw):
    kind = draw(st.sampled_from(sorted(SCALARS) + ["list", "struct"]))
    if kind == "list":
        inner_type, inner = SCALARS[draw(st.sampled_from(["int64", "string"]))]
        return pa.list_(inner_type), st.lists(st.none() | inner, max_size=4)
    if kind == "struct":
        (a_t, a), (b_t, b) = SCALARS["string"], SCALARS["int64"]
        return pa.struct([("city", a_t), ("zip", b_t)]), st.fixed_dictionaries({"city": st.none() | a, "zip": st.none() | b})
    return SCALARS[kind]


@st.composite
def tables(draw):
    n_cols = draw(st.integers(1, 5))
    n_rows = draw(st.integers(1, 15))
    names = draw(st.lists(st.text("abcdefghijklmnopqrstuvwxyzéü_", min_size=1, max_size=8), min_size=n_cols, max_size=n_cols, unique=True))
    arrays = []
    for _ in names:
        typ, values = draw(column())
        arrays.append(pa.array(draw(st.lists(st.none() | values, min_size=n_rows, max_size=n_rows)), type=typ))
    return pa.table(dict(zip(names, arrays)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(table=tables())
def test_any_table_reads_back_equal(tmp_path, table):
    name = f"t{next(_counter)}"
    with Lakehouse(tmp_path / name) as lh:
        lh.ingest_table(table, name)
        got = lh.sql(f'SELECT * FROM "{name}"')
    expected = table.cast(_core.storage_schema(table.schema))
    assert got.schema.equals(expected.schema), f"{got.schema}\n!=\n{expected.schema}"
    assert got.equals(expected)
