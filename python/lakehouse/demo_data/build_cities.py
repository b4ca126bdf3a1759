"""Derive the shipped `us_cities.csv` from the simplemaps US Cities Database.

Source data: simplemaps US Cities Database, Basic edition
    https://simplemaps.com/data/us-cities
    License: Creative Commons Attribution 4.0 (CC BY 4.0). Attribution is REQUIRED
    wherever this derived table is used or redistributed (see ATTRIBUTION.md).

The generator needs only a small table at run time (the most populous cities with
coordinates and one zip code), so this script keeps the top N cities by population
and a handful of columns. Run it again whenever the source is updated:

    python python/lakehouse/demo_data/build_cities.py \
        ../shared/data/geo/simplemaps_uscities_mcedillo20.csv \
        [--out python/lakehouse/demo_data/us_cities.csv] [--top 1000]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

ATTRIBUTION_URL = "https://simplemaps.com/data/us-cities"
OUTPUT_COLUMNS = ("city", "state_id", "state_name", "lat", "lng", "population", "zip", "timezone")
DEFAULT_OUT = Path(__file__).with_name("us_cities.csv")


def read_source(path: Path) -> list[dict[str, str]]:
    # The simplemaps file is UTF-8 with a byte-order mark and CRLF line endings.
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def most_populous(rows: list[dict[str, str]], top: int) -> list[dict[str, str]]:
    """Top cities by population, one row per (city, state) so lookups are unambiguous."""
    ranked = sorted(rows, key=lambda row: (-int(row["population"]), row["state_id"], row["city"]))
    seen: set[tuple[str, str]] = set()
    kept = []
    for row in ranked:
        key = (row["city"], row["state_id"])
        if key in seen or not row["zips"].strip():
            continue
        seen.add(key)
        kept.append(row)
        if len(kept) == top:
            break
    return kept


def to_output_row(row: dict[str, str]) -> dict[str, str]:
    return {
        "city": row["city"],
        "state_id": row["state_id"],
        "state_name": row["state_name"],
        "lat": row["lat"],
        "lng": row["lng"],
        "population": row["population"],
        # One representative zip per city; the source lists all of them space-separated.
        "zip": row["zips"].split()[0],
        "timezone": row["timezone"],
    }


def write_table(rows: list[dict[str, str]], out: Path) -> None:
    with out.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=OUTPUT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(to_output_row(row) for row in rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="simplemaps uscities.csv (Basic edition)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--top", type=int, default=1000, help="number of cities to keep")
    args = parser.parse_args(argv)
    rows = most_populous(read_source(args.source), args.top)
    write_table(rows, args.out)
    print(f"wrote {len(rows)} cities to {args.out} (data: simplemaps, CC BY 4.0, {ATTRIBUTION_URL})")


if __name__ == "__main__":
    main()
