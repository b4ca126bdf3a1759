"""`placements` and `call_log`, generated per worker block from that block's workers.

Per block: exactly rows // 2 placements and rows calls, so ids are computable from
the block index alone (no pass over earlier blocks) and sizes are exact.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from lakehouse.demo_data import _names, _text
from lakehouse.demo_data._assignments import Assignments, match_orders, start_delay
from lakehouse.demo_data._clients import CANCELLED, OrderFacts
from lakehouse.demo_data._common import (
    US_PER_DAY, US_PER_HOUR, Clock, Stream, categorical_rows, stream,
)
from lakehouse.demo_data._geo import load_cities
from lakehouse.demo_data._workers import ROLE_NOUNS, ROLE_NOUNS_WITH_ARTICLE, WorkerCore

COMPLETED, NO_SHOW, ONGOING, TERMINATED = range(4)
OUTCOME_NAMES = ("completed", "no_show", "ongoing", "terminated")


# --- placements ----------------------------------------------------------------------

def make_placements(
    seed: int, core: WorkerCore, orders: OrderFacts, current: Assignments, clock: Clock
) -> pa.Table:
    """The block's current assignments as `ongoing` placements, the rest history."""
    rng = stream(seed, Stream.PLACEMENTS, core.block.index)
    budget = core.block.placement_rows
    past = _past_placements(rng, core, orders, clock, budget - current.worker.size)
    ongoing = {
        "worker": current.worker, "order": current.order, "start": current.start, "end": current.end,
        "outcome": np.full(current.worker.size, ONGOING), "rating": np.full(current.worker.size, np.nan),
    }
    rows = {key: np.concatenate([ongoing[key], past[key]]) for key in ongoing}
    order = np.lexsort((rows["start"], rows["worker"]))  # a worker's history reads in order
    rows = {key: value[order] for key, value in rows.items()}
    picked = rows["order"]
    return pa.table({
        "placement_id": pa.array(np.arange(1, budget + 1, dtype=np.int64) + core.block.placement_offset),
        "order_id": pa.array(picked.astype(np.int64) + 1),
        "worker_id": pa.array(core.worker_id[rows["worker"]]),
        "client_id": pa.array(orders.client[picked].astype(np.int64) + 1),
        "start_date": pa.array(rows["start"].astype(np.int32), type=pa.date32()),
        "end_date": pa.array(rows["end"].astype(np.int32), type=pa.date32()),
        "outcome": _text.take(_text.vocab(OUTCOME_NAMES), rows["outcome"]),
        "rating": pa.array(rows["rating"], mask=np.isnan(rows["rating"])),
    })


def _past_placements(rng, core: WorkerCore, orders: OrderFacts, clock: Clock, count: int) -> dict:
    # Experienced workers have longer histories.
    weight = 0.5 + np.minimum(core.years, 15) / 5.0
    workers = rng.choice(core.block.rows, count, p=weight / weight.sum())
    started = orders.start_day <= clock.day - 2
    pool = np.flatnonzero(started & (orders.status != CANCELLED))
    picked = match_orders(rng, core, orders, workers, pool)
    unmatched = picked < 0
    if unmatched.any():  # only with almost no orders: take any order that has started
        fallback = np.flatnonzero(started) if started.any() else np.arange(orders.start_day.size)
        picked[unmatched] = rng.choice(fallback, unmatched.sum())
    # Clamps only matter for the fallback; matched orders already satisfy them.
    first_day = np.minimum(orders.start_day[picked], clock.day - 2)
    last_day = np.maximum(first_day, np.minimum(orders.end_day[picked], clock.day - 1))
    start = first_day + start_delay(rng, last_day - first_day)
    reliability = core.reliability[workers]
    outcome = _past_outcomes(rng, reliability)
    end = np.select(
        [outcome == NO_SHOW, outcome == TERMINATED],
        [start, start + (rng.random(count) * (last_day - start)).astype(np.int64)],
        last_day,
    )
    return {"worker": workers, "order": picked, "start": start, "end": end,
            "outcome": outcome, "rating": _ratings(rng, outcome, reliability)}


def _past_outcomes(rng: np.random.Generator, reliability: np.ndarray) -> np.ndarray:
    """Unreliable workers no-show and get let go more often."""
    no_show = 0.02 + 0.30 * (1.0 - reliability) ** 2
    terminated = 0.03 + 0.15 * (1.0 - reliability)
    draw = rng.random(reliability.size)
    return np.select([draw < no_show, draw < no_show + terminated], [NO_SHOW, TERMINATED], COMPLETED)


def _ratings(rng: np.random.Generator, outcome: np.ndarray, reliability: np.ndarray) -> np.ndarray:
    """Client rating 1-5 in half stars; NaN (null) when there is nothing to rate or no one did."""
    rows = outcome.size
    completed = 2.6 + 2.4 * reliability
    terminated = 1.0 + 1.5 * reliability
    score = np.where(outcome == COMPLETED, completed, terminated) + rng.normal(0.0, 0.5, rows)
    rating = np.clip(np.round(score * 2) / 2, 1.0, 5.0)
    unrated_chance = np.where(outcome == COMPLETED, 0.15, 0.30)
    rated = (outcome != NO_SHOW) & (rng.random(rows) >= unrated_chance)
    return np.where(rated, rating, np.nan)


# --- call log ------------------------------------------------------------------------

CALL, SMS = range(2)
CHANNEL_NAMES = ("call", "sms")
REACHED, VOICEMAIL, NO_ANSWER, PLACED = range(4)
CALL_OUTCOME_NAMES = ("reached", "voicemail", "no_answer", "placed")
_SMS_SHARE = 0.4
_OUTCOME_SHARE_BY_CHANNEL = np.array([
    [0.42, 0.30, 0.22, 0.06],  # call
    [0.55, 0.00, 0.39, 0.06],  # sms: no voicemail
])
# Recruiters call available people most, people on assignment about renewals.
_CALL_WEIGHT_BY_AVAILABILITY = np.array([3.0, 1.0, 0.6])
_CALL_HISTORY_DAYS = 180
_WORKDAY_START_MINUTE, _WORKDAY_MINUTES = 8 * 60, 10 * 60

# Note templates per (channel, outcome), in CHANNEL x OUTCOME order.
NOTES: tuple[tuple[str, ...], ...] = (
    ("Talked through {noun} openings near {city}; interested.", "Confirmed availability for next week.",
     "Reached; wants day shift only.", "Reached; asked about pay for {noun} work."),
    ("Left voicemail about {a_noun} opening in {city}.", "Left voicemail; will try again tomorrow."),
    ("No answer.", "No answer; number may be outdated.", "Rang out, no voicemail set up."),
    ("Placed on {noun} assignment in {city}.", "Accepted {noun} assignment; starts Monday."),
    ("Replied by text: interested in {noun} shifts.", "Texted back to confirm start time.",
     "Replied: available after this week."),
    (),  # sms voicemail: its share is 0, so this empty group is never picked
    ("Sent {noun} job details by text; no reply yet.", "Text sent about open shifts; no reply."),
    ("Confirmed {noun} assignment by text.", "Accepted shift offer by text."),
)


def make_staffers(seed: int, n_workers: int) -> tuple[pa.Array, np.ndarray]:
    """Recruiter names (distinct) and how much of the calling each does."""
    rng = stream(seed, Stream.STAFFERS)
    count = int(np.clip(n_workers // 20_000, 5, 200))
    first, last = _names.MALE_FIRST_NAMES + _names.FEMALE_FIRST_NAMES, _names.LAST_NAMES
    pairs = rng.choice(len(first) * len(last), count, replace=False)
    names = [f"{first[pair // len(last)]} {last[pair % len(last)]}" for pair in pairs]
    return _text.vocab(names), _names.rank_weights(count, flatten=count)


def make_call_log(
    seed: int, core: WorkerCore, staffers: tuple[pa.Array, np.ndarray], clock: Clock
) -> pa.Table:
    rng = stream(seed, Stream.CALL_LOG, core.block.index)
    rows, cities = core.block.rows, load_cities()
    weight = _CALL_WEIGHT_BY_AVAILABILITY[core.availability]
    worker = rng.choice(rows, rows, p=weight / weight.sum())
    names, busyness = staffers
    staffer = rng.choice(len(busyness), rows, p=busyness)
    channel = (rng.random(rows) < _SMS_SHARE).astype(np.int64)
    outcome = categorical_rows(rng, _OUTCOME_SHARE_BY_CHANNEL[channel])
    at = _call_times(rng, cities.utc_offset_hours[core.city[worker]], clock)
    role = core.role[worker]
    fields = {
        "noun": _text.take(ROLE_NOUNS, role), "a_noun": _text.take(ROLE_NOUNS_WITH_ARTICLE, role),
        "city": _text.take(cities.name, core.city[worker]),
    }
    note_group = channel * len(CALL_OUTCOME_NAMES) + outcome
    note_choice = _text.pick_in_groups(rng, note_group, _NOTE_GROUP_SIZES)
    table = pa.table({
        "call_id": pa.array(np.arange(rows, dtype=np.int64) + core.block.start + 1),
        "worker_id": pa.array(core.worker_id[worker]),
        "staffer": _text.take(names, staffer),
        "channel": _text.take(_text.vocab(CHANNEL_NAMES), channel),
        "outcome": _text.take(_text.vocab(CALL_OUTCOME_NAMES), outcome),
        "at": pa.array(at, type=pa.timestamp("us", tz="UTC")),
        "note": _text.render(_NOTE_TEMPLATES, note_choice, fields),
    })
    # Logs are appended as calls happen: ids follow time within the block.
    by_time = np.argsort(at, kind="stable")
    return table.take(by_time).set_column(0, "call_id", table.column("call_id"))


def _call_times(rng: np.random.Generator, utc_offset_hours: np.ndarray, clock: Clock) -> np.ndarray:
    """Local business hours on one of the last ~6 months, as UTC microseconds (< as_of)."""
    rows = utc_offset_hours.size
    day = clock.day - 2 - rng.integers(0, _CALL_HISTORY_DAYS, rows)
    local_us = (_WORKDAY_START_MINUTE * 60 + rng.integers(0, _WORKDAY_MINUTES * 60, rows)) * 1_000_000
    return day * US_PER_DAY + local_us - utc_offset_hours * US_PER_HOUR


_NOTE_TEMPLATES = [note for group in NOTES for note in group]
_NOTE_GROUP_SIZES = np.array([len(group) for group in NOTES])
