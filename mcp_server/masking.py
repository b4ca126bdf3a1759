"""Field masking per role, driven by the dataset manifest's `column_tags`.

The gateway tags every column at ingest (PII / PHI / Financial, from the column name
and a sample of its values). This module decides, per role, what a caller sees of a
tagged column. The kind of a PII column (email, phone, SSN, person name, ...) is read
from its name, else from the shape of the value, so the partial masks keep what a
recruiter needs and nothing more.

Policy (`POLICY` below is the source of truth; README.md repeats it):

| column (tag / kind)                 | admin | recruiter            | viewer       |
|-------------------------------------|-------|----------------------|--------------|
| PII person name (`name`)            | clear | clear                | initials "A. R." |
| PII email                           | clear | partial `j***@x.com` | `***`        |
| PII phone                           | clear | partial `***-***-1234` | `***`      |
| PII SSN                             | clear | partial `***-**-6789` | `***`       |
| PII other (address, birth date, …)  | clear | `***`                | `***`        |
| PHI (medical)                       | clear | `***`                | `***`        |
| Financial (pay rate, salary)        | clear | clear (needed to match bill rates) | hidden (null) |

Hidden numbers become `null`, hidden text `"***"`; every masked row lists what was
masked in `masked_fields`. Untagged columns named like email / phone / SSN are treated
as PII anyway (a safety net should tagging ever miss one). Free-text columns are
masked only when the tagger tagged them.

The AI-safe view (`ai_safe_select`) is stricter than any role: every PII / PHI /
Financial column is removed (default) or replaced by `'***'` in SQL, so those values
never leave the gateway.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Iterable

SENSITIVE_TAGS = ("PII", "PHI", "Financial")
MASK = "***"

CLEAR, PARTIAL, INITIALS, HIDE = "clear", "partial", "initials", "hide"

#: role -> (tag, kind) -> action; kind "*" is the default for the tag
POLICY: dict[str, dict[tuple[str, str], str]] = {
    "admin": {("PII", "*"): CLEAR, ("PHI", "*"): CLEAR, ("Financial", "*"): CLEAR},
    "recruiter": {
        ("PII", "name"): CLEAR, ("PII", "email"): PARTIAL, ("PII", "phone"): PARTIAL, ("PII", "ssn"): PARTIAL,
        ("PII", "*"): HIDE, ("PHI", "*"): HIDE, ("Financial", "*"): CLEAR,
    },
    "viewer": {("PII", "name"): INITIALS, ("PII", "*"): HIDE, ("PHI", "*"): HIDE, ("Financial", "*"): HIDE},
}

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_SSN = re.compile(r"^\d{3}-?\d{2}-?\d{4}$")
_PHONE = re.compile(r"^[+()\d][\d\s().\-+x]{6,}$")
_NAME_WORDS = {"first", "last", "full", "given", "family", "middle"}


@functools.lru_cache(maxsize=1024)
def _tokens(column: str) -> tuple[str, ...]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", column)
    return tuple(t for t in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if t)


@functools.lru_cache(maxsize=1024)
def _kind_by_name(column: str) -> str | None:
    """What a column's name alone says it holds (None: the name does not tell). Kept per
    name: masking a page of results asks it once per cell."""
    tokens = set(_tokens(column))
    joined = "_".join(_tokens(column))
    if tokens & {"email", "mail"} or "e_mail" in joined:
        return "email"
    if tokens & {"phone", "mobile", "cell", "telephone", "tel", "fax"}:
        return "phone"
    if tokens & {"ssn", "sin"} or "social_security" in joined:
        return "ssn"
    if tokens & {"dob", "birthdate", "birthday"} or "birth_date" in joined or "date_of_birth" in joined:
        return "birth_date"
    if tokens & {"address", "street", "addr"}:
        return "address"
    if ("name" in tokens and (len(tokens) == 1 or tokens & _NAME_WORDS)) or tokens & {"firstname", "lastname", "fullname", "surname"}:
        return "name"
    return None


def kind_of(column: str, value: Any = None) -> str:
    """email | phone | ssn | name | birth_date | address | other."""
    by_name = _kind_by_name(column)
    if by_name is not None:
        return by_name
    if isinstance(value, str):
        text = value.strip()
        if _EMAIL.match(text):
            return "email"
        if _SSN.match(text):
            return "ssn"
        if _PHONE.match(text) and sum(c.isdigit() for c in text) >= 7:
            return "phone"
    return "other"


def effective_tags(column_tags: dict[str, str] | None, columns: Iterable[str] = ()) -> dict[str, str]:
    """The manifest's tags plus the safety net for untagged email / phone / SSN columns."""
    tags = {c: t for c, t in (column_tags or {}).items() if t in SENSITIVE_TAGS}
    for column in columns:
        if column not in tags and kind_of(column) in ("email", "phone", "ssn"):
            tags[column] = "PII"
    return tags


def action_for(role: str, tag: str, kind: str) -> str:
    rules = POLICY.get(role, POLICY["viewer"])
    return rules.get((tag, kind)) or rules.get((tag, "*")) or HIDE


def mask_value(value: Any, kind: str, action: str) -> Any:
    if value is None or action == CLEAR:
        return value
    if action == HIDE:
        return MASK if isinstance(value, str) else None
    text = str(value)
    if action == INITIALS:
        parts = [p for p in re.split(r"\s+", text.strip()) if p]
        return " ".join(p[0].upper() + "." for p in parts) or MASK
    # PARTIAL
    if kind == "email" and "@" in text:
        local, _, domain = text.partition("@")
        return f"{local[:1]}***@{domain}"
    digits = "".join(c for c in text if c.isdigit())
    if kind == "phone" and len(digits) >= 4:
        return f"***-***-{digits[-4:]}"
    if kind == "ssn" and len(digits) >= 4:
        return f"***-**-{digits[-4:]}"
    return MASK


def mask_row(row: dict[str, Any], tags: dict[str, str], role: str) -> dict[str, Any]:
    """A copy of `row` with the tagged columns masked for `role` (and `masked_fields`)."""
    if role == "admin" or not tags:
        return row
    out = dict(row)
    masked = []
    for column, tag in tags.items():
        if column not in out:
            continue
        kind = kind_of(column, out[column])
        action = action_for(role, tag, kind)
        if action != CLEAR:
            out[column] = mask_value(out[column], kind, action)
            masked.append(column)
    if masked:
        out["masked_fields"] = sorted(set(masked) | set(row.get("masked_fields") or []))
    return out


def mask_rows(rows: list[dict[str, Any]], tags: dict[str, str], role: str) -> list[dict[str, Any]]:
    return [mask_row(r, tags, role) for r in rows]


def policy_document() -> dict[str, Any]:
    """The policy as data (served by `GET /policy/masking`)."""
    return {
        "tags": list(SENSITIVE_TAGS),
        "roles": {role: {f"{tag}/{kind}": action for (tag, kind), action in rules.items()} for role, rules in POLICY.items()},
        "hidden_text": MASK,
        "hidden_number": None,
        "ai_safe": "every PII / PHI / Financial column removed (mode=drop) or replaced by '***' (mode=mask) in SQL",
    }


def ai_safe_select(table: str, columns: list[str], tags: dict[str, str], mode: str) -> tuple[str, list[str], list[str]]:
    """The SELECT list of the AI-safe view, the removed columns and the masked columns."""
    def q(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    select, removed, masked = [], [], []
    for column in columns:
        if column in tags:
            if mode == "mask":
                select.append(f"CASE WHEN {q(column)} IS NULL THEN NULL ELSE '{MASK}' END AS {q(column)}")
                masked.append(column)
            else:
                removed.append(column)
        else:
            select.append(q(column))
    return ", ".join(select), removed, masked
