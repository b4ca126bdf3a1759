"""Free-text worker profiles: an intro, an optional certifications line, a trait.

Written like a recruiter's note so that full-text and semantic search have something
realistic to match ("reliable MIG welder near Toledo"). Every sentence is built from
the worker's own fields, so the text never contradicts the structured columns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from lakehouse.demo_data import _text

Eligible = Callable[["ProfileInputs"], np.ndarray]


@dataclass(frozen=True)
class ProfileInputs:
    years: np.ndarray
    has_certification: np.ndarray
    archetype: np.ndarray  # index into ARCHETYPE_NAMES of _workers
    reliability: np.ndarray
    fields: dict[str, pa.Array]  # template fields, one row per worker


# (template, which workers it suits). "{years}" reads "7 years" / "less than a year".
INTROS: tuple[tuple[str, Eligible], ...] = (
    ("{Role} with {years} of {specialty} experience in {city}, {state}.",
     lambda p: np.ones(p.years.size, dtype=bool)),
    ("Certified {noun} with {years} of {specialty} experience in {city}, {state}.",
     lambda p: p.has_certification),
    ("{Role} based in {city}, {state} with {years} on the job, mostly {specialty}.",
     lambda p: p.years >= 1),
    ("Experienced {noun} from {city}, {state}, skilled in {skills}.",
     lambda p: p.years >= 5),
    ("Entry-level {noun} in {city}, {state}, building experience in {specialty}.",
     lambda p: p.years < 2),
    ("{years} as {a_noun} around {city}, {state}; strongest in {specialty}.",
     lambda p: p.years >= 2),
)

# Leading space: the sentence is appended to the intro, or left out entirely.
CERTIFICATION_LINES = (" {certifications} certified.", " Holds {certifications}.",
                       " Certifications: {certifications}.", " Carries {certifications}.")

# One group per archetype (same order as _workers.ARCHETYPES), then a caution group
# recruiters write for workers with shaky attendance.
TRAITS: tuple[tuple[str, ...], ...] = (
    ("Known for showing up early.", "Rarely misses a shift.", "Clients ask for them by name.",
     "Has finished every assignment this year."),  # steady
    ("Open to nights, weekends and overtime.", "Willing to travel for the right assignment.",
     "Happy to cover short-notice shifts.", "Can switch between roles on site."),  # flexible
    ("Eager to pick up more hours.", "Quick learner with a good attitude.",
     "Looking for a first long-term assignment."),  # newcomer
    ("Go-to person for {specialty}.", "Prefers technical, detail-heavy work.",
     "Sought out for tough {specialty} jobs."),  # specialist
    ("Has run crews of up to {crew} on past jobs.", "Often trusted to lead a shift.",
     "Trains new hires on site."),  # leader
    ("Attendance has been spotty; confirm the day before.", "Missed two shifts last quarter.",
     "Needs a reminder call before start dates."),  # caution
)
CAUTION_GROUP = len(TRAITS) - 1
SHARE_WITHOUT_TRAIT = 0.15


def build_profiles(rng: np.random.Generator, inputs: ProfileInputs) -> pa.Array:
    intro = _text.render([t for t, _ in INTROS], _choose_intro(rng, inputs), inputs.fields)
    certification_line = _text.render(
        CERTIFICATION_LINES, _choose_certification_line(rng, inputs), inputs.fields
    )
    trait = _text.render(
        [" " + t for group in TRAITS for t in group], _choose_trait(rng, inputs), inputs.fields
    )
    return _text.concat(intro, certification_line, trait)


def _choose_intro(rng: np.random.Generator, inputs: ProfileInputs) -> np.ndarray:
    eligible = np.column_stack([suits(inputs) for _, suits in INTROS])
    # Random score per (row, template); ineligible templates can never win.
    scores = np.where(eligible, rng.random(eligible.shape), -1.0)
    return scores.argmax(axis=1)


def _choose_certification_line(rng: np.random.Generator, inputs: ProfileInputs) -> np.ndarray:
    choice = rng.integers(0, len(CERTIFICATION_LINES), inputs.years.size)
    return np.where(inputs.has_certification, choice, -1)


def _choose_trait(rng: np.random.Generator, inputs: ProfileInputs) -> np.ndarray:
    rows = inputs.years.size
    cautious = (inputs.reliability < 0.45) & (rng.random(rows) < 0.6)
    group = np.where(cautious, CAUTION_GROUP, inputs.archetype)
    sizes = np.array([len(group_templates) for group_templates in TRAITS])
    choice = _text.pick_in_groups(rng, group, sizes)
    return np.where(rng.random(rows) < SHARE_WITHOUT_TRAIT, -1, choice)
