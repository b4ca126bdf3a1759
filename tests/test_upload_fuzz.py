"""Hostile uploads: thousands of generated files and file names through the real
endpoint. Never a 5xx, never a file outside the data directory, every rejection kept."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakehouse import Lakehouse
from lakehouse.config import ApiKey, Config
from lakehouse.gateway import create_app

KEY = "fuzz-key"
# 10,000 generated uploads (~95 s on the 2-core box); LAKEHOUSE_FUZZ_UPLOADS lowers it for quick local runs.
EXAMPLES = int(os.environ.get("LAKEHOUSE_FUZZ_UPLOADS", "10000"))

NAMES = st.one_of(
    st.sampled_from(["../../etc/passwd", "/etc/passwd", "..", ".", "", "/tmp/../../x.csv", "C:\\Windows\\x.csv",
                     "a/../../b.csv", "\x00.csv", "ok.csv", "ok.json", "ok.parquet", "x" * 500 + ".csv", "né.ndjson"]),
    st.text(max_size=40),
)
SUFFIXES = st.sampled_from([".csv", ".tsv", ".json", ".jsonl", ".ndjson", ".parquet", ".pdf", ".txt", ".exe", ""])
BODIES = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300).map(str.encode),
    st.builds(lambda h, rows: (h + "\n" + rows).encode(), st.sampled_from(["id,name", "a;b;c", "x\ty", "\ufeffid, name "]),
              st.text(alphabet="0123456789abc,;\t\"\n\r", max_size=200)),
    st.builds(lambda n: b"id,v\n" + b"1,aaaa\n" * n, st.integers(0, 2000)),  # repetitive, zip-bomb-like
    st.builds(lambda s: s.encode()[: len(s) // 2], st.just('[{"a": 1, "b": {"c": [1, 2]}}, {"a": "x"}]')),  # truncated
)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    config = Config.load(root / "data", env={})
    config.gateway.api_keys = [ApiKey(KEY, "admin", "fuzzer")]
    config.gateway.max_upload_bytes = 64 * 1024
    with Lakehouse(config=config) as lh:
        yield TestClient(create_app(lh, config)), root, lh


def _files_outside(root: Path, data: Path) -> set[Path]:
    """Every path under `root` except the data directory's own tree (pruned, not listed:
    the data dir grows with every accepted upload)."""
    found: set[Path] = set()
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if Path(folder, d) != data]
        found.update(Path(folder, name) for name in dirs + files)
    return found


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(name=NAMES, suffix=SUFFIXES, body=BODIES, dataset=st.one_of(st.none(), st.text(max_size=12)))
def test_hostile_uploads_get_a_clear_answer_and_write_nothing_outside(served, name, suffix, body, dataset):
    client, root, lh = served
    before = _files_outside(root, lh.path)
    fields = {} if dataset is None else {"name": dataset}
    response = client.post("/ingest/file", files={"file": (name + suffix, body, "application/octet-stream")},
                           data=fields, headers={"X-API-Key": KEY})
    assert response.status_code < 500, (response.status_code, response.text)
    assert "message" in response.json() or response.status_code in (200, 201)
    assert _files_outside(root, lh.path) == before
    assert not Path("/escape.csv").exists()
