"""Arrow schemas of the five tables, in generation order."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import pyarrow as pa

_TS = pa.timestamp("us", tz="UTC")

WORKERS = pa.schema([
    ("worker_id", pa.int64()), ("name", pa.string()), ("role", pa.string()),
    ("city", pa.string()), ("state", pa.string()), ("zip", pa.string()),
    ("lat", pa.float64()), ("lon", pa.float64()), ("phone", pa.string()), ("email", pa.string()),
    ("skills", pa.string()), ("certifications", pa.string()), ("years_experience", pa.int32()),
    ("reliability", pa.float64()), ("archetype", pa.string()), ("availability", pa.string()),
    ("available_from", pa.date32()), ("pay_rate", pa.float64()), ("profile", pa.string()),
    ("updated_at", _TS),
])
CLIENTS = pa.schema([
    ("client_id", pa.int64()), ("name", pa.string()), ("industry", pa.string()),
    ("city", pa.string()), ("state", pa.string()), ("created_at", _TS),
])
JOB_ORDERS = pa.schema([
    ("order_id", pa.int64()), ("client_id", pa.int64()), ("role", pa.string()),
    ("city", pa.string()), ("state", pa.string()), ("workers_needed", pa.int32()),
    ("start_date", pa.date32()), ("end_date", pa.date32()), ("bill_rate", pa.float64()),
    ("status", pa.string()), ("created_at", _TS),
])
PLACEMENTS = pa.schema([
    ("placement_id", pa.int64()), ("order_id", pa.int64()), ("worker_id", pa.int64()),
    ("client_id", pa.int64()), ("start_date", pa.date32()), ("end_date", pa.date32()),
    ("outcome", pa.string()), ("rating", pa.float64()),  # rating is null when unrated
])
CALL_LOG = pa.schema([
    ("call_id", pa.int64()), ("worker_id", pa.int64()), ("staffer", pa.string()),
    ("channel", pa.string()), ("outcome", pa.string()), ("at", _TS), ("note", pa.string()),
])

TABLES: Mapping[str, pa.Schema] = MappingProxyType({
    "workers": WORKERS,
    "clients": CLIENTS,
    "job_orders": JOB_ORDERS,
    "placements": PLACEMENTS,
    "call_log": CALL_LOG,
})


def conform(table: pa.Table, name: str) -> pa.Table:
    """Guard against a generator drifting from the published schema (a bug, not bad input)."""
    if not table.schema.equals(TABLES[name]):
        raise AssertionError(f"{name}: generated schema differs from TABLES[{name!r}]:\n{table.schema}")
    return table
