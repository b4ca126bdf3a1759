"""The `workers` table, one block of BLOCK_ROWS workers at a time.

A block is generated in two steps with separate random streams:
* `worker_core`: the few numeric attributes other tables depend on (role, city,
  archetype, experience, reliability, availability). Cheap, so placements and the
  call log can recompute it without rendering any text.
* `render_workers`: names, contact details, skills, pay, profile text.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.demo_data import _names, _roles, _text
from lakehouse.demo_data._common import US_PER_DAY, Block, Clock, Stream, stream
from lakehouse.demo_data._geo import Cities, load_cities
from lakehouse.demo_data._profiles import ProfileInputs, build_profiles


@dataclass(frozen=True)
class Archetype:
    name: str
    share: float
    min_years: int
    max_years: int
    years_shape: float  # experience above the minimum is gamma distributed
    years_scale: float
    reliability_beta: tuple[float, float]  # Beta(a, b): mean a / (a + b)


ARCHETYPES: tuple[Archetype, ...] = (
    Archetype("steady", 0.35, 2, 40, 2.0, 3.0, (12.0, 2.0)),
    Archetype("flexible", 0.22, 1, 35, 1.5, 3.0, (5.0, 2.5)),
    Archetype("newcomer", 0.18, 0, 2, 1.0, 0.8, (3.0, 2.0)),
    Archetype("specialist", 0.15, 4, 40, 2.0, 3.5, (7.0, 2.5)),
    Archetype("leader", 0.10, 8, 42, 2.0, 4.0, (9.0, 2.0)),
)
ARCHETYPE_NAMES = tuple(a.name for a in ARCHETYPES)
_ARCHETYPE_SHARE = np.array([a.share for a in ARCHETYPES])
_MIN_YEARS = np.array([a.min_years for a in ARCHETYPES])
_MAX_YEARS = np.array([a.max_years for a in ARCHETYPES])
_YEARS_SHAPE = np.array([a.years_shape for a in ARCHETYPES])
_YEARS_SCALE = np.array([a.years_scale for a in ARCHETYPES])
_BETA_A = np.array([a.reliability_beta[0] for a in ARCHETYPES])
_BETA_B = np.array([a.reliability_beta[1] for a in ARCHETYPES])

AVAILABLE, ON_ASSIGNMENT, UNAVAILABLE = range(3)
AVAILABILITY_NAMES = ("available", "on_assignment", "unavailable")
_AVAILABILITY_SHARE = np.array([0.62, 0.18, 0.20])

EMAIL_DOMAINS = ("example.com", "example.net", "example.org")  # reserved: never deliverable
_EMAIL_DOMAIN_SHARE = np.array([0.5, 0.3, 0.2])
# Local-part styles: first.last, flast, first_last, firstlast (+ worker id, so unique).
_EMAIL_SEPARATORS = (".", "", "_", "")
_EMAIL_INITIAL_STYLE = 1


@dataclass(frozen=True)
class WorkerCore:
    block: Block
    role: np.ndarray
    city: np.ndarray
    archetype: np.ndarray
    years: np.ndarray  # int32
    reliability: np.ndarray
    availability: np.ndarray

    @property
    def worker_id(self) -> np.ndarray:
        return np.arange(self.block.start + 1, self.block.start + self.block.rows + 1, dtype=np.int64)


def worker_core(seed: int, block: Block) -> WorkerCore:
    rng = stream(seed, Stream.WORKER_CORE, block.index)
    rows, cities = block.rows, load_cities()
    role = rng.choice(len(_roles.ROLES), rows, p=_roles.ROLE_DEMAND)
    city = rng.choice(len(cities), rows, p=cities.weight)
    archetype = rng.choice(len(ARCHETYPES), rows, p=_ARCHETYPE_SHARE)
    extra_years = rng.gamma(_YEARS_SHAPE[archetype], _YEARS_SCALE[archetype])
    years = np.minimum(_MIN_YEARS[archetype] + extra_years.astype(np.int64), _MAX_YEARS[archetype])
    reliability = rng.beta(_BETA_A[archetype], _BETA_B[archetype])
    availability = rng.choice(len(AVAILABILITY_NAMES), rows, p=_AVAILABILITY_SHARE)
    return WorkerCore(block, role, city, archetype, years.astype(np.int32), reliability, availability)


def render_workers(seed: int, core: WorkerCore, assignment_end: np.ndarray, clock: Clock) -> pa.Table:
    """The block's table; `assignment_end` is each worker's current assignment end (or -1)."""
    rng = stream(seed, Stream.WORKER_DETAILS, core.block.index)
    cities = load_cities()
    first, last = _choose_names(rng, core)
    lat, lon = _home_locations(rng, core, cities)
    skills, specialty, skills_phrase = _skills(rng, core)
    certifications, has_certification = _certifications(rng, core)
    city_name = _text.take(cities.name, core.city)
    state = _text.take(cities.state, core.city)
    columns = {
        "worker_id": pa.array(core.worker_id),
        "name": _text.concat(_text.take(_FIRST_NAMES, first), " ", _text.take(_LAST_NAMES, last)),
        "role": _text.take(_ROLE_NAMES, core.role),
        "city": city_name,
        "state": state,
        "zip": _text.take(cities.zip, core.city),
        "lat": pa.array(lat),
        "lon": pa.array(lon),
        "phone": _phones(rng, core, cities),
        "email": _emails(rng, core, first, last),
        "skills": skills,
        "certifications": certifications,
        "years_experience": pa.array(core.years, type=pa.int32()),
        "reliability": pa.array(core.reliability),
        "archetype": _text.take(_ARCHETYPE_VOCAB, core.archetype),
        "availability": _text.take(_AVAILABILITY_VOCAB, core.availability),
        "available_from": _available_from(rng, core, assignment_end, clock),
        "pay_rate": pa.array(_pay_rates(rng, core, cities)),
    }
    profile_fields = {
        "Role": columns["role"], "noun": _text.take(ROLE_NOUNS, core.role),
        "a_noun": _text.take(ROLE_NOUNS_WITH_ARTICLE, core.role),
        "years": _text.take(_YEARS_PHRASES, np.minimum(core.years, len(_YEARS_PHRASES) - 1)),
        "specialty": specialty, "skills": skills_phrase, "city": city_name, "state": state,
        "certifications": certifications,
        "crew": _text.int_strings(rng.integers(4, 26, core.block.rows)),
    }
    columns["profile"] = build_profiles(rng, ProfileInputs(
        core.years, has_certification, core.archetype, core.reliability, profile_fields))
    columns["updated_at"] = _updated_at(rng, core.block.rows, clock)
    return pa.Table.from_pydict(columns)


# --- names and contact details -------------------------------------------------------

_FIRST_NAMES = _text.vocab(_names.MALE_FIRST_NAMES + _names.FEMALE_FIRST_NAMES)
_LAST_NAMES = _text.vocab(_names.LAST_NAMES)
_MALE_WEIGHTS = _names.rank_weights(len(_names.MALE_FIRST_NAMES), flatten=10)
_FEMALE_WEIGHTS = _names.rank_weights(len(_names.FEMALE_FIRST_NAMES), flatten=10)
_LAST_WEIGHTS = _names.rank_weights(len(_names.LAST_NAMES), flatten=20)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z]", "", name.lower())


_FIRST_SLUGS = _text.vocab([_slug(n) for n in _names.MALE_FIRST_NAMES + _names.FEMALE_FIRST_NAMES])
_FIRST_INITIALS = _text.vocab([_slug(n)[0] for n in _names.MALE_FIRST_NAMES + _names.FEMALE_FIRST_NAMES])
_LAST_SLUGS = _text.vocab([_slug(n) for n in _names.LAST_NAMES])
_TWO_DIGITS = _text.vocab([f"{i:02d}" for i in range(100)])


def _choose_names(rng: np.random.Generator, core: WorkerCore) -> tuple[np.ndarray, np.ndarray]:
    """Indices into the first and last name lists; the trade drives the gender mix."""
    rows = core.block.rows
    female = rng.random(rows) < _roles.ROLE_FEMALE_SHARE[core.role]
    male_first = rng.choice(len(_MALE_WEIGHTS), rows, p=_MALE_WEIGHTS)
    female_first = len(_MALE_WEIGHTS) + rng.choice(len(_FEMALE_WEIGHTS), rows, p=_FEMALE_WEIGHTS)
    last = rng.choice(len(_LAST_WEIGHTS), rows, p=_LAST_WEIGHTS)
    return np.where(female, female_first, male_first), last


def _home_locations(
    rng: np.random.Generator, core: WorkerCore, cities: Cities
) -> tuple[np.ndarray, np.ndarray]:
    # Homes scatter around the city centre; clipped at 4 sigma (< 0.33 degrees).
    spread = cities.jitter_deg[core.city]
    offsets = np.clip(rng.standard_normal((2, core.block.rows)), -4, 4) * spread
    return (np.round(cities.lat[core.city] + offsets[0], 5),
            np.round(cities.lng[core.city] + offsets[1], 5))


def _phones(rng: np.random.Generator, core: WorkerCore, cities: Cities) -> pa.Array:
    """"(312) 555-0142": a local area code and the fictional 555-0100..0199 range."""
    rows = core.block.rows
    # Most people carry the main metro code; the rest any code of their state.
    column = np.where(rng.random(rows) < 0.6, 0,
                      (rng.random(rows) * cities.area_code_count[core.city]).astype(np.int64))
    area_code = cities.area_codes[core.city, column]
    line = rng.integers(0, 100, rows)
    return _text.concat("(", _text.int_strings(area_code), ") 555-01", _text.take(_TWO_DIGITS, line))


def _emails(rng: np.random.Generator, core: WorkerCore, first: np.ndarray, last: np.ndarray) -> pa.Array:
    rows = core.block.rows
    style = rng.integers(0, len(_EMAIL_SEPARATORS), rows)
    leading = pc.if_else(
        pa.array(style == _EMAIL_INITIAL_STYLE),
        _text.take(_FIRST_INITIALS, first),
        _text.take(_FIRST_SLUGS, first),
    )
    domain = rng.choice(len(EMAIL_DOMAINS), rows, p=_EMAIL_DOMAIN_SHARE)
    return _text.concat(
        leading, _text.take(_text.vocab(_EMAIL_SEPARATORS), style), _text.take(_LAST_SLUGS, last),
        _text.int_strings(core.worker_id), "@", _text.take(_text.vocab(EMAIL_DOMAINS), domain),
    )


# --- skills, certifications, pay -----------------------------------------------------

_ROLE_NAMES = _text.vocab(_roles.ROLE_NAMES)
ROLE_NOUNS = _text.vocab([_roles.role_noun(n) for n in _roles.ROLE_NAMES])
ROLE_NOUNS_WITH_ARTICLE = _text.vocab(
    [_roles.with_article(_roles.role_noun(n)) for n in _roles.ROLE_NAMES]
)
_ARCHETYPE_VOCAB = _text.vocab(ARCHETYPE_NAMES)
_AVAILABILITY_VOCAB = _text.vocab(AVAILABILITY_NAMES)
_YEARS_PHRASES = _text.vocab(["less than a year", "1 year"] + [f"{y} years" for y in range(2, 61)])

_SKILL_COUNT = np.array([len(r.skills) for r in _roles.ROLES])
# Earlier (more common) skills of a trade are more likely to be listed.
_SKILL_LOG_WEIGHT = np.log(1.0 / (np.arange(_roles.MAX_SKILLS) + 1.5))
_CERT_CHANCE = np.array([  # (roles x certification slots), padded with 0
    [chance for _, chance in role.certifications]
    + [0.0] * (_roles.MAX_CERTIFICATIONS - len(role.certifications))
    for role in _roles.ROLES
])
_CERT_MIN_YEARS = np.array([  # same layout
    [_roles.MIN_YEARS_FOR_CERTIFICATION.get(name, 0) for name, _ in role.certifications]
    + [0] * (_roles.MAX_CERTIFICATIONS - len(role.certifications))
    for role in _roles.ROLES
])


def _skills(rng: np.random.Generator, core: WorkerCore) -> tuple[pa.Array, pa.Array, pa.Array]:
    """2-6 skills of the worker's trade (more with experience), as a bitmask per worker."""
    rows, slots = core.block.rows, _roles.MAX_SKILLS
    wanted = 2 + core.years // 5 + rng.integers(0, 2, rows)
    count = np.clip(wanted, 2, np.minimum(6, _SKILL_COUNT[core.role]))
    # Gumbel top-k: sample `count` skills without replacement, weighted, all rows at once.
    keys = _SKILL_LOG_WEIGHT + rng.gumbel(size=(rows, slots))
    keys[np.arange(slots) >= _SKILL_COUNT[core.role][:, None]] = -np.inf
    rank = np.argsort(np.argsort(-keys, axis=1), axis=1)
    mask = ((rank < count[:, None]) << np.arange(slots)).sum(axis=1)
    return tuple(_text.lookup_strings((core.role << slots) | mask, _skill_strings, 3))


@functools.lru_cache(maxsize=None)
def _skill_strings(code: int) -> tuple[str, str, str]:
    """(skills column, specialty for prose, short skills phrase) for role/skill-mask code."""
    role = _roles.ROLES[code >> _roles.MAX_SKILLS]
    chosen = [skill for bit, skill in enumerate(role.skills) if code >> bit & 1]
    prose = [_prose(skill) for skill in chosen]
    short_pair = len(chosen) > 1 and len(chosen[0]) <= 5 and len(chosen[1]) <= 5
    specialty = f"{chosen[0]}/{chosen[1]}" if short_pair else prose[0]
    listed = prose[:3]
    phrase = listed[0] if len(listed) == 1 else ", ".join(listed[:-1]) + " and " + listed[-1]
    return ", ".join(chosen), specialty, phrase


def _prose(skill: str) -> str:
    """Lower-case a skill for use mid-sentence unless it holds an acronym or proper noun.

    "Picking and packing" -> "picking and packing"; "MIG", "RF scanning" and
    "Class A tractor-trailer" stay as they are.
    """
    first, *rest = skill.split()
    head = first.split("-")[0]  # "G-code": a lone capital is an acronym too
    keeps_case = not head[1:].islower() or any(not word.islower() for word in rest)
    return skill if keeps_case else first.lower() + skill[len(first):]


def _certifications(rng: np.random.Generator, core: WorkerCore) -> tuple[pa.Array, np.ndarray]:
    rows, slots = core.block.rows, _roles.MAX_CERTIFICATIONS
    # Newcomers hold about half the certifications a seasoned worker of the trade would.
    seasoning = 0.5 + 0.5 * np.minimum(core.years / 6.0, 1.0)
    held = rng.random((rows, slots)) < _CERT_CHANCE[core.role] * seasoning[:, None]
    held &= core.years[:, None] >= _CERT_MIN_YEARS[core.role]
    mask = (held << np.arange(slots)).sum(axis=1)
    (text,) = _text.lookup_strings((core.role << slots) | mask, _certification_string, 1)
    return text, mask > 0


@functools.lru_cache(maxsize=None)
def _certification_string(code: int) -> tuple[str]:
    role = _roles.ROLES[code >> _roles.MAX_CERTIFICATIONS]
    return (", ".join(name for bit, (name, _) in enumerate(role.certifications) if code >> bit & 1),)


def _pay_rates(rng: np.random.Generator, core: WorkerCore, cities: Cities) -> np.ndarray:
    """USD/hour: trade base pay, +2.5% per year of experience up to 20, regional level, noise."""
    experience = 1.0 + 0.025 * np.minimum(core.years, 20)
    noise = rng.lognormal(0.0, 0.06, core.block.rows)
    rate = _roles.ROLE_BASE_PAY[core.role] * experience * cities.pay_factor[core.city] * noise
    return np.round(rate * 4) / 4  # agencies quote pay in quarter dollars


# --- dates ---------------------------------------------------------------------------

def _available_from(
    rng: np.random.Generator, core: WorkerCore, assignment_end: np.ndarray, clock: Clock
) -> pa.Array:
    """Available: since a recent day; on assignment: the day after it ends; unavailable: later."""
    rows = core.block.rows
    day = clock.day + np.select(
        [core.availability == AVAILABLE, core.availability == ON_ASSIGNMENT],
        [-rng.integers(0, 61, rows), rng.integers(7, 121, rows)],
        rng.integers(14, 201, rows),
    )
    day = np.where(assignment_end >= 0, assignment_end + 1, day)
    return pa.array(day.astype(np.int32), type=pa.date32())


def _updated_at(rng: np.random.Generator, rows: int, clock: Clock) -> pa.Array:
    age_us = rng.integers(1, 365 * US_PER_DAY, rows)
    return pa.array(clock.us - age_us, type=pa.timestamp("us", tz="UTC"))
