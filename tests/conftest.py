from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pyarrow as pa
import pytest

from lakehouse import Lakehouse

def _shared_data() -> Path:
    """The team's reference data (`../shared/data` beside the clone). CI clones
    elsewhere, so the environment variable and the development machine's path count too."""
    candidates = [os.environ.get("LAKEHOUSE_SHARED_DATA"), Path(__file__).resolve().parents[2] / "shared" / "data", "/work/shared/data"]
    for candidate in filter(None, candidates):
        if Path(candidate).is_dir():
            return Path(candidate)
    return Path(__file__).resolve().parents[2] / "shared" / "data"


SHARED_DATA = _shared_data()
# Product code finds the reference data (O*NET titles) through this variable too.
os.environ.setdefault("LAKEHOUSE_SHARED_DATA", str(SHARED_DATA))

_real_rmtree = shutil.rmtree


_REPO_ROOT = Path(__file__).resolve().parents[1]
_DELETABLE_ROOTS = (Path(tempfile.gettempdir()).resolve(), _REPO_ROOT)


def _rmtree_only_inside_scratch(path, *args, **kwargs):
    """Tests may only delete trees strictly inside the temp dir or the clone (pytest's
    own cache lives there). A path-handling bug once made a test delete '/'; this guard
    turns such a bug into a failing test instead."""
    real = Path(os.path.realpath(path))
    if not any(root in real.parents for root in _DELETABLE_ROOTS):
        raise RuntimeError(f"test tried to delete {str(real)!r} (outside the temp dir and the clone): refusing")
    return _real_rmtree(path, *args, **kwargs)


shutil.rmtree = _rmtree_only_inside_scratch


@pytest.fixture
def lh(tmp_path: Path):
    with Lakehouse(tmp_path / "data", actor="tester") as lake:
        yield lake


def workers_table(n: int = 5, start: int = 1) -> pa.Table:
    ids = list(range(start, start + n))
    return pa.table(
        {
            "worker_id": pa.array(ids, pa.int64()),
            "name": [f"Worker {i}" for i in ids],
            "role": ["Welder" if i % 2 else "Electrician" for i in ids],
            "city": ["Toledo" if i % 3 else "Chicago" for i in ids],
            "state": ["OH" if i % 3 else "IL" for i in ids],
            "reliability": [round(0.5 + (i % 5) / 10, 2) for i in ids],
        }
    )
