"""Vectorised string building on Arrow arrays.

Millions of rows rule out per-row Python formatting, so strings are assembled from
small vocabularies with `take` (index into a list) and joined column-wise with
Arrow's C++ kernels. Templates are plain `str.format` strings whose fields name
columns; each row picks one template.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_FORMATTER = string.Formatter()


def vocab(values: Sequence[str]) -> pa.Array:
    return pa.array(list(values), type=pa.string())


def take(values: pa.Array, indices: np.ndarray) -> pa.Array:
    return values.take(pa.array(indices))


def constant(value: str, rows: int) -> pa.Array:
    return take(vocab([value]), np.zeros(rows, dtype=np.int64))


def concat(*parts: pa.Array | str) -> pa.Array:
    """Element-wise concatenation; plain `str` parts are repeated on every row."""
    args = [pa.scalar(part) if isinstance(part, str) else part for part in parts]
    return pc.binary_join_element_wise(*args, "")


def int_strings(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(values), pa.string())


def render(templates: Sequence[str], choice: np.ndarray, fields: Mapping[str, pa.Array]) -> pa.Array:
    """Row i becomes templates[choice[i]] filled from row i of `fields`; choice -1 gives ""."""
    pieces, positions = [], []
    for number, template in enumerate((*templates, "")):
        rows = np.flatnonzero(choice == (number if number < len(templates) else -1))
        if rows.size:
            pieces.append(_render_rows(template, rows, fields))
            positions.append(rows)
    if not pieces:
        return vocab([])
    # Pieces are grouped by template; put every row back in its place.
    order = np.argsort(np.concatenate(positions), kind="stable")
    return take(pa.concat_arrays(pieces), order)


def _render_rows(template: str, rows: np.ndarray, fields: Mapping[str, pa.Array]) -> pa.Array:
    parts: list[pa.Array | str] = []
    for literal, field, _spec, _conv in _FORMATTER.parse(template):
        if literal:
            parts.append(literal)
        if field is not None:
            parts.append(take(fields[field], rows))
    if not any(isinstance(part, pa.Array) for part in parts):
        return constant(template, rows.size)
    if len(parts) == 1:
        return parts[0]
    return concat(*parts)


def pick_in_groups(rng: np.random.Generator, group: np.ndarray, group_sizes: np.ndarray) -> np.ndarray:
    """Uniform choice of a template within each row's group of a flat template list.

    Templates are listed group after group; `group_sizes[g]` is how many belong to g.
    """
    starts = np.concatenate(([0], np.cumsum(group_sizes)[:-1]))
    return starts[group] + (rng.random(group.size) * group_sizes[group]).astype(np.int64)


def lookup_strings(
    codes: np.ndarray, build: Callable[[int], tuple[str, ...]], columns: int
) -> list[pa.Array]:
    """Strings that depend only on a small integer code (e.g. role x skill subset).

    Builds each distinct code's strings once in Python, then fans out with `take`.
    Returns `columns` arrays, one per element of the tuple `build` returns.
    """
    distinct, inverse = np.unique(codes, return_inverse=True)
    built = [build(int(code)) for code in distinct]
    return [take(vocab([row[column] for row in built]), inverse.ravel()) for column in range(columns)]
