"""Schema fingerprints: how a schema arrives does not matter; any change to a column does."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given
from hypothesis import strategies as st

from lakehouse import _core

TYPES = [pa.int32(), pa.int64(), pa.float64(), pa.string(), pa.bool_(), pa.date32(), pa.timestamp("us", tz="UTC"), pa.list_(pa.int64())]
SAME_STORAGE = {pa.string(): pa.large_string(), pa.timestamp("us", tz="UTC"): pa.timestamp("ms", tz="America/Chicago")}

names = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10)


@st.composite
def schemas(draw):
    cols = draw(st.lists(names, min_size=1, max_size=8, unique=True))
    return pa.schema([pa.field(c, draw(st.sampled_from(TYPES)), draw(st.booleans())) for c in cols])


def fp(schema: pa.Schema) -> str:
    return _core.fingerprint(_core.storage_schema(schema))


@given(schemas())
def test_fingerprint_survives_a_parquet_round_trip(schema):
    buf = io.BytesIO()
    pq.write_table(schema.empty_table(), buf)
    assert fp(pq.read_schema(io.BytesIO(buf.getvalue()))) == fp(schema)


@given(schemas())
def test_other_encodings_of_the_same_values_share_a_fingerprint(schema):
    swapped = pa.schema([f.with_type(SAME_STORAGE.get(f.type, f.type)) for f in schema])
    assert fp(swapped) == fp(schema)


@given(schemas(), st.data())
def test_any_change_of_name_type_nullability_or_order_changes_it(schema, data):
    i = data.draw(st.integers(0, len(schema) - 1))
    field = schema.field(i)
    kind = data.draw(st.sampled_from(["name", "type", "nullable", "order"]))
    if kind == "name":
        changed = schema.set(i, field.with_name(field.name + "x"))
    elif kind == "type":
        other = data.draw(st.sampled_from([t for t in TYPES if t != field.type and SAME_STORAGE.get(t) != field.type]))
        changed = schema.set(i, field.with_type(other))
    elif kind == "nullable":
        changed = schema.set(i, field.with_nullable(not field.nullable))
    else:
        if len(schema) < 2:
            return
        j = (i + 1) % len(schema)
        fields = list(schema)
        fields[i], fields[j] = fields[j], fields[i]
        changed = pa.schema(fields)
    assert fp(changed) != fp(schema)


def test_fingerprint_ignores_metadata_but_diff_names_the_column():
    a = pa.schema([pa.field("zip", pa.string())])
    b = pa.schema([pa.field("zip", pa.int64())], metadata={b"source": b"csv"})
    assert fp(a) == fp(a.with_metadata({b"x": b"y"}))
    diff = _core.schema_diff(a, b)
    assert diff["columns"] == [{"change": "changed", "column": "zip", "existing": "string null", "incoming": "int64 null"}]
