"""Trades, their demand, pay and vocabulary; client industries and which trades they hire.

Numbers are plausible 2024-25 US light-industrial / construction staffing figures,
chosen by hand: demand weights follow how often staffing agencies fill each trade
(warehouse and general labour dominate, masons are rare), base pay is a typical
entry-level hourly rate before experience and regional adjustments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Sectors group trades so that client industries can favour the trades they hire.
CONSTRUCTION, WAREHOUSE, MANUFACTURING, TRANSPORT, FACILITIES = range(5)


@dataclass(frozen=True)
class Role:
    name: str
    demand: float  # relative share of workers and job orders
    base_pay: float  # USD/hour for an entry-level worker
    sector: int
    female_share: float  # drives first-name sampling
    skills: tuple[str, ...]  # most common first: earlier skills are picked more often
    certifications: tuple[tuple[str, float], ...]  # (name, chance for an experienced worker)


_OSHA10 = ("OSHA-10", 0.45)
_OSHA30 = ("OSHA-30", 0.12)
_FORKLIFT = ("Forklift", 0.55)
_CPR = ("First Aid/CPR", 0.15)
_AERIAL = ("Aerial Lift", 0.15)
_LOTO = ("Lockout/Tagout", 0.25)

ROLES: tuple[Role, ...] = (
    Role("Warehouse Associate", 14.0, 17.0, WAREHOUSE, 0.32,
         ("Picking and packing", "RF scanning", "Shipping and receiving", "Inventory counts",
          "Pallet jack", "Loading and unloading", "Order staging", "WMS software"),
         (_FORKLIFT, ("OSHA-10", 0.15), _CPR)),
    Role("General Laborer", 12.0, 17.5, CONSTRUCTION, 0.12,
         ("Site cleanup", "Demolition", "Material handling", "Power tools", "Digging and trenching",
          "Flagging", "Scaffolding", "Framing support"),
         (_OSHA10, ("OSHA-30", 0.05), ("Flagger", 0.2), _CPR)),
    Role("Forklift Operator", 9.0, 19.5, WAREHOUSE, 0.15,
         ("Sit-down forklift", "Stand-up reach truck", "Order picker", "RF scanning",
          "Pallet jack", "Loading docks", "Cycle counts", "Clamp truck"),
         (("Forklift", 0.95), ("OSHA-10", 0.2), ("Reach Truck", 0.35), _CPR)),
    Role("Production Worker", 9.0, 17.0, MANUFACTURING, 0.38,
         ("Line work", "Packaging", "Quality checks", "Machine tending", "GMP",
          "Labeling", "5S", "Sanitation"),
         (("OSHA-10", 0.15), ("Forklift", 0.15), ("ServSafe", 0.1))),
    Role("Material Handler", 7.0, 17.5, WAREHOUSE, 0.22,
         ("Loading and unloading", "Pallet jack", "Kitting", "RF scanning", "Inventory counts",
          "Line feeding", "Shrink wrapping", "Cross-docking"),
         (_FORKLIFT, ("OSHA-10", 0.15), _CPR)),
    Role("Machine Operator", 6.0, 19.5, MANUFACTURING, 0.2,
         ("CNC operation", "Setup and changeover", "Calipers and micrometers", "Blueprint reading",
          "Press brake", "Injection molding", "Quality inspection", "G-code basics"),
         (_LOTO, ("OSHA-10", 0.25), ("NIMS Level I", 0.15), ("Forklift", 0.2))),
    Role("Assembler", 6.0, 17.5, MANUFACTURING, 0.4,
         ("Mechanical assembly", "Hand tools", "Soldering", "Blueprint reading", "Torque tools",
          "Wire harnessing", "Quality checks", "Electronics assembly"),
         (("IPC-A-610", 0.15), ("J-STD-001", 0.1), ("OSHA-10", 0.15))),
    Role("CDL Driver", 6.0, 26.0, TRANSPORT, 0.08,
         ("Class A tractor-trailer", "Pre-trip inspection", "Electronic logs", "Flatbed",
          "Box truck", "Local delivery", "Over-the-road", "Tanker"),
         (("CDL Class A", 0.85), ("Hazmat Endorsement", 0.3), ("Tanker Endorsement", 0.2),
          ("DOT Medical Card", 0.7))),
    Role("Welder", 5.0, 23.0, MANUFACTURING, 0.05,
         ("MIG", "TIG", "Stick", "Flux-core", "Blueprint reading", "Pipe welding",
          "Structural welding", "Aluminum welding", "Plasma cutting", "Fitting"),
         (("AWS D1.1", 0.45), ("AWS D17.1", 0.08), ("ASME Section IX", 0.12), _OSHA10)),
    Role("Electrician", 5.0, 29.0, CONSTRUCTION, 0.04,
         ("Commercial wiring", "Residential wiring", "Conduit bending", "Panel installation",
          "Troubleshooting", "Motor controls", "Low voltage", "PLC basics", "NEC code"),
         (("Journeyman Electrician License", 0.5), _OSHA10, _OSHA30, ("NFPA 70E", 0.25),
          _AERIAL)),
    Role("Carpenter", 4.0, 25.0, CONSTRUCTION, 0.04,
         ("Framing", "Finish carpentry", "Formwork", "Drywall", "Blueprint reading",
          "Cabinet installation", "Door and hardware", "Metal studs"),
         (_OSHA10, _OSHA30, ("NCCER Carpentry", 0.15), _AERIAL)),
    Role("Maintenance Tech", 4.0, 25.0, FACILITIES, 0.08,
         ("Preventive maintenance", "Troubleshooting", "Hydraulics", "Pneumatics",
          "Electrical controls", "PLC basics", "Welding repair", "Conveyor systems", "HVAC basics"),
         (_LOTO, ("OSHA-10", 0.3), ("EPA 608", 0.2), ("NFPA 70E", 0.15))),
    Role("HVAC Technician", 3.0, 26.0, CONSTRUCTION, 0.04,
         ("Refrigeration", "Ductwork", "Commercial rooftop units", "Residential service",
          "Brazing", "Controls", "Heat pumps", "Boilers"),
         (("EPA 608", 0.85), ("NATE", 0.3), _OSHA10)),
    Role("Plumber", 3.0, 29.0, CONSTRUCTION, 0.03,
         ("Rough-in", "Service and repair", "PEX", "Copper sweating", "Cast iron",
          "Water heaters", "Backflow testing", "Commercial plumbing"),
         (("Journeyman Plumber License", 0.5), _OSHA10, ("Backflow Certification", 0.2))),
    Role("Painter", 3.0, 21.0, CONSTRUCTION, 0.15,
         ("Brush and roll", "Spray painting", "Surface prep", "Drywall repair",
          "Commercial repaints", "Epoxy coatings", "Caulking", "Wallcovering"),
         (_OSHA10, ("Lead-Safe (EPA RRP)", 0.25), _AERIAL)),
    Role("Heavy Equipment Operator", 2.0, 27.0, CONSTRUCTION, 0.05,
         ("Excavator", "Skid steer", "Bulldozer", "Backhoe", "Wheel loader",
          "Grading", "Trenching", "Crane signaling"),
         (_OSHA10, ("NCCCO Crane", 0.12), ("CDL Class A", 0.25), ("Flagger", 0.2))),
    Role("Concrete Finisher", 2.0, 22.0, CONSTRUCTION, 0.03,
         ("Flatwork", "Power trowel", "Forming", "Screeding", "Stamped concrete",
          "Curbs and sidewalks", "Rebar tying", "Decorative finishes"),
         (_OSHA10, ("ACI Flatwork Finisher", 0.2))),
    Role("Roofer", 2.0, 21.0, CONSTRUCTION, 0.02,
         ("Shingles", "TPO", "Metal roofing", "Tear-off", "Flashing", "Modified bitumen",
          "Roof repair", "EPDM"),
         (_OSHA10, ("Fall Protection", 0.4))),
    Role("Pipefitter", 2.0, 30.0, CONSTRUCTION, 0.03,
         ("Pipe fabrication", "Blueprint reading", "Rigging", "Threading", "Steam systems",
          "Process piping", "Pipe welding", "Hydro testing"),
         (_OSHA10, _OSHA30, ("Confined Space", 0.3), ("NCCER Pipefitting", 0.2))),
    Role("Mason", 1.5, 25.0, CONSTRUCTION, 0.02,
         ("Brick laying", "Block laying", "Stone veneer", "Tuckpointing", "Mortar mixing",
          "Restoration", "Scaffolding", "Blueprint reading"),
         (_OSHA10, ("NCCER Masonry", 0.15))),
)

# Credentials that take years in the trade (apprenticeship, supervised hours).
MIN_YEARS_FOR_CERTIFICATION: dict[str, int] = {
    "Journeyman Electrician License": 4, "Journeyman Plumber License": 4, "NCCCO Crane": 2,
    "OSHA-30": 2, "ASME Section IX": 2,
}

ROLE_NAMES: tuple[str, ...] = tuple(role.name for role in ROLES)
ROLE_DEMAND = np.array([role.demand for role in ROLES]) / sum(role.demand for role in ROLES)
ROLE_BASE_PAY = np.array([role.base_pay for role in ROLES])
ROLE_SECTOR = np.array([role.sector for role in ROLES])
ROLE_FEMALE_SHARE = np.array([role.female_share for role in ROLES])
MAX_SKILLS = max(len(role.skills) for role in ROLES)
MAX_CERTIFICATIONS = max(len(role.certifications) for role in ROLES)

# Lower-case trade noun for prose ("an HVAC technician", "a welder").
_UPPER_WORDS = {"HVAC", "CDL"}


def role_noun(name: str) -> str:
    return " ".join(word if word in _UPPER_WORDS else word.lower() for word in name.split())


def with_article(noun: str) -> str:
    vowel_sound = noun[0] in "aeiou" or noun.startswith("HVAC")
    return f"{'an' if vowel_sound else 'a'} {noun}"


@dataclass(frozen=True)
class Industry:
    name: str
    weight: float  # share of clients
    sectors: tuple[int, ...]  # trades this industry mostly hires
    company_nouns: tuple[str, ...]


INDUSTRIES: tuple[Industry, ...] = (
    Industry("Construction", 0.26, (CONSTRUCTION,),
             ("Builders", "Construction", "Contracting", "Concrete", "Roofing", "Electric",
              "Mechanical", "Contractors")),
    Industry("Manufacturing", 0.22, (MANUFACTURING, FACILITIES),
             ("Manufacturing", "Fabrication", "Metalworks", "Plastics", "Precision",
              "Industries", "Machining", "Components")),
    Industry("Logistics & Warehousing", 0.2, (WAREHOUSE, TRANSPORT),
             ("Logistics", "Distribution", "Freight", "Supply", "Fulfillment", "Warehousing")),
    Industry("Food Processing", 0.1, (MANUFACTURING, WAREHOUSE),
             ("Foods", "Packing", "Provisions", "Bakeries", "Meats")),
    Industry("Automotive", 0.08, (MANUFACTURING, TRANSPORT),
             ("Auto Parts", "Automotive", "Motors", "Stamping")),
    Industry("Energy & Utilities", 0.07, (CONSTRUCTION, FACILITIES),
             ("Energy", "Power", "Pipeline Services", "Solar", "Utilities")),
    Industry("Facilities Services", 0.07, (FACILITIES, CONSTRUCTION),
             ("Facility Services", "Property Services", "Maintenance", "Building Services")),
)

INDUSTRY_NAMES: tuple[str, ...] = tuple(industry.name for industry in INDUSTRIES)
INDUSTRY_WEIGHTS = np.array([industry.weight for industry in INDUSTRIES])
INDUSTRY_WEIGHTS = INDUSTRY_WEIGHTS / INDUSTRY_WEIGHTS.sum()


def industry_role_weights() -> np.ndarray:
    """(industries x roles) probabilities: an industry's own sectors get most orders."""
    in_sector = np.array(
        [[role.sector in industry.sectors for role in ROLES] for industry in INDUSTRIES]
    )
    weights = ROLE_DEMAND[None, :] * np.where(in_sector, 1.0, 0.06)
    return weights / weights.sum(axis=1, keepdims=True)


COMPANY_PLACE_WORDS: tuple[str, ...] = (
    "Great Lakes", "Summit", "Keystone", "Lone Star", "Pacific", "Frontier", "Ironwood",
    "Blue Ridge", "Redline", "Northstar", "Cornerstone", "Heartland", "Granite", "Prairie",
    "Bayside", "Riverbend", "Midwest", "Atlas", "Eagle", "Pioneer", "Liberty", "Cascade",
    "Sun Belt", "Tri-County", "Gulf Coast", "Allied", "United", "Premier", "Apex", "Sterling",
)
COMPANY_SUFFIXES: tuple[str, ...] = ("", " LLC", " Inc.", " Co.", " Group", " Corp.")
