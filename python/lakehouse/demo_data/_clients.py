"""`clients` and `job_orders`: small tables (thousands of rows even for 3M workers).

They are generated whole, from their own streams, and kept as numpy "facts" too so
that placements (generated per worker block) can match workers to real orders.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from lakehouse.demo_data import _names, _roles, _text
from lakehouse.demo_data._common import (
    US_PER_DAY, US_PER_HOUR, Clock, Stream, categorical_rows, n_clients, stream,
)
from lakehouse.demo_data._geo import load_cities

ORDERS_PER_CLIENT = 15
OPEN, FILLED, CANCELLED = range(3)
ORDER_STATUS_NAMES = ("open", "filled", "cancelled")

# When an order runs relative to as_of, and the status that goes with it.
PAST, ACTIVE, FUTURE = range(3)
_PHASE_SHARE = np.array([0.68, 0.22, 0.10])
_STATUS_SHARE_BY_PHASE = np.array([
    [0.00, 0.88, 0.12],  # past: filled, or cancelled before it started
    [0.33, 0.62, 0.05],  # active: still hiring, or fully staffed
    [0.90, 0.00, 0.10],  # future: being recruited for
])
# Assignment lengths in days: short fill-ins, a season, a long project.
_DURATION_BANDS = np.array([[7, 28], [29, 90], [91, 270]])
_DURATION_SHARE = np.array([0.35, 0.40, 0.25])
_HISTORY_DAYS = 540  # how far back past orders ended
_LEAD_DAYS = 60  # how far ahead future orders start


@dataclass(frozen=True)
class ClientFacts:
    industry: np.ndarray
    city: np.ndarray
    table: pa.Table


@dataclass(frozen=True)
class OrderFacts:
    client: np.ndarray  # row index into clients (client_id - 1)
    role: np.ndarray
    city: np.ndarray
    start_day: np.ndarray  # date32 values
    end_day: np.ndarray
    status: np.ndarray
    table: pa.Table


def make_clients(seed: int, n_workers: int, clock: Clock) -> ClientFacts:
    rng = stream(seed, Stream.CLIENTS)
    rows, cities = n_clients(n_workers), load_cities()
    industry = rng.choice(len(_roles.INDUSTRIES), rows, p=_roles.INDUSTRY_WEIGHTS)
    city = rng.choice(len(cities), rows, p=cities.weight)
    names = _company_names(rng, industry, cities.name.take(pa.array(city)).to_pylist())
    # Established accounts: every client predates the oldest job order.
    age_us = rng.integers((_HISTORY_DAYS + 300) * US_PER_DAY, 8 * 365 * US_PER_DAY, rows)
    table = pa.table({
        "client_id": pa.array(np.arange(1, rows + 1, dtype=np.int64)),
        "name": pa.array(names, type=pa.string()),
        "industry": _text.take(_text.vocab(_roles.INDUSTRY_NAMES), industry),
        "city": _text.take(cities.name, city),
        "state": _text.take(cities.state, city),
        "created_at": pa.array(clock.us - age_us, type=pa.timestamp("us", tz="UTC")),
    })
    return ClientFacts(industry, city, table)


def _company_names(rng: np.random.Generator, industry: np.ndarray, city_names: list[str]) -> list[str]:
    """"Garcia Fabrication LLC", "Great Lakes Logistics", "Toledo Foods Inc."."""
    rows = industry.size
    style = rng.choice(3, rows, p=[0.45, 0.35, 0.20])
    surname = rng.choice(len(_names.LAST_NAMES), rows, p=_names.rank_weights(len(_names.LAST_NAMES), 20))
    place = rng.integers(0, len(_roles.COMPANY_PLACE_WORDS), rows)
    noun_draw = rng.random(rows)
    suffix = rng.integers(0, len(_roles.COMPANY_SUFFIXES), rows)
    names = []
    for i in range(rows):  # at most a few thousand clients: plain Python is clearer here
        nouns = _roles.INDUSTRIES[industry[i]].company_nouns
        heads = (_names.LAST_NAMES[surname[i]], _roles.COMPANY_PLACE_WORDS[place[i]], city_names[i])
        noun = nouns[int(noun_draw[i] * len(nouns))]
        names.append(f"{heads[style[i]]} {noun}{_roles.COMPANY_SUFFIXES[suffix[i]]}")
    return names


def make_job_orders(seed: int, clients: ClientFacts, clock: Clock) -> OrderFacts:
    rng = stream(seed, Stream.JOB_ORDERS)
    rows, cities = len(clients.industry) * ORDERS_PER_CLIENT, load_cities()
    # A few big accounts place most orders.
    client_weight = rng.lognormal(0.0, 1.0, len(clients.industry))
    client = rng.choice(len(client_weight), rows, p=client_weight / client_weight.sum())
    role = _roles_for_industries(rng, clients.industry[client])
    # Most orders are at the client's site; some at another location they run.
    elsewhere = rng.choice(len(cities), rows, p=cities.weight)
    city = np.where(rng.random(rows) < 0.85, clients.city[client], elsewhere)
    phase = rng.choice(3, rows, p=_PHASE_SHARE)
    start, end = _order_dates(rng, phase, clock)
    status = categorical_rows(rng, _STATUS_SHARE_BY_PHASE[phase])
    rate_markup = rng.uniform(1.05, 1.35, rows) * rng.uniform(1.38, 1.70, rows)
    bill_rate = np.round(_roles.ROLE_BASE_PAY[role] * cities.pay_factor[city] * rate_markup, 2)
    table = pa.table({
        "order_id": pa.array(np.arange(1, rows + 1, dtype=np.int64)),
        "client_id": pa.array(client.astype(np.int64) + 1),
        "role": _text.take(_text.vocab(_roles.ROLE_NAMES), role),
        "city": _text.take(cities.name, city),
        "state": _text.take(cities.state, city),
        "workers_needed": pa.array(np.minimum(rng.geometric(0.18, rows), 60).astype(np.int32)),
        "start_date": pa.array(start.astype(np.int32), type=pa.date32()),
        "end_date": pa.array(end.astype(np.int32), type=pa.date32()),
        "bill_rate": pa.array(bill_rate),
        "status": _text.take(_text.vocab(ORDER_STATUS_NAMES), status),
        "created_at": pa.array(_created_at(rng, start, clock), type=pa.timestamp("us", tz="UTC")),
    })
    return OrderFacts(client, role, city, start, end, status, table)


def _roles_for_industries(rng: np.random.Generator, industry: np.ndarray) -> np.ndarray:
    return categorical_rows(rng, _roles.industry_role_weights()[industry])


def _order_dates(
    rng: np.random.Generator, phase: np.ndarray, clock: Clock
) -> tuple[np.ndarray, np.ndarray]:
    rows = phase.size
    band = _DURATION_BANDS[rng.choice(len(_DURATION_SHARE), rows, p=_DURATION_SHARE)]
    duration = rng.integers(band[:, 0], band[:, 1] + 1)
    past_start = clock.day - rng.integers(1, _HISTORY_DAYS + 1, rows) - duration  # ends before as_of
    active_start = clock.day - (rng.random(rows) * duration).astype(np.int64)  # spans as_of
    future_start = clock.day + rng.integers(1, _LEAD_DAYS + 1, rows)
    start = np.choose(phase, [past_start, active_start, future_start])
    return start, start + duration


def _created_at(rng: np.random.Generator, start_day: np.ndarray, clock: Clock) -> np.ndarray:
    """Orders come in 1-21 days before they start, and never after as_of."""
    rows = start_day.size
    created = start_day * US_PER_DAY - rng.integers(1, 22, rows) * US_PER_DAY
    created += rng.integers(7 * US_PER_HOUR, 19 * US_PER_HOUR, rows)  # office hours, roughly
    latest = clock.us - rng.integers(US_PER_HOUR, 5 * US_PER_DAY, rows)
    return np.minimum(created, latest)
