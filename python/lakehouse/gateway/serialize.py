"""The wire format: Arrow results -> JSON-safe values or an Arrow IPC stream.

Shared by the gateway, its client and the CLI so that all three agree on it.
JSON has no dates, decimals, bytes or NaN: dates and times become ISO 8601 strings,
decimals strings (no float rounding), bytes base64, durations seconds, and non-finite
floats null.
"""

from __future__ import annotations

import base64
import math
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa

ARROW_STREAM_MEDIA_TYPE = "application/vnd.apache.arrow.stream"
#: response header of /query/sql: "true" when any table was read from the rescue bucket
RESCUE_HEADER = "X-Lakehouse-Rescue-Used"


def to_jsonable(value: Any) -> Any:
    """Recursively convert `value` to types `json.dumps(allow_nan=False)` accepts."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    return str(value)


def json_default(value: Any) -> Any:
    """The `default` hook of `json.dumps`: what `to_jsonable` makes of a value json cannot
    write (a date, decimal, bytes, set, ...), so one pass renders content that holds a
    few. Only non-finite floats still need the full `to_jsonable` walk."""
    if isinstance(value, (set, frozenset)):
        return list(value)
    return to_jsonable(value)


def _already_jsonable(arrow_type: pa.DataType) -> bool:
    # Most columns are ints and strings: skip the per-value walk for them.
    return (
        pa.types.is_integer(arrow_type) or pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)
        or pa.types.is_boolean(arrow_type) or pa.types.is_null(arrow_type)
    )


def column_values(column: pa.ChunkedArray | pa.Array) -> list[Any]:
    values = column.to_pylist()
    return values if _already_jsonable(column.type) else [to_jsonable(v) for v in values]


def limit_rows(table: pa.Table, limit: int | None) -> pa.Table:
    return table if limit is None else table.slice(0, limit)


def table_to_json(table: pa.Table) -> dict[str, Any]:
    """`{"columns", "column_types", "rows", "row_count"}` with row-major values."""
    columns = [column_values(col) for col in table.columns]
    return {
        "columns": table.column_names,
        "column_types": [str(field.type) for field in table.schema],
        "rows": [list(row) for row in zip(*columns)] if columns else [],
        "row_count": table.num_rows,
    }


def table_to_records(table: pa.Table) -> list[dict[str, Any]]:
    data = table_to_json(table)
    return [dict(zip(data["columns"], row)) for row in data["rows"]]


def table_to_ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def table_from_ipc(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()
