"""Input normaliser (issue 5): accuracy on the labelled phrasings, properties, pass-through.

The labelled set (tests/fixtures/normalizer_labelled.jsonl) has three splits:
- ``dev``: written together with the rules (in-sample, expected near 1.0);
- ``holdout``: written after the rules were frozen; its first measurement (exact match
  0.901) was taken before any fix, then it was used for fixes;
- ``holdout2``: written after those fixes, measured once, not tuned on -- the honest
  estimate of accuracy on phrasings nobody tuned for, so its thresholds are lower.
Thresholds sit a little under what was measured (see the report printed with ``-s``).
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[1]
MODULE_PATH = REPO / "python" / "lakehouse" / "intelligence" / "normalizer.py"
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "normalizer_labelled.jsonl"


def _load_module():
    try:  # the installed package (needs the native core)
        from lakehouse.intelligence import normalizer
        return normalizer
    except ImportError:  # the source file alone: the normaliser imports nothing from lakehouse
        spec = importlib.util.spec_from_file_location("lakehouse_normalizer_under_test", MODULE_PATH)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module


N = _load_module()
FIELDS = ("role", "count", "city", "state", "date", "certifications", "min_reliability")

# thresholds: measured values minus a small margin (all: role 0.991, count 1.0, city 1.0,
# state 1.0, date 0.998, certifications 1.0, min_reliability 1.0, exact 0.990 on 572 rows;
# holdout2: role 0.943, date 0.989, others 1.0, exact 0.931 on 87 rows)
THRESHOLDS = {
    "all": {"role": 0.97, "count": 0.98, "city": 0.98, "state": 0.98, "date": 0.98, "certifications": 0.97,
            "min_reliability": 0.97, "exact": 0.95},
    "holdout2": {"role": 0.90, "count": 0.95, "city": 0.95, "state": 0.95, "date": 0.95, "certifications": 0.95,
                 "min_reliability": 0.95, "exact": 0.88},
}


def _fixture() -> tuple[dict, list[dict]]:
    lines = [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines() if line.strip()]
    return lines[0]["_meta"], lines[1:]


def _today(meta: dict, row: dict) -> dt.date:
    return dt.date.fromisoformat(row.get("today", meta["today"]))


def _same(field: str, got, want) -> bool:
    if field == "certifications":
        return sorted(got) == sorted(want)
    return got == want


@pytest.fixture(scope="module")
def evaluation() -> dict:
    meta, rows = _fixture()
    hits: dict[str, Counter] = defaultdict(Counter)
    misses: list[tuple] = []
    for row in rows:
        out = N.normalize(row["text"], today=_today(meta, row))
        all_ok = True
        for field in FIELDS:
            ok = _same(field, out[field], row[field])
            all_ok &= ok
            for split in ("all", row["split"]):
                hits[split][field] += ok
            if not ok:
                misses.append((row["split"], field, row["text"], row[field], out[field]))
        for split in ("all", row["split"]):
            hits[split]["exact"] += all_ok
            hits[split]["n"] += 1
    report = {split: {k: round(v / c["n"], 3) for k, v in c.items() if k != "n"} | {"n": c["n"]}
              for split, c in hits.items()}
    print("\nnormaliser accuracy:", json.dumps(report, indent=1))
    for miss in misses:
        print("  miss:", miss)
    return report


# ---------------------------------------------------------------------------- the labelled set


def test_labelled_set_is_well_formed():
    meta, rows = _fixture()
    dt.date.fromisoformat(meta["today"])
    assert len(rows) >= 200
    texts = [r["text"] for r in rows]
    assert len(set(texts)) == len(texts), "duplicate phrasings"
    assert {r["split"] for r in rows} == {"dev", "holdout", "holdout2"}
    for r in rows:
        assert set(FIELDS) <= set(r), r
        assert r["state"] is None or r["state"] in N.STATES, r
        assert r["count"] is None or (isinstance(r["count"], int) and r["count"] > 0), r
        if r["date"] is not None:
            dt.date.fromisoformat(r["date"])
        assert (r["city"] is None) or (r["state"] is not None), r


@pytest.mark.parametrize("field", [*FIELDS, "exact"])
def test_accuracy_over_all_phrasings(evaluation, field):
    assert evaluation["all"][field] >= THRESHOLDS["all"][field], evaluation["all"]


@pytest.mark.parametrize("field", [*FIELDS, "exact"])
def test_accuracy_on_phrasings_never_tuned_on(evaluation, field):
    assert evaluation["holdout2"]["n"] >= 80
    assert evaluation["holdout2"][field] >= THRESHOLDS["holdout2"][field], evaluation["holdout2"]


def test_brief_examples():
    today = dt.date(2025, 11, 19)  # a Wednesday
    out = N.normalize("need 3 welders in Nashville, TN by Monday", today=today)
    assert {k: out[k] for k in ("role", "count", "city", "state", "date")} == {
        "role": "Welder", "count": 3, "city": "Nashville", "state": "TN", "date": "2025-11-24"}
    assert out["source"] == "rules" and out["confidence"] >= 0.9 and out["unparsed"] == []
    out = N.normalize("Looking for two CNAs nashvile tn asap", today=today)
    assert (out["role"], out["count"], out["city"], out["state"], out["date"]) == (
        "Certified Nursing Assistant", 2, "Nashville", "TN", "2025-11-19")
    out = N.normalize("forklift ops x5 - joliet IL - starting 12/3", today=today)
    assert (out["role"], out["count"], out["city"], out["state"], out["date"]) == (
        "Forklift Operator", 5, "Joliet", "IL", "2025-12-03")
    assert set(out) == set(N.FIELDS)


def test_unparsed_keeps_what_was_not_understood():
    out = N.normalize("Req #4411: Machine Operator (x4), Dayton, OH, start 12/1, $19/hr, bring steel toes",
                      today=dt.date(2025, 11, 19))
    assert out["role"] == "Machine Operator" and out["count"] == 4
    assert "$19/hr" in out["unparsed"] and any("steel toes" in u for u in out["unparsed"])
    out = N.normalize("我需要三个焊工", today=dt.date(2025, 11, 19))
    assert out["role"] is None and out["unparsed"] == ["我需要三个焊工"] and out["confidence"] == 0.0


# ---------------------------------------------------------------------------- properties

_VOCAB = [
    "need", "3", "x5", "(2)", "#4", "a", "couple", "of", "dozen", "twenty-five", "welders", "CNA's", "RN",
    "forklift", "ops", "certified", "OSHA-10", "osha 30", "CDL-A", "class", "B", "drivers", "in", "Nashville",
    "TN", "nashvile", "Tennesee", "Kansas", "City", "KS", "MO", "oh", "OR", "Portland", ",", "-", "/", ".",
    "by", "Monday", "next", "fri", "tomorrow", "12/3", "13/45", "Dec", "31st", "2025-02-30", "the", "1st",
    "$25/hr", "2nd", "shift", "reliable", "90%", "reliability", "0", "99999", "İ", "ß", "日本", "\u0000", "\n",
    "washington", "DC", "new", "york", "st.", "louis", "ft", "worth", "in 3 days", "black friday", "asap",
]
_PROPERTY_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check_shape(out: dict) -> None:
    assert set(out) == set(N.FIELDS)
    assert out["count"] is None or (type(out["count"]) is int and 0 < out["count"] <= N.MAX_COUNT)
    assert out["state"] is None or (len(out["state"]) == 2 and out["state"] in N.STATES)
    if out["date"] is not None:
        dt.date.fromisoformat(out["date"])
    assert 0.0 <= out["confidence"] <= 1.0
    assert out["min_reliability"] is None or 0.0 <= out["min_reliability"] <= 1.0
    assert isinstance(out["certifications"], list) and isinstance(out["unparsed"], list)
    assert out["source"] in ("structured", "rules", "llm")


@_PROPERTY_SETTINGS
@given(st.text(max_size=400))
def test_never_raises_on_arbitrary_text(text):
    out = N.normalize(text, today=dt.date(2025, 11, 19))
    _check_shape(out)
    assert out["source"] in ("rules", "structured")


@_PROPERTY_SETTINGS
@given(st.lists(st.sampled_from(_VOCAB), max_size=25).map(" ".join),
       st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2090, 12, 31)))
def test_never_raises_on_request_like_text(text, today):
    out = N.normalize(text, today=today)
    _check_shape(out)
    if out["date"] is not None and "2025-" not in text:
        assert dt.date.fromisoformat(out["date"]) >= today  # relative phrases never resolve to the past


_KEYS = st.one_of(st.sampled_from(["role", "Job Title", "qty", "count", "headcount", "city", "state", "location",
                                   "startDate", "date", "certs", "reliability", "query", "k", "client"]), st.text(max_size=12))
_VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=40),
                    st.lists(st.text(max_size=10), max_size=4), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))


@_PROPERTY_SETTINGS
@given(st.dictionaries(_KEYS, _VALUES, max_size=8))
def test_never_raises_on_arbitrary_dicts(data):
    out = N.normalize(data, today=dt.date(2025, 11, 19))
    _check_shape(out)


def test_rejects_non_text_inputs():
    with pytest.raises(TypeError):
        N.normalize(42)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- structured pass-through


def test_structured_dict_passes_through_with_keys_normalised():
    out = N.normalize({"Job Title": "welders", "qty": "3", "location": "Toledo, OH", "startDate": "2025-12-01",
                       "certs": "OSHA 10, forklift certified", "reliability": "90%"}, today=dt.date(2025, 11, 19))
    assert out == {
        "role": "Welder", "count": 3, "city": "Toledo", "state": "OH", "date": "2025-12-01",
        "certifications": ["OSHA-10", "Forklift"], "min_reliability": 0.9, "query": "Welder x3 in Toledo, OH with OSHA-10, Forklift from 2025-12-01",
        "source": "structured", "confidence": 1.0, "unparsed": [], "onet_code": "51-4121.00",
    }


def test_structured_values_are_validated():
    out = N.normalize({"role": "Electrician", "count": -2, "state": "Atlantis", "city": "toledo", "date": "someday",
                       "min_reliability": 7.5e3, "shoe_size": 11, "query": "electricians for the Toledo plant"},
                      today=dt.date(2025, 11, 19))
    assert out["source"] == "structured"
    assert out["role"] == "Electrician" and out["count"] is None and out["date"] is None
    assert out["state"] == "OH" and out["city"] == "Toledo"  # the city names its state when none is valid
    assert out["min_reliability"] is None and out["query"] == "electricians for the Toledo plant"
    assert {"count=-2", "state=Atlantis", "date=someday", "min_reliability=7500.0", "shoe_size=11"} <= set(out["unparsed"])
    assert out["confidence"] < 1.0


def test_structured_json_string_and_relative_dates():
    out = N.normalize('{"trade": "CNA", "headcount": 2, "city": "Memphis", "state": "tennessee", "start": "Monday"}',
                      today=dt.date(2025, 11, 19))
    assert (out["source"], out["role"], out["count"], out["city"], out["state"], out["date"]) == (
        "structured", "Certified Nursing Assistant", 2, "Memphis", "TN", "2025-11-24")
    assert N.normalize({"role": "Welder", "date": dt.date(2026, 1, 5)})["date"] == "2026-01-05"


def test_dict_with_only_query_is_parsed_as_text():
    out = N.normalize({"query": "need 3 welders in Toledo OH", "client": "Acme"}, today=dt.date(2025, 11, 19))
    assert out["source"] == "rules" and out["role"] == "Welder" and out["count"] == 3 and out["state"] == "OH"
    assert "client=Acme" in out["unparsed"]


# ---------------------------------------------------------------------------- the llm tier


def test_llm_is_called_only_when_no_role_is_found():
    prompts: list[str] = []

    def llm(prompt: str) -> dict:
        prompts.append(prompt)
        return {"role": "Welder", "count": 9, "state": "ohio", "date": "2025-12-01", "certifications": ["osha10"]}

    out = N.normalize("need 2 welders in Toledo OH", today=dt.date(2025, 11, 19), llm=llm)
    assert out["source"] == "rules" and prompts == []
    out = N.normalize("2 of those folks who fix pipes with fire, Toledo OH", today=dt.date(2025, 11, 19), llm=llm)
    assert len(prompts) == 1 and "fix pipes" in prompts[0] and "2025-11-19" in prompts[0]
    assert out["source"] == "llm" and out["role"] == "Welder"
    assert out["count"] == 2 and out["city"] == "Toledo" and out["state"] == "OH"  # rules keep what they found
    assert out["date"] == "2025-12-01" and out["certifications"] == ["OSHA-10"]


def test_llm_failures_fall_back_to_rules():
    def broken(prompt: str) -> dict:
        raise TimeoutError("ollama down")

    out = N.normalize("someone who fixes pipes with fire in Toledo OH", today=dt.date(2025, 11, 19), llm=broken)
    assert out["source"] == "rules" and out["role"] is None and out["state"] == "OH"
    out = N.normalize("someone handy", llm=lambda p: "not json at all")
    assert out["source"] == "rules"
    out = N.normalize("someone handy", llm=lambda p: 'Sure! {"role": "Handyman", "count": 1}')
    assert out["source"] == "llm" and out["role"] == "Handyman" and out["count"] == 1


def test_ollama_llm_adapter_uses_generate():
    class FakeClient:
        def __init__(self):
            self.calls = []

        def generate(self, prompt, model=None, **kwargs):
            self.calls.append((prompt, model, kwargs))
            return {"response": '```json\n{"role": "Millwright", "count": 2}\n```'}

    client = FakeClient()
    out = N.normalize("2 of the folks who set up big machines", llm=N.ollama_llm(client, "llama3"))
    assert out["role"] == "Millwright" and out["source"] == "llm" and client.calls[0][1] == "llama3"


# ---------------------------------------------------------------------------- reference data


def test_nothing_is_loaded_at_import_time():
    spec = importlib.util.spec_from_file_location("normalizer_fresh_import", MODULE_PATH)
    fresh = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = fresh  # dataclasses look their module up while the class is built
    try:
        spec.loader.exec_module(fresh)
    finally:
        sys.modules.pop(spec.name, None)
    for table in (fresh._roles, fresh._onet, fresh._cities, fresh._tables):
        assert table.cache_info().currsize == 0
    fresh.normalize("3 welders in Toledo OH")
    assert fresh._onet.cache_info().currsize == 1
    fresh.normalize("3 welders in Toledo OH")
    assert fresh._onet.cache_info().misses == 1  # built once


def test_without_onet_the_dictionary_still_works(tmp_path):
    try:
        N.configure(onet_dir=tmp_path)  # an empty directory: no O*NET files
        assert N.sources()["onet_titles"] == 0
        assert N.normalize("3 welders in Toledo OH")["role"] == "Welder"
        assert N.normalize("2 glaziers in Denver CO")["role"] is None
    finally:
        N.configure()
    if N.sources()["onet_dir"] is not None:
        out = N.normalize("2 glaziers in Denver CO")
        assert out["role"] == "Glazier" and out["onet_code"] == "47-2121.00"


def test_operator_edited_role_dictionary(tmp_path):
    roles = tmp_path / "roles.toml"
    roles.write_text('[[role]]\nname = "Wind Turbine Tech"\naliases = ["wind tech", "turbine technician"]\n'
                     'onet = ["49-9081.00"]\n', encoding="utf-8")
    try:
        N.configure(roles_file=roles)
        out = N.normalize("need 4 wind techs in Amarillo TX")
        assert (out["role"], out["count"], out["city"], out["state"]) == ("Wind Turbine Tech", 4, "Amarillo", "TX")
    finally:
        N.configure()
    assert N.canonical_role("CNA's") == "Certified Nursing Assistant"


def test_shipped_role_dictionary_is_valid():
    import tomllib

    data = tomllib.loads((MODULE_PATH.parent / "roles.toml").read_text(encoding="utf-8"))
    names = [r["name"] for r in data["role"]]
    assert len(names) == len(set(names)) >= 40
    for entry in data["role"]:
        assert set(entry) <= {"name", "aliases", "weak", "onet"}, entry
        assert set(entry.get("weak", [])) <= set(entry["aliases"]), entry["name"]
        for code in entry.get("onet", []):
            assert len(code) == 10 and code[2] == "-" and code[7] == ".", code
    demo_roles = {"Warehouse Associate", "General Laborer", "Forklift Operator", "Production Worker", "Material Handler",
                  "Machine Operator", "Assembler", "CDL Driver", "Welder", "Electrician", "Carpenter", "Maintenance Tech",
                  "HVAC Technician", "Plumber", "Painter", "Heavy Equipment Operator", "Concrete Finisher", "Roofer",
                  "Pipefitter", "Mason"}
    assert demo_roles <= set(names)  # every role of the demo workers dataset is reachable
