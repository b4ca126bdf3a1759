"""The shipped city table plus small per-state facts (area codes, pay level, UTC offset).

`us_cities.csv` is derived from simplemaps US Cities (CC BY 4.0, see ATTRIBUTION.md)
by `build_cities.py`; it ships inside the package so the generator never needs the
source data at run time.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

CITIES_FILE = "us_cities.csv"

# A few real area codes per state, the main metro's first. Numbers are built in the
# fictional 555-01xx range, so the area code only has to look local.
AREA_CODES: dict[str, tuple[int, ...]] = {
    "AK": (907,), "AL": (205, 256, 334, 251), "AR": (501, 479, 870), "AZ": (602, 480, 520, 623),
    "CA": (213, 310, 415, 619, 714, 916, 408, 510, 559, 909, 818), "CO": (303, 720, 719, 970),
    "CT": (203, 860), "DC": (202,), "DE": (302,), "FL": (305, 407, 813, 904, 954, 561, 727),
    "GA": (404, 770, 678, 912), "HI": (808,), "IA": (515, 319, 563), "ID": (208,),
    "IL": (312, 773, 630, 847, 217, 815), "IN": (317, 219, 260, 812), "KS": (316, 913, 785),
    "KY": (502, 859, 270), "LA": (504, 225, 318, 337), "MA": (617, 508, 978, 413),
    "MD": (410, 301, 443), "ME": (207,), "MI": (313, 248, 616, 517, 586),
    "MN": (612, 651, 763, 952), "MO": (314, 816, 417, 573), "MS": (601, 228, 662),
    "MT": (406,), "NC": (704, 919, 336, 910, 828), "ND": (701,), "NE": (402, 308),
    "NH": (603,), "NJ": (201, 973, 732, 856, 609), "NM": (505, 575), "NV": (702, 775),
    "NY": (212, 718, 917, 516, 716, 585, 518, 315), "OH": (216, 614, 513, 419, 330, 937),
    "OK": (405, 918), "OR": (503, 541, 971), "PA": (215, 412, 717, 610, 570, 814),
    "PR": (787, 939), "RI": (401,), "SC": (803, 843, 864), "SD": (605,),
    "TN": (615, 901, 865, 423), "TX": (214, 713, 512, 210, 817, 915, 832, 469, 956),
    "UT": (801, 385, 435), "VA": (804, 703, 757, 540), "VT": (802,),
    "WA": (206, 253, 425, 509, 360), "WI": (414, 608, 920, 262), "WV": (304,), "WY": (307,),
}
FALLBACK_AREA_CODES = (800,)

# Hourly pay relative to the national level (cost of living / prevailing wages).
STATE_PAY_FACTOR: dict[str, float] = {
    "CA": 1.18, "NY": 1.15, "MA": 1.15, "WA": 1.15, "DC": 1.15, "NJ": 1.12, "HI": 1.12,
    "AK": 1.12, "CT": 1.1, "MD": 1.08, "OR": 1.08, "CO": 1.06, "IL": 1.06, "MN": 1.05,
    "RI": 1.05, "MS": 0.9, "AL": 0.92, "AR": 0.92, "WV": 0.92, "OK": 0.93, "KY": 0.94,
    "LA": 0.94, "SC": 0.94, "SD": 0.94, "TN": 0.95, "NM": 0.95, "ID": 0.95, "PR": 0.75,
}

# Standard-time offsets. Call times only need to land in local business hours, so
# daylight saving time is deliberately ignored (no tz database needed at run time).
UTC_OFFSET_HOURS: dict[str, int] = {
    "America/New_York": -5, "America/Detroit": -5, "America/Toronto": -5,
    "America/Indiana/Indianapolis": -5, "America/Kentucky/Louisville": -5,
    "America/Chicago": -6, "America/Denver": -7, "America/Boise": -7, "America/Phoenix": -7,
    "America/Los_Angeles": -8, "America/Anchorage": -9, "Pacific/Honolulu": -10,
    "America/Puerto_Rico": -4,
}
FALLBACK_UTC_OFFSET = -6


@dataclass(frozen=True)
class Cities:
    """Column arrays of the shipped table plus per-city values the generator needs."""

    name: pa.Array  # string
    state: pa.Array  # string, 2-letter
    zip: pa.Array  # string, 5 digits
    state_index: np.ndarray  # small integer per state, for matching by state
    lat: np.ndarray
    lng: np.ndarray
    weight: np.ndarray  # population share: where workers and clients live
    jitter_deg: np.ndarray  # spread of home locations around the centre; larger for big cities
    pay_factor: np.ndarray
    utc_offset_hours: np.ndarray
    area_codes: np.ndarray  # (cities x max codes), padded by repeating the first code
    area_code_count: np.ndarray

    def __len__(self) -> int:
        return len(self.lat)


def read_cities_table() -> pa.Table:
    """The shipped city table as read from package data (zip kept as text: leading zeros)."""
    data = resources.files(__package__).joinpath(CITIES_FILE).read_bytes()
    return pacsv.read_csv(
        pa.BufferReader(data),
        convert_options=pacsv.ConvertOptions(
            column_types={"zip": pa.string(), "population": pa.int64(), "lat": pa.float64(),
                          "lng": pa.float64()}
        ),
    )


@functools.lru_cache(maxsize=1)
def load_cities() -> Cities:
    table = read_cities_table()
    states = table.column("state_id").to_pylist()
    population = table.column("population").to_numpy().astype(np.float64)
    codes = [AREA_CODES.get(state, FALLBACK_AREA_CODES) for state in states]
    zones = table.column("timezone").to_pylist()
    return Cities(
        name=table.column("city").combine_chunks(),
        state=table.column("state_id").combine_chunks(),
        zip=table.column("zip").combine_chunks(),
        state_index=np.unique(np.array(states), return_inverse=True)[1].ravel(),
        lat=table.column("lat").to_numpy(),
        lng=table.column("lng").to_numpy(),
        weight=population / population.sum(),
        jitter_deg=0.02 + 0.06 * np.sqrt(population / population.max()),
        pay_factor=np.array([STATE_PAY_FACTOR.get(state, 1.0) for state in states]),
        utc_offset_hours=np.array([UTC_OFFSET_HOURS.get(zone, FALLBACK_UTC_OFFSET) for zone in zones]),
        area_codes=_pad_rows(codes),
        area_code_count=np.array([len(row) for row in codes]),
    )


def _pad_rows(rows: list[tuple[int, ...]]) -> np.ndarray:
    width = max(len(row) for row in rows)
    return np.array([row + (row[0],) * (width - len(row)) for row in rows], dtype=np.int64)
