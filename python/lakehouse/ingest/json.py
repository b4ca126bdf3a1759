"""JSON and NDJSON -> Arrow.

Accepted shapes (anything else is refused with the reason):
- an array of objects (`[{...}, {...}]`);
- line-delimited objects (`.jsonl`, `.ndjson`, or a `.json` file holding one object per line);
- an API envelope: a top-level object with exactly one list-valued key
  (`{"data": [...], "count": 2}`); the list is the records, the envelope's other keys
  (counts, cursors) are not data and are dropped. A top-level object without exactly
  one list is refused: guessing which list holds the records would be silent data loss.

Nested objects are flattened to `parent.child` columns; arrays stay list columns;
records with different keys are unioned (a missing key is null). A column whose values
do not share one Arrow type (e.g. `1` in one record, `"n/a"` in another) becomes string,
non-string values written as JSON text, so nothing is lost. Objects nested deeper than
`MAX_FLATTEN_DEPTH` are kept as JSON text rather than exploding into columns.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa

from lakehouse.config import IngestConfig
from lakehouse.errors import InvalidInput
from lakehouse.ingest.common import (
    check_column_count,
    check_field_chars,
    check_file_size,
    clean_column_names,
    named_field,
    with_element_list_names,
)

MAX_FLATTEN_DEPTH = 32
_LINE_DELIMITED = {".jsonl", ".ndjson"}


def read_json(path: Path, limits: IngestConfig | None = None) -> pa.Table:
    limits = limits or IngestConfig()
    check_file_size(path, limits)
    records = _records(path)
    columns: dict[str, list[Any]] = {}
    for row, record in enumerate(records):
        for name, value in _flatten(record).items():
            column = columns.get(name)
            if column is None:
                column = columns[name] = [None] * row
                check_column_count(path.name, len(columns), limits)
            column.append(value)
        for column in columns.values():  # union: a key this record lacks is null
            if len(column) <= row:
                column.append(None)
    if not columns:
        raise InvalidInput(f"{path.name}: the records hold no fields: nothing to ingest")
    try:
        return _table(path, columns, limits)
    except UnicodeEncodeError as exc:  # JSON may escape half a surrogate pair ("\ud800"): not text
        raise InvalidInput(f"{path.name} holds a string that is not valid Unicode: {exc.reason} at {exc.object[:40]!r}") from exc


# ---------------------------------------------------------------- shapes


def _records(path: Path) -> list[dict[str, Any]]:
    data = path.read_bytes()
    if not data.strip():
        raise InvalidInput(f"{path.name} is empty: nothing to ingest")
    if path.suffix.lower() in _LINE_DELIMITED:
        return _checked_records(path, _parse_lines(path, data))
    try:
        document = json.loads(data)
    except RecursionError as exc:
        raise InvalidInput(f"{path.name} is nested too deeply to parse") from exc
    except ValueError as exc:
        if isinstance(exc, json.JSONDecodeError) and exc.msg == "Extra data":
            return _checked_records(path, _parse_lines(path, data))  # NDJSON saved as .json
        raise InvalidInput(f"{path.name} is not valid JSON: {exc}") from exc
    return _checked_records(path, _unwrap(path, document))


def _parse_lines(path: Path, data: bytes) -> list[Any]:
    records = []
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except RecursionError as exc:
            raise InvalidInput(f"{path.name} line {number} is nested too deeply to parse") from exc
        except ValueError as exc:
            raise InvalidInput(f"{path.name} line {number} is not valid JSON: {exc}") from exc
    return records


def _unwrap(path: Path, document: Any) -> list[Any]:
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        lists = [key for key, value in document.items() if isinstance(value, list)]
        if len(lists) == 1:
            return document[lists[0]]
        raise InvalidInput(
            f"{path.name} holds one JSON object, not a list of records; an envelope object is accepted "
            f"only with exactly one list-valued key (found {len(lists)}: {lists[:5]})"
        )
    raise InvalidInput(f"{path.name} holds a single JSON {type(document).__name__}, not a list of records")


def _checked_records(path: Path, records: list[Any]) -> list[dict[str, Any]]:
    if not records:
        raise InvalidInput(f"{path.name} holds no records: nothing to ingest")
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise InvalidInput(f"{path.name}: record {index} is a JSON {_json_kind(record)}, expected an object")
    return records


def _json_kind(value: Any) -> str:
    return {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}.get(type(value), "null")


# ---------------------------------------------------------------- columns


def _flatten(record: dict[str, Any], prefix: str = "", depth: int = 0) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and depth < MAX_FLATTEN_DEPTH:
            flat.update(_flatten(value, f"{name}.", depth + 1))
        elif isinstance(value, dict):
            flat[name] = json.dumps(value) if value else None
        else:
            flat[name] = value
    return flat


def _table(path: Path, columns: dict[str, list[Any]], limits: IngestConfig) -> pa.Table:
    raw_names = list(columns)
    arrays = [_column_array(values) for values in columns.values()]
    fields = [named_field(raw, name, array.type) for raw, name, array in zip(raw_names, clean_column_names(raw_names), arrays)]
    for field, array in zip(fields, arrays):
        check_field_chars(path.name, field.name, array, limits)
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _column_array(values: list[Any]) -> pa.Array:
    """One Arrow type for the whole column, or string when the values disagree."""
    try:
        array = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError, TypeError, ValueError, RecursionError):
        return pa.array([_as_text(v) for v in values], pa.string())
    if pa.types.is_null(array.type):
        return pa.array(values, pa.string())
    return array.cast(with_element_list_names(array.type))


def _as_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    try:
        return json.dumps(value)
    except (ValueError, RecursionError):  # pragma: no cover - came from json.loads, so it serialises
        return str(value)
