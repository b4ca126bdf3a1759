"""Playbook memory as the product uses it: seed a sealed fill, record a no-show, get the
boost for a query, discover patterns across similar fills, and keep the memory compact.

The math and the storage live in the Rust core (`vectord::playbook`); this module embeds
the operation text, stamps the workers-schema fingerprint and today's date, journals
every change, and joins worker facts for pattern discovery.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from lakehouse import _core
from lakehouse.errors import InvalidInput

if TYPE_CHECKING:
    from lakehouse.lakehouse import Lakehouse

PLAYBOOK_DIR = "_playbooks"
WORKERS = "workers"


def today_iso() -> str:
    return date.today().isoformat()


def operation_text(role: str, count: int, city: str, state: str) -> str:
    """The canonical operation text of a fill, e.g. "Welder x2 in Toledo, OH"."""
    return f"{role} x{count} in {city}, {state}"


class PlaybookMemory:
    def __init__(self, lake: Lakehouse):
        self._lake = lake
        self._lock = threading.Lock()
        self._core = _core.PlaybookMemory(str(lake.path / PLAYBOOK_DIR), lake.vectors.embedder.dim)

    def __len__(self) -> int:
        return len(self._core)

    def _embed(self, text: str) -> np.ndarray:
        return self._lake.vectors.embed_query(text)

    def workers_fingerprint(self) -> str | None:
        manifest = self._lake._catalog.get_live(WORKERS)
        return manifest["fingerprint"] if manifest else None

    # ------------------------------------------------------------------ writes
    def seed(self, fill: dict[str, Any], *, actor: str | None = None) -> dict[str, Any]:
        """Record a sealed fill. `fill` has role, city, state, workers ([{worker_id, name}]),
        and optionally operation, date, staffer, valid_from, valid_until, attributes."""
        for field in ("role", "city", "state"):
            if not str(fill.get(field) or "").strip():
                raise InvalidInput(f"a playbook needs {field!r}")
        workers = [{"worker_id": str(w["worker_id"]), "name": str(w.get("name", ""))} for w in fill.get("workers", [])]
        if not workers:
            raise InvalidInput("a playbook needs at least one endorsed worker")
        entry = {
            "operation": fill.get("operation") or operation_text(fill["role"], len(workers), fill["city"], fill["state"]),
            "role": fill["role"], "city": fill["city"], "state": fill["state"],
            "date": str(fill.get("date") or today_iso())[:10],
            "staffer": fill.get("staffer") or actor or self._lake.actor,
            "workers": workers,
            "valid_from": fill.get("valid_from"), "valid_until": fill.get("valid_until"),
            "schema_fingerprint": fill.get("schema_fingerprint", self.workers_fingerprint()),
            "attributes": fill.get("attributes") or {},
        }
        vector = self._embed(entry["operation"])
        with self._lock:
            op, stored = self._core.seed(entry, vector.astype("<f4").tobytes())
        self._lake._journal.append(self._lake._event(
            "playbook_seed", WORKERS, actor=actor, op=op, playbook_id=stored["id"], operation=entry["operation"],
            workers=[w["worker_id"] for w in workers],
        ))
        return {"op": op, "playbook": stored}

    def delete(self, playbook_id: str, *, actor: str | None = None) -> dict[str, Any]:
        with self._lock:
            op = self._core.delete(playbook_id)
        self._lake._journal.append(self._lake._event("playbook_delete", WORKERS, actor=actor, playbook_id=playbook_id))
        return {"op": op, "playbook_id": playbook_id}

    def mark_failed(self, city: str, state: str, worker_id: str, name: str, *, actor: str | None = None) -> int:
        with self._lock:
            failures = self._core.mark_failed(city, state, str(worker_id), name)
        self._lake._journal.append(self._lake._event(
            "playbook_fail", WORKERS, actor=actor, worker_id=str(worker_id), name=name, city=city, state=state, failures=failures,
        ))
        return failures

    # ------------------------------------------------------------------ reads
    def boost(
        self,
        query: str | np.ndarray,
        *,
        city: str | None = None,
        state: str | None = None,
        role: str | None = None,
        k: int = 200,
        candidates: list[str] | pa.Array | pa.ChunkedArray | None = None,
        candidates_only: bool = False,
        max_citations: int | None = None,
        today: str | None = None,
    ) -> _core.Boosts:
        """The boosts of one query, held in the core: `by_worker()` (worker id -> boost),
        `explain(worker_ids)` (their citations and failures), `line`, `diagnostics`. With
        `candidates` (the SQL filter's worker ids) only playbooks endorsing one of them are
        considered; `candidates_only` keeps only their boosts; `max_citations` keeps the
        strongest citations per worker."""
        vector = self._embed(query) if isinstance(query, str) else np.asarray(query, np.float32)
        request = {
            "city": city, "state": state, "role": role, "k": k, "today": today or today_iso(),
            "schema_fingerprint": self.workers_fingerprint(), "candidates_only": candidates_only,
            "max_citations": max_citations,
        }
        if isinstance(candidates, pa.ChunkedArray):
            candidates = candidates.combine_chunks()
        elif candidates is not None and not isinstance(candidates, pa.Array):
            candidates = pa.array([str(c) for c in candidates], pa.string())
        return self._core.boost(vector.astype("<f4").tobytes(), request, candidates)

    def entries(self) -> list[dict[str, Any]]:
        return self._core.entries()

    def patterns(self, query: str, *, k: int = 25, city: str | None = None, state: str | None = None, role: str | None = None,
                 prior_role: str | None = None) -> dict[str, Any]:
        """What the `k` most similar past fills had in common: certifications and skills
        with their share, archetype mix, reliability distribution of endorsed workers.
        With `prior_role`, also `similar_in_role`: the most similar fills of that role in
        the same place (one embedding and one call for both views)."""
        vector = self._embed(query).astype("<f4").tobytes()
        similar = self._core.similar(vector, k, city, state, role)
        worker_ids = sorted({w["worker_id"] for playbook, _ in similar for w in playbook["workers"]})
        facts = self._worker_facts(worker_ids)
        certs, skills, archetypes = Counter(), Counter(), Counter()
        reliability = []
        for row in facts:
            certs.update(_split(row.get("certifications")))
            skills.update(_split(row.get("skills")))
            if row.get("archetype"):
                archetypes[row["archetype"]] += 1
            if row.get("reliability") is not None:
                reliability.append(float(row["reliability"]))
        n = max(len(facts), 1)

        def shares(counter: Counter, top: int = 8) -> list[dict[str, Any]]:
            return [{"value": v, "count": c, "share": round(c / n, 3)} for v, c in counter.most_common(top)]

        summary = []
        if archetypes:
            lead, count = archetypes.most_common(1)[0]
            summary.append(f"{lead} archetype")
        if certs:
            cert, count = certs.most_common(1)[0]
            summary.append(f"{round(100 * count / n)}% {cert}")
        out = {
            "playbooks": len(similar),
            "workers": len(facts),
            "summary": " · ".join(summary),
            "certifications": shares(certs),
            "skills": shares(skills),
            "archetypes": shares(archetypes),
            "reliability": _distribution(reliability),
            "similar": _briefs(similar),
        }
        if prior_role:
            out["similar_in_role"] = _briefs(self._core.similar(vector, k, city, state, prior_role))
        return out

    def _worker_facts(self, worker_ids: list[str]) -> list[dict[str, Any]]:
        if not worker_ids or self._lake._catalog.get_live(WORKERS) is None:
            return []
        columns = self._lake.dataset(WORKERS)["columns"]
        wanted = [c["name"] for c in columns if c["name"] in ("certifications", "skills", "archetype", "reliability")]
        if not wanted:
            return []
        return self._lake.lookup(WORKERS, "worker_id", worker_ids, wanted).to_pylist()

    def stats(self) -> dict[str, Any]:
        entries = self.entries()
        today = today_iso()
        names = Counter(w["name"] for e in entries for w in e["workers"])
        return {
            "playbooks": len(entries),
            "endorsements": sum(len(e["workers"]) for e in entries),
            "endorsed_workers": len(names),
            "top_endorsed": [{"name": n, "endorsements": c} for n, c in names.most_common(10)],
            "new_today": sum(1 for e in entries if e["created_at"][:10] == today),
            "failures_recorded": sum(f["failures"] for f in self._core.failures()),
        }

    def compact(self, *, ttl_days: float, decay_floor: float, merge_cosine: float, actor: str | None = None) -> dict[str, Any]:
        policy = {"ttl_days": ttl_days, "decay_floor": decay_floor, "merge_cosine": merge_cosine}
        with self._lock:
            report = self._core.compact(policy, today_iso())
        report["at"] = datetime.now(timezone.utc).isoformat()
        self._lake._journal.append(self._lake._event(
            "playbook_compact", WORKERS, actor=actor, before=report["before"], after=report["after"],
            expired=len(report["expired_ttl"]), decayed=len(report["decayed"]), merged=len(report["merged"]),
        ))
        return report


def _briefs(similar: list[tuple[dict[str, Any], float]], top: int = 10) -> list[dict[str, Any]]:
    return [{"id": p["id"], "operation": p["operation"], "date": p["date"], "similarity": round(s, 4)} for p, s in similar[:top]]


def _split(value: Any) -> list[str]:
    if not value:
        return []
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value).replace(";", ",").split(",") if part.strip()]


def _distribution(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0}
    arr = np.array(values)
    return {
        "count": len(values), "mean": round(float(arr.mean()), 3),
        "p25": round(float(np.percentile(arr, 25)), 3), "median": round(float(np.median(arr)), 3),
        "p75": round(float(np.percentile(arr, 75)), 3),
    }
