"""Input normaliser: a recruiter's request -> the structured filter hybrid search takes.

    normalize("need 3 welders in Nashville, TN by Monday", today=date(2025, 11, 19))
    -> {'role': 'Welder', 'count': 3, 'city': 'Nashville', 'state': 'TN', 'date': '2025-11-24',
        'certifications': [], 'min_reliability': None,
        'query': 'need 3 welders in Nashville, TN by Monday', 'source': 'rules',
        'confidence': 1.0, 'unparsed': [], 'onet_code': '51-4121.00'}

Three tiers, cheapest first:

1. **structured** -- a dict (or a JSON object in a string) passes through: keys are
   normalised (``job``/``title`` -> ``role``, ``qty``/``headcount`` -> ``count``,
   ``location: "Toledo, OH"`` -> ``city`` + ``state``, ``start_date`` -> ``date`` ...),
   values validated (a bad value becomes ``None`` and is listed in ``unparsed``).
2. **rules** -- free text parsed without any model: the role from the project role
   dictionary (``roles.toml``, operator-editable) and the O*NET occupation titles and
   alternate titles (loaded at run time from ``LAKEHOUSE_ONET_DIR`` or
   ``../shared/data/occupations``; absent files degrade to the dictionary alone), typos
   within one or two edits; count (digits, words, ``x5``, ``(5)``, "a couple of", "a
   dozen"); city + state from the project's ``us_cities.csv`` (abbreviations, full and
   misspelt state names, city nicknames); the date ("Monday", "by Friday", "next week",
   "tomorrow", "12/3", "Dec 3", ...); certifications (OSHA-10, CDL Class A, BLS, ...);
   a minimum reliability ("reliable", "reliability 90%+").
3. **llm** -- only when the rules find no role and an ``llm`` callable is given
   (e.g. :func:`ollama_llm`): its JSON answer is validated like structured input and
   fills what the rules left empty.

Nothing is loaded at import time; every lookup table is built once, on first use.
Reference data: O*NET 30.0 (U.S. Department of Labor, Employment and Training
Administration, CC BY 4.0); US cities derived from the simplemaps US Cities Database
(CC BY 4.0, https://simplemaps.com/data/us-cities) -- see demo_data/ATTRIBUTION.md.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import json
import logging
import math
import os
import re
import tomllib
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

__all__ = [
    "FIELDS", "normalize", "configure", "sources", "ollama_llm", "canonical_role",
    "canonical_state", "canonical_certification", "STATES",
]

log = logging.getLogger(__name__)

#: keys of every normalised request, in this order
FIELDS = ("role", "count", "city", "state", "date", "certifications", "min_reliability", "query",
          "source", "confidence", "unparsed", "onet_code")

MAX_CHARS = 2000  # longer text is cut (the rest is listed in `unparsed`)
MAX_COUNT = 5000

_HERE = Path(__file__).resolve().parent
_DEFAULT_ROLES = _HERE / "roles.toml"
_DEFAULT_CITIES = _HERE.parent / "demo_data" / "us_cities.csv"

_overrides: dict[str, Path | None] = {}


# ============================================================================ configuration


def configure(*, onet_dir: str | os.PathLike | None = None, roles_file: str | os.PathLike | None = None,
              cities_file: str | os.PathLike | None = None) -> None:
    """Point the normaliser at other reference files (e.g. from the gateway's config) and
    drop the cached tables; ``None`` restores the default lookup for that file."""
    for key, value in (("onet_dir", onet_dir), ("roles_file", roles_file), ("cities_file", cities_file)):
        _overrides[key] = Path(value).expanduser() if value is not None else None
    _clear_caches()


def _clear_caches() -> None:
    for fn in (_roles, _onet, _cities, _tables):
        fn.cache_clear()


def _onet_dir() -> Path | None:
    candidates: list[Path] = []
    if _overrides.get("onet_dir"):
        candidates.append(_overrides["onet_dir"])  # type: ignore[arg-type]
    for var in ("LAKEHOUSE_ONET_DIR", "LAKEHOUSE_INTELLIGENCE_ONET_DIR"):
        if os.environ.get(var):
            candidates.append(Path(os.environ[var]).expanduser())
    if os.environ.get("LAKEHOUSE_SHARED_DATA"):
        candidates.append(Path(os.environ["LAKEHOUSE_SHARED_DATA"]).expanduser() / "occupations")
    # python/lakehouse/intelligence/normalizer.py -> the repository is parents[3]
    repo = _HERE.parents[2] if len(_HERE.parents) > 2 else _HERE
    candidates += [repo.parent / "shared" / "data" / "occupations", Path.cwd().parent / "shared" / "data" / "occupations"]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return None


def _roles_path() -> Path:
    if _overrides.get("roles_file"):
        return _overrides["roles_file"]  # type: ignore[return-value]
    if os.environ.get("LAKEHOUSE_ROLES_FILE"):
        return Path(os.environ["LAKEHOUSE_ROLES_FILE"]).expanduser()
    return _DEFAULT_ROLES


def _cities_path() -> Path:
    if _overrides.get("cities_file"):
        return _overrides["cities_file"]  # type: ignore[return-value]
    return _DEFAULT_CITIES


def sources() -> dict[str, Any]:
    """What the rules tier runs on (for diagnostics): files found and table sizes."""
    roles, onet, cities = _roles(), _onet(), _cities()
    return {
        "roles_file": str(_roles_path()), "roles": len(roles.names), "role_aliases": len(roles.index),
        "onet_dir": str(onet.directory) if onet.directory else None, "onet_titles": len(onet.index),
        "cities_file": str(_cities_path()), "cities": cities.n_rows,
    }


# ============================================================================ text helpers

_WORD = re.compile(r"[a-z0-9]+")
_PLURAL_EXCEPTIONS = {"man": "men", "woman": "women", "person": "people", "staff": "staff"}


def _norm_phrase(text: str) -> str:
    """Lower case, '&' -> 'and', apostrophes dropped, anything else non-alphanumeric -> space."""
    text = unicodedata.normalize("NFKC", text).lower().replace("&", " and ")
    text = re.sub(r"(?<=[a-z0-9])['\u2019](?=[a-z])", "", text)
    return " ".join(_WORD.findall(text))


def _plural(word: str) -> str:
    if word in _PLURAL_EXCEPTIONS:
        return _PLURAL_EXCEPTIONS[word]
    if word.endswith("man"):
        return word[:-3] + "men"
    if re.search(r"[^aeiou]y$", word):
        return word[:-1] + "ies"
    if re.search(r"(s|x|z|ch|sh)$", word):
        return word + "es"
    return word + "s"


def _plural_variants(key: str) -> set[str]:
    words = key.split()
    if not words:
        return set()
    last = words[-1]
    out = {key}
    if last.isalpha() or re.fullmatch(r"[a-z]+", last):
        out.add(" ".join(words[:-1] + [_plural(last)]))
        if not last.endswith("s"):
            out.add(" ".join(words[:-1] + [last + "s"]))
    return out


def _singular(word: str) -> str:
    if word.endswith("men") and len(word) > 4:
        return word[:-3] + "man"
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if re.search(r"(ss|us|is)$", word):
        return word
    if re.search(r"(ches|shes|xes|sses|zes)$", word):
        return word[:-2]
    if word.endswith("s") and len(word) > 3:
        return word[:-1]
    return word


def _osa(a: str, b: str, limit: int) -> int:
    """Optimal-string-alignment distance (Levenshtein + adjacent transpositions), or
    ``limit + 1`` as soon as it must exceed ``limit``."""
    if a == b:
        return 0
    la, lb = len(a), len(b)
    if abs(la - lb) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(lb + 1))
    for i in range(1, la + 1):
        cur = [i] + [0] * lb
        best = cur[0]
        ca = a[i - 1]
        for j in range(1, lb + 1):
            cost = 0 if ca == b[j - 1] else 1
            v = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == b[j - 1]:
                v = min(v, prev2[j - 2] + 1)
            cur[j] = v
            if v < best:
                best = v
        if best > limit:
            return limit + 1
        prev2, prev = prev, cur
    return prev[lb]


def _typo_budget(n_chars: int) -> int:
    if n_chars < 5:
        return 0
    return 1 if n_chars < 9 else 2


# ============================================================================ reference tables

STATES: dict[str, str] = {
    "AL": "Alabama", "AK": "Alaska", "AZ": "Arizona", "AR": "Arkansas", "CA": "California",
    "CO": "Colorado", "CT": "Connecticut", "DE": "Delaware", "DC": "District of Columbia",
    "FL": "Florida", "GA": "Georgia", "HI": "Hawaii", "ID": "Idaho", "IL": "Illinois",
    "IN": "Indiana", "IA": "Iowa", "KS": "Kansas", "KY": "Kentucky", "LA": "Louisiana",
    "ME": "Maine", "MD": "Maryland", "MA": "Massachusetts", "MI": "Michigan", "MN": "Minnesota",
    "MS": "Mississippi", "MO": "Missouri", "MT": "Montana", "NE": "Nebraska", "NV": "Nevada",
    "NH": "New Hampshire", "NJ": "New Jersey", "NM": "New Mexico", "NY": "New York",
    "NC": "North Carolina", "ND": "North Dakota", "OH": "Ohio", "OK": "Oklahoma", "OR": "Oregon",
    "PA": "Pennsylvania", "RI": "Rhode Island", "SC": "South Carolina", "SD": "South Dakota",
    "TN": "Tennessee", "TX": "Texas", "UT": "Utah", "VT": "Vermont", "VA": "Virginia",
    "WA": "Washington", "WV": "West Virginia", "WI": "Wisconsin", "WY": "Wyoming", "PR": "Puerto Rico",
}
_STATE_NAME_KEYS = {_norm_phrase(name): code for code, name in STATES.items()}
_STATE_NAME_KEYS.update({"washington state": "WA", "washington dc": "DC", "d c": "DC"})
# two-letter codes that are also everyday words or common abbreviations: accepted only
# when written in capitals (in text that is not all capitals) or right after a city of that state
_AMBIGUOUS_CODES = {"AL", "AR", "CO", "DE", "HI", "ID", "IN", "LA", "MA", "ME", "MO", "NE", "OH", "OK",
                    "OR", "PA", "WA", "MS", "MD", "MT", "CT", "VA", "GA", "DC", "PR", "SC", "UT"}
# traditional (GPO) abbreviations: only right after a city of that state
_ALT_ABBREVIATIONS = {
    "ala": "AL", "ariz": "AZ", "ark": "AR", "calif": "CA", "cal": "CA", "colo": "CO", "conn": "CT",
    "del": "DE", "fla": "FL", "ill": "IL", "ind": "IN", "kan": "KS", "kans": "KS", "mass": "MA",
    "mich": "MI", "minn": "MN", "miss": "MS", "mont": "MT", "neb": "NE", "nebr": "NE", "nev": "NV",
    "okla": "OK", "ore": "OR", "oreg": "OR", "penn": "PA", "penna": "PA", "tenn": "TN", "tex": "TX",
    "wash": "WA", "wis": "WI", "wisc": "WI", "wyo": "WY", "cali": "CA",
}
_CITY_ALIASES = {
    "nyc": ("New York", "NY"), "new york city": ("New York", "NY"), "philly": ("Philadelphia", "PA"),
    "vegas": ("Las Vegas", "NV"), "sf": ("San Francisco", "CA"), "san fran": ("San Francisco", "CA"),
    "atl": ("Atlanta", "GA"), "chi town": ("Chicago", "IL"), "chitown": ("Chicago", "IL"),
    "nola": ("New Orleans", "LA"), "kc": ("Kansas City", "MO"), "slc": ("Salt Lake City", "UT"),
    "okc": ("Oklahoma City", "OK"), "salt lake": ("Salt Lake City", "UT"), "dfw": ("Dallas", "TX"), "indy": ("Indianapolis", "IN"),
    "cincy": ("Cincinnati", "OH"), "jax": ("Jacksonville", "FL"), "abq": ("Albuquerque", "NM"),
    "pgh": ("Pittsburgh", "PA"), "st pete": ("St. Petersburg", "FL"), "nashvegas": ("Nashville", "TN"),
    "htown": ("Houston", "TX"), "h town": ("Houston", "TX"), "motown": ("Detroit", "MI"),
}
# single-word city names that are also ordinary words or first names: taken as a city
# (without a state) only when capitalised or after "in"/"near"/"at"...
_COMMON_WORD_CITIES = set("""
aloha antelope apex bend buffalo carolina ceres concord cypress davis dover enterprise florence franklin
georgetown highland holland hollywood homestead independence jupiter kent lebanon lima logan manhattan
mission mobile moore normal orange paradise paramount parker plantation plymouth reading sandy seaside
sparks spring sunrise surprise taylor temple tyler university victoria vista washington wellington wilson
wyoming york allen bryan carson sherman warren troy tracy norman murray rogers quincy jackson lincoln
hamilton anderson davie irving monroe layton cary kyle dublin athens bristol cambridge camden columbia
hampton lawrence mansfield newton salem smyrna arcadia aurora phoenix mesa portage pharr ponce enid
chico clovis corona covina delano doral draper euclid hemet indio kendall lodi madera marana mauldin
menifee merced novi olathe parma perris poway rialto santee severn tustin upland utica westfield
westminster woodland woodbury spring gilbert chandler charlotte madison eugene elizabeth
""".split())
_LOCATION_PREPS = {"in", "near", "at", "around", "outside", "to", "from", "within", "located", "based", "for"}

_NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
         "ninety": 90}
_ORDINAL_WORDS = {"first": 1, "second": 2, "third": 3}

_STOPWORDS = set("""
a an the and or of for in at on by to with w need needs needed needing looking look want wanted hiring
hire require required requires requirement please pls plz thanks thank thx you us we our me i my can
could would will get find send some any about around approx approximately roughly more another just
only is are be fill spot spots position positions job jobs opening openings people ppl workers worker
staff temps temp guys guy folks hands hand crew team x qty start starting urgent urgently asap hi hello
hey available avail them it that this these those who from near located based area site also plus
have has got do does must should help hi all other new asap s st ft mt via per each total
""".split())


@dataclass
class _RoleTables:
    names: list[str]
    index: dict[str, tuple[str, bool]]  # normalised alias (and plural) -> (role, weak)
    by_len: dict[int, list[str]]  # alias keys by token count (for fuzzy matching)
    onet_codes: dict[str, str]  # O*NET-SOC code -> role
    max_tokens: int


@functools.cache
def _roles() -> _RoleTables:
    path = _roles_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        log.warning("normalizer: cannot read role dictionary %s (%s); roles come from O*NET only", path, exc)
        data = {}
    names: list[str] = []
    index: dict[str, tuple[str, bool]] = {}
    onet_codes: dict[str, str] = {}
    for entry in data.get("role", []):
        name = str(entry.get("name", "")).strip()
        if not name:
            continue
        names.append(name)
        weak = {_norm_phrase(a) for a in entry.get("weak", [])}
        for alias in [name, *entry.get("aliases", [])]:
            key = _norm_phrase(str(alias))
            for variant in _plural_variants(key):
                if variant and (variant not in index or index[variant][1]):
                    index[variant] = (name, key in weak)
        for code in entry.get("onet", []):
            onet_codes.setdefault(str(code).strip(), name)
    by_len: dict[int, list[str]] = {}
    for key in index:
        by_len.setdefault(len(key.split()), []).append(key)
    max_tokens = max(by_len, default=1)
    return _RoleTables(names, index, by_len, onet_codes, max_tokens)


@dataclass
class _OnetTables:
    directory: Path | None
    index: dict[str, Any] = field(default_factory=dict)  # key -> [(title, code)], tuples once built
    titles: dict[str, str] = field(default_factory=dict)  # code -> occupation title
    max_tokens: int = 1


def _read_table(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        delimiter = "\t" if path.suffix.lower() in (".txt", ".tsv") else ","
        return list(csv.DictReader(fh, delimiter=delimiter))


@functools.cache
def _onet() -> _OnetTables:
    directory = _onet_dir()
    tables = _OnetTables(directory)
    if directory is None:
        log.info("normalizer: O*NET occupations not found; using the project role dictionary only")
        return tables
    try:
        occ_files = sorted(directory.glob("*ccupation*ata*")) or sorted(directory.glob("*ccupation*"))
        alt_files = sorted(directory.glob("*lternate*itle*"))
        for path in occ_files[:1]:
            for row in _read_table(path):
                code, title = (row.get("O*NET-SOC Code") or "").strip(), (row.get("Title") or "").strip()
                if code and title:
                    tables.titles[code] = title
                    if "," not in title:
                        words = title.split()
                        singular = " ".join(words[:-1] + [_singular(words[-1].lower()).capitalize()
                                                          if words[-1][0].isupper() else _singular(words[-1])])
                        _onet_add(tables, singular, code)
        for path in alt_files[:1]:
            for row in _read_table(path):
                code = (row.get("O*NET-SOC Code") or "").strip()
                for column in ("Alternate Title", "Short Title"):
                    title = (row.get(column) or "").strip()
                    if code and title:
                        _onet_add(tables, title, code)
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        log.warning("normalizer: cannot read O*NET files in %s (%s); using the role dictionary only", directory, exc)
        return _OnetTables(None)
    tables.max_tokens = min(6, max((len(k.split()) for k in tables.index), default=1))
    # tuples of strings are untracked by the garbage collector: ~100K lists would be walked
    # by every full collection of the host process (the gateway) for nothing
    tables.index = {k: tuple(v) for k, v in tables.index.items()}  # type: ignore[misc]
    return tables


def _onet_add(tables: _OnetTables, title: str, code: str) -> None:
    key = _norm_phrase(title)
    if not key:
        return
    for variant in _plural_variants(key):
        bucket = tables.index.setdefault(variant, [])
        if (title, code) not in bucket:
            bucket.append((title, code))


@dataclass
class _CityTables:
    n_rows: int
    by_state: dict[str, dict[str, tuple[str, int]]]  # state -> key -> (city, population)
    by_key: dict[str, list[tuple[str, str, int]]]  # key -> [(city, state, population)], most populous first
    by_initial: dict[str, list[str]]  # first letter -> keys
    max_tokens: int


def _city_key(text: str) -> str:
    words = _norm_phrase(text).split()
    repl = {"saint": "st", "fort": "ft", "mount": "mt", "sainte": "ste"}
    return " ".join(repl.get(w, w) for w in words)


@functools.cache
def _cities() -> _CityTables:
    by_state: dict[str, dict[str, tuple[str, int]]] = {}
    by_key: dict[str, list[tuple[str, str, int]]] = {}
    n = 0
    try:
        with _cities_path().open(encoding="utf-8-sig", newline="") as fh:
            for row in csv.DictReader(fh):
                city, state = (row.get("city") or "").strip(), (row.get("state_id") or "").strip().upper()
                if not city or state not in STATES:
                    continue
                try:
                    pop = int(float(row.get("population") or 0))
                except ValueError:
                    pop = 0
                key = _city_key(city)
                n += 1
                by_state.setdefault(state, {})[key] = (city, pop)
                by_key.setdefault(key, []).append((city, state, pop))
    except OSError as exc:
        log.warning("normalizer: cannot read %s (%s); cities are taken as written", _cities_path(), exc)
    for key in by_key:
        by_key[key].sort(key=lambda t: -t[2])
    by_initial: dict[str, list[str]] = {}
    for key in by_key:
        by_initial.setdefault(key[0], []).append(key)
    max_tokens = max((len(k.split()) for k in by_key), default=1)
    return _CityTables(n, by_state, by_key, by_initial, max_tokens)


@functools.cache
def _tables() -> tuple[_RoleTables, _OnetTables, _CityTables]:
    return _roles(), _onet(), _cities()


# ============================================================================ the document


@dataclass
class _Tok:
    start: int
    end: int
    text: str  # lower case
    orig: str


class _Doc:
    """The text, a mask of characters already explained, and its word tokens."""

    def __init__(self, text: str):
        text = unicodedata.normalize("NFKC", text)
        text = text.replace("\u2019", "'").replace("\u2013", "-").replace("\u2014", "-")
        text = re.sub(r"(?<=[A-Za-z])'(?=[A-Za-z])", "", text)  # CNA's -> CNAs
        text = re.sub(r"\b([A-Za-z])\.([A-Za-z])\.", r"\1\2 ", text)  # N.C. -> NC
        text = re.sub(r"(?i)\ba\.s\.a\.p\b\.?", "asap", text)
        text = text.replace("&", " and ")
        self.s = text
        # lower case without changing any offset ("\u0130".lower() is two characters)
        self.low = "".join(c if len(c.lower()) != 1 else c.lower() for c in text)
        self.taken = bytearray(len(text))
        self.tokens = [_Tok(m.start(), m.end(), m.group(0), text[m.start():m.end()])
                       for m in _WORD.finditer(self.low)]
        letters = [c for c in text if c.isalpha()]
        self.all_caps = len(letters) >= 6 and sum(c.isupper() for c in letters) / len(letters) > 0.8
        self.notes: list[tuple[int, str]] = []  # recognised but not modelled (pay, shift, ...)

    def free(self, a: int, b: int) -> bool:
        return not any(self.taken[a:b])

    def take(self, a: int, b: int) -> None:
        for i in range(a, b):
            self.taken[i] = 1

    def tok_free(self, i: int) -> bool:
        t = self.tokens[i]
        return self.free(t.start, t.end)

    def joined(self, i: int, j: int) -> bool:
        """Tokens i and j=i+1 form one phrase: only light punctuation between them."""
        gap = self.low[self.tokens[i].end:self.tokens[j].start]
        return len(gap) <= 3 and self.free(self.tokens[i].end, self.tokens[j].start) and \
            all(c in " ,-/.:\t" for c in gap)

    def runs(self) -> list[list[int]]:
        """Maximal sequences of free, joined tokens."""
        out: list[list[int]] = []
        cur: list[int] = []
        for i in range(len(self.tokens)):
            if not self.tok_free(i):
                if cur:
                    out.append(cur)
                cur = []
                continue
            if cur and not self.joined(cur[-1], i):
                out.append(cur)
                cur = []
            cur.append(i)
        if cur:
            out.append(cur)
        return out

    def finditer(self, pattern: re.Pattern[str], *, need_free: bool = True) -> Iterable[re.Match[str]]:
        for m in pattern.finditer(self.low):
            if m.end() > m.start() and (not need_free or self.free(m.start(), m.end())):
                yield m


# ============================================================================ roles


@dataclass
class _RoleHit:
    role: str
    first: int  # token indices [first, last]
    last: int
    kind: str  # "dictionary" | "weak" | "fuzzy" | "onet"
    code: str | None = None

    @property
    def n(self) -> int:
        return self.last - self.first + 1


_CERT_QUALIFIERS = {"certified", "certification", "cert", "certs", "license", "licensed", "licence", "card",
                    "trained", "training", "endorsement", "endorsed", "ticket"}
_ROLE_SUFFIXES = {"guy", "guys", "people", "folks", "person", "persons", "hands", "crew", "staff", "help",
                  "temps", "team", "spots", "spot", "positions", "position", "openings"}


def _dictionary_hits(doc: _Doc, roles: _RoleTables) -> list[_RoleHit]:
    hits: list[_RoleHit] = []
    for run in doc.runs():
        for a in range(len(run)):
            for n in range(min(roles.max_tokens, len(run) - a), 0, -1):
                key = " ".join(doc.tokens[k].text for k in run[a:a + n])
                found = roles.index.get(key)
                if found is None:
                    continue
                nxt = run[a + n] if a + n < len(run) else None
                if nxt is not None and doc.tokens[nxt].text in _CERT_QUALIFIERS:
                    continue  # "forklift certified", "flagger card": a certification, not the role
                hits.append(_RoleHit(found[0], run[a], run[a + n - 1], "weak" if found[1] else "dictionary"))
                break
    return hits


def _fuzzy_hits(doc: _Doc, roles: _RoleTables) -> list[_RoleHit]:
    hits: list[_RoleHit] = []
    for run in doc.runs():
        for a in range(len(run)):
            for n in (2, 1):
                if a + n > len(run):
                    continue
                words = [doc.tokens[k].text for k in run[a:a + n]]
                if any(w in _STOPWORDS or w.isdigit() for w in words):
                    continue
                phrase = " ".join(words)
                budget = _typo_budget(len(phrase))
                if budget == 0:
                    continue
                best: tuple[int, str] | None = None
                for key in roles.by_len.get(n, ()):
                    if roles.index[key][1] or key[0] != phrase[0]:
                        continue
                    if n == 2 and not (words[0] == key.split()[0] or words[1] == key.split()[1]):
                        continue
                    d = _osa(phrase, key, budget)
                    if d <= budget and (best is None or d < best[0]):
                        best = (d, key)
                if best is not None:
                    hits.append(_RoleHit(roles.index[best[1]][0], run[a], run[a + n - 1], "fuzzy"))
                    break
    return hits


_ONET_MAX_CODES_ONE_WORD = 5
_ONET_STOP = set("""
double host hand guide owner advisor cracker tipper finer grip expo icer dean ager dyer lead head
holder runner help helper member partner associate agent worker assistant operator driver technician
specialist representative clerk manager supervisor director officer aide attendant laborer
""".split())


def _onet_hits(doc: _Doc, onet: _OnetTables, roles: _RoleTables) -> list[_RoleHit]:
    if not onet.index:
        return []
    hits: list[_RoleHit] = []
    for run in doc.runs():
        for a in range(len(run)):
            for n in range(min(onet.max_tokens, len(run) - a), 0, -1):
                toks = [doc.tokens[k] for k in run[a:a + n]]
                if toks[0].text in _STOPWORDS or toks[-1].text in _STOPWORDS or any(t.text.isdigit() for t in toks):
                    continue
                key = " ".join(t.text for t in toks)
                entries = onet.index.get(key)
                if not entries:
                    continue
                if n == 1:
                    word = toks[0]
                    abbreviation = all(title.isupper() for title, _ in entries)
                    if abbreviation and not (word.orig.isupper() and len(word.text) >= 3):
                        continue
                    if not abbreviation and (len(word.text) < 5 or _singular(word.text) in _ONET_STOP
                                             or word.text in _ONET_STOP):
                        continue
                    if len({c for _, c in entries}) >= _ONET_MAX_CODES_ONE_WORD:
                        continue  # "installer", "operator": a head noun of many occupations, not one
                title, code = _best_onet_entry(entries, onet, roles)
                role = roles.onet_codes.get(code) or _display_title(title)
                hits.append(_RoleHit(role, run[a], run[a + n - 1], "onet", code))
                break
    return hits


def _best_onet_entry(entries: Any, onet: _OnetTables, roles: _RoleTables) -> tuple[str, str]:
    def score(item: tuple[int, tuple[str, str]]) -> tuple[int, int]:
        pos, (title, code) = item
        head = _singular(_norm_phrase(title).split()[-1])[:5]
        occupation = _norm_phrase(onet.titles.get(code, ""))
        s = (2 if head and head in occupation else 0) + (1 if code in roles.onet_codes else 0)
        return (s, -pos)
    return max(enumerate(entries), key=score)[1]


def _display_title(title: str) -> str:
    if title.isupper():
        return title
    words = title.split()
    return " ".join(w if (w[:1].isupper() or not w.isalpha()) else w.capitalize() for w in words)


def _pick_role(hits: list[_RoleHit]) -> _RoleHit | None:
    if not hits:
        return None
    outer = [h for h in hits if not any(o is not h and o.first <= h.first and h.last <= o.last and o.n > h.n
                                        for o in hits)]
    return min(outer, key=lambda h: (h.first, -h.n))  # the first role written (not one nested in a longer one)


def canonical_role(text: str) -> str | None:
    """The dictionary role for a job title ("welders" -> "Welder"), or None if unknown."""
    found = _roles().index.get(_norm_phrase(text))
    return found[0] if found else None


# ============================================================================ certifications

_CERT_TAIL = r"(?:[\s\-]*(?:certified|certification|cert|certs|card|license|licensed|trained|training|endorsement|endorsed|required|req|holders?))*"
_CERT_PATTERNS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (re.compile(r"\bosha[\s\-]*(10|30)(?:[\s\-]*(?:hour|hr)s?)?" + _CERT_TAIL + r"\b"), lambda m: f"OSHA-{m.group(1)}"),
    (re.compile(r"\b(10|30)[\s\-]*(?:hour|hr)s?[\s\-]*osha" + _CERT_TAIL + r"\b"), lambda m: f"OSHA-{m.group(1)}"),
    (re.compile(r"\b(?:cdl[\s\-]*(?:class[\s\-]*)?([ab])|class[\s\-]*([ab])[\s\-]*cdl)(?:[\s\-]*(?:license|licence|licensed))?\b"),
     lambda m: f"CDL Class {(m.group(1) or m.group(2)).upper()}"),
    (re.compile(r"\bclass[\s\-]*([ab])\b(?=[\s\-]*(?:drivers?|truck|license|licence|licensed|cdl|otr))"),
     lambda m: f"CDL Class {m.group(1).upper()}"),
    (re.compile(r"(?<=driver )class[\s\-]*([ab])\b|(?<=drivers )class[\s\-]*([ab])\b|(?<=drivers, )class[\s\-]*([ab])\b"),
     lambda m: f"CDL Class {(m.group(1) or m.group(2) or m.group(3)).upper()}"),
    (re.compile(r"\b(?:certified\s+forklift(?!\s+(?:operators?|drivers?|ops?\b))|forklift[\s\-]*(?:certified|certification|cert|license|licensed|card|trained))\b"),
     lambda m: "Forklift"),
    (re.compile(r"\breach[\s\-]*truck[\s\-]*(?:certified|certification|cert|license|licensed|trained)\b"), lambda m: "Reach Truck"),
    (re.compile(r"\bacls" + _CERT_TAIL + r"\b"), lambda m: "ACLS"),
    (re.compile(r"\bbls" + _CERT_TAIL + r"\b"), lambda m: "BLS"),
    (re.compile(r"\bpals[\s\-]*(?:certified|certification|cert)\b"), lambda m: "PALS"),
    (re.compile(r"\b(?:first[\s\-]*aid(?:[\s/\-]*(?:and\s+)?cpr)?|cpr(?:[\s/\-]*(?:and\s+)?first[\s\-]*aid)?)" + _CERT_TAIL + r"\b"),
     lambda m: "First Aid/CPR"),
    (re.compile(r"\bhaz[\s\-]*mat(?:[\s\-]*(?:endorsement|endorsed|certified|cert))?\b"), lambda m: "Hazmat Endorsement"),
    (re.compile(r"\btanker[\s\-]*(?:endorsement|endorsed)\b"), lambda m: "Tanker Endorsement"),
    (re.compile(r"\b(?:twic)(?:[\s\-]*card)?" + _CERT_TAIL + r"\b"), lambda m: "TWIC"),
    (re.compile(r"\b(?:aws[\s\-]*)?d[\s\-]?1\.1" + _CERT_TAIL), lambda m: "AWS D1.1"),
    (re.compile(r"\b(?:epa[\s\-]*608|608[\s\-]*(?:universal|certified|cert|certification))" + _CERT_TAIL + r"\b"), lambda m: "EPA 608"),
    (re.compile(r"\bnfpa[\s\-]*70[\s\-]*e" + _CERT_TAIL + r"\b"), lambda m: "NFPA 70E"),
    (re.compile(r"\bserv[\s\-]*safe" + _CERT_TAIL + r"\b"), lambda m: "ServSafe"),
    (re.compile(r"\b(?:lock[\s\-]*out[\s/\-]*tag[\s\-]*out|loto)" + _CERT_TAIL + r"\b"), lambda m: "Lockout/Tagout"),
    (re.compile(r"\b(?:aerial|scissor|boom)[\s\-]*lift[\s\-]*(?:certified|certification|cert|card|trained|training|license)\b"),
     lambda m: "Aerial Lift"),
    (re.compile(r"\bflagg(?:er|ing)[\s\-]*(?:certified|certification|cert|card|trained|training)\b|\bcertified\s+flaggers?\b"),
     lambda m: "Flagger"),
    (re.compile(r"\bfall[\s\-]*protection" + _CERT_TAIL + r"\b"), lambda m: "Fall Protection"),
    (re.compile(r"\bconfined[\s\-]*space" + _CERT_TAIL + r"\b"), lambda m: "Confined Space"),
    (re.compile(r"\bnccco(?:[\s\-]*crane)?" + _CERT_TAIL + r"\b"), lambda m: "NCCCO Crane"),
    (re.compile(r"\b(?:guard[\s\-]*card|security[\s\-]*(?:license|licence)|bsis)\b"), lambda m: "Guard Card"),
    (re.compile(r"\bdot[\s\-]*(?:medical|med)[\s\-]*card\b|\bdot[\s\-]*physical\b"), lambda m: "DOT Medical Card"),
    (re.compile(r"\bipc[\s\-]*a[\s\-]*610" + _CERT_TAIL + r"\b"), lambda m: "IPC-A-610"),
    (re.compile(r"\bjourneyman[\s\-]*(?:electrician[s]?[\s\-]*)?(?:license|licence|card)\b"), lambda m: "Journeyman Electrician License"),
    (re.compile(r"\bnate[\s\-]*(?:certified|certification|cert)\b"), lambda m: "NATE"),
]


def canonical_certification(text: str) -> str | None:
    low = text.lower()
    for pattern, name in _CERT_PATTERNS:
        m = pattern.search(low)
        if m:
            return name(m)
    return None


def _extract_certifications(doc: _Doc) -> list[str]:
    found: list[tuple[int, str]] = []
    for pattern, name in _CERT_PATTERNS:
        for m in doc.finditer(pattern, need_free=False):
            if any(doc.taken[m.start():m.end()]) and not _inside_role_only(doc, m):
                continue
            found.append((m.start(), name(m)))
            doc.take(m.start(), m.end())
    out: list[str] = []
    for _, name in sorted(found):
        if name not in out:
            out.append(name)
    return out


def _inside_role_only(doc: _Doc, m: re.Match[str]) -> bool:
    """A certification may overlap the role span ("CDL-A drivers"), nothing else."""
    return all(doc.taken[i] in (0, 2) for i in range(m.start(), m.end()))


# ============================================================================ reliability

_REL_EXPLICIT = [
    re.compile(r"\b(?:min(?:imum)?\s+)?reliab\w*(?:\s+score)?\s*(?:of|:|=|>=|=>|>|\u2265|at\s+least|min(?:imum)?|over|above)?\s*(\d{1,3}(?:\.\d+)?|\.\d+)\s*(%?\s*\+?|percent)"),
    re.compile(r"\b(?:min(?:imum)?|at\s+least)\s+(\d{1,3}(?:\.\d+)?|\.\d+)\s*(%?)\s*reliab\w*"),
    re.compile(r"(?<![\w.])(\d{1,3}(?:\.\d+)?|\.\d+)\s*(%\s*\+?|\+\s*%|percent)\s*(?:or\s+(?:better|higher|more)\s+)?reliab\w*"),
]
_REL_WORDS = [
    (re.compile(r"\b(?:very|highly|super|extremely|most|really|ultra)[\s\-]+(?:reliable|dependable)\b|\btop[\s\-]+rated\b"), 0.9),
    (re.compile(r"\b(?:reliable|dependable|trustworthy|proven)\b"), 0.8),
]


def _extract_reliability(doc: _Doc) -> float | None:
    for pattern in _REL_EXPLICIT:
        for m in doc.finditer(pattern):
            try:
                value = float(m.group(1))
            except ValueError:
                continue
            if value > 1:
                value /= 100
            if 0 < value <= 1:
                doc.take(m.start(), m.end())
                return round(value, 4)
    for pattern, value in _REL_WORDS:
        for m in doc.finditer(pattern):
            doc.take(m.start(), m.end())
            return value
    return None


# ============================================================================ noise: recognised, not modelled

_NOISE = [
    re.compile(r"\$\s*\d+(?:[.,]\d+)?\s*k?(?:\s*(?:/|per|an|a)\s*(?:hr|hour|h|hourly|wk|week|yr|year))?\b"),
    re.compile(r"\b\d+(?:\.\d+)?\s*(?:/|per)\s*(?:hr|hour|h)\b"),
    re.compile(r"\b\d+(?:\.\d+)?\s*(?:dollars|bucks)(?:\s*(?:/|per|an|a)\s*(?:hr|hour))?\b"),
    re.compile(r"\(?\b\d{3}\)?[\s.\-]\d{3}[\s.\-]\d{4}\b"),
    re.compile(r"\b(?:req|requisition|po|ticket|ref|wo)\s*(?:#|no\.?|number)?\s*:?\s*#?\d{2,}\b"),
    re.compile(r"\b(?:job|order|id)\s*(?:#|no\.?|number|:)\s*#?\d{2,}\b"),
    re.compile(r"#\s?\d{4,}\b"),
    re.compile(r"\b(?:zip(?:\s*code)?\s*:?\s*)?\d{5}(?:-\d{4})?\b"),
    re.compile(r"\b\d{1,2}(?::\d{2})?(?:\s*(?:am|pm|a\.m\.|p\.m\.)|[ap])\b(?:\s*(?:-|to|until)\s*\d{1,2}(?::\d{2})?(?:\s*(?:am|pm)|[ap])\b)?"),
    re.compile(r"\b\d{1,2}:\d{2}\b"),
    re.compile(r"\b(?:1st|2nd|3rd|first|second|third|night|day|swing|graveyard|overnight|morning|evening|split|rotating)\s+shifts?\b"),
    re.compile(r"\b\d+\s*(?:hours?|hrs?)\s+shifts?\b"),
    re.compile(r"\b\d+\+?\s*(?:years?|yrs?|yr)(?:\s+(?:of\s+)?(?:exp\w*))?\b"),
    re.compile(r"\b(?:within\s+)?\d+\s*(?:miles?|mi)\b(?:\s+radius)?"),
    re.compile(r"\b\d+(?:\.\d+)?\s*(?:%|percent)"),
]
_DURATION = re.compile(
    r"\b(?:for\s+)?(?:a\s+)?(?:\d+|" + "|".join(_NUMBER_WORDS) + r")(?:\s*-\s*\d+)?[\s\-]*(?:days?|weeks?|wks?|months?|mos?)(?:[\s\-]*(?:long|job|assignment|contract|gig|project|temp))?\b")


def _extract_noise(doc: _Doc, patterns: Iterable[re.Pattern[str]]) -> None:
    for pattern in patterns:
        for m in doc.finditer(pattern):
            doc.take(m.start(), m.end())
            doc.notes.append((m.start(), doc.s[m.start():m.end()].strip()))


# ============================================================================ dates

_MONTHS = {"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6, "jul": 7, "aug": 8, "sep": 9,
           "oct": 10, "nov": 11, "dec": 12}
_MONTH_RE = (r"(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
             r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?")
_WEEKDAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
_WEEKDAY_RE = (r"(mon(?:day)?|tue(?:s(?:day)?)?|wed(?:nesday|s)?|thu(?:r(?:s(?:day)?)?)?|fri(?:day)?|"
               r"sat(?:urday)?|sun(?:day)?)")
_NUM_WORD_RE = "|".join(list(_NUMBER_WORDS) + ["a", "an", "a couple of", "a couple", "couple of", "a few", "few"])
_DAYPART = r"(?:\s+(?:night|morning|evening|afternoon|am|pm|a\.m\.|p\.m\.))?"
_DATE_PREFIX = {"by", "on", "starting", "start", "starts", "date", "from", "beginning", "begin", "begins",
                "available", "avail", "for", "due", "until", "til", "before", "no", "later", "than", "as", "of",
                "effective", "needed", "need"}


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> dt.date:
    """The n-th given weekday of a month (n = -1: the last one)."""
    if n > 0:
        first = dt.date(year, month, 1)
        return first + dt.timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    last = _add_months(dt.date(year, month, 1), 1) - dt.timedelta(days=1)
    return last - dt.timedelta(days=(last.weekday() - weekday) % 7)


_HOLIDAYS: dict[str, Callable[[int], dt.date]] = {
    "new years eve": lambda y: dt.date(y, 12, 31),
    "new years day": lambda y: dt.date(y, 1, 1),
    "new years": lambda y: dt.date(y, 1, 1),
    "memorial day": lambda y: _nth_weekday(y, 5, 0, -1),
    "juneteenth": lambda y: dt.date(y, 6, 19),
    "july 4th": lambda y: dt.date(y, 7, 4),
    "fourth of july": lambda y: dt.date(y, 7, 4),
    "independence day": lambda y: dt.date(y, 7, 4),
    "labor day": lambda y: _nth_weekday(y, 9, 0, 1),
    "halloween": lambda y: dt.date(y, 10, 31),
    "thanksgiving": lambda y: _nth_weekday(y, 11, 3, 4),
    "black friday": lambda y: _nth_weekday(y, 11, 3, 4) + dt.timedelta(days=1),
    "cyber monday": lambda y: _nth_weekday(y, 11, 3, 4) + dt.timedelta(days=4),
    "christmas eve": lambda y: dt.date(y, 12, 24),
    "christmas": lambda y: dt.date(y, 12, 25),
    "xmas": lambda y: dt.date(y, 12, 25),
}


def _holiday(name: str, today: dt.date) -> dt.date:
    key = re.sub(r"\s+", " ", name.replace("'", ""))
    for year in (today.year, today.year + 1):
        day = _HOLIDAYS[key](year)
        if day >= today:
            return day
    return day


def _small_number(text: str) -> int | None:
    text = text.strip()
    if text.isdigit():
        return int(text)
    if text in _NUMBER_WORDS:
        return _NUMBER_WORDS[text]
    if text in ("a", "an"):
        return 1
    if "couple" in text:
        return 2
    if "few" in text:
        return 3
    return None


def _next_weekday(today: dt.date, weekday: int) -> dt.date:
    """The weekday's next occurrence after today (1..7 days ahead)."""
    ahead = (weekday - today.weekday()) % 7
    return today + dt.timedelta(days=ahead or 7)


def _resolve_month_day(today: dt.date, month: int, day: int, year: int | None) -> dt.date | None:
    if year is not None and year < 100:
        year += 2000
    try:
        candidate = dt.date(year or today.year, month, day)
    except ValueError:
        if year is None:
            try:
                return dt.date(today.year + 1, month, day)  # Feb 29 of a later year
            except ValueError:
                return None
        return None
    if year is None and candidate < today:
        try:
            candidate = dt.date(today.year + 1, month, day)
        except ValueError:
            return None
    return candidate


def _add_months(d: dt.date, months: int) -> dt.date:
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    day = min(d.day, [31, 29 if (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)) else 28,
                      31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1])
    return dt.date(year, month, day)


@functools.lru_cache(maxsize=8)
def _date_rules(today: dt.date) -> list[tuple[re.Pattern[str], int, Callable[[re.Match[str]], dt.date | None]]]:
    """(pattern, priority, resolver). Higher priority wins: a calendar date beats a weekday,
    which beats "asap"."""
    def relative(m: re.Match[str]) -> dt.date | None:
        n = _small_number(m.group(1))
        if n is None or n > 366:
            return None
        unit = m.group(2)
        if unit.startswith("d"):
            return today + dt.timedelta(days=n)
        if unit.startswith("w"):
            return today + dt.timedelta(weeks=n)
        return _add_months(today, n)

    def numeric(m: re.Match[str]) -> dt.date | None:
        month, day = int(m.group(1)), int(m.group(2))
        year = int(m.group(3)) if m.group(3) else None
        if not (1 <= month <= 12 and 1 <= day <= 31):
            return None
        return _resolve_month_day(today, month, day, year)

    def month_day(m: re.Match[str]) -> dt.date | None:
        return _resolve_month_day(today, _MONTHS[m.group(1)[:3]], int(m.group(2)), int(m.group(3)) if m.group(3) else None)

    def day_month(m: re.Match[str]) -> dt.date | None:
        return _resolve_month_day(today, _MONTHS[m.group(2)[:3]], int(m.group(1)), int(m.group(3)) if m.group(3) else None)

    def day_of_month(m: re.Match[str]) -> dt.date | None:
        day = int(m.group(1))
        if not 1 <= day <= 31:
            return None
        for k in range(0, 3):
            first = _add_months(today.replace(day=1), k)
            try:
                candidate = first.replace(day=day)
            except ValueError:
                continue
            if candidate >= today:
                return candidate
        return None

    def weekday(m: re.Match[str]) -> dt.date | None:
        qualifier, name = m.group(1), m.group(2)
        wd = _WEEKDAYS[name[:3]]
        if qualifier == "next":
            this_week_monday = today - dt.timedelta(days=today.weekday())
            return this_week_monday + dt.timedelta(days=7 + wd)
        if qualifier == "this" and wd == today.weekday():
            return today
        return _next_weekday(today, wd)

    def end_of_week(_m: re.Match[str]) -> dt.date:
        return today + dt.timedelta(days=(4 - today.weekday()) % 7)

    def weekend(m: re.Match[str]) -> dt.date:
        sat = today if today.weekday() == 5 else _next_weekday(today, 5)
        return sat + dt.timedelta(days=7) if m.group(0).startswith("next") else sat

    def next_month(_m: re.Match[str]) -> dt.date:
        return _add_months(today.replace(day=1), 1)

    def end_of_month(_m: re.Match[str]) -> dt.date:
        return _add_months(today.replace(day=1), 1) - dt.timedelta(days=1)

    monday_next = today - dt.timedelta(days=today.weekday()) + dt.timedelta(days=7)
    word_n = r"(\d{1,3}|" + _NUM_WORD_RE + r")"
    return [
        (re.compile(r"\b(20\d\d)-(\d{1,2})-(\d{1,2})\b"), 5,
         lambda m: _resolve_month_day(today, int(m.group(2)), int(m.group(3)), int(m.group(1)))),
        (re.compile(r"(?<![\d/])(\d{1,2})/(\d{1,2})(?:/(\d{4}|\d{2}))?(?![\d/])"), 4, numeric),
        (re.compile(r"(?:(?<=start )|(?<=starting )|(?<=on )|(?<=by )|(?<=from )|(?<=date )|(?<=begins )|(?<=beginning ))"
                    r"(\d{1,2})-(\d{1,2})(?:-(\d{4}|\d{2}))?\b(?!\s*(?:days?|weeks?|months?|hours?|hrs?|am|pm))"), 4, numeric),
        (re.compile(r"\b" + _MONTH_RE + r"\s+(\d{1,2})(?:st|nd|rd|th)?\b(?:,?\s*(20\d\d))?"), 4, month_day),
        (re.compile(r"\b(\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?" + _MONTH_RE + r"(?:,?\s*(20\d\d))?\b"), 4, day_month),
        (re.compile(r"\bthe\s+(\d{1,2})(?:st|nd|rd|th)\b"), 3, day_of_month),
        (re.compile(r"\bday\s+after\s+tomorrow\b" + _DAYPART), 3, lambda m: today + dt.timedelta(days=2)),
        (re.compile(r"\b(?:in\s+)?(?:a|one)\s+week\s+from\s+(?:today|now)\b|\bin\s+a\s+week\b"), 3,
         lambda m: today + dt.timedelta(days=7)),
        (re.compile(r"\bin\s+" + word_n + r"\s+(days?|weeks?|wks?|months?)\b"), 3, relative),
        (re.compile(r"\b" + word_n + r"\s+(days?|weeks?|wks?|months?)\s+from\s+(?:now|today)\b"), 3, relative),
        (re.compile(r"\b(?:tomorrow|tmrw|tmrow|tmr|tomorow|tommorow|tommorrow|2morrow|2moro|2mrw)s?\b" + _DAYPART), 3,
         lambda m: today + dt.timedelta(days=1)),
        (re.compile(r"\b(" + "|".join(_HOLIDAYS) + r")\b"), 3, lambda m: _holiday(m.group(1), today)),
        (re.compile(r"(?<!black )(?<!cyber )(?<!good )\b(?:(next|this|coming|upcoming)\s+)?" + _WEEKDAY_RE + r"\b" + _DAYPART),
         3, lambda m: weekday(m)),
        (re.compile(r"\bnext\s+weekend\b|\b(?:this\s+|the\s+|over\s+the\s+)?weekend\b"), 2, weekend),
        (re.compile(r"\b(?:by\s+)?(?:the\s+)?end\s+of\s+(?:the\s+|this\s+)?(?:work\s*)?week\b|\beow\b"), 2, end_of_week),
        (re.compile(r"\bnext\s+(?:week|wk)\b|\bthe\s+week\s+after\s+this\b"), 2, lambda m: monday_next),
        (re.compile(r"\bnext\s+month\b"), 2, next_month),
        (re.compile(r"\b(?:the\s+)?end\s+of\s+(?:the\s+|this\s+)?month\b|\beom\b"), 2, end_of_month),
        (re.compile(r"\bthis\s+week\b"), 1, lambda m: today),
        (re.compile(r"\b(?:todays|today|tonights|tonight|tonite|asap|a\.s\.a\.p\.?|immediately|immediate|right\s+away|right\s+now|"
                    r"same\s+day|now|stat)\b" + _DAYPART), 1, lambda m: today),
    ]


def _extract_date(doc: _Doc, today: dt.date) -> dt.date | None:
    best: tuple[float, int, dt.date] | None = None
    for pattern, priority, resolve in _date_rules(today):
        for m in doc.finditer(pattern):
            try:
                value = resolve(m)
            except (ValueError, OverflowError):
                value = None
            if value is None:
                continue
            start = _take_with_prefix(doc, m.start(), m.end(), _DATE_PREFIX)
            # an explicit start marker ("starting Monday", "start date 12/1") outranks its peers
            rank = priority + (0.5 if re.search(r"\b(?:start\w*|from|beginning|begins?)\b", doc.low[start:m.start()]) else 0)
            if best is None or rank > best[0] or (rank == best[0] and start < best[1]):
                best = (rank, start, value)
    return best[2] if best else None


def _take_with_prefix(doc: _Doc, a: int, b: int, prefixes: set[str]) -> int:
    doc.take(a, b)
    while True:
        lo = max(0, a - 40)
        m = re.search(r"(?<![a-z])([a-z]+)[\s,:\-]*$", doc.low[lo:a])
        if not m or m.group(1) not in prefixes or not doc.free(lo + m.start(1), a):
            return a
        a = lo + m.start(1)
        doc.take(a, b)


# ============================================================================ counts


@dataclass
class _CountHit:
    value: int
    start: int
    end: int
    score: float
    plain: bool = False  # a bare number: its score depends on where the role is


_WORD_NUMBER_RE = re.compile(
    r"\b(?:(" + "|".join(_TENS) + r")(?:[\s\-]+(" + "|".join(list(_NUMBER_WORDS)[:9]) + r"))?|"
    r"(" + "|".join(_NUMBER_WORDS) + r"))\b(?!\s+of\s+(?:our|the|my|your|them|their|us)\b)(?!\s*-?\s*(?:day|week|month|year)s?\b)")
_COUNT_PHRASES = [
    (re.compile(r"\bhalf\s+a\s+dozen\b"), lambda m: 6),
    (re.compile(r"\b(\d{1,2}|" + "|".join(_NUMBER_WORDS) + r"|a|one)\s+dozen\b"),
     lambda m: 12 * (_small_number(m.group(1)) or 1)),
    (re.compile(r"\bdozen\b"), lambda m: 12),
    (re.compile(r"\b(?:a\s+)?couple(?:\s+of)?\b"), lambda m: 2),
    (re.compile(r"\b(?:a\s+)?pair\s+of\b"), lambda m: 2),
    (re.compile(r"\ba\s+few\b"), lambda m: 3),
    (re.compile(r"\ba\s+(?:single|lone)\b"), lambda m: 1),
    (re.compile(r"\ba\s+hundred\b"), lambda m: 100),
]


def _collect_counts(doc: _Doc) -> list[_CountHit]:
    hits: list[_CountHit] = []

    def add(m: re.Match[str], value: int | None, score: float, plain: bool = False, span: tuple[int, int] | None = None) -> None:
        if value is None or not 0 < value <= MAX_COUNT:
            return
        a, b = span or (m.start(), m.end())
        if not doc.free(a, b):
            return
        doc.take(a, b)
        hits.append(_CountHit(value, a, b, score, plain))

    num = r"(\d{1,4}|" + "|".join(_NUMBER_WORDS) + r")"
    for m in doc.finditer(re.compile(r"\b(?:qty|quantity|headcount|head\s+count|hc|count|number|num|total)\s*(?:of\s+\w+\s*)?[:=#\-]?\s*" + num + r"\b")):
        add(m, _small_number(m.group(1)), 4.0)
    for m in doc.finditer(re.compile(r"(?<![a-z0-9])x\s*(\d{1,4})\b")):
        add(m, int(m.group(1)), 4.0)
    for m in doc.finditer(re.compile(r"\b(\d{1,4})\s*x(?![a-z0-9])")):
        add(m, int(m.group(1)), 4.0)
    for m in doc.finditer(re.compile(r"\(\s*x?\s*(\d{1,4})\s*\)")):
        add(m, int(m.group(1)), 3.5)
    for m in doc.finditer(re.compile(r"#\s?(\d{1,3})\b")):
        add(m, int(m.group(1)), 3.0)
    for m in doc.finditer(re.compile(r"\b" + num + r"\s+of\s+them\b")):
        add(m, _small_number(m.group(1)), 3.5)
    for m in doc.finditer(re.compile(r"\b(?:need|needs|needed|want|wants|looking\s+for|send|get\s+me|find\s+me|fill)\s+(?:about\s+|around\s+|approx\.?\s+|roughly\s+)?(\d{1,4})\b(?!\s*(?:/|-\d))")):
        add(m, int(m.group(1)), 3.5, span=(m.start(1), m.end(1)))
    for m in doc.finditer(re.compile(r"\b(\d{1,4})\s*(?:ppl|people|persons|workers|guys|heads|bodies|temps|folks|hands|openings|spots|positions)\b")):
        add(m, int(m.group(1)), 3.0, span=(m.start(1), m.end(1)))
    for pattern, value in _COUNT_PHRASES:
        for m in doc.finditer(pattern):
            add(m, value(m), 2.0, plain=True)
    for m in doc.finditer(_WORD_NUMBER_RE):
        if m.group(3):
            value = _NUMBER_WORDS[m.group(3)]
        else:
            value = _TENS[m.group(1)] + (_NUMBER_WORDS[m.group(2)] if m.group(2) else 0)
        add(m, value, 1.5, plain=True)
    for m in doc.finditer(re.compile(r"(?<![\w.$#/\-])(\d{1,4})(?!\w|\.\d|\s*%|/\d|\s*-\s*\d)")):
        add(m, int(m.group(1)), 1.0, plain=True)
    return hits


def _pick_count(doc: _Doc, hits: list[_CountHit], role: _RoleHit | None) -> _CountHit | None:
    if not hits:
        return None
    if role is not None:
        r_start, r_end = doc.tokens[role.first].start, doc.tokens[role.last].end
        for h in hits:
            if h.end <= r_start:
                between = [t for t in doc.tokens if h.end <= t.start and t.end <= r_start]
                if len(between) <= 3 and not re.search(r"[.;!?|]", doc.low[h.end:r_start]):
                    h.score += 2.5 - 0.3 * len(between)
            elif h.start >= r_end and h.plain:
                gap = doc.low[r_end:h.start]
                if len(gap) <= 4 and re.fullmatch(r"[\s:,\-/|=]*", gap) and gap.strip():
                    h.score += 1.5
    return max(hits, key=lambda h: (h.score, -h.start))


# ============================================================================ locations


@dataclass
class _StateHit:
    code: str
    first: int
    last: int
    kind: str  # "name" | "abbr" | "alt" | "fuzzy"
    ambiguous: bool  # needs a city of that state right before it


@dataclass
class _Place:
    score: float
    city: str | None
    state: str | None
    first: int  # token span covered
    last: int
    quality: float  # 0..1, for the confidence


def _state_hits(doc: _Doc) -> list[_StateHit]:
    hits: list[_StateHit] = []
    n_tok = len(doc.tokens)
    covered: set[int] = set()
    for i in range(n_tok):
        if not doc.tok_free(i):
            continue
        # full names, longest first ("west virginia" before "virginia")
        for n in (3, 2, 1):
            j = i + n - 1
            if j >= n_tok or any(not doc.tok_free(k) for k in range(i, j + 1)):
                continue
            if n > 1 and any(not doc.joined(k, k + 1) for k in range(i, j)):
                continue
            key = " ".join(doc.tokens[k].text for k in range(i, j + 1))
            if key in _STATE_NAME_KEYS and not (set(range(i, j + 1)) & covered):
                hits.append(_StateHit(_STATE_NAME_KEYS[key], i, j, "name", False))
                covered.update(range(i, j + 1))
                break
        if i in covered:
            continue
        tok = doc.tokens[i]
        code = tok.text.upper()
        if len(tok.text) == 2 and code in STATES:
            written_caps = tok.orig.isupper() and not doc.all_caps
            ambiguous = code in _AMBIGUOUS_CODES and not written_caps
            hits.append(_StateHit(code, i, i, "abbr", ambiguous))
        elif tok.text in _ALT_ABBREVIATIONS:
            hits.append(_StateHit(_ALT_ABBREVIATIONS[tok.text], i, i, "alt", True))
        elif len(tok.text) >= 4 and tok.text.isalpha():
            # misspelt state names ("Tennesee", "Ohoi", "Flordia"): used only next to a city
            budget = 1 if len(tok.text) < 9 else 2
            for key, st in _STATE_NAME_KEYS.items():
                if " " in key or abs(len(key) - len(tok.text)) > budget or key[0] != tok.text[0]:
                    continue
                if _osa(tok.text, key, budget) <= budget:
                    hits.append(_StateHit(st, i, i, "fuzzy", True))
                    break
    return hits


def _city_span_key(doc: _Doc, first: int, last: int) -> str | None:
    if any(not doc.tok_free(k) for k in range(first, last + 1)):
        return None
    if any(not doc.joined(k, k + 1) for k in range(first, last)):
        return None
    words = [doc.tokens[k].text for k in range(first, last + 1)]
    if any(w.isdigit() for w in words):
        return None
    return _city_key(" ".join(words))


def _city_before(doc: _Doc, cities: _CityTables, state: str, end: int) -> tuple[str, int, float] | None:
    """The city (name, first token, quality) written right before token `end`, in `state`."""
    if end < 0 or (end + 1 < len(doc.tokens) and not doc.joined(end, end + 1)):
        return None
    table = cities.by_state.get(state, {})
    for n in range(min(cities.max_tokens, end + 1), 0, -1):  # exact, longest first
        key = _city_span_key(doc, end - n + 1, end)
        if key and key in table:
            return table[key][0], end - n + 1, 1.0
        if key and key in _CITY_ALIASES and _CITY_ALIASES[key][1] == state:
            return _CITY_ALIASES[key][0], end - n + 1, 1.0
    best: tuple[int, int, str] | None = None
    for n in range(min(3, end + 1), 0, -1):  # one or two typos
        key = _city_span_key(doc, end - n + 1, end)
        if not key or any(w in _STOPWORDS for w in key.split()):
            continue
        budget = _typo_budget(len(key))
        if budget == 0:
            continue
        for cand, (name, _pop) in table.items():
            d = _osa(key, cand, budget)
            if d <= budget and (best is None or (d, -n) < (best[0], -best[1])):
                best = (d, n, name)
    if best is not None:
        return best[2], end - best[1] + 1, 0.8
    return None


def _raw_city_before(doc: _Doc, end: int, comma: bool) -> tuple[str, int] | None:
    """An unknown city written as "<Name>, ST" or "in <Name> ST": taken as written."""
    words: list[int] = []
    k = end
    while k >= 0 and len(words) < 3:
        tok = doc.tokens[k]
        if not doc.tok_free(k) or not tok.text.isalpha() or tok.text in _STOPWORDS or tok.text in _LOCATION_PREPS:
            break
        if words and not doc.joined(k, words[-1]):
            break
        words.append(k)
        k -= 1
    if not words:
        return None
    words.reverse()
    before = words[0] - 1
    after_prep = before >= 0 and doc.tokens[before].text in _LOCATION_PREPS and doc.tok_free(before)
    lead = doc.low[doc.tokens[before].end if before >= 0 else 0:doc.tokens[words[0]].start]
    boundary = before < 0 or bool(re.search(r"[,;:|(\-]\s*$", lead))
    if not (comma or after_prep or boundary):
        return None
    if any(doc.tokens[w].text in _ALT_ABBREVIATIONS or doc.tokens[w].text.upper() in STATES for w in words):
        return None
    name = " ".join(doc.tokens[w].orig if doc.tokens[w].orig[:1].isupper() and not doc.all_caps
                    else doc.tokens[w].text.capitalize() for w in words)
    return name, words[0]


def _city_after(doc: _Doc, cities: _CityTables, state: str, start: int) -> tuple[str, int, float] | None:
    if start >= len(doc.tokens) or start < 1 or not doc.joined(start - 1, start):
        return None
    table = cities.by_state.get(state, {})
    for n in range(min(cities.max_tokens, len(doc.tokens) - start), 0, -1):
        key = _city_span_key(doc, start, start + n - 1)
        if key and key in table:
            return table[key][0], start + n - 1, 1.0
    return None


def _preceded_by_prep(doc: _Doc, i: int) -> bool:
    return i > 0 and doc.tokens[i - 1].text in _LOCATION_PREPS


def _extract_place(doc: _Doc) -> _Place | None:
    cities = _cities()
    states = _state_hits(doc)
    places: list[_Place] = []
    state_name_spans = [(s.first, s.last, s.code) for s in states if s.kind == "name"]

    for s in states:
        fuzzy_pen = 1.5 if s.kind == "fuzzy" else 0.0
        before = _city_before(doc, cities, s.code, s.first - 1)
        if before is not None:
            name, first, q = before
            places.append(_Place(10.0 - (1 - q) * 10 + 0.1 * (s.first - first) - fuzzy_pen, name, s.code, first, s.last,
                                 q * (0.9 if s.kind == "fuzzy" else 1.0)))
            continue
        after = _city_after(doc, cities, s.code, s.last + 1)
        if after is not None:
            name, last, q = after
            places.append(_Place(9.0 - fuzzy_pen, name, s.code, s.first, last, q * 0.9))
            continue
        if s.ambiguous:
            continue
        gap = doc.low[doc.tokens[s.first - 1].end:doc.tokens[s.first].start] if s.first > 0 else ""
        raw = _raw_city_before(doc, s.first - 1, "," in gap) if s.first > 0 else None
        if raw is not None:
            places.append(_Place(6.0, raw[0], s.code, raw[1], s.last, 0.6))
        alone = 3.5 if s.kind == "name" else 3.0
        places.append(_Place(alone, "Washington" if s.code == "DC" else None, s.code, s.first, s.last, 0.6))

    # a city without a state
    for run in doc.runs():
        for a in range(len(run)):
            for n in range(min(cities.max_tokens, len(run) - a), 0, -1):
                first, last = run[a], run[a + n - 1]
                key = _city_span_key(doc, first, last)
                if not key:
                    continue
                hit: tuple[str, str] | None = None
                if key in _CITY_ALIASES:
                    hit = _CITY_ALIASES[key]
                elif key in cities.by_key:
                    name, st, _pop = cities.by_key[key][0]
                    capitalised = doc.tokens[first].orig[:1].isupper() and not doc.all_caps
                    if n == 1 and key in _COMMON_WORD_CITIES and not (capitalised or _preceded_by_prep(doc, first)):
                        continue
                    hit = (name, st)
                if hit is None:
                    continue
                # the same words are (part of) a state name: "North Carolina", "Washington"
                inside = [sp for sp in state_name_spans if sp[0] <= first and last <= sp[1]]
                if inside and not (inside[0][0] == first and inside[0][1] == last and inside[0][2] == hit[1]):
                    continue
                score = 5.0 + (0.5 if _preceded_by_prep(doc, first) else 0) + 0.1 * n
                places.append(_Place(score, hit[0], hit[1], first, last, 0.85))
                break
    if not places:
        # a misspelt city after "in"/"near": "in Nashvile", "near Pittsburg"
        for run in doc.runs():
            if not _preceded_by_prep(doc, run[0]):
                continue
            best: tuple[int, int, str, str] | None = None
            for n in (3, 2, 1):
                if n > len(run):
                    continue
                key = _city_span_key(doc, run[0], run[n - 1])
                if not key or any(w in _STOPWORDS for w in key.split()):
                    continue
                budget = _typo_budget(len(key))
                if budget == 0:
                    continue
                for cand in cities.by_initial.get(key[0], ()):
                    d = _osa(key, cand, budget)
                    if d <= budget and (best is None or (d, -n) < (best[0], -best[1])):
                        name, st, _pop = cities.by_key[cand][0]
                        best = (d, n, name, st)
            if best is not None:
                places.append(_Place(4.0, best[2], best[3], run[0], run[0] + best[1] - 1, 0.7))
    if not places:
        return None
    best_place = max(places, key=lambda p: (p.score, p.last - p.first, p.first))
    for k in range(best_place.first, best_place.last + 1):
        t = doc.tokens[k]
        doc.take(t.start, t.end)
    # the word that introduced it ("in Toledo") and the glue between city and state
    a, b = doc.tokens[best_place.first].start, doc.tokens[best_place.last].end
    doc.take(a, b)
    if best_place.first > 0 and doc.tokens[best_place.first - 1].text in _LOCATION_PREPS:
        t = doc.tokens[best_place.first - 1]
        if doc.tok_free(best_place.first - 1):
            doc.take(t.start, t.end)
    return best_place


def canonical_state(text: str) -> str | None:
    """'tn', 'Tennessee', 'Tenn.', 'tennesee' -> 'TN'; None when it is not a US state."""
    key = _norm_phrase(text)
    if not key:
        return None
    if key.upper() in STATES:
        return key.upper()
    if key in _STATE_NAME_KEYS:
        return _STATE_NAME_KEYS[key]
    if key in _ALT_ABBREVIATIONS:
        return _ALT_ABBREVIATIONS[key]
    budget = _typo_budget(len(key))
    for name, code in _STATE_NAME_KEYS.items():
        if budget and _osa(key, name, budget) <= budget:
            return code
    return None


# ============================================================================ rules tier


def _parse_text(text: str, today: dt.date) -> dict[str, Any]:
    roles, onet, _cities_tab = _tables()
    unparsed: list[str] = []
    if len(text) > MAX_CHARS:
        unparsed.append(text[MAX_CHARS:])
        text = text[:MAX_CHARS]
    doc = _Doc(text)

    # 1. the role, when the dictionary knows it exactly (weak aliases wait)
    hits = _dictionary_hits(doc, roles)
    strong = [h for h in hits if h.kind == "dictionary"]
    role = _pick_role(strong)
    if role is not None:
        _take_role(doc, role)

    # 2. certifications, reliability, noise, the date, counts, the place
    certs = _extract_certifications(doc)
    min_rel = _extract_reliability(doc)
    _extract_noise(doc, _NOISE)
    day = _extract_date(doc, today)
    _extract_noise(doc, [_DURATION])
    counts = _collect_counts(doc)
    place = _extract_place(doc)

    # 3. the role, when the dictionary did not know it exactly: typos, O*NET, weak aliases
    if role is None:
        late = _fuzzy_hits(doc, roles) + _onet_hits(doc, onet, roles)
        late += [h for h in _dictionary_hits(doc, roles) if h.kind == "weak"]
        role = _pick_late_role(late)
        if role is not None:
            _take_role(doc, role)

    count_hit = _pick_count(doc, counts, role)
    count = count_hit.value if count_hit else None
    if count is None and role is not None:
        before = doc.low[max(0, doc.tokens[role.first].start - 80):doc.tokens[role.first].start]
        if re.search(r"(?:^|[^a-z0-9])(?:a|an|another|one\s+more|1\s+more|a\s+new|single)\s+(?:[a-z][a-z\-/]*\s+){0,3}$", before) \
                and not re.search(r"\b(?:a|an)\s+(?:[a-z\-/]+\s+)*(?:few|couple|dozen|pair|lot|number|bunch|team|crew|group)\b", before[-40:]):
            count = 1
    for h in counts:
        if h is not count_hit:
            doc.notes.append((h.start, doc.s[h.start:h.end].strip()))

    unparsed += _leftovers(doc)
    code = role.code if role is not None else None
    if role is not None and code is None and onet.index:
        code = _code_for_role(role.role, roles)
    result = {
        "role": role.role if role else None,
        "count": count,
        "city": place.city if place else None,
        "state": place.state if place else None,
        "date": day.isoformat() if day else None,
        "certifications": certs,
        "min_reliability": min_rel,
        "query": text.strip(),
        "source": "rules",
        "confidence": 0.0,
        "unparsed": unparsed,
        "onet_code": code,
    }
    result["confidence"] = _confidence(role, place, count, day, unparsed)
    return result


def _pick_late_role(hits: list[_RoleHit]) -> _RoleHit | None:
    if not hits:
        return None
    rank = {"fuzzy": 3, "weak": 2, "onet": 1}
    return max(hits, key=lambda h: (h.n, rank[h.kind], -h.first))


def _take_role(doc: _Doc, role: _RoleHit) -> None:
    a, b = doc.tokens[role.first].start, doc.tokens[role.last].end
    # a trailing "guys", "people", "crew" belongs to the role
    nxt = role.last + 1
    if nxt < len(doc.tokens) and doc.tokens[nxt].text in _ROLE_SUFFIXES and doc.joined(role.last, nxt):
        b = doc.tokens[nxt].end
    for i in range(a, b):
        doc.taken[i] = 2  # 2 = role: a certification may still overlap it ("CDL-A drivers")


def _code_for_role(role: str, roles: _RoleTables) -> str | None:
    for code, name in roles.onet_codes.items():
        if name == role:
            return code
    return None


_ANY_WORD = re.compile(r"[^\W_]+")


def _leftovers(doc: _Doc) -> list[str]:
    """What was not understood, as written: phrases of free words (any script), plus the
    recognised-but-unmodelled notes (pay, shift, ids). Stop words alone are not listed."""
    pieces: list[tuple[int, str]] = list(doc.notes)
    group: list[re.Match[str]] = []

    def flush() -> None:
        words = [m.group(0).lower() for m in group]
        if any(w not in _STOPWORDS for w in words):
            pieces.append((group[0].start(), doc.s[group[0].start():group[-1].end()]))
        group.clear()

    for m in _ANY_WORD.finditer(doc.s):
        if not doc.free(m.start(), m.end()):
            if group:
                flush()
            continue
        if group and not (doc.free(group[-1].end(), m.start()) and re.fullmatch(r"[ \t'\-/]*", doc.s[group[-1].end():m.start()])):
            flush()
        group.append(m)
    if group:
        flush()
    out: list[str] = []
    for _, text in sorted(pieces):
        text = text.strip()
        if text and text not in out:
            out.append(text)
    return out


def _confidence(role: _RoleHit | None, place: _Place | None, count: int | None, day: dt.date | None,
                unparsed: list[str]) -> float:
    role_q = {"dictionary": 1.0, "onet": 0.8, "fuzzy": 0.75, "weak": 0.65}.get(role.kind, 0) if role else 0.0
    score = 0.45 * role_q + 0.25 * (place.quality if place else 0) + 0.15 * (1 if count else 0) + 0.15 * (1 if day else 0)
    score -= 0.04 * sum(len(_WORD.findall(u.lower())) for u in unparsed)
    return round(min(1.0, max(0.0, score)), 3)


# ============================================================================ structured tier

_KEY_ALIASES = {
    "role": "role", "job": "role", "job_title": "role", "title": "role", "position": "role", "trade": "role",
    "occupation": "role", "job_role": "role", "role_name": "role",
    "count": "count", "qty": "count", "quantity": "count", "n": "count", "num": "count", "number": "count",
    "headcount": "count", "head_count": "count", "workers": "count", "num_workers": "count",
    "workers_needed": "count", "needed": "count", "openings": "count", "positions": "count",
    "city": "city", "town": "city",
    "state": "state", "state_code": "state", "st": "state", "state_id": "state",
    "location": "location", "place": "location", "where": "location", "city_state": "location",
    "date": "date", "start": "date", "start_date": "date", "starts": "date", "when": "date",
    "needed_by": "date", "by": "date", "start_on": "date",
    "certifications": "certifications", "certs": "certifications", "cert": "certifications",
    "certification": "certifications", "licenses": "certifications", "required_certifications": "certifications",
    "min_reliability": "min_reliability", "reliability": "min_reliability", "minimum_reliability": "min_reliability",
    "min_rel": "min_reliability",
    "query": "query", "q": "query", "text": "query", "description": "query", "notes": "query", "request": "query",
}


def _norm_key(key: Any) -> str:
    text = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", str(key).strip())  # startDate -> start_Date
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _coerce_count(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 < value <= MAX_COUNT else None
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() and 0 < value <= MAX_COUNT else None
    if isinstance(value, str):
        text = value.strip().lower()
        if re.fullmatch(r"\d{1,5}", text):
            return _coerce_count(int(text))
        doc = _Doc(text)
        hits = _collect_counts(doc)
        return hits[0].value if len(hits) == 1 and _leftovers(doc) == [] else None
    return None


def _coerce_date(value: Any, today: dt.date) -> str | None:
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            return dt.date.fromisoformat(text[:10]).isoformat()
        except ValueError:
            pass
        day = _extract_date(_Doc(text), today)
        return day.isoformat() if day else None
    return None


def _coerce_reliability(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(\d{1,3}(?:\.\d+)?|\.\d+)\s*(%?)\s*\+?\s*", value)
        if not m:
            return None
        value = float(m.group(1))
    if isinstance(value, (int, float)) and math.isfinite(value):
        v = float(value)
        if v > 1:
            v /= 100
        return round(v, 4) if 0 <= v <= 1 else None
    return None


def _coerce_certs(value: Any) -> list[str] | None:
    if isinstance(value, str):
        items = [p for p in re.split(r"[,;|]|\band\b", value) if p.strip()]
    elif isinstance(value, (list, tuple, set)):
        items = list(value)
    else:
        return None
    out: list[str] = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            return None
        name = canonical_certification(item) or item.strip()
        if name not in out:
            out.append(name)
    return out


def _canonical_city(city: str, state: str | None) -> tuple[str, str | None]:
    cities = _cities()
    key = _city_key(city)
    if state and key in cities.by_state.get(state, {}):
        return cities.by_state[state][key][0], state
    if key in _CITY_ALIASES and (state is None or _CITY_ALIASES[key][1] == state):
        return _CITY_ALIASES[key]
    if not state and key in cities.by_key:
        name, st, _pop = cities.by_key[key][0]
        return name, st
    return city.strip(), state


def _from_structured(data: dict[str, Any], today: dt.date) -> dict[str, Any]:
    unparsed: list[str] = []
    fields: dict[str, Any] = {}
    for raw_key, value in data.items():
        key = _KEY_ALIASES.get(_norm_key(raw_key))
        if key is None:
            unparsed.append(f"{raw_key}={_short(value)}")
        elif value is None or value == "" or value == []:
            continue
        elif key not in fields:
            fields[key] = value
        else:
            unparsed.append(f"{raw_key}={_short(value)}")

    out: dict[str, Any] = {k: None for k in FIELDS}
    out["certifications"] = []

    def bad(name: str, value: Any) -> None:
        unparsed.append(f"{name}={_short(value)}")

    if "role" in fields:
        value = fields["role"]
        if isinstance(value, str) and value.strip():
            out["role"] = canonical_role(value) or " ".join(value.split())
        else:
            bad("role", value)
    if "count" in fields:
        out["count"] = _coerce_count(fields["count"])
        if out["count"] is None:
            bad("count", fields["count"])
    if "state" in fields:
        value = fields["state"]
        out["state"] = canonical_state(value) if isinstance(value, str) else None
        if out["state"] is None:
            bad("state", value)
    if "location" in fields and isinstance(fields["location"], str):
        doc = _Doc(fields["location"])
        place = _extract_place(doc)
        if place is not None:
            out["city"] = out["city"] or place.city
            out["state"] = out["state"] or place.state
        else:
            bad("location", fields["location"])
    elif "location" in fields:
        bad("location", fields["location"])
    if "city" in fields:
        value = fields["city"]
        if isinstance(value, str) and value.strip():
            out["city"], state = _canonical_city(value, out["state"])
            out["state"] = out["state"] or state
        else:
            bad("city", value)
    if "date" in fields:
        out["date"] = _coerce_date(fields["date"], today)
        if out["date"] is None:
            bad("date", fields["date"])
    if "certifications" in fields:
        certs = _coerce_certs(fields["certifications"])
        if certs is None:
            bad("certifications", fields["certifications"])
        else:
            out["certifications"] = certs
    if "min_reliability" in fields:
        out["min_reliability"] = _coerce_reliability(fields["min_reliability"])
        if out["min_reliability"] is None:
            bad("min_reliability", fields["min_reliability"])
    query = fields.get("query")
    if isinstance(query, str) and query.strip():
        out["query"] = query.strip()
    else:
        if query is not None:
            bad("query", query)
        out["query"] = _describe(out)
    out["unparsed"] = unparsed
    out["source"] = "structured"
    out["onet_code"] = _code_for_role(out["role"], _roles()) if out["role"] else None
    out["confidence"] = 1.0 if not unparsed else round(max(0.5, 1.0 - 0.1 * len(unparsed)), 3)
    return out


def _describe(req: dict[str, Any]) -> str:
    """'Welder x3 in Toledo, OH' -- the text a structured request is embedded as."""
    parts = []
    if req.get("role"):
        parts.append(str(req["role"]) + (f" x{req['count']}" if req.get("count") else ""))
    place = ", ".join(str(v) for v in (req.get("city"), req.get("state")) if v)
    if place:
        parts.append(f"in {place}")
    if req.get("certifications"):
        parts.append("with " + ", ".join(req["certifications"]))
    if req.get("date"):
        parts.append(f"from {req['date']}")
    return " ".join(parts)


def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str) if _jsonable(value) else repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value, default=str)
        return True
    except (TypeError, ValueError):
        return False


_STRUCTURED_FIELDS = {"role", "count", "city", "state", "location", "date", "certifications", "min_reliability"}


# ============================================================================ LLM tier

_LLM_PROMPT = """Extract the staffing request below as one JSON object with exactly these keys:
"role" (job title, singular, e.g. "Welder"), "count" (integer or null), "city" (or null),
"state" (2-letter US state code or null), "date" (YYYY-MM-DD start date or null; today is {today},
a {weekday}), "certifications" (list of strings), "min_reliability" (0..1 or null).
Answer with the JSON object only.

Request: {text}
"""


def _llm_tier(text: str, rules: dict[str, Any], llm: Callable[[str], Any], today: dt.date) -> dict[str, Any]:
    prompt = _LLM_PROMPT.format(today=today.isoformat(), weekday=today.strftime("%A"), text=text[:MAX_CHARS])
    try:
        answer = llm(prompt)
        if isinstance(answer, str):
            m = re.search(r"\{.*\}", answer, re.S)
            answer = json.loads(m.group(0)) if m else None
        if not isinstance(answer, dict):
            raise ValueError(f"expected a JSON object, got {type(answer).__name__}")
    except Exception as exc:  # noqa: BLE001 -- a model failure must never fail the request
        log.warning("normalizer: llm fallback failed (%s); keeping the rules result", exc)
        return rules
    parsed = _from_structured({k: v for k, v in answer.items() if _KEY_ALIASES.get(_norm_key(k)) != "query"}, today)
    merged = dict(rules)
    used = False
    for key in ("role", "count", "city", "state", "date", "min_reliability"):
        if merged.get(key) is None and parsed.get(key) is not None:
            merged[key] = parsed[key]
            used = True
    for cert in parsed.get("certifications") or []:
        if cert not in merged["certifications"]:
            merged["certifications"] = [*merged["certifications"], cert]
            used = True
    if not used:
        return rules
    merged["source"] = "llm"
    merged["onet_code"] = rules.get("onet_code") or (_code_for_role(merged["role"], _roles()) if merged["role"] else None)
    merged["confidence"] = round(max(rules["confidence"], 0.6 if merged["role"] else 0.3), 3)
    return merged


def ollama_llm(client: Any = None, model: str | None = None) -> Callable[[str], dict[str, Any]]:
    """An ``llm`` callable backed by Ollama (``lakehouse.vectors.ollama.OllamaClient`` or any
    object with the same ``generate(prompt, model, options=...)``); imported lazily."""
    def call(prompt: str) -> dict[str, Any]:
        nonlocal client
        if client is None:
            from lakehouse.vectors.ollama import OllamaClient, OllamaConfig  # lazy: needs the package
            client = OllamaClient(OllamaConfig.from_env())
        reply = client.generate(prompt, model, options={"temperature": 0})
        text = reply.get("response", "") if isinstance(reply, dict) else str(reply)
        m = re.search(r"\{.*\}", text, re.S)
        if not m:
            raise ValueError("the model did not answer with a JSON object")
        return json.loads(m.group(0))
    return call


# ============================================================================ entry point


def normalize(raw: str | dict, *, today: dt.date | None = None,
              llm: Callable[[str], dict] | None = None) -> dict[str, Any]:
    """Turn a request (free text, a JSON object string, or a dict) into
    ``{role, count, city, state, date, certifications, min_reliability, query, source,
    confidence, unparsed, onet_code}``. Never raises on any string or dict."""
    today = today or dt.date.today()
    if isinstance(raw, (bytes, bytearray)):
        raw = raw.decode("utf-8", errors="replace")
    if isinstance(raw, str):
        stripped = raw.strip()
        if stripped.startswith("{") and stripped.endswith("}"):
            try:
                decoded = json.loads(stripped)
            except ValueError:
                decoded = None
            if isinstance(decoded, dict):
                raw = decoded
    if isinstance(raw, dict):
        keys = {_KEY_ALIASES.get(_norm_key(k)) for k, v in raw.items() if v not in (None, "", [])}
        if keys & _STRUCTURED_FIELDS:
            return _from_structured(raw, today)
        text = next((v for k, v in raw.items() if _KEY_ALIASES.get(_norm_key(k)) == "query" and isinstance(v, str)), "")
        extra = [f"{k}={_short(v)}" for k, v in raw.items() if _KEY_ALIASES.get(_norm_key(k)) != "query"]
        result = _normalize_text(text, today, llm)
        result["unparsed"] = extra + result["unparsed"]
        return result
    if not isinstance(raw, str):
        raise TypeError(f"normalize() takes a str or a dict, not {type(raw).__name__}")
    return _normalize_text(raw, today, llm)


def _normalize_text(text: str, today: dt.date, llm: Callable[[str], dict] | None) -> dict[str, Any]:
    result = _parse_text(text, today)
    if result["role"] is None and llm is not None and text.strip():
        result = _llm_tier(text, result, llm, today)
    return result
