"""The recruiter API's own small state, under `<data_dir>/_recruiter/`.

Two kinds of files, both standard formats (DESIGN decision 7):

* JSONL journals (`call_log.jsonl`, `bookings.jsonl`, `outcomes.jsonl`,
  `tools_audit.jsonl`, per-workspace `activity.jsonl`): one JSON object per line,
  appended and fsync'd before the call returns, so an acknowledged write is never lost.
  A torn last line (crash mid-write) is skipped on read.
* JSON documents (`blacklists.json`, `workspaces/index.json`, `workspaces/<id>/workspace.json`):
  replaced atomically (write a temporary file in the same folder, fsync it, rename it
  over the old one, fsync the folder), so a reader sees the old document or the new
  one, never a mix.

Everything is guarded by one re-entrant lock per store: the app is one process and the
files are small, so read-modify-write under a lock is simple and sufficient.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

RECRUITER_DIR = "_recruiter"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some platforms cannot open directories; the rename is still atomic
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(path: Path, value: Any) -> None:
    """Replace `path` with `value` as JSON: temp file + fsync + rename + fsync(dir)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(value, fh, ensure_ascii=False, indent=1, default=str)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        # Only the temporary file this function created is ever removed.
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def read_json(path: Path, default: Any) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return default


def append_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    """Append `records` (one line each) and fsync before returning."""
    if not records:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(json.dumps(r, ensure_ascii=False, default=str, separators=(",", ":")) + "\n" for r in records)
    created = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    try:
        view = memoryview(data.encode("utf-8"))
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        _fsync_dir(path.parent)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every complete line of `path` (a torn last line from a crash is skipped)."""
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


class Store:
    """The `_recruiter/` folder of one data directory."""

    def __init__(self, data_dir: str | os.PathLike):
        self.root = Path(data_dir) / RECRUITER_DIR
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        # JSONL files are append-only: keep them in memory after the first read so that
        # filters (audit, bookings) do not re-parse the file on every request. Keyed by the
        # file's name: a Path built and hashed per call showed in every /match's profile.
        self._cache: dict[str, list[dict[str, Any]]] = {}

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    @contextmanager
    def locked(self) -> Iterator[None]:
        with self._lock:
            yield

    # ------------------------------------------------------------------ journals
    def append(self, name: str, *records: dict[str, Any]) -> None:
        with self._lock:
            append_jsonl(self.path(name), list(records))
            if name in self._cache:
                self._cache[name].extend(json.loads(json.dumps(r, default=str)) for r in records)

    def records(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            cached = self._cache.get(name)
            if cached is None:
                cached = self._cache[name] = read_jsonl(self.path(name))
            return list(cached)

    # ------------------------------------------------------------------ documents
    def read(self, name: str, default: Any) -> Any:
        with self._lock:
            return read_json(self.path(name), default)

    def write(self, name: str, value: Any) -> None:
        with self._lock:
            write_json_atomic(self.path(name), value)

    def update(self, name: str, default: Any, change: Callable[[Any], Any]) -> Any:
        """Read-modify-write `name` under the lock; `change` returns what the caller gets."""
        with self._lock:
            doc = read_json(self.path(name), default)
            result = change(doc)
            write_json_atomic(self.path(name), doc)
            return result
