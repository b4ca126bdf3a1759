"""Profiles: named scopes over the vector indexes (spec chapter 3, "Phase 17").

A profile binds a set of indexes (by index name, or by dataset name meaning every index
over that dataset) and carries the settings a staffer's session runs with: an HNSW
configuration override, the vector backend it expects, a bucket and an embedding model.

- `activate` opens (warms) only the bound indexes, and applies the profile's HNSW
  override to any bound HNSW index whose active configuration differs (a new version,
  promoted; the graph is reused when only ef_search changes). Two profiles with
  different overrides on the same index therefore flip it on each activation; bind
  such profiles to separate indexes.
- `search` refuses an index outside the bindings with `OutOfScope` (HTTP 403) naming the
  allowed indexes; every search through a profile - refused ones included - is appended
  (fsync'd) to the audit log with who, what and when, and `audit` lists it.

Files: ``_vectors/profiles.json`` (atomic replace) and ``_vectors/profile_audit.jsonl``.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lakehouse.errors import InvalidInput, NotFound, OutOfScope
from lakehouse.vectors.jsonl import append_jsonl, file_lock, iter_jsonl, read_json, write_json_atomic

if TYPE_CHECKING:
    from lakehouse.vectors.manager import VectorIndexes

PROFILES_FILE = "profiles.json"
AUDIT_FILE = "profile_audit.jsonl"
BACKENDS = ("hnsw", "lance")
HNSW_KEYS = ("connectivity", "ef_construction", "ef_search", "quantization")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
#: names the HTTP API uses as fixed segments under /vectors/profiles/ (a profile so named
#: could not be read back by name there)
RESERVED_NAMES = frozenset({"audit"})
#: longest query text kept in the audit log
AUDIT_QUERY_CHARS = 500


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _parse_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"invalid time {value!r}: use ISO 8601, e.g. 2025-01-31T08:00:00+00:00") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


class Profiles:
    """The profiles of one data directory."""

    def __init__(self, indexes: VectorIndexes):
        self.indexes = indexes
        self.path: Path = indexes.root / PROFILES_FILE
        self.audit_path: Path = indexes.root / AUDIT_FILE

    # ------------------------------------------------------------ store
    def _load(self) -> dict[str, dict[str, Any]]:
        return dict(read_json(self.path, {"profiles": {}}).get("profiles", {}))

    def _save(self, profiles: dict[str, dict[str, Any]]) -> None:
        write_json_atomic(self.path, {"format": 1, "profiles": profiles})

    def _actor(self, actor: str | None) -> str:
        return actor or getattr(self.indexes._lake, "actor", None) or "unknown"

    def list(self) -> list[dict[str, Any]]:
        return [self._view(p) for _, p in sorted(self._load().items())]

    def get(self, name: str) -> dict[str, Any]:
        profile = self._load().get(name)
        if profile is None:
            known = sorted(self._load())
            raise NotFound(f"no profile named {name!r}" + (f"; profiles: {known}" if known else "; create one first"))
        return self._view(profile)

    def _view(self, profile: dict[str, Any]) -> dict[str, Any]:
        return {**profile, "allowed_indexes": self._resolve(profile["bound"])}

    def put(
        self,
        name: str,
        bound: list[str],
        *,
        hnsw: dict[str, Any] | None = None,
        vector_backend: str | None = None,
        bucket: str | None = None,
        embedding_model: str | None = None,
        description: str | None = None,
        actor: str | None = None,
    ) -> dict[str, Any]:
        """Create or replace profile `name` bound to `bound` (index or dataset names)."""
        if not _NAME.match(name or ""):
            raise InvalidInput(f"invalid profile name {name!r}: a letter, then letters, digits, '_', '.' or '-' (at most 64)")
        if name in RESERVED_NAMES:
            raise InvalidInput(f"the profile name {name!r} is reserved (GET /vectors/profiles/{name} is another endpoint); choose another")
        bound = list(dict.fromkeys(b.strip() for b in bound if b and b.strip()))
        if not bound:
            raise InvalidInput("bind the profile to at least one index (or dataset)")
        known = set(self.indexes.names())
        datasets = {self.indexes.definition(n)["dataset"] for n in known}
        unknown = [b for b in bound if b not in known and b not in datasets]
        if unknown:
            raise InvalidInput(f"no vector index or indexed dataset named {unknown}; indexes: {sorted(known)}")
        hnsw = {k: v for k, v in (hnsw or {}).items() if v is not None}
        bad = set(hnsw) - set(HNSW_KEYS)
        if bad:
            raise InvalidInput(f"unknown HNSW setting(s) {sorted(bad)}; use {list(HNSW_KEYS)}")
        if vector_backend is not None and vector_backend not in BACKENDS:
            raise InvalidInput(f"unknown vector backend {vector_backend!r}: use 'hnsw' or 'lance'")
        actor = self._actor(actor)
        with file_lock(self.path):
            profiles = self._load()
            previous = profiles.get(name, {})
            profiles[name] = {
                "name": name, "bound": bound, "hnsw": hnsw, "vector_backend": vector_backend, "bucket": bucket,
                "embedding_model": embedding_model, "description": description,
                "created_at": previous.get("created_at", _now()), "created_by": previous.get("created_by", actor),
                "updated_at": _now(), "updated_by": actor,
                "activated_at": previous.get("activated_at"), "activated_by": previous.get("activated_by"),
            }
            self._save(profiles)
        return self._view(profiles[name])

    def remove(self, name: str, *, actor: str | None = None) -> dict[str, Any]:
        with file_lock(self.path):
            profiles = self._load()
            if name not in profiles:
                raise NotFound(f"no profile named {name!r}")
            removed = profiles.pop(name)
            self._save(profiles)
        return {"removed": name, "by": self._actor(actor), "profile": removed}

    # ------------------------------------------------------------ scope
    def _resolve(self, bound: list[str]) -> list[str]:
        """The index names a binding list allows: named indexes, plus every index over a
        named dataset (existing now)."""
        names = self.indexes.names()
        allowed = set()
        for n in names:
            if n in bound or self.indexes.definition(n)["dataset"] in bound:
                allowed.add(n)
        return sorted(allowed)

    def allowed(self, name: str) -> list[str]:
        return self.get(name)["allowed_indexes"]

    def check(self, profile: str, index: str) -> dict[str, Any]:
        """The profile, if `index` is inside its scope; `OutOfScope` (403) otherwise."""
        view = self.get(profile)
        if index not in view["allowed_indexes"]:
            raise OutOfScope(
                f"index {index!r} is outside profile {profile!r}; allowed: {view['allowed_indexes']}",
                {"profile": profile, "index": index, "allowed": view["allowed_indexes"]},
            )
        return view

    # ------------------------------------------------------------ activate
    def pending_hnsw(self, name: str) -> list[dict[str, Any]]:
        """Bound HNSW indexes whose active configuration differs from the override."""
        view = self.get(name)
        override = view.get("hnsw") or {}
        if not override:
            return []
        pending = []
        for index in view["allowed_indexes"]:
            definition = self.indexes.definition(index)
            if definition.get("backend", "hnsw") != "hnsw":
                continue
            active = self.indexes.registry(index).active()
            if active is None:
                continue
            current = {**self.indexes._params(definition)["hnsw"], **(active.get("params") or {})}
            differs = {k: v for k, v in override.items() if current.get(k) != v}
            if differs:
                pending.append({"index": index, "from": {k: current.get(k) for k in differs}, "to": differs})
        return pending

    def activate(self, name: str, *, actor: str | None = None, apply_hnsw: bool = True) -> dict[str, Any]:
        """Warm only the bound indexes (and apply the HNSW override); what was done."""
        actor = self._actor(actor)
        view = self.get(name)
        applied, pending = [], self.pending_hnsw(name)
        if apply_hnsw and pending:
            from lakehouse.vectors.autotune import Autotuner

            tuner = Autotuner(self.indexes)
            for item in pending:
                applied.append(tuner.apply_config(item["index"], item["to"], actor=actor, reason=f"profile {name!r} activated"))
            pending = []
        warmed = self.indexes.warm(view["allowed_indexes"])
        notes = []
        for index in view["allowed_indexes"]:
            definition = self.indexes.definition(index)
            backend = definition.get("backend", "hnsw")
            if view.get("vector_backend") and backend != view["vector_backend"]:
                notes.append(f"index {index!r} uses {backend!r}, the profile expects {view['vector_backend']!r}: rebuild it with that backend")
            if view.get("embedding_model") and definition.get("model_id") != view["embedding_model"]:
                notes.append(f"index {index!r} was embedded with {definition.get('model_id')!r}, not the profile's "
                             f"{view['embedding_model']!r}: queries on it use {definition.get('model_id')!r}")
        missing = [i for i in view["allowed_indexes"] if i not in warmed]
        if missing:
            notes.append(f"not warmed (no active version yet): {missing}")
        with file_lock(self.path):
            profiles = self._load()
            if name in profiles:
                profiles[name].update(activated_at=_now(), activated_by=actor)
                self._save(profiles)
        return {
            "profile": name, "warmed": warmed, "allowed_indexes": view["allowed_indexes"],
            "hnsw_applied": applied, "hnsw_pending": pending, "notes": notes,
            "vector_backend": view.get("vector_backend"), "bucket": view.get("bucket"),
            "embedding_model": view.get("embedding_model"), "activated_by": actor,
        }

    # ------------------------------------------------------------ search + audit
    def search(
        self,
        profile: str,
        index: str,
        query: str | np.ndarray,
        k: int = 10,
        *,
        actor: str | None = None,
        doc_ids: list[str] | None = None,
    ) -> dict[str, Any]:
        """`VectorIndexes.search` inside the profile's scope; always audited."""
        actor = self._actor(actor)
        started = time.perf_counter()
        entry: dict[str, Any] = {
            "at": _now(), "actor": actor, "profile": profile, "index": index,
            "query": query[:AUDIT_QUERY_CHARS] if isinstance(query, str) else f"<vector dim={np.asarray(query).shape[-1]}>",
            "k": k, "filtered": doc_ids is not None,
        }
        try:
            self.check(profile, index)
            result = self.indexes.search(index, query, k, doc_ids=doc_ids)
        except OutOfScope as exc:
            self._audit(entry, "refused", 0, started, str(exc.args[0]))
            raise
        except Exception as exc:
            self._audit(entry, "error", 0, started, f"{type(exc).__name__}: {exc.args[0] if exc.args else exc}")
            raise
        self._audit(entry, "ok", len(result["hits"]), started, None, version=result.get("version"))
        return {**result, "profile": profile}

    def _audit(self, entry: dict[str, Any], status: str, results: int, started: float, error: str | None, **extra: Any) -> None:
        entry.update(status=status, results=results, ms=round((time.perf_counter() - started) * 1000, 3), **extra)
        if error:
            entry["error"] = error
        append_jsonl(self.audit_path, entry)

    def audit(
        self,
        profile: str | None = None,
        actor: str | None = None,
        since: str | None = None,
        *,
        index: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Audited profile searches, oldest first (the last `limit` when given)."""
        after = _parse_time(since) if since else None
        out = []
        for entry in iter_jsonl(self.audit_path):
            if profile is not None and entry.get("profile") != profile:
                continue
            if actor is not None and entry.get("actor") != actor:
                continue
            if index is not None and entry.get("index") != index:
                continue
            if after is not None:
                try:
                    if _parse_time(str(entry.get("at"))) < after:
                        continue
                except InvalidInput:
                    continue
            out.append(entry)
        return out[-limit:] if limit else out
