"""What every parser shares: column naming and the configured limits.

Limits raise `InvalidInput` naming the limit and its config key (`[ingest]` in
lakehouse.toml), so an operator reading a quarantine reason knows what to change.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.config import IngestConfig
from lakehouse.errors import InvalidInput

ORIGINAL_NAME_KEY = b"original_name"


def check_file_size(path: Path, limits: IngestConfig) -> int:
    size = path.stat().st_size
    if size > limits.max_file_bytes:
        raise InvalidInput(
            f"{path.name} is {size} bytes, over the limit of {limits.max_file_bytes} "
            "(config key ingest.max_file_bytes)"
        )
    return size


def check_column_count(file_name: str, count: int, limits: IngestConfig) -> None:
    if count > limits.max_columns:
        raise InvalidInput(
            f"{file_name} has {count} columns, over the limit of {limits.max_columns} "
            "(config key ingest.max_columns)"
        )


def check_field_chars(file_name: str, column: str, values: pa.Array | pa.ChunkedArray, limits: IngestConfig) -> None:
    """Refuse a string column holding a value longer than `max_field_chars`."""
    if not pa.types.is_string(values.type) or len(values) == 0:
        return
    longest = pc.max(pc.utf8_length(values)).as_py() or 0
    check_text_length(file_name, column, longest, limits)


def check_text_length(file_name: str, column: str, length: int, limits: IngestConfig) -> None:
    if length > limits.max_field_chars:
        raise InvalidInput(
            f"{file_name}: a value in column {column!r} has {length} characters, over the limit of "
            f"{limits.max_field_chars} (config key ingest.max_field_chars)"
        )


def clean_column_names(raw: list[str]) -> list[str]:
    """Names a SQL user can type: stray spaces and BOMs stripped, an empty name becomes
    `column_<position>`, a repeated name gets `_2`, `_3`... (never colliding with a
    name already present)."""
    stripped = [name.strip().lstrip("\ufeff").strip() or f"column_{i + 1}" for i, name in enumerate(raw)]
    taken = set(stripped)  # a name the source spells out itself is never given to a repeat
    first_seen: set[str] = set()
    out = []
    for name in stripped:
        if name not in first_seen:
            first_seen.add(name)
            out.append(name)
            continue
        n = 2
        while f"{name}_{n}" in taken:
            n += 1
        taken.add(f"{name}_{n}")
        out.append(f"{name}_{n}")
    return out


def named_field(raw_name: str, clean_name: str, type_: pa.DataType) -> pa.Field:
    """A field named `clean_name`; the source's own spelling is kept in the field
    metadata when it differs, so nothing about the header is lost."""
    metadata = {ORIGINAL_NAME_KEY: raw_name.encode("utf-8", "surrogatepass")} if raw_name != clean_name else None
    return pa.field(clean_name, type_, metadata=metadata)


def with_element_list_names(type_: pa.DataType) -> pa.DataType:
    """`type_` with every list child named `element`, the Parquet/Delta convention the
    storage layer writes (pyarrow names it `item`, and the write rejects the mismatch)."""
    if pa.types.is_list(type_) or pa.types.is_large_list(type_):
        child = type_.value_field
        inner = child.with_type(with_element_list_names(child.type)).with_name("element")
        return pa.large_list(inner) if pa.types.is_large_list(type_) else pa.list_(inner)
    if pa.types.is_struct(type_):
        return pa.struct([f.with_type(with_element_list_names(f.type)) for f in type_])
    return type_
