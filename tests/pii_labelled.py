"""A labelled table for measuring PII tagging: each column says what it really holds.

Columns of every sensitive kind plus the tricky negatives a naive tagger gets wrong
(ZIP codes, order numbers, dates, product codes, ids, cities, free text without
health terms). Used by tests/test_pii.py (thresholds) and bench/run (area `pii`).
"""

from __future__ import annotations

import random

import pyarrow as pa

ROWS = 300

FIRST = ["Carmen", "Dave", "Rachel", "Angela", "Luis", "Mei", "Tom", "Aisha", "Ivan", "Grace"]
LAST = ["Green", "Ward", "Lewis", "Lopez", "Chen", "Smith", "Okafor", "Novak", "Patel", "Kim"]
STREETS = ["W Madison St", "Elm Street", "Oak Ave", "N Clark St", "Lake Shore Dr", "Main St", "Pine Rd", "Maple Ln"]
HEALTH = ["history of asthma", "type 2 diabetes, insulin", "pregnant - light duty only", "back injury 2023",
          "hypertension, on medication", "latex allergy", "PTSD, no night shifts", "epilepsy - no ladders"]
PLAIN_NOTES = ["prefers day shifts", "has own tools", "bilingual English/Spanish", "lives near the Red Line",
               "available weekends", "forklift certified", "great attitude", "needs ride on Mondays"]


def _column(label: str | None, values: list) -> tuple[str | None, list]:
    return label, values


def labelled_table(seed: int = 7) -> tuple[pa.Table, dict[str, str | None]]:
    """The table and, per column, the true label (PII | PHI | Financial | None)."""
    r = random.Random(seed)
    n = range(ROWS)
    cols: dict[str, tuple[str | None, list]] = {
        # sensitive, named plainly
        "email": _column("PII", [f"{r.choice(FIRST).lower()}.{i}@example.com" for i in n]),
        "phone": _column("PII", [f"({r.randint(201, 989)}) 555-{r.randint(0, 9999):04d}" for _ in n]),
        "ssn": _column("PII", [f"{r.randint(1, 665):03d}-{r.randint(1, 99):02d}-{r.randint(1, 9999):04d}" for _ in n]),
        "home_address": _column("PII", [f"{r.randint(1, 9999)} {r.choice(STREETS)}" for _ in n]),
        "salary": _column("Financial", [float(r.randint(28, 120) * 1000) for _ in n]),
        "diagnosis": _column("PHI", [r.choice(HEALTH) for _ in n]),
        "full_name": _column("PII", [f"{r.choice(FIRST)} {r.choice(LAST)}" for _ in n]),
        # sensitive, hidden behind neutral names (values must give them away)
        "contact_1": _column("PII", [f"{r.choice(FIRST).lower()}{i}@mail.example.org" for i in n]),
        "contact_2": _column("PII", [f"{r.randint(201, 989)}-{r.randint(200, 999)}-{r.randint(0, 9999):04d}" for _ in n]),
        "ref_code": _column("PII", [f"{r.randint(100, 665):03d}-{r.randint(10, 99):02d}-{r.randint(1000, 9999):04d}" for _ in n]),
        "location": _column("PII", [f"{r.randint(10, 9999)} {r.choice(STREETS)} Apt {r.randint(1, 40)}" for _ in n]),
        "expected": _column("Financial", [f"${r.randint(30, 95)},{r.randint(0, 999):03d}" for _ in n]),
        "notes_medical": _column("PHI", [r.choice(HEALTH) for _ in n]),
        # tricky negatives
        "zip": _column(None, [f"{r.randint(10000, 99999)}" for _ in n]),
        "zip4": _column(None, [f"{r.randint(10000, 99999)}-{r.randint(1000, 9999)}" for _ in n]),
        "order_number": _column(None, [f"ORD-{r.randint(2020, 2026)}-{r.randint(0, 99999):05d}" for _ in n]),
        "start_date": _column(None, [f"2025-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}" for _ in n]),
        "product_code": _column(None, [f"{r.choice('ABCDEFG')}{r.choice('XYZ')}-{r.randint(10, 99)}-{r.randint(1000, 9999)}" for _ in n]),
        "worker_id": _column(None, [r.randint(1, 3_000_000) for _ in n]),
        "city": _column(None, [r.choice(["Toledo", "Chicago", "Joliet", "Gary"]) for _ in n]),
        "role": _column(None, [r.choice(["Welder", "Electrician", "Painter"]) for _ in n]),
        "shift_notes": _column(None, [r.choice(PLAIN_NOTES) for _ in n]),
        "reliability": _column(None, [round(r.random(), 3) for _ in n]),
        "build_version": _column(None, [f"{r.randint(1, 9)}.{r.randint(0, 20)}.{r.randint(0, 99)}" for _ in n]),
        "serial": _column(None, [f"{r.randint(100, 999)}-{r.randint(100, 999)}-{r.randint(100, 999)}" for _ in n]),
    }
    table = pa.table({name: values for name, (_, values) in cols.items()})
    return table, {name: label for name, (label, _) in cols.items()}


def score(predicted: dict[str, str], truth: dict[str, str | None]) -> dict[str, float]:
    """Column-level precision/recall of 'sensitive' (any label) and label accuracy on hits."""
    true_pos = [c for c in predicted if truth.get(c)]
    positives = [c for c, label in truth.items() if label]
    precision = len(true_pos) / len(predicted) if predicted else 1.0
    recall = len(true_pos) / len(positives) if positives else 1.0
    exact = sum(1 for c in true_pos if predicted[c] == truth[c]) / len(true_pos) if true_pos else 1.0
    return {"precision": round(precision, 3), "recall": round(recall, 3), "label_accuracy": round(exact, 3)}
