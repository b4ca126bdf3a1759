#!/usr/bin/env python3
"""Input normaliser benchmarks (area `normalizer`): accuracy on the labelled phrasings and latency.

    .venv/bin/python bench/normalizer_bench.py --quick      # one JSON object on stdout

bench/run calls `run(quick=...)`; the records have the shape of bench/run's (`area`, `case`,
`metric`, `ours`, `peer`, `peer_value`, `ratio`, `rows`, extras, `peak_rss_mib`). Cases:

- `accuracy` (exact_match): share of the labelled phrasings of
  tests/fixtures/normalizer_labelled.jsonl whose role, count, city, state, date,
  certifications and min_reliability all match, with the O*NET titles loaded (ours) vs the
  project role dictionary alone (`no_onet`, the degraded mode when the O*NET files are
  absent), same run, same phrasings. Extras: per-field accuracy, exact match per split
  (`holdout2` was never tuned on: the honest estimate), the number of phrasings.
- `latency` (p50_us): microseconds per `normalize(text)` over every phrasing, warm
  tables (median of all calls; p95 alongside), plus the one-off cost of building the
  lookup tables (`cold_load_ms`: role dictionary, ~56K O*NET titles, 1,000 cities).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import sys
import tempfile
import time
from collections import Counter, defaultdict
from types import ModuleType
from typing import Any

import common
from common import REPO, p50, p95, record, rnd

FIXTURE = REPO / "tests" / "fixtures" / "normalizer_labelled.jsonl"
MODULE_PATH = REPO / "python" / "lakehouse" / "intelligence" / "normalizer.py"
FIELDS = ("role", "count", "city", "state", "date", "certifications", "min_reliability")

log = common.Log("normalizer-bench", clock=False)


def load_normalizer(fresh: bool = False) -> ModuleType:
    """The package module when the native core is built, else the source file on its own
    (the normaliser imports nothing from lakehouse). `fresh` gives an instance with empty caches."""
    if not fresh:
        try:
            from lakehouse.intelligence import normalizer
            return normalizer
        except ImportError:
            pass
    name = f"_normalizer_bench_{time.perf_counter_ns()}" if fresh else "_normalizer_bench"
    if not fresh and name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, MODULE_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def labelled() -> tuple[dt.date, list[dict[str, Any]]]:
    lines = [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines() if line.strip()]
    return dt.date.fromisoformat(lines[0]["_meta"]["today"]), lines[1:]


def score(norm: ModuleType, today: dt.date, rows: list[dict[str, Any]]) -> dict[str, Any]:
    hits: dict[str, Counter] = defaultdict(Counter)
    for row in rows:
        out = norm.normalize(row["text"], today=dt.date.fromisoformat(row["today"]) if "today" in row else today)
        exact = True
        for field in FIELDS:
            got, want = out[field], row[field]
            ok = sorted(got) == sorted(want) if field == "certifications" else got == want
            exact &= ok
            hits["all"][field] += ok
        for split in ("all", row.get("split", "all")):
            hits[split]["exact"] += exact
            hits[split]["n"] += 1
    n = hits["all"]["n"]
    return {
        "exact": hits["all"]["exact"] / n,
        "fields": {f: rnd(hits["all"][f] / n) for f in FIELDS},
        "splits": {s: rnd(c["exact"] / c["n"]) for s, c in hits.items() if s != "all"},
        "n": n,
    }


def run(quick: bool) -> list[dict[str, Any]]:
    today, rows = labelled()
    texts = [(r["text"], dt.date.fromisoformat(r["today"]) if "today" in r else today) for r in rows]

    cold = load_normalizer(fresh=True)
    t0 = time.perf_counter()
    cold.normalize("3 welders in Toledo, OH by Monday", today=today)
    cold_load_ms = (time.perf_counter() - t0) * 1000
    sources = cold.sources()
    log(f"tables built in {cold_load_ms:.0f} ms: {sources['roles']} roles, {sources['onet_titles']} O*NET keys, "
        f"{sources['cities']} cities (O*NET dir: {sources['onet_dir']})")

    norm = load_normalizer()
    ours = score(norm, today, rows)
    with tempfile.TemporaryDirectory(prefix="normalizer-bench-") as empty:
        try:
            norm.configure(onet_dir=empty)
            dictionary_only = score(norm, today, rows)
        finally:
            norm.configure()
    log(f"accuracy: exact {ours['exact']:.3f} (dictionary only {dictionary_only['exact']:.3f}) on {ours['n']} phrasings; "
        f"fields {ours['fields']}; splits {ours['splits']}")

    norm.normalize("warm up", today=today)
    passes = 3 if quick else 20
    samples: list[float] = []
    for _ in range(passes):
        for text, day in texts:
            start = time.perf_counter_ns()
            norm.normalize(text, today=day)
            samples.append((time.perf_counter_ns() - start) / 1000)
    p50_us, p95_us = p50(samples), p95(samples)
    log(f"latency: p50 {p50_us:.0f} us, p95 {p95_us:.0f} us over {len(samples)} calls")

    return [
        record("normalizer", "accuracy", "exact_match", ours["exact"], "no_onet", dictionary_only["exact"], rows=ours["n"],
               fields=ours["fields"], splits=ours["splits"], no_onet_fields=dictionary_only["fields"],
               onet_loaded=sources["onet_titles"] > 0),
        record("normalizer", "latency", "p50_us", p50_us, rows=len(texts), p95_us=rnd(p95_us, 1), calls=len(samples),
               cold_load_ms=rnd(cold_load_ms, 1)),
    ]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer timed passes (the sizes of `bench/run --quick`)")
    args = parser.parse_args(argv)
    print(json.dumps({"results": run(quick=args.quick)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
