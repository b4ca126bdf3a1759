"""Does the ranking learn? A replayed history with a hidden ground truth.

Simulated weeks of contracts: every worker has a hidden fit (the chance they accept
and perform) and a hidden no-show tendency. Each contract is ranked twice, boost on
and boost off; the recruiter works down the boost-on list (call -> placed with
probability `fit`; placed -> no-show with probability `noshow`), and every outcome is
fed back: successful placements seed playbook memory, no-shows are marked failed.
Profiles carry no signal about fit, so only memory can learn it.

Reported per week and at the end, boost on vs off: recall@5 of the workers who would
work out (fit x (1 - noshow) >= 0.5), NDCG@10 with that expected success as the gain,
and the share of no-show-prone workers in the top 5.

    .venv/bin/python bench/playbook_eval.py [--quick]
"""

from __future__ import annotations

import json
import math
import random
import sys
import tempfile
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from statistics import mean
from typing import Any

import pyarrow as pa

from common import REPO, rnd

sys.path.insert(0, str(REPO / "python"))

from lakehouse import Lakehouse  # noqa: E402
from lakehouse.intelligence.hybrid import HybridQuery, hybrid_search  # noqa: E402

ROLES = {
    "Welder": ["MIG", "TIG", "stick welding", "blueprints", "grinding", "fabrication", "pipe fitting"],
    "Forklift operator": ["reach truck", "pallet jack", "loading docks", "inventory", "RF scanner", "order picking"],
    "CNA": ["patient care", "vital signs", "bathing", "charting", "dementia care", "mobility assistance"],
}
CITIES = [("Toledo", "OH"), ("Akron", "OH"), ("Joliet", "IL"), ("Nashville", "TN")]
GOOD = 0.5  # expected success at or above this counts as "works out"


@dataclass
class Worker:
    worker_id: int
    name: str
    role: str
    city: str
    state: str
    fit: float
    noshow: float

    @property
    def expected(self) -> float:
        return self.fit * (1 - self.noshow)


def make_workers(per_slot: int, rng: random.Random) -> list[Worker]:
    workers, wid = [], 1
    for role in ROLES:
        for city, state in CITIES:
            for _ in range(per_slot):
                noshow = 0.7 if rng.random() < 0.15 else 0.05
                workers.append(Worker(wid, f"Worker {wid}", role, city, state, rng.random(), noshow))
                wid += 1
    return workers


def workers_table(workers: list[Worker], rng: random.Random) -> pa.Table:
    def profile(w: Worker) -> str:
        skills = rng.sample(ROLES[w.role], 3)
        return f"{w.role} in {w.city}, {w.state}. Skills: {', '.join(skills)}. {rng.randint(1, 20)} years experience."

    return pa.table({
        "worker_id": pa.array([w.worker_id for w in workers], pa.int64()),
        "name": [w.name for w in workers], "role": [w.role for w in workers],
        "city": [w.city for w in workers], "state": [w.state for w in workers],
        "reliability": [round(rng.uniform(0.6, 1.0), 2) for _ in workers],  # public, uninformative
        "profile": [profile(w) for w in workers],
    })


def recall_at(ranked: list[int], relevant: set[int], k: int) -> float:
    if not relevant:
        return math.nan
    return len(set(ranked[:k]) & relevant) / min(k, len(relevant))


def ndcg_at(ranked: list[int], gain: dict[int, float], k: int) -> float:
    dcg = sum(gain.get(w, 0.0) / math.log2(i + 2) for i, w in enumerate(ranked[:k]))
    ideal = sorted(gain.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else math.nan


def simulate(weeks: int, per_slot: int, contracts_per_slot: int, seed: int = 7) -> dict[str, Any]:
    rng = random.Random(seed)
    workers = make_workers(per_slot, rng)
    by_id = {w.worker_id: w for w in workers}
    start = date.today() - timedelta(days=7 * weeks)
    per_week: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="playbook-eval-") as tmp, Lakehouse(Path(tmp) / "data", actor="eval") as lake:
        lake.ingest_table(workers_table(workers, rng), "workers")
        lake.vectors.create("workers", ["role", "profile"], "worker_id")
        for week in range(weeks):
            today = (start + timedelta(days=7 * week)).isoformat()
            busy: set[int] = set()  # placed this week: not available for another contract
            metrics: dict[str, list[float]] = {f"{m}_{arm}": [] for m in ("recall5", "ndcg10", "noshow5") for arm in ("on", "off")}
            for _ in range(contracts_per_slot):
                for role in ROLES:
                    for city, state in CITIES:
                        pool = [w for w in workers if (w.role, w.city) == (role, city)]
                        relevant = {w.worker_id for w in pool if w.expected >= GOOD}
                        gain = {w.worker_id: w.expected for w in pool}
                        base = dict(query=f"{role} needed in {city}, {state}", role=role, city=city, state=state, today=today)
                        # Judge both arms on the same fresh shortlist of 10.
                        for arm, use in (("on", True), ("off", False)):
                            ranked = [int(s["worker_id"]) for s in hybrid_search(lake, HybridQuery(k=10, use_playbook_memory=use, **base))["sources"]]
                            metrics[f"recall5_{arm}"].append(recall_at(ranked, relevant, 5))
                            metrics[f"ndcg10_{arm}"].append(ndcg_at(ranked, gain, 10))
                            metrics[f"noshow5_{arm}"].append(mean(by_id[w].noshow > 0.5 for w in ranked[:5]))
                        # The recruiter works the boost-on list, skipping workers booked this week.
                        work_list = hybrid_search(lake, HybridQuery(k=len(pool), exclude_worker_ids=[str(b) for b in busy], **base))
                        placed = work_the_list(lake, [int(s["worker_id"]) for s in work_list["sources"]], by_id, rng,
                                               needed=2, city=city, state=state)
                        busy.update(w.worker_id for w in placed)
                        if placed:
                            lake.playbooks.seed({"role": role, "city": city, "state": state, "date": today,
                                                 "operation": f"{role} x{len(placed)} in {city}, {state} #{len(busy)}",
                                                 "workers": [{"worker_id": str(w.worker_id), "name": w.name} for w in placed]})
            per_week.append({"week": week + 1, **{k: round(mean(x for x in v if not math.isnan(x)), 4) for k, v in metrics.items()}})
    return {"weeks": per_week, "workers": len(workers), "contracts_per_week": len(ROLES) * len(CITIES) * contracts_per_slot}


def work_the_list(lake: Lakehouse, ranked: list[int], by_id: dict[int, Worker], rng: random.Random, *, needed: int, city: str, state: str) -> list[Worker]:
    """Call down the list; a placement that no-shows is marked failed, the rest worked out."""
    worked: list[Worker] = []
    for wid in ranked:
        w = by_id[wid]
        if rng.random() >= w.fit:
            continue  # declined or not a fit: nothing learned
        if rng.random() < w.noshow:
            lake.playbooks.mark_failed(city, state, str(w.worker_id), w.name)
            continue
        worked.append(w)
        if len(worked) == needed:
            break
    return worked


def run(quick: bool) -> list[dict[str, Any]]:
    """Records for bench/run: area `learning`, ours = boost on, peer = boost off, after week 4."""
    result = simulate(weeks=4 if quick else 6, per_slot=15 if quick else 30, contracts_per_slot=2)
    week4 = result["weeks"][min(3, len(result["weeks"]) - 1)]
    last = result["weeks"][-1]
    common = {"rows": result["workers"], "weeks": result["weeks"]}

    def rec(case: str, metric: str, on: float, off: float, **extra: Any) -> dict[str, Any]:
        return {"area": "learning", "case": case, "metric": metric, "ours": on, "peer": "boost_off", "peer_value": off,
                "ratio": rnd(on / off) if off else None, **extra}

    return [
        rec("recall_at_5", "recall_at_5", week4["recall5_on"], week4["recall5_off"], at_week=4, **common),
        rec("ndcg_at_10", "ndcg_at_10", week4["ndcg10_on"], week4["ndcg10_off"], at_week=4),
        rec("noshow_top5", "share", last["noshow5_on"], last["noshow5_off"], at_week=len(result["weeks"])),
    ]


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    records = run(quick)
    for week in records[0]["weeks"]:
        print(json.dumps(week))
    for r in records:
        print(f"{r['case']}: boost on {r['ours']} vs off {r['peer_value']} (ratio {r['ratio']}, week {r['at_week']})")
